"""Fine-tune: keep training θ₀ on retained data only, hoping the forget set fades (catastrophic forgetting).

The cheapest baseline and the weakest: nothing pushes the forgotten answers away, so it shows how
much forgetting comes for free from further training. One module for every family: on an MF / LightGCN the
retained loss is the original's own objective (BCE + its weight decay).
"""

from __future__ import annotations

from dataclasses import dataclass

from llmrec.unlearn.loop import StudentConfig, Unlearning
from llmrec.unlearn.registry import register


@dataclass
class FinetuneConfig(StudentConfig):
    """Length in passes over the forget set's size: `epochs` × forget samples of retained data are seen."""


@register("finetune", config=FinetuneConfig)
def unlearn_finetune(work: Unlearning, config: FinetuneConfig) -> dict:
    model = work.trainable(config)
    schedule = work.schedule(config)
    seconds, taken = schedule.run(model, lambda step: work.loss(model, next(schedule.retained)), config,
                                  work.autocast, desc="finetune")
    return schedule.result(model, seconds, taken)
