"""NegGrad: gradient ascent on the forget set, with descent on retained data to hold utility (E2URec's baseline).

Ascent is unbounded, so its length and weight are the knobs: too long and the model learns the
opposite of the forgotten answers, which a membership attack spots as easily as remembering them.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from llmrec.config import option
from llmrec.unlearn.data import UnlearningData
from llmrec.unlearn.loop import Schedule, StudentConfig, batch_ce, make_trainable, optimize
from llmrec.unlearn.losses import neggrad_loss
from llmrec.unlearn.registry import register


@dataclass
class NegGradConfig(StudentConfig):
    ascent_weight: float = option(1.0, "w in CE_retained − w·CE_forget")


@register("neggrad")
def unlearn_neggrad(original, data: UnlearningData, config: NegGradConfig, autocast=contextlib.nullcontext) -> dict:
    model = make_trainable(original, config.finetune, config.lora)
    schedule = Schedule.for_config(data, config)

    def step_loss(step):
        return neggrad_loss(batch_ce(model, next(schedule.retained), data.answer),
                            batch_ce(model, next(schedule.forget), data.answer), config.ascent_weight)

    seconds = optimize(model, schedule.steps, step_loss, config.learning_rate, config.lr_scheduler, autocast,
                       desc="neggrad")
    return schedule.result(model, seconds)
