"""What every unlearning method is handed: the forget samples, the retained pool, and seeded batch schedules.

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


class RowCollator(AnswerCollator):
    """Left-pads, adds each sample's row index (for teacher-table lookups) and moves the batch to the device."""

    def __init__(self, tokenizer, device: torch.device | str = "cpu"):
        super().__init__(tokenizer)
        self.device = torch.device(device)

    def __call__(self, features: list[dict]) -> dict:
        batch = super().__call__(features)
        batch["row"] = torch.tensor([f["row"] for f in features], dtype=torch.long)
        return {key: value.to(self.device) for key, value in batch.items()}


def steps_for(epochs: float, rows: int, batch_size: int) -> int:
    """Optimizer steps for `epochs` passes over `rows` samples (at least one step when epochs > 0)."""
    return max(1, math.ceil(epochs * rows / batch_size)) if epochs > 0 else 0


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


def with_rows(dataset: Dataset) -> Dataset:
    return dataset.add_column("row", list(range(len(dataset))))


class UnlearningData:
    """The forget set (tokenized, whole) and the retained pool (tokenized on demand, a sample at a time)."""

    def __init__(self, splits: DatasetDict, tokenizer, prompt: PromptConfig, max_length: int,
                 answer: AnswerTokens, seed: int, device: torch.device | str = "cpu", shard: tuple[int, int] = (0, 1)):
        """`shard`: (this process, processes); each process trains on its slice of every batch."""
        self.tokenizer, self.prompt, self.max_length = tokenizer, prompt, max_length
        self.answer, self.seed, self.shard = answer, seed, shard
        self.collator = RowCollator(tokenizer, device)
        self.forget = with_rows(tokenize(splits["forget"], tokenizer, prompt, max_length))
        self.retained_pool = splits["retained"]

    def retained_sample(self, count: int) -> Dataset:
        """`count` retained samples (all of them when count ≥ the pool), drawn with the run's seed."""
        pool = self.retained_pool
        if count < len(pool):
            generator = torch.Generator().manual_seed(self.seed + 1)
            pool = pool.select(sorted(torch.randperm(len(pool), generator=generator)[:count].tolist()))
        return with_rows(tokenize(pool, self.tokenizer, self.prompt, self.max_length))

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
