"""Gradient ascent: raise the loss of the forget set, nothing else (Golatkar et al. 2020 and Thudi et al. 2022 call
it the simplest approximate unlearning; E2URec's NegGrad adds descent on retained data to it).

Without a retained term nothing holds utility: it shows what forgetting alone costs. One module for every family.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmrec.unlearn.loop import StudentConfig, Unlearning
from llmrec.unlearn.registry import register


@dataclass
class GradientAscentConfig(StudentConfig):
    """Only forget batches are used: `epochs` passes over the forget set."""


@register("gradient_ascent", config=GradientAscentConfig)
def unlearn_gradient_ascent(work: Unlearning, config: GradientAscentConfig) -> dict:
    model = work.trainable(config)
    schedule = work.schedule(config, with_retained=False)
    seconds, taken = schedule.run(model, lambda step: -work.loss(model, next(schedule.forget), regularize=False),
                                  config, work.autocast, desc="gradient_ascent")
    return schedule.result(model, seconds, taken)
