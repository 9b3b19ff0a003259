"""Shard ensembles of MF / LightGCN (`llmrec.ensemble.classic`): RecEraser's per-shard transform, attention
aggregation, loading old cards. Unlearning from them: tests/unlearn/methods/test_sisa.py,
tests/classic/test_receraser.py; the partitions: tests/ensemble/test_partition.py."""

import json
import math

import torch

from llmrec.classic.mf import MatrixFactorization
from llmrec.classic.store import build_model, load_classic, model_spec
from llmrec.classic.train import train_classic
from llmrec.ensemble.classic import ClassicEnsemble, ShardTransform
from tests.classic.conftest import classic_recipe


def card_shard_users(model_dir, shard) -> list[str]:
    """The users a classic ensemble's card puts in `shard` (its `partition`: the shard of each user row)."""
    card = json.loads((model_dir / "llmrec_model.json").read_text())
    return [user for user, k in zip(card["users"], card["partition"]) if k == shard]


def forget_within_one_shard(tmp_path, *ensemble):
    """A 3-shard classic ensemble trained in tmp_path/classic, and tmp_path/forget.txt naming 4 users of shard 1."""
    original = classic_recipe(tmp_path, "train.ensemble.shards=3", *ensemble)
    train_classic(original)
    model_dir = tmp_path / "classic" / "model"
    users = card_shard_users(model_dir, 1)[:4]
    (tmp_path / "forget.txt").write_text("\n".join(users) + "\n")
    return original, model_dir


def state(model, prefix: str) -> dict:
    """The entries of `model`'s state dict under `prefix` (one shard's: "shards.1.")."""
    return {k: v for k, v in model.state_dict().items() if k.startswith(prefix)}


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


def test_receraser_trains_a_per_shard_transform_before_attention_and_it_changes_scores(tmp_path):
    recipe = classic_recipe(tmp_path, "train.ensemble.shards=3", "train.ensemble.partition=kmeans",
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
