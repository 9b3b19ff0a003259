"""The classic models' training objective as a pure function, shared by training, unlearning and IFRU's Hessian."""

from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn.functional as F


def regularized_bce(scores: torch.Tensor, labels: torch.Tensor, parameters: Iterable[torch.Tensor],
                    weight_decay: float) -> torch.Tensor:
    """Mean BCE of the logits plus (weight_decay / 2)·|θ|² over every parameter.

    The penalty covers the whole parameter vector (not only the rows in the batch), so the objective is one
    fixed function of θ: what IFRU differentiates twice and what a converged model is a stationary point of.
    """
    penalty = sum(p.square().sum() for p in parameters)
    return F.binary_cross_entropy_with_logits(scores, labels) + 0.5 * weight_decay * penalty
