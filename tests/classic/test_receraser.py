"""RecEraser (`llmrec.classic.methods.receraser`): the affected shard and the whole aggregator are retrained."""

import torch

from llmrec.classic.store import load_classic
from llmrec.classic.unlearn import run_classic_unlearning
from tests.classic.test_unlearn import unlearn_recipe
from tests.ensemble.test_classic import forget_within_one_shard


def test_receraser_retrains_the_affected_shard_and_the_attention(tmp_path):
    original, model_dir = forget_within_one_shard(
        tmp_path, "train.ensemble.partition=kmeans", "train.ensemble.aggregation=attention",
        "train.ensemble.aggregator_epochs=3")
    manifest = run_classic_unlearning(unlearn_recipe(original, tmp_path / "rec", "method=receraser",
                                                     f"forget.users={tmp_path / 'forget.txt'}"))
    assert manifest["steps"]["retrained"] == [1]
    before, after = load_classic(model_dir)[0], load_classic(tmp_path / "rec")[0]
    assert torch.equal(before.shards[0].item.weight, after.shards[0].item.weight)
    assert not torch.equal(before.user_attention.project.weight, after.user_attention.project.weight)
    # the per-shard transform is part of the aggregator: retrained too, so it keeps nothing of the forgotten users
    assert not torch.equal(before.transform.weight, after.transform.weight)
    assert manifest["trainable_parameters"] >= sum(p.numel() for p in after.transform.parameters())
