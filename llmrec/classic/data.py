"""The LLM's samples seen as (user, item, label) triples: the classic models' view of the same splits."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmrec.errors import LlmrecError


@dataclass(frozen=True)
class Triples:
    users: torch.Tensor  # long [n]: row indices into the user table
    items: torch.Tensor  # long [n]
    labels: torch.Tensor  # float [n]: 1 = liked
    rows: torch.Tensor | None = None  # long [n]: a batch's rows in the triples it was drawn from

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, mask: torch.Tensor) -> Triples:
        return Triples(self.users[mask], self.items[mask], self.labels[mask])


@dataclass(frozen=True)
class Index:
    """Row of every user and item id; built once from all splits so any split of the same data can be scored
    (the data.holdout users' too: they get rows, which only ever see their initial values, never their samples)."""

    users: list[str]
    items: list[str]

    @classmethod
    def from_splits(cls, splits) -> Index:
        names = [name for name in ("train", "valid", "test", "holdout") if name in splits]
        users = sorted({str(u) for name in names for u in splits[name]["user_id"]})
        items = sorted({str(i) for name in names for i in splits[name]["item_id"]})
        return cls(users, items)

    def encode(self, split, what: str = "split") -> Triples:
        user_row = {u: k for k, u in enumerate(self.users)}
        item_row = {i: k for k, i in enumerate(self.items)}
        try:
            users = [user_row[str(u)] for u in split["user_id"]]
            items = [item_row[str(i)] for i in split["item_id"]]
        except KeyError as exc:
            raise LlmrecError(f"{what}: id {exc} is not in the model's index (was it trained on other data?)") from None
        return Triples(torch.tensor(users, dtype=torch.long), torch.tensor(items, dtype=torch.long),
                       torch.tensor(list(split["label"]), dtype=torch.float32))

    def user_rows(self, user_ids) -> torch.Tensor:
        wanted = {str(u) for u in user_ids}
        return torch.tensor([k for k, u in enumerate(self.users) if u in wanted], dtype=torch.long)
