"""Bad-T on a classic model: the forgotten triples with flipped labels, plus retained triples."""

from __future__ import annotations

from dataclasses import dataclass

from llmrec.classic.loop import ClassicSchedule, ClassicStudentConfig, batch_bce, student_result
from llmrec.classic.registry import register
from llmrec.config import option
from llmrec.unlearn.loop import optimize
from llmrec.unlearn.losses import flipped


@dataclass
class ClassicBadTConfig(ClassicStudentConfig):
    forget_weight: float = option(1.0, "weight of the flipped-label BCE on forget triples against the retained BCE",
                                  ge=0)


@register("bad_t")
def bad_t(work, config: ClassicBadTConfig) -> dict:
    model, decay = work.model, work.training.train.weight_decay
    schedule = ClassicSchedule.for_config(work, config)

    def step_loss(step):
        forget = next(schedule.forget)
        return (batch_bce(model, next(schedule.retained), decay)
                + config.forget_weight * batch_bce(model, forget, 0.0, labels=flipped(forget.labels)))

    seconds = optimize(model, schedule.steps, step_loss, config.learning_rate, desc="bad_t")
    return student_result(model, seconds, schedule.steps)
