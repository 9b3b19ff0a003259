"""What the gradient-based unlearning methods share: which weights train, and one readable step loop.

Every method's length is in passes over the forget set, so its cost scales with what is
forgotten, not with the training set; a method that also looks at retained data draws one
retained batch beside each forget batch, and pays only for those samples.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import torch
from datasets import Dataset, concatenate_datasets
from torch import nn
from transformers import get_scheduler

from llmrec.config import LoraSettings, option
from llmrec.errors import ConfigError, LlmrecError
from llmrec.llm.backbone import AnswerTokens, add_lora, model_class
from llmrec.llm.scoring import answer_logits, answer_loss
from llmrec.progress import progress
from llmrec.unlearn.data import UnlearningData
from llmrec.unlearn.stopping import Stopping, sample_losses, steps_for, with_rows
from llmrec.unlearn.teachers import pair_logits, precompute_answer_logits


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

    def schedule(self, config, with_retained: bool = True, *, epochs: float | None = None,
                 warmup_epochs: float = 0.0, batch_size: int | None = None, purpose: str = "unlearn",
                 by_length: bool = False):
        """Seeded `forget` and `retained` (None without `with_retained`) batch iterators over `forget_set` and
        `retained_set`, `steps`, `warmup` (steps before the first retained batch), with `run(model, step_loss,
        config, autocast, desc)` -> (seconds, steps taken) and `result(model, seconds, taken)` -> the runner's
        return value. `epochs` (default config.epochs) passes over the forget set after `warmup_epochs` forget-only
        passes, in batches of `batch_size` (default config.batch_size); `purpose="augment"`: a fixed-length forget
        stream of its own (E2URec's over-remembering model); `by_length`: an LLM's length-bucketed batches."""

    def loss(self, model, batch, labels: torch.Tensor | None = None, regularize: bool = True) -> torch.Tensor:
        """[] the original's training objective on one batch (mean nats), against `labels` [batch] when given;
        `regularize`: with the original's weight decay where it had one (a classic model's; ascent terms leave it
        out)."""

    def labels(self, batch) -> torch.Tensor:
        """[batch] the batch's own 0/1 labels."""

    # what the distillation methods (bad_teacher, e2urec) ask besides
    original: nn.Module  # θ₀ in memory, before the method trains it (a full fine-tune trains it in place)

    def forward(self, model, batch) -> torch.Tensor:
        """`model`'s output on one batch, with gradient: an LLM's [batch, vocab] logits of the answer token, a
        classic model's [batch] scores (log-odds)."""

    def answer_pair(self, output: torch.Tensor) -> torch.Tensor:
        """[batch, 2] (yes, no) logits of `forward`'s output: what distillation compares (softmax = P(yes), P(no))."""

    def objective(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """[] the original's training loss (mean nats, no penalty term) of `forward`'s output against `labels`
        [batch]: an LLM's full-vocabulary answer cross-entropy, a classic model's binary cross-entropy."""

    def teacher_table(self, model, samples, batch_size: int, desc: str) -> torch.Tensor:
        """[len(samples), 2] float32 (yes, no) logits of the frozen `model` on every sample of `samples` (a set a
        schedule draws batches from), by row, taken once in `teachers.teacher_mode`; `rows(batch)` indexes it."""

    def rows(self, batch) -> torch.Tensor:
        """[batch] long: the batch's rows in the set it was drawn from."""

    def incompetent(self, seed: int) -> nn.Module:
        """θ₀'s architecture with fresh random weights drawn from `seed`: a model that has learnt nothing."""

    def forward_both(self, model, forget_batch, retained_batch, forward: Callable | None = None) -> tuple:
        """(forget output, retained output or None) of `forward` (default `self.forward`) on both batches, in the
        order the family was tuned in (it decides which dropout draws, and in which order gradients sum)."""

    def set_labels(self, samples) -> torch.Tensor:
        """[len(samples)] the 0/1 labels of a whole set, by row."""

    def trainable_copy(self, config) -> nn.Module:
        """A trainable model starting as θ₀ that leaves θ₀ untouched: a full copy, or (an LLM's finetune=lora) an
        adapter on θ₀'s own frozen weights, to be taken off with `drop_adapter` once used."""

    def drop_adapter(self, model) -> None:
        """Take the adapter of `trainable_copy(finetune=lora)` off θ₀ again."""

    def low_rank_student(self, lora: LoraSettings) -> nn.Module:
        """θ₀ frozen plus a trainable low-rank update that starts at 0 (the student equals θ₀): an LLM's peft LoRA
        adapter, a classic model's rank-`lora.r` update of each embedding table."""

    def base(self, student) -> contextlib.AbstractContextManager:
        """Context yielding the module that computes θ₀ under `low_rank_student`'s student (the update off)."""

    def update_penalty(self, student) -> torch.Tensor | float:
        """The original's weight decay on a low-rank student's update (0 where the original had none)."""

    holdout_users: list  # users no model trained on (data.holdout); [] when there are none

    def holdout_nats(self, batch_size: int) -> float:
        """θ₀'s mean training loss (nats) over every holdout sample."""

    def pooled_schedule(self, config, fraction: float):
        """Bad Teacher's mixed scheme: one stream of batches over forget ∪ a seeded `fraction` of the retained pool,
        forget rows first (also handed out alone as `pool_forget`), as `schedule` otherwise; ConfigError where the
        family lacks it."""


@dataclass
class LlmUnlearning:
    """The LLM family's unlearning context: θ₀ as loaded, the tokenised data, the run's autocast."""

    original: nn.Module
    data: UnlearningData
    autocast: Callable = contextlib.nullcontext
    family: str = "llm"

    def trainable(self, config: StudentConfig) -> nn.Module:
        return make_trainable(self.original, config.finetune, config.lora)

    def schedule(self, config, with_retained: bool = True, *, epochs: float | None = None, warmup_epochs: float = 0.0,
                 batch_size: int | None = None, purpose: str = "unlearn", by_length: bool = False) -> Schedule:
        return Schedule.for_config(self.data, config, with_retained, epochs=epochs, warmup_epochs=warmup_epochs,
                                   batch_size=batch_size, purpose=purpose, by_length=by_length)

    def loss(self, model, batch: dict, labels: torch.Tensor | None = None, regularize: bool = True) -> torch.Tensor:
        return batch_ce(model, batch, self.data.answer, labels)  # an LLM's objective has no penalty term

    def labels(self, batch: dict) -> torch.Tensor:
        return batch["labels"]

    def forward(self, model, batch: dict) -> torch.Tensor:
        return answer_logits(model, batch["input_ids"], batch["attention_mask"])

    def answer_pair(self, output: torch.Tensor) -> torch.Tensor:
        return pair_logits(output, self.data.answer)

    def objective(self, output: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return answer_loss(output, labels, self.data.answer.yes_id, self.data.answer.no_id)

    def teacher_table(self, model, samples: Dataset, batch_size: int, desc: str) -> torch.Tensor:
        return precompute_answer_logits(model, self.data.all_rows(samples, batch_size), self.data.answer, desc)

    def rows(self, batch: dict) -> torch.Tensor:
        return batch["row"]

    def incompetent(self, seed: int) -> nn.Module:
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            model = model_class(self.original.config).from_config(self.original.config)
        return model.to(self.original.device).eval()

    def update_penalty(self, student) -> float:
        return 0.0  # an LLM's objective has no penalty term

    def forward_both(self, model, forget_batch: dict, retained_batch: dict | None, forward: Callable | None = None):
        forward = forward or self.forward
        forget = forward(model, forget_batch)  # forget first: LoRA dropout draws in this order
        return forget, None if retained_batch is None else forward(model, retained_batch)

    def set_labels(self, samples: Dataset) -> torch.Tensor:
        return torch.tensor(samples["label"])

    def trainable_copy(self, config) -> nn.Module:
        if config.finetune == "lora":
            return add_lora(self.original, config.lora)
        return make_trainable(copy.deepcopy(self.original), "full", config.lora)

    def drop_adapter(self, model) -> None:
        self.original = model.unload()

    def low_rank_student(self, lora: LoraSettings) -> nn.Module:
        for p in self.original.parameters():
            p.requires_grad_(False)
        return add_lora(self.original, lora)

    @contextlib.contextmanager
    def base(self, student):
        with student.disable_adapter():
            yield student

    @property
    def holdout_users(self) -> list[str]:
        return self.data.holdout_users

    def holdout_nats(self, batch_size: int) -> float:
        holdout = self.data.holdout_sample(len(self.data.holdout_pool), self.data.seed)
        return float(sample_losses(self.original, self.data, holdout, batch_size).mean())

    def pooled_schedule(self, config, fraction: float) -> Schedule:
        pool, subset = mixed_pool(self.data, fraction)
        data, size = self.data, config.batch_size
        stopping = Stopping(data, steps_for(config.epochs, len(pool), size), len(pool), size)
        steps = stopping.budget_steps
        batches = lazily(lambda: iter(data.batches(pool, size, steps)))  # drawn once training starts
        return Schedule(steps, batches, None, subset, stopping, size, pool,
                        pool_forget=pool.select(range(len(data.forget))))


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


def lazily(make: Callable[[], Iterator]) -> Iterator:
    """An iterator that calls `make()` at its first `next`: a DataLoader's iterator draws its base seed from the
    global RNG when created, so creating it as late as the run used to keeps the draws (LoRA init, dropout) in place."""
    yield from make()


def mixed_pool(data: UnlearningData, fraction: float):
    """Bad Teacher's unlearning set (the paper's): forget rows first, then int(fraction · retained) retained rows
    (seeded draw). Returns (pool with `row` = position in the pool, the retained subset). Rows below
    len(data.forget) are forget samples, so one teacher table laid out as [incompetent on forget; competent on
    subset] serves every batch. ConfigError unless 0 < fraction ≤ 1."""
    if not 0.0 < fraction <= 1.0:
        raise ConfigError(f"bad_teacher.retain_fraction must be in (0, 1] or null, got {fraction}")
    subset = data.retained_sample(max(1, int(fraction * len(data.retained_pool))))
    pool = concatenate_datasets([data.forget.remove_columns("row"), subset.remove_columns("row")])
    return with_rows(pool), subset


@dataclass
class Schedule:
    """Seeded forget and retained batch iterators for the steps of a method, and its stopping rule: `steps` is
    the method's own schedule under stop.rule=fixed, the parity budget (stop.max_epochs passes over the forget
    set) under parity; the retained samples drawn cover all steps after `warmup`."""

    steps: int
    forget: Iterator[dict]
    retained: Iterator[dict] | None
    retained_set: Dataset | None  # the retained samples drawn for this run, with their row indices
    stopping: Stopping | None = None
    batch_size: int = 0  # samples per retained batch (what a step consumes)
    forget_set: Dataset | None = None  # the set `forget` draws from (a pooled schedule's pool)
    warmup: int = 0  # forget-only steps before the first retained batch
    pool_forget: Dataset | None = None  # a pooled schedule's forget samples: the pool's first rows

    @classmethod
    def for_config(cls, data: UnlearningData, config, with_retained: bool = True, *, epochs: float | None = None,
                   warmup_epochs: float = 0.0, batch_size: int | None = None, purpose: str = "unlearn",
                   by_length: bool = False) -> Schedule:
        size = batch_size or config.batch_size
        epochs = config.epochs if epochs is None else epochs
        if purpose == "augment":
            steps = steps_for(epochs, len(data.forget), size)
            return cls(steps, iter(data.batches(data.forget, size, steps, seed_offset=2, by_length=by_length)), None,
                       None, None, size, data.forget)
        warmup = steps_for(warmup_epochs, len(data.forget), size)
        stopping = Stopping(data, warmup + steps_for(epochs, len(data.forget), size), len(data.forget), size)
        steps = stopping.budget_steps
        warmup = min(warmup, steps)
        forget = iter(data.batches(data.forget, size, steps, by_length=by_length))
        if not with_retained:
            return cls(steps, forget, None, None, stopping, size, data.forget)
        retained = data.retained_sample((steps - warmup) * size)
        return cls(steps, forget, iter(data.batches(retained, size, steps - warmup, seed_offset=1, by_length=by_length)),
                   retained, stopping, size, data.forget, warmup)

    @property
    def per_step_retained_teacher(self) -> bool:
        """Under parity a run may stop early: a retained teacher is then taken per step, paid only when used."""
        return self.stopping is not None and self.stopping.parity

    def run(self, model, step_loss: Callable[[int], torch.Tensor], config,
            autocast=contextlib.nullcontext, desc: str = "unlearning") -> tuple[float, int]:
        """`optimize_until` over this schedule under its stopping rule: (seconds, steps taken)."""
        return optimize_until(model, self.steps, step_loss, config.learning_rate,
                              getattr(config, "lr_scheduler", "constant"), autocast, desc,
                              check=self.stopping.check(model) if self.stopping else None,
                              every=self.stopping.every if self.stopping else 1)

    def result(self, model, seconds: float, taken: int | None = None, **timings: float) -> dict:
        """The runner's return value that `llmrec unlearn` turns into artefacts and a manifest: `steps.train` the
        steps taken (`taken`, None: all of them), `retained_samples_used` those the taken steps consumed,
        `stopping` the rule's record (stopping.Stopping.record)."""
        taken = self.steps if taken is None else taken
        used = 0 if self.retained_set is None else retained_used(
            len(self.retained_set), self.steps - self.warmup, max(0, taken - self.warmup), self.batch_size)
        result = {"student": model, "timings": {**timings, "train_seconds": seconds}, "steps": {"train": taken},
                  "retained_samples_used": used}
        if self.stopping is not None:
            result["stopping"] = self.stopping.record(taken)
        return result
