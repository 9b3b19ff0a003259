"""E2URec (Wang et al., 2025): a LoRA student on the frozen original, distilled from two teachers.

1. augmented model: θ₀ fine-tuned further on the forget set (it over-remembers it);
2. forgetting teacher on forget samples: logits(θ₀) − α·ReLU(logits(aug) − logits(θ₀));
3. remembering teacher on retained samples: θ₀ itself (the student with its adapter disabled);
4. student: θ₀ + LoRA; loss = λ·(CE + KL to the remembering teacher) on retained
   + (1 − λ)·KL to the forgetting teacher on forget, after a forget-only warm-up
   (the student starts equal to θ₀, so the remembering term alone gives no signal).
Teachers' answer logits are computed once (teachers.py) unless `precompute_teachers: false`.
Lengths are in passes over the forget set, so the cost scales with what is forgotten, not with the
training set; the joint phase draws only as many retained samples as it consumes.

Defaults against the reference (justarter/E2URec: train_e2urec.sh L5-9, L17, L20-27, L35; unlearning_e2urec.py
L47-53, L90-120; utils.py L249-295), whose step counts are over its 12,982 ML-1M forget samples in batches of 16
(812 per pass); recipes/unlearn/e2urec-reference.yaml runs its values:

| setting | reference | ours (default) | why |
|---|---|---|---|
| α | 2 | 10 | tuned on the synthetic default (README) |
| λ (`--weight`) | 0.6 | 0.6 | — |
| student lr, batch | 1e-3, 16 | 1e-2, 32 | tuned |
| augmented model | full fine-tune, lr 5e-5, 1200 steps (model_1200.pt) = 1.48 passes | full, 4 passes at 3e-3 | tuned |
| student length | 1 forget-only pass, then 188 zipped retained+forget steps (model_1000.pt) = 1 + 0.23 passes | 2 + 2 passes | tuned |
| distilled output | full-vocabulary softmax at every target position | the [yes, no] answer logits | the answer is the recommender's output; no vocab × samples tables |
| LoRA | r 16, α 32, dropout 0.05, q and v | the same (peft's default targets) | — |

On the synthetic demo (4-epoch original, 20% of users) the reference's values closed 0.00 of the forget-AUC gap
(test AUC 0.834, the original's 0.833), ours 0.41 (test AUC 0.808; retrain 0.773).

`teacher: calibrated` (llmrec's, not the paper's) replaces the fixed α by the one at which the forgetting teacher's
mean answer loss on the forget samples equals θ₀'s on the holdout users (losses.calibrated_alpha): on ML-100K the
paper's teacher at α 10 asked for 0.002 nats more loss where never-seen users sit 0.011 nats above θ₀'s forget fit.

One module for every family, written against the family's `unlearn.loop.Unlearning` context. On an MF /
LightGCN the student's low-rank update is one of each embedding table (ΔP = A·B, B zero at the start, of rank
`lora.r`; alpha, dropout and target_modules are an LLM adapter's), plus an additive update of the biases, with
the original's weight decay on those factors (A, B, the bias updates; not on ΔP itself, as the former classic
module), folded into a plain model at the end; the answer pair is the score as
[s/2, −s/2]. A classic recipe starts from `E2URecConfig.classic()`: α 1 (the LLM's 10 overshoots on MF scores:
forget AUC 0.14 against the retrain's 0.70 on ML-100K), no warm-up, 5 joint passes at lr 1e-2 in batches of 256,
rank 8, the augmented model at lr 1e-2.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Literal

import torch

from llmrec.config import LoraSettings, option
from llmrec.errors import ConfigError
from llmrec.unlearn.loop import Unlearning, is_main_process
from llmrec.unlearn.losses import (
    answer_nats,
    calibrated_alpha,
    distillation_kl,
    e2urec_loss,
    forgetting_teacher_logits,
)
from llmrec.unlearn.registry import register
from llmrec.unlearn.teachers import teacher_mode


@dataclass
class AugmentConfig:
    finetune: Literal["full", "lora"] = option("full", "full | lora: how θ₀ is fine-tuned further on the forget set "
                                                       "(lora: an LLM's)")
    epochs: float = option(4.0, "passes over the forget set", gt=0)
    learning_rate: float = option(3e-3, "AdamW learning rate", gt=0)
    lora: LoraSettings = option(LoraSettings(), "adapter shape when finetune=lora")


@dataclass
class E2URecConfig:
    RENAMED_KEYS = {"epochs": "joint_epochs", "rank": "lora.r", "augment_epochs": "augment.epochs",
                    "augment_learning_rate": "augment.learning_rate"}  # the former classic module's keys, read with a note

    alpha: float = option(10.0, "α: how hard the forgetting teacher pushes below θ₀ where aug rose above it",
                          ge=0)
    remember_weight: float = option(0.6, "λ: weight of the remembering terms against the forgetting term",
                                    ge=0, le=1)
    temperature: float = option(1.0, "distillation temperature", gt=0)
    augment: AugmentConfig = option(AugmentConfig(), "the over-remembering model")
    lora: LoraSettings = option(LoraSettings(), "the student's low-rank update: an LLM's LoRA adapter "
                                "(target_modules null: peft's default); on MF / LightGCN the rank r of the update of "
                                "each embedding table (alpha, dropout, target_modules unused)")
    warmup_epochs: float = option(2.0, "forget-only passes over the forget set before the joint phase", ge=0)
    joint_epochs: float = option(2.0, "passes over the forget set with a retained batch beside each forget batch "
                                 "(stop.rule=fixed; under parity the joint phase runs until parity or stop.max_epochs "
                                 "passes in all)", gt=0)
    learning_rate: float = option(1e-2, "student AdamW learning rate", gt=0)
    lr_scheduler: Literal["constant", "linear"] = option(
        "constant", "constant | linear (decay to 0 over warm-up + joint steps; on the tiny default it barely forgets)"
    )
    batch_size: int = option(32, "samples per forget batch and per retained batch", ge=1)
    precompute_teachers: bool = option(True, "one no-grad teacher pass up front; false recomputes them every step")
    teacher: Literal["paper", "calibrated"] = option(
        "paper", "paper: the forgetting teacher with the fixed alpha, as E2URec's | calibrated: alpha solved per run "
        "so the teacher's mean answer loss on the forget samples equals θ₀'s on the holdout users (never seen), the "
        "level the stopping rule stops at (needs data.holdout and precompute_teachers; llmrec's, not the paper's)")
    length_buckets: bool = option(
        False, "batch prompts of similar length together: ~5% faster steps, but it changes the batch draw, and on the "
        "synthetic default it closed less of the forget gap (0.27 vs 0.51); an LLM's")

    @classmethod
    def classic(cls) -> E2URecConfig:
        """The defaults a classic (MF / LightGCN) recipe starts from (module docstring)."""
        return cls(alpha=1.0, warmup_epochs=0.0, joint_epochs=5.0, learning_rate=1e-2, batch_size=256,
                   augment=AugmentConfig(learning_rate=1e-2), lora=LoraSettings(r=8))


def build_augmented(work: Unlearning, config: E2URecConfig):
    """θ₀ trained further on the forget set with its plain training loss: it over-remembers it. Returns (the
    model, its schedule). augment.finetune=full trains a copy; lora puts an adapter on θ₀'s own (frozen, possibly
    4-bit) weights, so no second copy of the model is held; the caller takes it off once its logits are taken."""
    augmented = work.trainable_copy(config.augment)
    schedule = work.schedule(config.augment, with_retained=False, batch_size=config.batch_size, purpose="augment",
                             by_length=config.length_buckets)
    schedule.run(augmented, lambda step: work.loss(augmented, next(schedule.forget), regularize=False),
                 config.augment, work.autocast, desc="augmenting")
    return augmented, schedule


class Teachers:
    """Teacher (yes, no) logits by sample: tables taken once (`precompute`), or recomputed per batch; either way
    in `teacher_mode` (eval mode, as the reference's `.eval()` teachers), the student left in the mode it trains
    in. θ₀ is the student with its update off (`work.base`)."""

    def __init__(self, work: Unlearning, student, augmented, alpha: float):
        self.work, self.student, self.augmented, self.alpha = work, student, augmented, alpha
        self.forget_table = self.retained_table = None
        self.calibration: dict | None = None

    def _frozen(self, model, batch) -> torch.Tensor:
        with teacher_mode(model):
            return self.work.answer_pair(self.work.forward(model, batch))

    def _original(self, batch) -> torch.Tensor:
        with self.work.base(self.student) as original:
            return self._frozen(original, batch)

    def precompute(self, forget_set, retained_set, batch_size: int, augmented_forget: torch.Tensor | None = None,
                   calibrate_to: float | None = None) -> None:
        """[forget, 2] and [retained, 2] tables over the two sets. `augmented_forget`: the augmented model's forget
        logits when they were taken already (shared weights); `retained_set` None: θ₀'s retained logits are taken
        per batch (a run that may stop early pays only for the retained batches it trains on). `calibrate_to`
        (nats): α is replaced by `losses.calibrated_alpha` of it; `self.calibration` records what was solved."""
        work = self.work
        with work.base(self.student) as original:
            original_forget = work.teacher_table(original, forget_set, batch_size, "teacher θ₀ forget")
            if retained_set is not None:
                self.retained_table = work.teacher_table(original, retained_set, batch_size, "teacher θ₀ retained")
        if augmented_forget is None:
            augmented_forget = work.teacher_table(self.augmented, forget_set, batch_size, "teacher aug forget")
        if calibrate_to is not None:
            labels, paper_alpha = work.set_labels(forget_set), self.alpha
            self.alpha = calibrated_alpha(original_forget, augmented_forget, labels, calibrate_to)
            self.calibration = {
                "alpha": self.alpha, "configured_alpha": paper_alpha, "target_nats": calibrate_to,
                "original_forget_nats": float(answer_nats(original_forget, labels).mean()),
                "teacher_forget_nats": float(answer_nats(forgetting_teacher_logits(
                    original_forget, augmented_forget, self.alpha), labels).mean()),
                "configured_teacher_forget_nats": float(answer_nats(forgetting_teacher_logits(
                    original_forget, augmented_forget, paper_alpha), labels).mean())}
        self.forget_table = forgetting_teacher_logits(original_forget, augmented_forget, self.alpha)
        self.augmented = None  # no longer needed in memory

    def forget(self, batch) -> torch.Tensor:
        if self.forget_table is not None:
            return self.forget_table[self.work.rows(batch)]
        return forgetting_teacher_logits(self._original(batch), self._frozen(self.augmented, batch), self.alpha)

    def retained(self, batch) -> torch.Tensor:
        if self.retained_table is not None:
            return self.retained_table[self.work.rows(batch)]
        return self._original(batch)


def student_loss(work: Unlearning, student, teachers: Teachers, forget_batch, retained_batch, config: E2URecConfig,
                 forward=None):
    """One E2URec objective evaluation; retained_batch None means the forget-only warm-up. `forward(model, batch)`
    (default `work.forward`): how the student's output is computed (the speed benchmark swaps in a full-logits
    forward). The family's update penalty (a classic original's weight decay on the update's factors; 0 on an LLM)
    is added in both phases."""
    forget_out, retained_out = work.forward_both(student, forget_batch, retained_batch, forward)
    forget_kl = distillation_kl(teachers.forget(forget_batch), work.answer_pair(forget_out), config.temperature)
    if retained_batch is None:
        return forget_kl + work.update_penalty(student)
    retained_ce = work.objective(retained_out, work.labels(retained_batch))
    retained_kl = distillation_kl(teachers.retained(retained_batch), work.answer_pair(retained_out),
                                  config.temperature)
    penalty = work.update_penalty(student)
    return e2urec_loss(retained_ce, retained_kl, forget_kl, config.remember_weight) + penalty


def calibration_line(c: dict) -> str:
    """The calibrated teacher in words, saying so when alpha hit a bound and the target was not met."""
    where = (f"the forget samples' mean answer loss {c['teacher_forget_nats']:.4f} nats, target θ₀'s on the holdout "
             f"users {c['target_nats']:.4f} (θ₀ on the forget samples: {c['original_forget_nats']:.4f}; the configured "
             f"alpha {c['configured_alpha']:.3g} gives {c['configured_teacher_forget_nats']:.4f})")
    if c["alpha"] == 0.0:
        return (f"calibrated forgetting teacher: alpha 0, the teacher is θ₀ itself: the forget samples already fit no "
                f"better than never-seen users; {where}")
    if c["teacher_forget_nats"] < c["target_nats"] - 1e-6:
        return f"calibrated forgetting teacher: alpha {c['alpha']:.3g}, its bound, falls short of the target; {where}"
    return f"calibrated forgetting teacher: alpha {c['alpha']:.3g}; {where}"


def holdout_level(work: Unlearning, config: E2URecConfig) -> float:
    """θ₀'s mean answer loss (nats) on every holdout sample: the calibrated teacher's target. ConfigError (one line)
    when the data has no holdout users or the teachers are not precomputed."""
    if not work.holdout_users:
        raise ConfigError("e2urec.teacher=calibrated needs holdout users (data.holdout), the never-seen users it "
                          "calibrates to; or e2urec.teacher=paper")
    if not config.precompute_teachers:
        raise ConfigError("e2urec.teacher=calibrated needs e2urec.precompute_teachers=true (it solves alpha on the "
                          "forget samples' stored logits)")
    return work.holdout_nats(2 * config.batch_size)


@register("e2urec", config=E2URecConfig)
def unlearn_e2urec(work: Unlearning, config: E2URecConfig) -> dict:
    """Train a low-rank student on the frozen original; returns the schedule's result (the student; for a classic
    model the merged model), phase timings, the steps taken and the stopping record. Under data.stop's rule=fixed
    the student takes warmup_epochs + joint_epochs passes; under parity (LLM) the warm-up, then the joint phase up
    to stop.max_epochs passes in all, stopping at parity (stopping.py); the retained samples drawn (and the
    remembering teacher's logits, then taken per step) cover that budget. ConfigError for settings that cannot
    run together or on this family."""
    batch_size, timings = config.batch_size, {}
    shares_weights = config.augment.finetune == "lora"
    if shares_weights and not config.precompute_teachers:
        raise ConfigError("e2urec.augment.finetune=lora shares θ₀'s weights and needs e2urec.precompute_teachers=true "
                          "(or augment.finetune=full, which keeps a second copy for per-step teachers)")
    start = time.perf_counter()
    target = holdout_level(work, config) if config.teacher == "calibrated" else None
    augmented, augment = build_augmented(work, config)
    timings["augment_seconds"] = time.perf_counter() - start

    start = time.perf_counter()
    augmented_forget = None
    if shares_weights:  # take its logits now, then strip its adapter so θ₀'s weights carry the student next
        with work.autocast():
            augmented_forget = work.teacher_table(augmented, augment.forget_set, 2 * batch_size, "teacher aug forget")
        work.drop_adapter(augmented)
        augmented = None
    student = work.low_rank_student(config.lora)
    schedule = work.schedule(config, epochs=config.joint_epochs, warmup_epochs=config.warmup_epochs,
                             by_length=config.length_buckets)
    teachers = Teachers(work, student, augmented, config.alpha)
    del augmented  # Teachers holds it only as long as it is needed
    if config.precompute_teachers:  # under parity θ₀'s retained logits are taken per step: only the steps taken pay
        with work.autocast():
            teachers.precompute(schedule.forget_set,
                                None if schedule.per_step_retained_teacher else schedule.retained_set,
                                2 * batch_size, augmented_forget, target)
        if teachers.calibration is not None and is_main_process():  # every process solved the same alpha
            print(calibration_line(teachers.calibration), flush=True)
    timings["teacher_seconds"] = time.perf_counter() - start

    warmup = schedule.warmup

    def step_loss(step):
        retained_batch = next(schedule.retained) if step >= warmup else None  # forget-only warm-up first
        return student_loss(work, student, teachers, next(schedule.forget), retained_batch, config)

    seconds, taken = schedule.run(student, step_loss, config, work.autocast, desc="e2urec")
    result = schedule.result(student, seconds, taken)
    result["timings"] = {**timings, "student_seconds": seconds}
    result["steps"] = {"augment": augment.steps, "warmup": min(taken, warmup), "joint": max(0, taken - warmup)}
    if teachers.calibration:
        result["teacher"] = {"kind": "calibrated", **teachers.calibration}
    return result
