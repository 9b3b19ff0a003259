"""What the gradient-based unlearning methods share: which weights train, and one readable step loop.

Every method's length is in passes over the forget set, so its cost scales with what is
forgotten, not with the training set; a method that also looks at retained data draws one
retained batch beside each forget batch, and pays only for those samples.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
from datasets import Dataset
from torch import nn
from transformers import get_scheduler

from llmrec.config import LoraSettings, option
from llmrec.errors import LlmrecError
from llmrec.llm.backbone import AnswerTokens, add_lora
from llmrec.llm.scoring import answer_logits, answer_loss
from llmrec.progress import progress
from llmrec.unlearn.data import UnlearningData
from llmrec.unlearn.stopping import steps_for
from llmrec.unlearn.stopping import Stopping


@dataclass
class StudentConfig:
    """Settings of a method that trains the original further (the baselines), on any model family. The defaults
    are an LLM's; a classic recipe (`classic.unlearn.ClassicUnlearnRecipe`) carries its own (`classic_schedule`)."""

    finetune: Literal["full", "lora"] = option(
        "full", "full | lora: update every weight (as the baselines are usually run) or a LoRA adapter on θ₀ (an "
        "LLM's; a classic model trains its whole embedding tables)"
    )
    lora: LoraSettings = option(LoraSettings(), "adapter shape when finetune=lora")
    epochs: float = option(1.0, "passes over the forget set (a retained batch comes beside each forget batch) under "
                                "stop.rule=fixed; under parity the run stops at parity or stop.max_epochs passes", gt=0)
    learning_rate: float = option(1e-3, "AdamW learning rate", gt=0)
    lr_scheduler: Literal["constant", "linear"] = option("constant", "constant | linear decay to 0")
    batch_size: int = option(32, "samples (prompts; a classic model's (user, item, label) triples) per forget batch "
                                 "and per retained batch", ge=1)


class Unlearning(Protocol):
    """What a gradient method asks of the model family it runs on, so the method is written once: an LLM
    (`LlmUnlearning`) or an MF / LightGCN (`classic.unlearn.ClassicUnlearning`)."""

    family: str  # llm | mf | lightgcn
    autocast: Callable  # () -> context manager of the run's precision (a no-op for classic models)

    def trainable(self, config: StudentConfig) -> nn.Module:
        """The model the method trains, starting as θ₀ (edited in memory; the saved original is never written)."""

    def schedule(self, config: StudentConfig, with_retained: bool = True):
        """Seeded `forget` and `retained` (None without `with_retained`) batch iterators with `run(model, step_loss, config, autocast, desc)` ->
        (seconds, steps taken) and `result(model, seconds, taken)` -> the runner's return value."""

    def loss(self, model, batch, labels: torch.Tensor | None = None, regularize: bool = True) -> torch.Tensor:
        """[] the original's training objective on one batch (mean nats), against `labels` [batch] when given;
        `regularize`: with the original's weight decay where it had one (a classic model's; ascent terms leave it
        out)."""

    def labels(self, batch) -> torch.Tensor:
        """[batch] the batch's own 0/1 labels."""


@dataclass
class LlmUnlearning:
    """The LLM family's unlearning context: θ₀ as loaded, the tokenised data, the run's autocast."""

    original: nn.Module
    data: UnlearningData
    autocast: Callable = contextlib.nullcontext
    family: str = "llm"

    def trainable(self, config: StudentConfig) -> nn.Module:
        return make_trainable(self.original, config.finetune, config.lora)

    def schedule(self, config: StudentConfig, with_retained: bool = True) -> Schedule:
        return Schedule.for_config(self.data, config, with_retained)

    def loss(self, model, batch: dict, labels: torch.Tensor | None = None, regularize: bool = True) -> torch.Tensor:
        return batch_ce(model, batch, self.data.answer, labels)  # an LLM's objective has no penalty term

    def labels(self, batch: dict) -> torch.Tensor:
        return batch["labels"]


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
    """`steps` AdamW steps on `step_loss(step)`; returns the seconds spent. The model is left in eval mode.
    A fixed-length `optimize_until` (the classic methods' loop)."""
    return optimize_until(model, steps, step_loss, learning_rate, lr_scheduler, autocast, desc)[0]


def optimize_until(model, steps: int, step_loss: Callable[[int], torch.Tensor], learning_rate: float,
                   lr_scheduler: str = "constant", autocast=contextlib.nullcontext, desc: str = "unlearning",
                   check: Callable[[int], bool] | None = None, every: int = 1) -> tuple[float, int]:
    """Up to `steps` AdamW steps on `step_loss(step)`; returns (seconds spent, steps taken). The model is left in
    eval mode; the learning-rate schedule spans all `steps` (the budget), wherever the run stops.

    `check(n)`, when given, is called with the number of updates taken so far: at 0 (before any update), after
    every `every`-th update and after the last one; True stops the run there. Under several processes `check` must
    answer the same on every rank (stopping.Stopping all-reduces what it measures), so all stop at the same step."""
    start = time.perf_counter()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=learning_rate)
    scheduler = get_scheduler(lr_scheduler, optimizer, num_warmup_steps=0, num_training_steps=steps)
    taken = 0
    stop = check is not None and check(0)
    bar = progress(range(0 if stop else steps), desc=desc, leave=False, disable=not is_main_process())
    for step in bar:
        with autocast():
            loss = step_loss(step)
        loss.backward()
        average_gradients(model)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        taken = step + 1
        bar.set_postfix(loss=f"{loss.item():.4f}")
        if check is not None and (taken % every == 0 or taken == steps) and check(taken):
            break
    bar.close()
    model.eval()
    return time.perf_counter() - start, taken


def lora_changed(model) -> bool:
    """Whether a peft LoRA adapter moved the model: peft starts every lora_B at 0 (and lora_A at random), so
    ΔW = s·B·A is 0 until some B entry moves (Hu et al. 2021, §4.1)."""
    return any(bool(p.detach().any()) for name, p in model.named_parameters() if "lora_B" in name)


def differs_from(tensors: dict[str, torch.Tensor], reference: Iterable[tuple[str, torch.Tensor]]) -> bool:
    """Whether a tensor of `tensors` differs from the reference's tensor of the same name (a reference tensor is
    cast to the other's device and dtype first; names only one side has are skipped). True when no name is
    shared: what cannot be compared is not taken for unchanged."""
    shared = 0
    for name, value in reference:
        if name in tensors:
            shared += 1
            if not torch.equal(tensors[name].detach(), value.to(tensors[name].device, tensors[name].dtype)):
                return True
    return shared == 0


def module_changed(model, original) -> bool:
    """Whether two modules' state differs: parameters and buffers (a LightGCN's graph is part of its model)."""
    now, before = model.state_dict(), original.state_dict()
    return now.keys() != before.keys() or differs_from(now, before.items())


def saved_tensors(model_dir: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """(name, tensor) of every tensor in a model directory's safetensors files, one at a time."""
    from safetensors import safe_open

    for path in sorted(Path(model_dir).glob("*.safetensors")):
        with safe_open(str(path), framework="pt", device="cpu") as handle:
            for name in handle.keys():  # noqa: SIM118 - safe_open is not a mapping
                yield name, handle.get_tensor(name)


def student_changed(student, model_dir: Path) -> bool:
    """Whether unlearning moved the student off the original saved in `model_dir`: a LoRA student by its
    adapter (`lora_changed`), a whole model (every weight trainable) by comparing each weight with the saved one."""
    if hasattr(student, "peft_config"):
        return lora_changed(student)
    return differs_from(dict(student.named_parameters()), saved_tensors(model_dir))


def require_change(changed: bool, method: str, original) -> None:
    """LlmrecError when a method left the original as it was (a learning rate too small to move a float32 weight,
    an IFRU step on MF rejected at every radius): no output and no manifest may then claim that anything was
    forgotten."""
    if not changed:
        raise LlmrecError(f"{method} changed no trainable weight of {original}, so nothing was forgotten; no output "
                          f"or manifest was written (check the {method}.* settings: epochs, learning_rate, ...)")


def retained_used(drawn: int, steps: int, taken: int, batch_size: int) -> int:
    """Retained samples a run consumed: all `drawn` for its `steps` when it took them all, else `taken` batches'
    worth (at most `drawn`; one retained batch per step)."""
    return drawn if taken >= steps else min(drawn, taken * batch_size)


@dataclass
class Schedule:
    """Seeded forget and retained batch iterators for the steps of a StudentConfig method, and its stopping rule:
    `steps` is the method's own schedule under stop.rule=fixed, the parity budget (stop.max_epochs passes over the
    forget set) under parity; the retained samples drawn cover all of them."""

    steps: int
    forget: Iterator[dict]
    retained: Iterator[dict] | None
    retained_set: Dataset | None  # the retained samples drawn for this run, with their row indices
    stopping: Stopping | None = None
    batch_size: int = 0  # samples per retained batch (what a step consumes)

    @classmethod
    def for_config(cls, data: UnlearningData, config: StudentConfig, with_retained: bool = True) -> Schedule:
        stopping = Stopping(data, steps_for(config.epochs, len(data.forget), config.batch_size), len(data.forget),
                            config.batch_size)
        steps = stopping.budget_steps
        forget = iter(data.batches(data.forget, config.batch_size, steps))
        if not with_retained:
            return cls(steps, forget, None, None, stopping, config.batch_size)
        retained = data.retained_sample(steps * config.batch_size)
        return cls(steps, forget, iter(data.batches(retained, config.batch_size, steps, seed_offset=1)), retained,
                   stopping, config.batch_size)

    def run(self, model, step_loss: Callable[[int], torch.Tensor], config: StudentConfig,
            autocast=contextlib.nullcontext, desc: str = "unlearning") -> tuple[float, int]:
        """`optimize_until` over this schedule under its stopping rule: (seconds, steps taken)."""
        return optimize_until(model, self.steps, step_loss, config.learning_rate, config.lr_scheduler, autocast, desc,
                              check=self.stopping.check(model) if self.stopping else None,
                              every=self.stopping.every if self.stopping else 1)

    def result(self, model, seconds: float, taken: int | None = None, **timings: float) -> dict:
        """The runner's return value that `llmrec unlearn` turns into artefacts and a manifest: `steps.train` the
        steps taken (`taken`, None: all of them), `retained_samples_used` those the taken steps consumed,
        `stopping` the rule's record (stopping.Stopping.record)."""
        taken = self.steps if taken is None else taken
        used = 0 if self.retained_set is None else retained_used(len(self.retained_set), self.steps, taken,
                                                                 self.batch_size)
        result = {"student": model, "timings": {**timings, "train_seconds": seconds}, "steps": {"train": taken},
                  "retained_samples_used": used}
        if self.stopping is not None:
            result["stopping"] = self.stopping.record(taken)
        return result
