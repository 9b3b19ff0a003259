"""Shard ensembles of classic models: SISA (random user shards, mean of P(yes)) and RecEraser (balanced
k-means shards, attention over the shard embeddings).

Each shard model sees only its shard's triples; unlearning (`llmrec.unlearn.methods.sisa`,
`llmrec.classic.methods.receraser`) retrains just the shards that held forgotten triples (and, for attention, the
aggregator: the per-shard transform and both attention nets). The partitions are `partition.random_partition` and
`partition.balanced_kmeans`; shards and aggregator are fitted by `classic.train` (`fit_shard`, `fit_aggregator`,
`fit_ensemble`), which imports this module, not the other way round.

RecEraser's aggregator against the reference (chenchongthu/Recommendation-Unlearning, code/RecEraser_BPR.py;
RecEraser_WMF.py and RecEraser_LightGCN.py do the same):

| setting | reference | ours | why |
|---|---|---|---|
| per-shard transform before attention | W_k e + b_k, one (W_k, b_k) per shard shared by users and items (L86-89, L197-199), Glorot-uniform init | the same on the embedding part (`train.ensemble.transform: true`, default); the bias column passes through | MF here carries user/item biases, which the reference's BPR-MF has not |
| attention | hᵀReLU(W e + b), softmax over shards, hidden = dim/2 (L21, L127-147) | the same, hidden 32 (= 64/2 at the default dim) | — |
| aggregator training | BPR, Adagrad, dropout (keep 0.7, utility/parser.py L76) on the user vector, L2 1e-5 on the transform (L205-228), up to 50 epochs with early stopping | the shards' BCE, Adam, no dropout, no L2, 10 epochs, best by valid AUC | one loss and optimiser for every classic model here |

What the transform changes, on ML-100K (recipes/classic/train/mf_receraser.yaml, forget 20% of users): test AUC
0.6750 with it, 0.6803 without (0.6749 and 0.6808 after `unlearn method=receraser`); unregularised, the aggregator
with the transform fits the training triples after its first epoch (the best epoch by valid AUC is the first).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from llmrec.classic.mf import MatrixFactorization


class Attention(nn.Module):
    """e_k = hᵀ ReLU(W x_k + b), weights softmax over shards, output Σ_k weight_k · x_k."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.project = nn.Linear(dim, hidden)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:  # [shards, rows, dim]
        weights = torch.softmax(self.score(torch.relu(self.project(stacked))), dim=0)
        return (weights * stacked).sum(0)


class ShardTransform(nn.Module):
    """RecEraser's per-shard affine map before attention: x_k ↦ x_k W_k + b_k on [shards, rows, dim].

    One (W_k, b_k) per shard, shared by users and items, as in the reference's `trans_W` / `trans_B`
    (RecEraser_BPR.py L88-89, applied at L197-199), initialised as its Glorot-uniform initializer does for
    those shapes (fans dim·shards for W, shards and dim for b).
    """

    def __init__(self, shards: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(shards, dim, dim))
        self.bias = nn.Parameter(torch.empty(shards, dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        shards, dim = self.bias.shape
        nn.init.uniform_(self.weight, -math.sqrt(3 / (dim * shards)), math.sqrt(3 / (dim * shards)))
        nn.init.uniform_(self.bias, -math.sqrt(6 / (shards + dim)), math.sqrt(6 / (shards + dim)))

    def forward(self, stacked: torch.Tensor) -> torch.Tensor:  # [shards, rows, dim]
        return torch.einsum("krd,kde->kre", stacked, self.weight) + self.bias[:, None, :]


class ClassicEnsemble(nn.Module):
    """Shard models behind one score: the log-odds of the mean shard P(yes), or the attention-combined score."""

    kind = "ensemble"
    link = "sigmoid"

    def __init__(self, shards: list[MatrixFactorization], aggregation: str = "mean", hidden: int = 32,
                 transform: bool = False):
        """`transform` (attention only): RecEraser's per-shard transform before attention (ShardTransform)."""
        super().__init__()
        self.shards = nn.ModuleList(shards)
        self.aggregation = aggregation
        self.hidden = hidden
        self.transform = None
        if aggregation == "attention":
            dim = shards[0].user.embedding_dim
            self.user_attention = Attention(dim + 1, hidden)  # embedding and bias travel together
            self.item_attention = Attention(dim + 1, hidden)
            if transform:
                self.transform = ShardTransform(len(shards), dim)

    def aggregator(self) -> list[nn.Module]:
        """What RecEraser trains on top of the frozen shards (empty for the mean)."""
        if self.aggregation != "attention":
            return []
        return [self.user_attention, self.item_attention] + ([self.transform] if self.transform is not None else [])

    def reset_aggregator(self) -> None:
        """Fresh initial weights for the aggregator, so retraining it after a deletion starts from no data."""
        for module in self.aggregator():
            for layer in [module, *module.children()]:
                if hasattr(layer, "reset_parameters"):
                    layer.reset_parameters()

    def combined_tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        users, items, user_bias, item_bias = [], [], [], []
        for shard in self.shards:
            user_table, item_table = shard.tables()
            users.append(user_table)
            items.append(item_table)
            user_bias.append(shard.user_bias.weight)
            item_bias.append(shard.item_bias.weight)
        users, items = torch.stack(users), torch.stack(items)  # [shards, rows, dim]
        if self.transform is not None:
            users, items = self.transform(users), self.transform(items)
        users = torch.cat([users, torch.stack(user_bias)], -1)
        items = torch.cat([items, torch.stack(item_bias)], -1)
        return self.user_attention(users), self.item_attention(items)

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
        return {"aggregation": self.aggregation, "hidden": self.hidden, "transform": self.transform is not None}
