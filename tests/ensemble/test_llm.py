"""SISA ensembles of LLMs (`llmrec.ensemble.llm`): what the shards train on, how they are combined, what the
ensemble's hash covers. Unlearning from them: tests/unlearn/methods/test_sisa.py."""

import json
import os
import shutil

import pytest
import torch

from llmrec.data.samples import prepare_splits
from llmrec.ensemble.llm import SisaEnsemble
from llmrec.errors import LlmrecError
from llmrec.llm.backbone import load_model
from llmrec.recommender import load_llm_module
from llmrec.store import directory_hash, model_hash
from tests.data.holdout_checks import assert_no_holdout_sample, sample_ids


@pytest.fixture
def ensemble(sisa_ensemble):
    return sisa_ensemble[0]


def test_no_shard_holds_or_trains_on_a_holdout_user(sisa_ensemble):
    """Issue 19: data.holdout users are in-distribution non-members; no SISA shard may train on them."""
    ensemble, trained_on = sisa_ensemble
    splits = prepare_splits(ensemble.data, ensemble.forget)
    assert len(trained_on) == 3
    assert_no_holdout_sample(trained_on, splits)
    assert set().union(*map(sample_ids, trained_on)) == sample_ids(splits["train"])
    spec = json.load(open(f"{ensemble.output_dir}/model/sisa.json"))
    assert set(splits["holdout"]["user_id"]).isdisjoint(sum((s["users"] for s in spec["shards"]), []))


def test_the_ensemble_averages_its_shards_probabilities(ensemble):
    model_dir = f"{ensemble.output_dir}/model"
    spec = json.load(open(f"{model_dir}/sisa.json"))
    assert len(spec["shards"]) == 3
    train_users = set(prepare_splits(ensemble.data, ensemble.forget)["train"]["user_id"])
    assert sorted(sum((s["users"] for s in spec["shards"]), [])) == sorted(train_users)

    model = load_llm_module(model_dir)
    assert isinstance(model, SisaEnsemble)
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    pair = [model.answer.yes_id, model.answer.no_id]
    with torch.no_grad():
        combined = model(input_ids=ids).logits[:, -1, pair].softmax(-1)
        shards = [load_model(os.path.join(model_dir, s["model"]))(input_ids=ids).logits[:, -1, pair].softmax(-1)
                  for s in spec["shards"]]
    torch.testing.assert_close(combined, torch.stack(shards).mean(0))


def test_the_original_hash_of_an_ensemble_covers_its_shards(ensemble, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(ensemble.output_dir, copy)
    before, ensemble_dir_only = model_hash(copy / "model"), directory_hash(copy / "model")
    with open(copy / "shards/shard-2/model/config.json", "a") as f:  # a shard lives outside model/
        f.write(" ")
    assert directory_hash(copy / "model") == ensemble_dir_only
    assert model_hash(copy / "model") != before


def test_a_shard_changed_in_place_is_refused_at_load(ensemble, tmp_path):
    """Issue 18 item 2: sisa.json recorded no hash of its shards, so a shard retrained or edited in place (it lives
    outside model/) was scored and unlearned without a word."""
    copy = tmp_path / "run"
    shutil.copytree(ensemble.output_dir, copy)
    load_llm_module(copy / "model")  # intact: loads
    with open(copy / "shards/shard-1/model/model.safetensors", "r+b") as f:  # a weight byte changed, same size
        f.seek(-1, os.SEEK_END)
        last = f.read(1)
        f.seek(-1, os.SEEK_END)
        f.write(bytes([last[0] ^ 1]))
    with pytest.raises(LlmrecError, match=r"shard 1 .* changed since the ensemble was written"):
        load_llm_module(copy / "model")
