"""What a model trained on, to check that no data.holdout sample reaches training (issue 19, item 1)."""

from __future__ import annotations


def sample_ids(split) -> set[tuple]:
    """A split's samples as (user_id, item_id, timestamp): one rating each."""
    return set(zip(split["user_id"], split["item_id"], split["timestamp"]))


def record_training_splits(monkeypatch, module: str) -> list:
    """Every split `module`'s `training_split` hands to training, appended to the returned list as it happens."""
    from llmrec.data.samples import training_split

    seen = []

    def recording(*args, **kwargs):
        seen.append(training_split(*args, **kwargs))
        return seen[-1]

    monkeypatch.setattr(f"{module}.training_split", recording)
    return seen


def assert_no_holdout_sample(trained_on: list, splits) -> None:
    """Each split in `trained_on` is non-empty and holds no sample (and no user) of `splits["holdout"]`."""
    holdout = sample_ids(splits["holdout"])
    assert holdout, "the data hold nobody out: nothing would be checked"
    users = set(splits["holdout"]["user_id"])
    for split in trained_on:
        assert len(split) and sample_ids(split).isdisjoint(holdout) and users.isdisjoint(split["user_id"])
