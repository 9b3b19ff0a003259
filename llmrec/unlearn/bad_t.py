"""Bad-T (the E2URec code's baseline): fine-tune on the forget samples with Yes and No swapped, plus retained data.

Where NegGrad pushes the true answer's probability down without limit, Bad-T pulls it towards a
definite wrong answer; the retained term holds utility elsewhere.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from llmrec.config import option
from llmrec.unlearn.data import UnlearningData
from llmrec.unlearn.loop import Schedule, StudentConfig, batch_ce, make_trainable, optimize
from llmrec.unlearn.losses import flipped
from llmrec.unlearn.registry import register


@dataclass
class BadTConfig(StudentConfig):
    forget_weight: float = option(1.0, "weight of the flipped-label CE on forget samples against the retained CE")


@register("bad_t")
def unlearn_bad_t(original, data: UnlearningData, config: BadTConfig, autocast=contextlib.nullcontext) -> dict:
    model = make_trainable(original, config.finetune, config.lora)
    schedule = Schedule.for_config(data, config)

    def step_loss(step):
        forget = next(schedule.forget)
        return (batch_ce(model, next(schedule.retained), data.answer)
                + config.forget_weight * batch_ce(model, forget, data.answer, labels=flipped(forget["labels"])))

    seconds = optimize(model, schedule.steps, step_loss, config.learning_rate, config.lr_scheduler, autocast,
                       desc="bad_t")
    return schedule.result(model, seconds)
