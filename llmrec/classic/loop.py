"""What the gradient-based classic methods share: forget/retained batch streams and the BCE they train on.

As on the LLM path, a method's length is in passes over the forget set with one retained batch beside each
forget batch, and the step loop itself is `llmrec.unlearn.loop.optimize`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch

from llmrec.classic.data import Triples
from llmrec.classic.losses import regularized_bce
from llmrec.config import option
from llmrec.store import parameter_counts
from llmrec.unlearn.loop import StudentConfig, optimize


@dataclass
class ClassicStudentConfig:
    epochs: float = option(5.0, "passes over the forget set (a retained batch comes beside each forget batch)", gt=0)
    learning_rate: float = option(1e-2, "AdamW learning rate", gt=0)
    batch_size: int = option(256, "triples per forget batch and per retained batch", ge=1)


def batch_stream(triples: Triples, batch_size: int, seed: int) -> Iterator[Triples]:
    """Endless seeded shuffled batches, reshuffled every pass."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        for rows in torch.randperm(len(triples), generator=generator).split(batch_size):
            yield Triples(triples.users[rows], triples.items[rows], triples.labels[rows])


CLASSIC_SCHEDULE = {"epochs": 5.0, "learning_rate": 1e-2, "batch_size": 256}  # ClassicStudentConfig's defaults


def classic_schedule(config_class: type):
    """A method's config as a classic recipe starts from it: a gradient method written once for every family
    (an `unlearn.loop.StudentConfig`) with a classic model's schedule defaults, so each family keeps its tuned
    values; any other config with its own defaults."""
    return config_class(**CLASSIC_SCHEDULE) if issubclass(config_class, StudentConfig) else config_class()


@dataclass
class ClassicSchedule:
    steps: int
    forget: Iterator[Triples]
    retained: Iterator[Triples]

    @classmethod
    def for_config(cls, work, config: ClassicStudentConfig, seed: int = 0) -> ClassicSchedule:
        steps = max(1, math.ceil(config.epochs * len(work.forget) / config.batch_size))
        return cls(steps, batch_stream(work.forget, config.batch_size, seed),
                   batch_stream(work.retained, config.batch_size, seed + 1))

    def run(self, model, step_loss, config, autocast=None, desc: str = "unlearning") -> tuple[float, int]:
        """Every step of the schedule (classic runs have no stopping rule): (seconds, steps taken)."""
        return optimize(model, self.steps, step_loss, config.learning_rate, getattr(config, "lr_scheduler", "constant"),
                        desc=desc), self.steps

    def result(self, model, seconds: float, taken: int | None = None, **timings: float) -> dict:
        return student_result(model, seconds, self.steps, **timings)


def batch_bce(model, batch: Triples, weight_decay: float, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The original's training objective on one batch, against its own labels unless others are given."""
    return regularized_bce(model(batch.users, batch.items), batch.labels if labels is None else labels,
                           model.parameters(), weight_decay)


def two_class(scores: torch.Tensor) -> torch.Tensor:
    """[yes, no] logits [s/2, −s/2], whose softmax is (σ(s), 1 − σ(s)): the LLM path's pure losses then run on
    classic scores, and a score that falls raises the "no" logit as an LLM's would (E2URec's teacher needs that)."""
    return torch.stack([scores / 2, -scores / 2], dim=-1)


def student_result(model, seconds: float, steps: int, **timings) -> dict:
    trainable, _ = parameter_counts(model)
    return {"model": model, "timings": {"train_seconds": seconds, **timings}, "steps": {"optimizer_steps": steps},
            "trainable_parameters": trainable}
