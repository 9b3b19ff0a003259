"""AltEraser (Liu et al. 2022, "Forgetting Fast in Recommender Systems") on MF.

Warm-start from the trained model and minimise the retained objective (the original's regularised BCE
without the forgotten triples) by alternating small second-order sub-problems: with the items fixed, every
user's (embedding, bias) block is independent, so each gets its own Newton step; then every item's, with the
users fixed. The blocks are (d+1)-dimensional, so a whole side costs one batched solve. A forgotten user has no
retained triples: their block is the ridge term alone and one Newton step sends it to 0, as a retrain would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from llmrec.classic.lightgcn import LightGCN
from llmrec.classic.mf import with_ones
from llmrec.config import option
from llmrec.errors import LlmrecError
from llmrec.store import parameter_counts
from llmrec.progress import progress
from llmrec.unlearn.registry import register


@dataclass
class AltEraserConfig:
    sweeps: int = option(3, "user-side then item-side Newton passes over the retained triples", ge=1)
    newton_steps: int = option(1, "Newton steps per block and side in each sweep", ge=1)
    damping: float = option(0.0, "added to every block's Hessian diagonal (blocks are convex; for weight_decay 0)",
                             ge=0)
    chunk: int = option(4096, "triples per chunk when accumulating the blocks' Hessians", ge=1)


def block_newton_step(own: torch.Tensor, features: torch.Tensor, rows: torch.Tensor, offset: torch.Tensor,
                      labels: torch.Tensor, n: int, weight_decay: float, damping: float = 0.0,
                      chunk: int = 4096) -> torch.Tensor:
    """One Newton step on every row block of min Σ_t BCE(⟨own[rows_t], features_t⟩ + offset_t, y_t)/n + λ/2·|own|².

    own: [R, k] blocks; features: [T, k] (the fixed side's vector for each triple); rows: [T] block of each triple.
    """
    k = own.shape[1]
    gradient = weight_decay * own.clone()
    hessian = (weight_decay + damping) * torch.eye(k, dtype=own.dtype).expand(len(own), k, k).clone()
    for start in range(0, len(rows), chunk):
        r, x = rows[start:start + chunk], features[start:start + chunk]
        p = torch.sigmoid((own[r] * x).sum(-1) + offset[start:start + chunk])
        gradient.index_add_(0, r, (p - labels[start:start + chunk]).unsqueeze(1) * x / n)
        hessian.index_add_(0, r, (p * (1 - p)).view(-1, 1, 1) * x.unsqueeze(2) * x.unsqueeze(1) / n)
    return own - torch.linalg.solve(hessian, gradient.unsqueeze(-1)).squeeze(-1)


def side_step(model, side: str, triples, weight_decay: float, config: AltEraserConfig, n: int) -> None:
    """Newton steps on every (embedding, bias) block of one side ('user' or 'item'), the other side fixed."""
    other = "item" if side == "user" else "user"
    own_rows, other_rows = getattr(triples, f"{side}s"), getattr(triples, f"{other}s")
    table, bias = getattr(model, side).weight, getattr(model, f"{side}_bias").weight
    with torch.no_grad():
        own = torch.cat([table, bias], dim=1)
        features = with_ones(getattr(model, other).weight[other_rows])
        offset = getattr(model, f"{other}_bias").weight[other_rows, 0] + model.bias
        for _ in range(config.newton_steps):
            own = block_newton_step(own, features, own_rows, offset, triples.labels, n, weight_decay, config.damping,
                                    config.chunk)
        table.copy_(own[:, :-1])
        bias.copy_(own[:, -1:])


@register("alteraser", families=("mf",), config=AltEraserConfig)
def alteraser(work, config: AltEraserConfig) -> dict:
    model, training = work.model, work.training.train
    if isinstance(model, LightGCN) or training.optimizer != "adam":
        raise LlmrecError("alteraser's per-user/per-item blocks need a bilinear model: an Adam-trained MF")
    started = time.perf_counter()
    retained, n = work.retained, len(work.retained)
    for _ in progress(range(config.sweeps), desc="alteraser"):
        for side in ("user", "item"):
            side_step(model, side, retained, training.weight_decay, config, n)
    return {"model": model, "timings": {"newton_seconds": time.perf_counter() - started},
            "steps": {"sweeps": config.sweeps}, "trainable_parameters": parameter_counts(model)[1]}
