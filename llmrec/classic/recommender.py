"""The classic family (MF, LightGCN, their shard ensembles) behind the `llmrec.recommender.Recommender` seam:
scored from (user, item) ids through the id index saved beside the weights; no prompt, no tokenizer."""

from __future__ import annotations

from dataclasses import dataclass

from accelerate import Accelerator
from torch import nn

from llmrec.classic.data import Index
from llmrec.classic.store import predict
from llmrec.store import parameter_counts


@dataclass
class ClassicRecommender:
    module: nn.Module  # MatrixFactorization, LightGCN or ClassicEnsemble: forward(users, items) -> [batch] scores
    index: Index  # user and item ids -> rows of the embedding tables
    family: str  # mf | lightgcn
    name: str = "model"

    def score(self, names: list[str], splits, batch_size: int = 0, accelerator: Accelerator | None = None) -> dict:
        """{split: (labels, P(yes))} in split order, all rows at once (a few MB of ids): `batch_size` and
        `accelerator` are the LLM family's concerns. Raises LlmrecError naming a user or item the index lacks."""
        scored = {}
        for name in names:
            triples = self.index.encode(splits[name], f"{self.name}: split '{name}'")
            scored[name] = (triples.labels.long().tolist(), predict(self.module, triples.users, triples.items).tolist())
        return scored

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameters: every embedding row and bias trains."""
        return parameter_counts(self.module)
