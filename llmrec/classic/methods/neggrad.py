"""NegGrad on a classic model: ascent on the forgotten triples, descent on retained ones (the LLM path's loss)."""

from __future__ import annotations

from dataclasses import dataclass

from llmrec.classic.loop import ClassicSchedule, ClassicStudentConfig, batch_bce, student_result
from llmrec.classic.registry import register
from llmrec.config import option
from llmrec.unlearn.loop import optimize
from llmrec.unlearn.losses import neggrad_loss


@dataclass
class ClassicNegGradConfig(ClassicStudentConfig):
    ascent_weight: float = option(1.0, "w in BCE_retained − w·BCE_forget", ge=0)


@register("neggrad")
def neggrad(work, config: ClassicNegGradConfig) -> dict:
    model, decay = work.model, work.training.train.weight_decay
    schedule = ClassicSchedule.for_config(work, config)

    def step_loss(step):
        return neggrad_loss(batch_bce(model, next(schedule.retained), decay),
                            batch_bce(model, next(schedule.forget), 0.0), config.ascent_weight)

    seconds = optimize(model, schedule.steps, step_loss, config.learning_rate, desc="neggrad")
    return student_result(model, seconds, schedule.steps)
