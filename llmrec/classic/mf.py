"""Matrix factorisation: the bi-linear recommender, trained by gradient (BCE on logits) or by weighted ALS."""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

Link = Literal["sigmoid", "clamp"]
EPS = 1e-4


class MatrixFactorization(nn.Module):
    """score(u, i) = ⟨p_u, q_i⟩ + b_u + b_i + b.

    With link 'sigmoid' the score is the log-odds of "Yes" (gradient training on BCE); an ALS-trained model
    regresses the 0/1 preference directly, so its link is 'clamp' (the score clipped into (0, 1)).
    """

    kind = "mf"

    def __init__(self, num_users: int, num_items: int, dim: int = 64, init_std: float = 0.1, link: Link = "sigmoid"):
        super().__init__()
        self.link = link
        self.user = nn.Embedding(num_users, dim)
        self.item = nn.Embedding(num_items, dim)
        self.user_bias = nn.Embedding(num_users, 1)
        self.item_bias = nn.Embedding(num_items, 1)
        self.bias = nn.Parameter(torch.zeros(()))
        nn.init.normal_(self.user.weight, std=init_std)
        nn.init.normal_(self.item.weight, std=init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    def tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The user and item vectors the dot product uses (LightGCN propagates them over the graph first)."""
        return self.user.weight, self.item.weight

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        user_table, item_table = self.tables()
        return ((user_table[users] * item_table[items]).sum(-1) + self.user_bias.weight[users, 0]
                + self.item_bias.weight[items, 0] + self.bias)

    def probability(self, scores: torch.Tensor) -> torch.Tensor:
        """P(yes) from scores, through the model's link."""
        return torch.sigmoid(scores) if self.link == "sigmoid" else scores.clamp(EPS, 1 - EPS)

    def settings(self) -> dict:
        """Constructor arguments beyond the table sizes, saved beside the weights."""
        return {"dim": self.user.embedding_dim, "link": self.link}


def als_half_sweep(fixed: torch.Tensor, confidence: torch.Tensor, target: torch.Tensor, reg: float,
                   chunk: int = 256) -> torch.Tensor:
    """One side of weighted ALS (Hu, Koren & Volinsky 2008): every row's exact ridge solution given the other side.

    Row r solves min_x Σ_j c_rj (t_rj − ⟨x, f_j⟩)² + reg·|x|², i.e. x = (Fᵀ C_r F + reg I)⁻¹ Fᵀ C_r t_r.
    `confidence` and `target` are dense [rows, columns]; rows are solved in chunks to bound memory.
    """
    dim = fixed.shape[1]
    eye = reg * torch.eye(dim, dtype=fixed.dtype, device=fixed.device)
    rows = []
    for start in range(0, confidence.shape[0], chunk):
        c = confidence[start:start + chunk]
        gram = torch.einsum("rj,jd,je->rde", c, fixed, fixed) + eye
        rhs = (c * target[start:start + chunk]) @ fixed
        rows.append(torch.linalg.solve(gram, rhs.unsqueeze(-1)).squeeze(-1))
    return torch.cat(rows)


def with_ones(table: torch.Tensor) -> torch.Tensor:
    return torch.cat([table, torch.ones(len(table), 1, dtype=table.dtype)], dim=1)


def als_sweep(model: MatrixFactorization, confidence: torch.Tensor, preference: torch.Tensor, reg: float) -> None:
    """Users given items, then items given users. Biases ride along as one more factor against a constant 1,
    so a user who rated nothing still gets each item's bias (most test users of a time split are such users)."""
    with torch.no_grad():
        user = als_half_sweep(with_ones(model.item.weight), confidence, preference - model.item_bias.weight.T, reg)
        model.user.weight.copy_(user[:, :-1])
        model.user_bias.weight.copy_(user[:, -1:])
        item = als_half_sweep(with_ones(model.user.weight), confidence.T, preference.T - model.user_bias.weight.T,
                              reg)
        model.item.weight.copy_(item[:, :-1])
        model.item_bias.weight.copy_(item[:, -1:])


def als_objective(model: MatrixFactorization, confidence: torch.Tensor, preference: torch.Tensor, reg: float) -> float:
    """The weighted squared error plus ridge that each ALS half-sweep minimises exactly over one side."""
    with torch.no_grad():
        scores = model.user.weight @ model.item.weight.T + model.user_bias.weight + model.item_bias.weight.T
        error = (confidence * (preference - scores) ** 2).sum()
        penalty = sum(table.square().sum() for table in (model.user.weight, model.item.weight,
                                                         model.user_bias.weight, model.item_bias.weight))
        return float(error + reg * penalty)
