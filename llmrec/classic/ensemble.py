"""Shard ensembles of classic models: SISA (random user shards, mean of P(yes)) and RecEraser (balanced
k-means shards, attention over the shard embeddings).

Each shard model sees only its shard's triples; unlearning retrains just the shards that held forgotten
triples (and, for attention, the aggregator).
"""

from __future__ import annotations

import torch
from torch import nn

from llmrec.classic.mf import MatrixFactorization


def balanced_kmeans(vectors: torch.Tensor, shards: int, iterations: int = 10, seed: int = 0) -> torch.Tensor:
    """RecEraser's balanced partition: k-means where each shard holds at most ⌈n/shards⌉ rows.

    Each round assigns (row, centre) pairs in order of increasing distance, skipping full shards and rows
    already placed, then moves every centre to the mean of its rows.
    """
    n = len(vectors)
    capacity = -(-n // shards)
    generator = torch.Generator().manual_seed(seed)
    centres = vectors[torch.randperm(n, generator=generator)[:shards]].clone()
    assignment = torch.full((n,), -1, dtype=torch.long)
    for _ in range(iterations):
        distance = torch.cdist(vectors, centres)
        order = torch.argsort(distance.reshape(-1))
        assignment.fill_(-1)
        load = [0] * shards
        placed = 0
        for flat in order.tolist():
            row, shard = divmod(flat, shards)
            if assignment[row] >= 0 or load[shard] >= capacity:
                continue
            assignment[row] = shard
            load[shard] += 1
            placed += 1
            if placed == n:
                break
        centres = torch.stack([vectors[assignment == k].mean(0) for k in range(shards)])
    return assignment


class Attention(nn.Module):
    """e_k = hᵀ ReLU(W x_k + b), weights softmax over shards, output Σ_k weight_k · x_k."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.project = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:  # [shards, rows, dim]
        weights = torch.softmax(self.score(torch.relu(self.project(stacked))), dim=0)
        return (weights * stacked).sum(0)


class ClassicEnsemble(nn.Module):
    """Shard models behind one score: the log-odds of the mean shard P(yes), or the attention-combined score."""

    kind = "ensemble"
    link = "sigmoid"

    def __init__(self, shards: list[MatrixFactorization], aggregation: str = "mean", hidden: int = 32):
        super().__init__()
        self.shards = nn.ModuleList(shards)
        self.aggregation = aggregation
        self.hidden = hidden
        if aggregation == "attention":
            dim = shards[0].user.embedding_dim + 1  # embedding and bias travel together
            self.user_attention, self.item_attention = Attention(dim, hidden), Attention(dim, hidden)

    def combined_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items = [], []
        for shard in self.shards:
            user_table, item_table = shard.tables()
            users.append(torch.cat([user_table, shard.user_bias.weight], 1))
            items.append(torch.cat([item_table, shard.item_bias.weight], 1))
        return self.user_attention(torch.stack(users)), self.item_attention(torch.stack(items))

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        if self.aggregation == "mean":
            p = torch.stack([torch.sigmoid(shard(users, items)) for shard in self.shards]).mean(0)
            p = p.clamp(1e-7, 1 - 1e-7)
            return torch.log(p) - torch.log1p(-p)
        user_table, item_table = self.combined_tables()
        u, i = user_table[users], item_table[items]
        bias = torch.stack([shard.bias for shard in self.shards]).mean()
        return (u[:, :-1] * i[:, :-1]).sum(-1) + u[:, -1] + i[:, -1] + bias

    def probability(self, scores: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(scores)

    def settings(self) -> dict:
        return {"aggregation": self.aggregation, "hidden": self.hidden}
