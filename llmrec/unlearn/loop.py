"""What the gradient-based unlearning methods share: which weights train, and one readable step loop.

Every method's length is in passes over the forget set, so its cost scales with what is
forgotten, not with the training set; a method that also looks at retained data draws one
retained batch beside each forget batch, and pays only for those samples.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import get_scheduler

from llmrec.config import LoraSettings, option
from llmrec.llm.backbone import AnswerTokens, add_lora
from llmrec.llm.scoring import answer_logits, answer_loss
from llmrec.unlearn.data import UnlearningData, steps_for


@dataclass
class StudentConfig:
    """Settings of a method that trains the original further (the baselines)."""

    finetune: Literal["full", "lora"] = option(
        "full", "full | lora: update every weight (as the baselines are usually run) or a LoRA adapter on θ₀"
    )
    lora: LoraSettings = option(LoraSettings(), "adapter shape when finetune=lora")
    epochs: float = option(1.0, "passes over the forget set (a retained batch comes beside each forget batch)", gt=0)
    learning_rate: float = option(1e-3, "AdamW learning rate", gt=0)
    lr_scheduler: Literal["constant", "linear"] = option("constant", "constant | linear decay to 0")
    batch_size: int = option(32, "samples per forget batch and per retained batch", ge=1)


def make_trainable(original, finetune: str, lora: LoraSettings):
    """The model a method trains: θ₀ itself (in memory; the saved original is never touched) or θ₀ + LoRA."""
    for p in original.parameters():
        p.requires_grad_(finetune == "full")
    return add_lora(original, lora) if finetune == "lora" else original


def batch_ce(model, batch: dict, answer: AnswerTokens, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Answer cross-entropy of one batch, against its own labels unless others are given."""
    logits = answer_logits(model, batch["input_ids"], batch["attention_mask"])
    return answer_loss(logits, batch["labels"] if labels is None else labels, answer.yes_id, answer.no_id)


def is_main_process() -> bool:
    return not (torch.distributed.is_available() and torch.distributed.is_initialized()) or (
        torch.distributed.get_rank() == 0)


def average_gradients(model) -> None:
    """Data parallelism by hand: each process saw an equal share of the batch, so the mean of their gradients is
    the whole batch's gradient. (DDP would do the same, but the methods' step losses call the bare model.)"""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    processes = torch.distributed.get_world_size()
    for p in model.parameters():
        if p.requires_grad:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            torch.distributed.all_reduce(p.grad)
            p.grad.div_(processes)


def optimize(model, steps: int, step_loss: Callable[[int], torch.Tensor], learning_rate: float,
             lr_scheduler: str = "constant", autocast=contextlib.nullcontext, desc: str = "unlearning") -> float:
    """`steps` AdamW steps on `step_loss(step)`; returns the seconds spent. The model is left in eval mode."""
    start = time.perf_counter()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    scheduler = get_scheduler(lr_scheduler, optimizer, num_warmup_steps=0, num_training_steps=steps)
    bar = tqdm(range(steps), desc=desc, leave=False, disable=not is_main_process())
    for step in bar:
        with autocast():
            loss = step_loss(step)
        loss.backward()
        average_gradients(model)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        bar.set_postfix(loss=f"{loss.item():.4f}")
    model.eval()
    return time.perf_counter() - start


@dataclass
class Schedule:
    """Seeded forget and retained batch iterators for `steps` steps of a StudentConfig method."""

    steps: int
    forget: Iterator[dict]
    retained: Iterator[dict] | None
    retained_set: Dataset | None  # the retained samples drawn for this run, with their row indices

    @classmethod
    def for_config(cls, data: UnlearningData, config: StudentConfig, with_retained: bool = True) -> Schedule:
        steps = steps_for(config.epochs, len(data.forget), config.batch_size)
        forget = iter(data.batches(data.forget, config.batch_size, steps))
        if not with_retained:
            return cls(steps, forget, None, None)
        retained = data.retained_sample(steps * config.batch_size)
        return cls(steps, forget, iter(data.batches(retained, config.batch_size, steps, seed_offset=1)), retained)

    def result(self, model, seconds: float, **timings: float) -> dict:
        """The runner's return value that `llmrec unlearn` turns into artefacts and a manifest."""
        return {"student": model, "timings": {**timings, "train_seconds": seconds}, "steps": {"train": self.steps},
                "retained_samples_used": len(self.retained_set) if self.retained_set is not None else 0}
