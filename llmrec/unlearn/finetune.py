"""Fine-tune: keep training θ₀ on retained data only, hoping the forget set fades (catastrophic forgetting).

The cheapest baseline and the weakest: nothing pushes the forgotten answers away, so it shows how
much forgetting comes for free from further training.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from llmrec.unlearn.data import UnlearningData
from llmrec.unlearn.loop import Schedule, StudentConfig, batch_ce, make_trainable
from llmrec.unlearn.registry import register


@dataclass
class FinetuneConfig(StudentConfig):
    """Length in passes over the forget set's size: `epochs` × forget samples of retained data are seen."""


@register("finetune")
def unlearn_finetune(original, data: UnlearningData, config: FinetuneConfig, autocast=contextlib.nullcontext) -> dict:
    model = make_trainable(original, config.finetune, config.lora)
    schedule = Schedule.for_config(data, config)
    seconds, taken = schedule.run(model, lambda step: batch_ce(model, next(schedule.retained), data.answer), config,
                                  autocast, desc="finetune")
    return schedule.result(model, seconds, taken)
