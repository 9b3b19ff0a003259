"""Fine-tune on retained data: continue training the original without the forgotten triples (warm start)."""

from __future__ import annotations

from dataclasses import dataclass

from llmrec.classic.loop import ClassicSchedule, ClassicStudentConfig, batch_bce, student_result
from llmrec.classic.registry import register
from llmrec.unlearn.loop import optimize


@dataclass
class ClassicFinetuneConfig(ClassicStudentConfig):
    """Only retained batches are used; their number is set by the forget set's size, as for every baseline."""


@register("finetune")
def finetune(work, config: ClassicFinetuneConfig) -> dict:
    model, decay = work.model, work.training.train.weight_decay
    schedule = ClassicSchedule.for_config(work, config)
    seconds = optimize(model, schedule.steps, lambda step: batch_bce(model, next(schedule.retained), decay),
                       config.learning_rate, desc="finetune")
    return student_result(model, seconds, schedule.steps)
