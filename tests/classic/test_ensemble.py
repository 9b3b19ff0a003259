import json
import math

import torch

from llmrec.classic.ensemble import ClassicEnsemble, ShardTransform, balanced_kmeans
from llmrec.classic.mf import MatrixFactorization
from llmrec.recommender import load_recommender
from llmrec.classic.store import build_model, load_classic, model_spec
from llmrec.classic.train import train_classic
from llmrec.classic.unlearn import run_classic_unlearning
from llmrec.data.samples import prepare_splits
from tests.classic.test_unlearn import unlearn_recipe


def test_balanced_kmeans_respects_capacity_and_finds_separated_groups():
    g = torch.Generator().manual_seed(0)
    blobs = torch.cat([torch.randn(10, 2, generator=g) * 0.1 + centre for centre in (0.0, 5.0, 10.0)])
    assignment = balanced_kmeans(blobs, 3, seed=1)
    assert sorted(torch.bincount(assignment).tolist()) == [10, 10, 10]
    assert all(len(set(assignment[k * 10:(k + 1) * 10].tolist())) == 1 for k in range(3))
    uneven = balanced_kmeans(torch.randn(11, 2, generator=g), 3)
    assert torch.bincount(uneven).max() <= 4 and (uneven >= 0).all()


def shard_users(model_dir, shard):
    card = json.loads((model_dir / "llmrec_model.json").read_text())
    return [user for user, k in zip(card["users"], card["partition"]) if k == shard]


def forget_within_one_shard(classic_factory, tmp_path, *ensemble):
    original = classic_factory("train.ensemble.shards=3", *ensemble)
    train_classic(original)
    model_dir = tmp_path / "classic" / "model"
    users = shard_users(model_dir, 1)[:4]
    (tmp_path / "forget.txt").write_text("\n".join(users) + "\n")
    return original, model_dir


def state(model, prefix):
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}


def test_sisa_retrains_only_the_shard_that_held_the_forgotten_users(classic_factory, tmp_path):
    original, model_dir = forget_within_one_shard(classic_factory, tmp_path)
    splits = prepare_splits(original.data, original.forget)
    labels, probs = load_recommender(model_dir).score(["test"], splits)["test"]
    assert len(probs) == len(labels) and all(0 < p < 1 for p in probs)

    manifest = run_classic_unlearning(unlearn_recipe(original, tmp_path / "sisa", "method=sisa",
                                                     f"forget.users={tmp_path / 'forget.txt'}"))
    assert manifest["steps"]["shards_retrained"] == 1 and manifest["steps"]["retrained"] == [1]
    before, after = load_classic(model_dir)[0], load_classic(tmp_path / "sisa")[0]
    for shard in (0, 2):
        assert all(torch.equal(a, b) for a, b in zip(state(before, f"shards.{shard}.").values(),
                                                      state(after, f"shards.{shard}.").values()))
    assert not torch.equal(before.shards[1].user.weight, after.shards[1].user.weight)


def test_receraser_retrains_the_affected_shard_and_the_attention(classic_factory, tmp_path):
    original, model_dir = forget_within_one_shard(
        classic_factory, tmp_path, "train.ensemble.partition=kmeans", "train.ensemble.aggregation=attention",
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


def test_shard_transform_is_the_references_per_shard_affine_map():
    """trans_W/trans_B of RecEraser_BPR.py: einsum('abc,bcd->abd', e, W) + B, i.e. e W_k + b_k for shard k."""
    torch.manual_seed(0)
    transform = ShardTransform(shards=3, dim=4)
    stacked = torch.randn(3, 5, 4)  # [shards, rows, dim]
    expected = torch.stack([stacked[k] @ transform.weight[k] + transform.bias[k] for k in range(3)])
    assert torch.allclose(transform(stacked), expected, atol=1e-6)
    # Glorot-uniform with TensorFlow's fans for [shards, dim, dim] (dim·shards in and out) and [shards, dim]
    assert transform.weight.abs().max() <= math.sqrt(3 / (4 * 3))
    assert transform.bias.abs().max() <= math.sqrt(6 / (3 + 4))


def test_receraser_trains_a_per_shard_transform_before_attention_and_it_changes_scores(classic_factory, tmp_path):
    recipe = classic_factory("train.ensemble.shards=3", "train.ensemble.partition=kmeans",
                             "train.ensemble.aggregation=attention", "train.ensemble.aggregator_epochs=3")
    assert recipe.train.ensemble.transform  # the reference always transforms: the default
    train_classic(recipe)
    model, _, card = load_classic(tmp_path / "classic" / "model")
    assert card["classic"]["transform"] is True and isinstance(model.transform, ShardTransform)
    fresh = ClassicEnsemble(list(model.shards), "attention", model.hidden, transform=True)
    torch.manual_seed(recipe.train.seed)  # the initial weights fit_aggregator started from
    fresh.reset_aggregator()
    assert not torch.allclose(model.transform.weight, fresh.transform.weight)  # trained, not left at its init

    users, items = torch.arange(10), torch.arange(10)
    with torch.no_grad():
        with_transform = model(users, items)
        model.transform = None
        without = model(users, items)
    assert not torch.allclose(with_transform, without, atol=1e-3)


def test_an_attention_ensemble_saved_without_the_transform_still_loads():
    """Model dirs written before the transform existed have no `transform` in their card: no transform."""
    shards = [MatrixFactorization(5, 4, dim=3) for _ in range(2)]
    spec = model_spec(ClassicEnsemble(shards, "attention", 8))
    assert spec["transform"] is False
    del spec["transform"]
    assert build_model(spec).transform is None
