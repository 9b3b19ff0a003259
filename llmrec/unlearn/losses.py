"""E2URec's losses as pure functions of answer-position logits, so each is tested on its own.

Shapes: logits are [batch, classes] at the answer position (the full vocabulary, or just the
[yes, no] columns); labels are 0/1 answers mapped to class ids by the caller.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def forgetting_teacher_logits(original: torch.Tensor, augmented: torch.Tensor, alpha: float = 2.0) -> torch.Tensor:
    """logits(θ₀) − α·ReLU(logits(aug) − logits(θ₀)): push down exactly what over-remembering pushed up."""
    return original - alpha * torch.relu(augmented - original)


def answer_nats(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """[n] −ln P(true answer) under the softmax of [n, 2] (yes, no) logits; `labels` [n], 1 = yes. Nats."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    return -torch.where(labels.to(log_p.device) == 1, log_p[:, 0], log_p[:, 1])


def calibrated_alpha(original: torch.Tensor, augmented: torch.Tensor, labels: torch.Tensor, target: float,
                     high: float = 1e4, iterations: int = 60) -> float:
    """The α at which the forgetting teacher's mean answer loss on the forget samples equals `target` (nats).

    `original`, `augmented`: [n, 2] (yes, no) logits of θ₀ and of the augmented model on the n forget samples;
    `labels`: [n], 1 = yes. `target`: θ₀'s mean answer loss on never-seen (holdout) users, so the teacher asks the
    student to answer the forget users as θ₀ answers users it never saw, the level the stopping rule stops at.
    Bisection over [0, high] on the mean loss (non-decreasing in α where aug raised the true answer); 0 when θ₀'s
    own loss is at the target already, `high` when even it falls short. llmrec's calibration, not the paper's: the
    E2URec reference fixes α (2; our default 10). ValueError on mismatched shapes or a non-finite target.
    """
    if original.shape != augmented.shape or original.ndim != 2 or original.shape[0] != len(labels):
        raise ValueError(f"logits must be [n, 2] alike with n labels, got {tuple(original.shape)}, "
                         f"{tuple(augmented.shape)} and {len(labels)} labels")
    if not torch.isfinite(torch.tensor(float(target))):
        raise ValueError(f"target must be a finite loss in nats, got {target}")

    def mean_loss(alpha: float) -> float:
        return float(answer_nats(forgetting_teacher_logits(original.float(), augmented.float(), alpha), labels).mean())

    if mean_loss(0.0) >= target:
        return 0.0
    if mean_loss(high) < target:
        return high
    low, top = 0.0, high
    for _ in range(iterations):
        middle = (low + top) / 2
        low, top = (middle, top) if mean_loss(middle) < target else (low, middle)
    return top


def distillation_kl(teacher_logits: torch.Tensor, student_logits: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """Mean over the batch of KL(teacher ‖ student) between the softmaxed logits; the teacher gets no gradient.

    Scaled by T² (Hinton et al.) so gradients keep their size when the temperature changes.
    """
    teacher = F.log_softmax(teacher_logits.detach().float() / temperature, dim=-1)
    student = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return F.kl_div(student, teacher, log_target=True, reduction="batchmean") * temperature**2


def e2urec_loss(
    retained_ce: torch.Tensor, retained_kl: torch.Tensor, forget_kl: torch.Tensor, remember_weight: float = 0.6
) -> torch.Tensor:
    """λ·(CE + KL to the remembering teacher) on retained data + (1 − λ)·KL to the forgetting teacher on forget data."""
    if not 0.0 <= remember_weight <= 1.0:
        raise ValueError(f"remember_weight (λ) must be in [0, 1], got {remember_weight}")
    return remember_weight * (retained_ce + retained_kl) + (1.0 - remember_weight) * forget_kl


def neggrad_loss(retained_ce: torch.Tensor, forget_ce: torch.Tensor, ascent_weight: float = 1.0) -> torch.Tensor:
    """Descent on retained answers, ascent on forgotten ones: CE_retained − w·CE_forget."""
    return retained_ce - ascent_weight * forget_ce


def flipped(labels: torch.Tensor) -> torch.Tensor:
    """Bad-T's targets on the forget set: every Yes becomes No and every No becomes Yes."""
    return 1 - labels


def bad_teacher_loss(competent_kl: torch.Tensor, incompetent_kl: torch.Tensor) -> torch.Tensor:
    """KL to the teacher each sample is assigned to, over a batch holding as many retained as forget samples."""
    return 0.5 * (competent_kl + incompetent_kl)
