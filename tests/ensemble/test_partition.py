"""The partitions of both families and `affected_shards` (`llmrec.ensemble.partition`): pure functions."""

import pytest
import torch

from llmrec.ensemble.partition import affected_shards, balanced_kmeans, random_partition, shard_users
from llmrec.errors import LlmrecError


def test_shards_are_disjoint_near_equal_and_seeded():
    users = [str(u) for u in range(10)]
    shards = shard_users(users, 3, seed=0)
    assert sorted(sum(shards, [])) == sorted(users) and sorted(len(s) for s in shards) == [3, 3, 4]
    assert shards == shard_users(users, 3, seed=0) != shard_users(users, 3, seed=1)
    with pytest.raises(LlmrecError, match="train.shards must be between 2 and the number of training users"):
        shard_users(users, 11, seed=0)


def test_random_partition_places_every_active_row_once_and_no_other():
    active = torch.tensor([0, 2, 3, 5, 6, 7, 9])
    assignment = random_partition(11, active, 3, seed=4)
    assert assignment.shape == (11,) and assignment.dtype == torch.long
    assert (assignment[[1, 4, 8, 10]] == -1).all() and (assignment[active] >= 0).all()
    assert torch.bincount(assignment[active]).tolist() == [3, 2, 2]  # tensor_split: the first runs are longer
    assert torch.equal(assignment, random_partition(11, active, 3, seed=4))
    assert not torch.equal(assignment, random_partition(11, active, 3, seed=5))


def test_random_partition_is_the_draw_classic_training_made_before_the_move():
    """The same torch calls in the same order as the code it replaced (classic/train.py: partition_users), so a
    classic ensemble trained before the move and after has the same shards."""
    active = torch.unique(torch.tensor([7, 3, 3, 12, 0, 5, 9, 9, 1, 14, 2]))
    before = torch.full((16,), -1, dtype=torch.long)
    order = active[torch.randperm(len(active), generator=torch.Generator().manual_seed(11))]
    for shard, rows in enumerate(order.tensor_split(4)):
        before[rows] = shard
    assert torch.equal(random_partition(16, active, 4, seed=11), before)


def test_balanced_kmeans_respects_capacity_and_finds_separated_groups():
    g = torch.Generator().manual_seed(0)
    blobs = torch.cat([torch.randn(10, 2, generator=g) * 0.1 + centre for centre in (0.0, 5.0, 10.0)])
    assignment = balanced_kmeans(blobs, 3, seed=1)
    assert sorted(torch.bincount(assignment).tolist()) == [10, 10, 10]
    assert all(len(set(assignment[k * 10:(k + 1) * 10].tolist())) == 1 for k in range(3))
    uneven = balanced_kmeans(torch.randn(11, 2, generator=g), 3)
    assert torch.bincount(uneven).max() <= 4 and (uneven >= 0).all()


def test_affected_shards_of_user_ids_are_the_shards_holding_a_forgotten_user():
    groups = [["a", "b"], ["c"], ["d", "e", "f"]]  # LLM: sisa.json's shards
    shard_of = {user: k for k, group in enumerate(groups) for user in group}
    assert affected_shards(shard_of, {"e", "a", "f"}) == [0, 2]  # ascending, each once
    assert affected_shards(shard_of, ["c"]) == [1]
    assert affected_shards(shard_of, []) == []
    assert affected_shards(shard_of, {"z"}) == []  # in no shard: touches none


def test_affected_shards_of_user_rows_skip_rows_in_no_shard():
    partition = [2, -1, 0, 2, 1, -1]  # classic: the card's partition, the shard of each user row
    assert affected_shards(dict(enumerate(partition)), [3, 1, 0]) == [2]  # row 1 has no training triples
    assert affected_shards(dict(enumerate(partition)), [5]) == []
    assert affected_shards(dict(enumerate(partition)), [4, 2, 0]) == [0, 1, 2]


def test_affected_shards_agrees_with_the_classic_tensor_form_it_replaced():
    """classic SISA once computed sorted(set(partition[unique(forgotten rows)]) - {-1}); same answer on a draw."""
    g = torch.Generator().manual_seed(3)
    partition = torch.randint(-1, 5, (40,), generator=g)
    for _ in range(20):
        forgotten = torch.randint(0, 40, (int(torch.randint(0, 8, (1,), generator=g)),), generator=g)
        before = sorted(set(partition[torch.unique(forgotten)].tolist()) - {-1})
        assert affected_shards(dict(enumerate(partition.tolist())), torch.unique(forgotten).tolist()) == before
