"""LightGCN (He et al. 2020): embeddings smoothed over the normalised user–item graph of training interactions."""

from __future__ import annotations

import torch

from llmrec.classic.mf import MatrixFactorization


def normalized_adjacency(edges: torch.Tensor, num_users: int, num_items: int) -> torch.Tensor:
    """D^-½ A D^-½ of the bipartite graph as a sparse [U+I, U+I] matrix; isolated nodes get empty rows."""
    edges = torch.unique(edges, dim=1)
    rows = torch.cat([edges[0], edges[1] + num_users])
    cols = torch.cat([edges[1] + num_users, edges[0]])
    size = num_users + num_items
    degree = torch.zeros(size).index_add_(0, rows, torch.ones(len(rows)))
    scale = degree.clamp_min(1).rsqrt()
    values = scale[rows] * scale[cols]
    return torch.sparse_coo_tensor(torch.stack([rows, cols]), values, (size, size), check_invariants=True).coalesce()


class LightGCN(MatrixFactorization):
    """K layers of neighbour averaging with no weights or non-linearity; the final vector is the mean over layers.

    The graph is part of the model (buffer `edges`: user rows and item rows of the training interactions),
    so removing a user's interactions from it is part of unlearning. Biases are kept as in MF, because the
    labels here are explicit likes and dislikes, not implicit clicks.
    """

    kind = "lightgcn"

    def __init__(self, num_users: int, num_items: int, edges: torch.Tensor, dim: int = 64, layers: int = 2,
                 init_std: float = 0.1, link="sigmoid"):
        super().__init__(num_users, num_items, dim, init_std, link)
        self.layers = layers
        self.register_buffer("edges", torch.empty(2, 0, dtype=torch.long))
        self.set_edges(edges)

    def set_edges(self, edges: torch.Tensor) -> None:
        self.edges = edges.long().clone()
        self.adjacency = normalized_adjacency(self.edges, self.user.num_embeddings, self.item.num_embeddings)

    def tables(self) -> tuple[torch.Tensor, torch.Tensor]:
        layer = torch.cat([self.user.weight, self.item.weight])
        adjacency = self.adjacency.to(layer.dtype)
        total = layer
        for _ in range(self.layers):
            layer = torch.sparse.mm(adjacency, layer)
            total = total + layer
        mean = total / (self.layers + 1)
        return mean[: self.user.num_embeddings], mean[self.user.num_embeddings:]

    def settings(self) -> dict:
        return {**super().settings(), "layers": self.layers}
