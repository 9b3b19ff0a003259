"""Who goes to which shard, and which shards a request touches: pure functions, both model families.

A partition puts each training user (a whole history: requests erase users) in exactly one shard. The LLM's SISA
shards user ids (`shard_users`); a classic ensemble assigns a shard to every user row of its id index, -1 for a
row with no training triples (`random_partition`, SISA; `balanced_kmeans`, RecEraser's). `affected_shards` is
what unlearning retrains: the shards that hold a forgotten user.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping

import torch

from llmrec.errors import LlmrecError


def shard_users(users: list[str], shards: int, seed: int) -> list[list[str]]:
    """`shards` seeded, near-equal, disjoint groups of users (SISA's uniform sharding), each sorted.

    Raises LlmrecError unless 1 < shards <= len(users)."""
    if not 1 < shards <= len(users):
        raise LlmrecError(f"train.shards must be between 2 and the number of training users ({len(users)}), "
                          f"got {shards}")
    order = torch.randperm(len(users), generator=torch.Generator().manual_seed(seed)).tolist()
    return [sorted(users[i] for i in order[k::shards]) for k in range(shards)]


def random_partition(rows: int, active: torch.Tensor, shards: int, seed: int) -> torch.Tensor:
    """SISA's uniform partition of user rows: [rows] long tensor, shard 0..shards-1 of every row in `active`
    (the rows with training triples, [n] long) and -1 elsewhere. `active` is shuffled by a generator seeded with
    `seed` and cut into `shards` near-equal runs (`tensor_split`: the first n % shards runs hold one more)."""
    assignment = torch.full((rows,), -1, dtype=torch.long)
    order = active[torch.randperm(len(active), generator=torch.Generator().manual_seed(seed))]
    for shard, members in enumerate(order.tensor_split(shards)):
        assignment[members] = shard
    return assignment


def balanced_kmeans(vectors: torch.Tensor, shards: int, iterations: int = 10, seed: int = 0) -> torch.Tensor:
    """RecEraser's balanced partition (Chen et al. 2022, "Recommendation Unlearning"): k-means where each shard
    holds at most ⌈n/shards⌉ rows. vectors: [n, dim]; returns the [n] long shard of each row.

    Each round assigns (row, centre) pairs in order of increasing distance, skipping full shards and rows
    already placed, then moves every centre to the mean of its rows. Centres start at `shards` rows drawn by a
    generator seeded with `seed`.
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


def affected_shards(shard_of: Mapping[Hashable, int], forgotten: Iterable[Hashable]) -> list[int]:
    """The shards that hold at least one forgotten user, ascending: what SISA and RecEraser retrain.

    shard_of: user -> shard (LLM: user id -> index in sisa.json; classic: user row -> its partition entry);
    a user absent from it, or mapped to -1, is in no shard and touches none."""
    return sorted({shard_of[user] for user in forgotten if user in shard_of} - {-1})
