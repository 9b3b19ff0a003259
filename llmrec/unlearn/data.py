"""What every unlearning method is handed: the forget samples, the retained pool, the holdout users, the stopping
rule, and seeded batch schedules.

Unlearning must cost a fraction of retraining, so a method pays only for the retained samples it
will actually look at: `retained_sample(n)` draws and tokenizes just those n rows, never the whole
retained split. Batches come from explicit index schedules, so two passes that must agree (a
precomputed teacher table and a per-step teacher) see exactly the same samples.
"""

from __future__ import annotations

import math

import torch
from datasets import Dataset, DatasetDict
from torch.utils.data import DataLoader

from llmrec.config import PromptConfig
from llmrec.data.tokenize import AnswerCollator, length_order, tokenize
from llmrec.llm.backbone import AnswerTokens
from llmrec.unlearn.stopping import StopConfig, with_rows


class RowCollator(AnswerCollator):
    """Left-pads, adds each sample's row index (for teacher-table lookups) and moves the batch to the device."""

    def __init__(self, tokenizer, device: torch.device | str = "cpu"):
        super().__init__(tokenizer)
        self.device = torch.device(device)

    def __call__(self, features: list[dict]) -> dict:
        batch = super().__call__(features)
        batch["row"] = torch.tensor([f["row"] for f in features], dtype=torch.long)
        return {key: value.to(self.device) for key, value in batch.items()}


def batch_schedule(rows: int, batch_size: int, steps: int, seed: int) -> list[list[int]]:
    """`steps` batches of row indices: back-to-back seeded permutations, so every row is seen once per pass."""
    if steps == 0:
        return []
    generator = torch.Generator().manual_seed(seed)
    needed = steps * batch_size
    order = torch.cat([torch.randperm(rows, generator=generator) for _ in range(math.ceil(needed / rows))])
    return [order[i * batch_size:(i + 1) * batch_size].tolist() for i in range(steps)]


def bucketed_schedule(lengths: list[int], batch_size: int, steps: int, seed: int, window: int = 16) -> list[list[int]]:
    """`batch_schedule` with similar lengths batched together: each pass is a seeded permutation whose windows
    of `window` batches are sorted by prompt length before being cut, and the batches are then shuffled.
    Dynamic padding then pads each batch to nearly its own length; every row is still seen once per pass."""
    if steps == 0:
        return []
    rows = len(lengths)
    generator = torch.Generator().manual_seed(seed)
    span = batch_size * window
    order = []
    for _ in range(math.ceil(steps * batch_size / rows)):
        permutation = torch.randperm(rows, generator=generator).tolist()
        order += [row for start in range(0, rows, span)
                  for row in sorted(permutation[start:start + span], key=lengths.__getitem__)]
    batches = [order[i * batch_size:(i + 1) * batch_size] for i in range(steps)]
    return [batches[i] for i in torch.randperm(steps, generator=generator).tolist()]


def drawn(pool: Dataset, count: int, seed: int) -> Dataset:
    """`count` rows of `pool` in their order, a draw seeded by `seed` (the whole pool when count ≥ its size)."""
    if count >= len(pool):
        return pool
    generator = torch.Generator().manual_seed(seed)
    return pool.select(sorted(torch.randperm(len(pool), generator=generator)[:count].tolist()))


class UnlearningData:
    """The forget set (tokenized, whole), the retained pool and the holdout users' samples (both tokenized on
    demand, a sample at a time), and the run's stopping rule (`stop`, one for every method: stopping.py)."""

    def __init__(self, splits: DatasetDict, tokenizer, prompt: PromptConfig, max_length: int,
                 answer: AnswerTokens, seed: int, device: torch.device | str = "cpu", shard: tuple[int, int] = (0, 1),
                 stop: StopConfig | None = None):
        """`shard`: (this process, processes); each process trains on its slice of every batch. `splits` may lack
        `holdout` (caches from before data.holdout): no holdout users then. `stop`: None is StopConfig()."""
        self.tokenizer, self.prompt, self.max_length = tokenizer, prompt, max_length
        self.answer, self.seed, self.shard = answer, seed, shard
        self.stop = StopConfig() if stop is None else stop
        self.collator = RowCollator(tokenizer, device)
        self.forget = with_rows(tokenize(splits["forget"], tokenizer, prompt, max_length))
        self.retained_pool = splits["retained"]
        self.holdout_pool = splits["holdout"] if "holdout" in splits else None

    @property
    def holdout_users(self) -> list[str]:
        """The sorted ids of the holdout users (data.holdout): users no model trained on; [] when there are none."""
        return sorted(set(self.holdout_pool["user_id"])) if self.holdout_pool is not None else []

    def holdout_sample(self, count: int, seed: int) -> Dataset:
        """At most `count` holdout samples (all when there are no more), a draw seeded by `seed`, tokenized, with
        their `row` indices; empty when the data has no holdout users."""
        return self._tokenized(drawn(self.holdout_pool, count, seed) if self.holdout_pool is not None else None)

    def retained_sample(self, count: int) -> Dataset:
        """`count` retained samples (all of them when count ≥ the pool), drawn with the run's seed."""
        return self._tokenized(drawn(self.retained_pool, count, self.seed + 1))

    def _tokenized(self, rows: Dataset | None) -> Dataset:
        """Tokenized rows with their `row` indices; none (None or empty: datasets writes no cache for an empty map)
        is an empty dataset with the same columns."""
        if rows is None or not len(rows):
            return with_rows(Dataset.from_dict({key: [] for key in ("user_id", "item_id", "label", "input_ids",
                                                                    "length")}))
        return with_rows(tokenize(rows, self.tokenizer, self.prompt, self.max_length))

    def batches(self, dataset: Dataset, batch_size: int, steps: int, seed_offset: int = 0,
                by_length: bool = False) -> DataLoader:
        """Exactly `steps` shuffled batches, cycling through the dataset as many times as that takes;
        `by_length` batches similar prompt lengths together (bucketed_schedule)."""
        seed = self.seed + seed_offset
        schedule = (bucketed_schedule(dataset["length"], batch_size, steps, seed) if by_length
                    else batch_schedule(len(dataset), batch_size, steps, seed))
        process, processes = self.shard
        schedule = [batch[process::processes] for batch in schedule]
        return DataLoader(dataset, batch_sampler=schedule, collate_fn=self.collator)

    def all_rows(self, dataset: Dataset, batch_size: int) -> DataLoader:
        """Every row once, shortest prompts first (least padding); batches carry their `row` indices."""
        return DataLoader(dataset, batch_size=batch_size, sampler=length_order(dataset), collate_fn=self.collator)
