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
