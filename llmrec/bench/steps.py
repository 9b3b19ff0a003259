"""One E2URec step, computed as the reference code does and as llmrec does, for the speed benchmark.

The reference (github justarter/E2URec, `unlearning_e2urec.py` + `utils.py`) runs, per joint step:
the student on the retained batch with labels (answer CE), `compute_forced_kl` (student, θ₀ and the
augmented model on the forget batch) and `compute_kl` (student again and θ₀ on the retained batch):
three student forwards with gradients and three teacher forwards, each building full-vocabulary logits
at every position, in fp32, with batches padded to their longest prompt. The KL terms are cross-entropies
of the full-vocabulary softmax at the target positions. Here the target is the one answer token of a
causal LM: the prompt plus its answer is fed, the loss sits on the answer position only.

llmrec.s step (unlearn/methods/e2urec.py `student_loss`) reads both teachers from tables computed once, builds
logits at the answer position only, draws batches of similar prompt length, and runs under bf16 autocast
when the recipe's mixed precision is bf16 (`auto` picks it where the hardware has it). `VARIANTS` adds these one at a time, so the table says what
each one buys (autocast can cost more than it saves on a very narrow model on CPU).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from llmrec.llm.backbone import AnswerTokens
from llmrec.llm.scoring import answer_logits, answer_targets
from llmrec.unlearn.methods.e2urec import E2URecConfig, Teachers, student_loss


def full_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, seq, vocab]: what a plain `model(...)` call builds (every position projected onto the vocabulary)."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    return model(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids,
                 use_cache=False).logits


def last_of_full_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The answer-position logits, taken from a full-logits forward (the cost without `logits_to_keep`)."""
    return full_logits(model, input_ids, attention_mask)[:, -1, :]


def with_answer(batch: dict, answer: AnswerTokens) -> dict:
    """The reference's teacher-forced input: prompt + its answer token, labels -100 except on the answer."""
    target = answer_targets(batch["labels"], answer.yes_id, answer.no_id)[:, None]
    input_ids = torch.cat([batch["input_ids"], target], dim=1)
    attention_mask = torch.cat([batch["attention_mask"], torch.ones_like(target)], dim=1)
    lm_labels = torch.full_like(input_ids, -100)
    lm_labels[:, -1] = target[:, 0]
    return {"input_ids": input_ids, "attention_mask": attention_mask, "lm_labels": lm_labels}


def _forward(model, forced: dict):
    position_ids = (forced["attention_mask"].long().cumsum(-1) - 1).clamp(min=0)
    return model(input_ids=forced["input_ids"], attention_mask=forced["attention_mask"], position_ids=position_ids,
                 labels=forced["lm_labels"], use_cache=False)


def _target_positions(forced: dict) -> torch.Tensor:
    """Positions whose logits predict a labelled token (HF shifts labels by one inside the loss)."""
    return (forced["lm_labels"][:, 1:] != -100).nonzero(as_tuple=True)


def _soft_cross_entropy(teacher_logits: torch.Tensor, student_logits: torch.Tensor) -> torch.Tensor:
    """The reference's "KL": −Σ p_teacher · log(q_student + 1e-12) over the full vocabulary, averaged."""
    return -(teacher_logits.softmax(-1) * torch.log(student_logits.softmax(-1) + 1e-12)).sum(-1).mean()


def reference_step_loss(student, original, augmented, forget_batch: dict, retained_batch: dict,
                        config: E2URecConfig, answer: AnswerTokens) -> torch.Tensor:
    """The reference joint-phase loss: (retain CE + retain KL)·λ + forced forget KL·(1 − λ), every forward anew."""
    retained, forget = with_answer(retained_batch, answer), with_answer(forget_batch, answer)
    retained_positions, forget_positions = _target_positions(retained), _target_positions(forget)
    retain_ce = _forward(student, retained).loss  # get_answer_loss

    student_forget = _forward(student, forget).logits  # compute_forced_kl
    with torch.no_grad():
        original_forget = _forward(original, forget).logits
        augmented_forget = _forward(augmented, forget).logits
    forced = original_forget - config.alpha * F.relu(augmented_forget - original_forget)
    forget_kl = _soft_cross_entropy(forced[forget_positions], student_forget[forget_positions])

    student_retained = _forward(student, retained).logits  # compute_kl: the student runs on this batch again
    with torch.no_grad():
        original_retained = _forward(original, retained).logits
    retain_kl = _soft_cross_entropy(original_retained[retained_positions], student_retained[retained_positions])
    return (retain_ce + retain_kl) * config.remember_weight + forget_kl * (1 - config.remember_weight)


@dataclass(frozen=True)
class Variant:
    name: str
    cached_teachers: bool
    answer_only: bool
    mixed_precision: bool
    length_buckets: bool


VARIANTS = [
    Variant("reference (E2URec code)", False, False, False, False),
    Variant("+ teachers cached once", True, False, False, False),
    Variant("+ answer-position logits only", True, True, False, False),
    Variant("+ length-bucketed batches", True, True, False, True),
    Variant("+ bf16 autocast", True, True, True, True),
]


def llmrec_variant(mixed_precision: str, length_buckets: bool) -> Variant | None:
    """The row that is llmrec as configured (None when the configuration is not one of the rows: bf16 without
    length buckets)."""
    bf16 = mixed_precision == "bf16"
    if length_buckets:
        return VARIANTS[-1] if bf16 else VARIANTS[-2]
    return None if bf16 else VARIANTS[-3]


def bf16_autocast(device: torch.device):
    """The autocast row always measures bf16, whatever the recipe chose, so the table shows what it would buy."""
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


class StepRunner:
    """Times optimizer steps of one variant: zero_grad, loss, backward, AdamW step, as in unlearn/loop.py."""

    def __init__(self, student, original, augmented, teachers: Teachers, config: E2URecConfig, answer: AnswerTokens,
                 autocast=contextlib.nullcontext):
        self.student, self.original, self.augmented = student, original, augmented
        self.teachers, self.config, self.answer, self.autocast = teachers, config, answer, autocast
        self.optimizer = torch.optim.AdamW([p for p in student.parameters() if p.requires_grad],
                                           lr=config.learning_rate)

    def loss(self, variant: Variant, forget_batch: dict, retained_batch: dict) -> torch.Tensor:
        if not variant.cached_teachers:
            return reference_step_loss(self.student, self.original, self.augmented, forget_batch, retained_batch,
                                       self.config, self.answer)
        logits = answer_logits if variant.answer_only else last_of_full_logits
        return student_loss(self.teachers.work, self.student, self.teachers, forget_batch, retained_batch, self.config,
                            forward=lambda model, batch: logits(model, batch["input_ids"], batch["attention_mask"]))

    def step(self, variant: Variant, forget_batch: dict, retained_batch: dict) -> float:
        self.student.train()
        self.optimizer.zero_grad()
        with self.autocast() if variant.mixed_precision else contextlib.nullcontext():
            loss = self.loss(variant, forget_batch, retained_batch)
        loss.backward()
        self.optimizer.step()
        return loss.item()
