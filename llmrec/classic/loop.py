"""What the gradient-based classic methods share: forget/retained batch streams and the BCE they train on.

As on the LLM path, a method's length is in passes over the forget set with one retained batch beside each
forget batch, and the step loop itself is `llmrec.unlearn.loop.optimize`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.func import functional_call

from llmrec.classic.data import Triples
from llmrec.classic.losses import regularized_bce
from llmrec.store import parameter_counts
from llmrec.unlearn.loop import StudentConfig, optimize
from llmrec.unlearn.stopping import steps_for


def batch_stream(triples: Triples, batch_size: int, seed: int) -> Iterator[Triples]:
    """Endless seeded shuffled batches, reshuffled every pass."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        for rows in torch.randperm(len(triples), generator=generator).split(batch_size):
            yield Triples(triples.users[rows], triples.items[rows], triples.labels[rows], rows)


CLASSIC_SCHEDULE = {"epochs": 5.0, "learning_rate": 1e-2, "batch_size": 256}  # tuned on MF / LightGCN


def classic_schedule(config_class: type):
    """A method's config as a classic recipe starts from it: the config's own `classic()` defaults where it has
    them (E2URec), a gradient method written once for every family (an `unlearn.loop.StudentConfig`) with a
    classic model's schedule defaults, so each family keeps its tuned values; any other config with its own
    defaults."""
    if hasattr(config_class, "classic"):
        return config_class.classic()
    return config_class(**CLASSIC_SCHEDULE) if issubclass(config_class, StudentConfig) else config_class()


@dataclass
class ClassicSchedule:
    """Seeded endless forget and retained batch streams (retained ones drawn lazily: unused costs nothing) for
    `steps` AdamW steps; the classic counterpart of `unlearn.loop.Schedule`, without a stopping rule."""

    steps: int
    forget: Iterator[Triples]
    retained: Iterator[Triples] | None
    forget_set: Triples | None = None
    retained_set: Triples | None = None
    warmup: int = 0  # forget-only steps before the first retained batch
    stopping = None  # classic runs take every step of their schedule
    per_step_retained_teacher = False

    @classmethod
    def for_config(cls, work, config, seed: int = 0, *, with_retained: bool = True, epochs: float | None = None,
                   warmup_epochs: float = 0.0, batch_size: int | None = None) -> ClassicSchedule:
        """Forget stream seeded `seed`, retained stream `seed + 1`; `epochs` (default config.epochs) passes over the
        forget set after `warmup_epochs` forget-only ones."""
        size = batch_size or config.batch_size
        epochs = config.epochs if epochs is None else epochs
        warmup = steps_for(warmup_epochs, len(work.forget), size)
        steps = warmup + steps_for(epochs, len(work.forget), size)
        retained = batch_stream(work.retained, size, seed + 1) if with_retained else None
        return cls(steps, batch_stream(work.forget, size, seed), retained, work.forget,
                   work.retained if with_retained else None, warmup)

    def run(self, model, step_loss, config, autocast=None, desc: str = "unlearning") -> tuple[float, int]:
        """Every step of the schedule (classic runs have no stopping rule): (seconds, steps taken)."""
        return optimize(model, self.steps, step_loss, config.learning_rate, getattr(config, "lr_scheduler", "constant"),
                        desc=desc), self.steps

    def result(self, model, seconds: float, taken: int | None = None, **timings: float) -> dict:
        return student_result(model, seconds, self.steps, **timings)


class LowRankStudent(nn.Module):
    """θ₀ (frozen) + A·B on the user and item tables + additive bias updates: a classic model's counterpart of a
    LoRA adapter (ΔP = A·B with B zero at the start, so the student starts as θ₀); `merged()` folds it in."""

    def __init__(self, original, rank: int):
        super().__init__()
        self.original = original.requires_grad_(False)
        self.updates = nn.ParameterDict()
        for name in ("user", "item"):
            table = getattr(original, name).weight
            self.updates[f"{name}_a"] = nn.Parameter(torch.randn(table.shape[0], rank) / rank ** 0.5)
            self.updates[f"{name}_b"] = nn.Parameter(torch.zeros(rank, table.shape[1]))
            self.updates[f"{name}_bias"] = nn.Parameter(torch.zeros(table.shape[0], 1))

    def weights(self) -> dict:
        base, up = self.original, self.updates
        return {"user.weight": base.user.weight + up["user_a"] @ up["user_b"],
                "item.weight": base.item.weight + up["item_a"] @ up["item_b"],
                "user_bias.weight": base.user_bias.weight + up["user_bias"],
                "item_bias.weight": base.item_bias.weight + up["item_bias"]}

    def forward(self, users, items):
        return functional_call(self.original, self.weights(), (users, items))

    def merged(self):
        """A plain model of the original's kind with the update folded in."""
        model = copy.deepcopy(self.original)
        with torch.no_grad():
            for name, value in self.weights().items():
                model.get_parameter(name).copy_(value)
        return model.requires_grad_(True)


def batch_bce(model, batch: Triples, weight_decay: float, labels: torch.Tensor | None = None) -> torch.Tensor:
    """The original's training objective on one batch, against its own labels unless others are given."""
    return regularized_bce(model(batch.users, batch.items), batch.labels if labels is None else labels,
                           model.parameters(), weight_decay)


def two_class(scores: torch.Tensor) -> torch.Tensor:
    """[yes, no] logits [s/2, −s/2], whose softmax is (σ(s), 1 − σ(s)): the LLM path's pure losses then run on
    classic scores, and a score that falls raises the "no" logit as an LLM's would (E2URec's teacher needs that)."""
    return torch.stack([scores / 2, -scores / 2], dim=-1)


def student_result(model, seconds: float, steps: int, **timings) -> dict:
    """A classic runner's return value; a `LowRankStudent` is saved merged, its trainable count is its update's."""
    trainable, _ = parameter_counts(model)
    return {"model": model.merged() if isinstance(model, LowRankStudent) else model, "timings": {"train_seconds": seconds, **timings}, "steps": {"optimizer_steps": steps},
            "trainable_parameters": trainable}
