import json
import os
import shutil
from dataclasses import replace

import pytest
import torch

from llmrec.config import load_recipe
from llmrec.data.samples import prepare_splits
from llmrec.errors import LlmrecError
from llmrec.ensemble import SisaEnsemble, shard_users, train
from llmrec.llm.backbone import load_model
from llmrec.recommender import load_llm_module
from llmrec.store import directory_hash, model_hash, read_model_card
from llmrec.unlearn.run import run_unlearning
from tests.conftest import SMALL_OVERRIDES
from tests.data.holdout_checks import assert_no_holdout_sample, record_training_splits, sample_ids
from tests.unlearn.conftest import unlearn_recipe


def test_shards_are_disjoint_near_equal_and_seeded():
    users = [str(u) for u in range(10)]
    shards = shard_users(users, 3, seed=0)
    assert sorted(sum(shards, [])) == sorted(users) and sorted(len(s) for s in shards) == [3, 3, 4]
    assert shards == shard_users(users, 3, seed=0) != shard_users(users, 3, seed=1)
    with pytest.raises(LlmrecError, match="train.shards must be between 2 and the number of training users"):
        shard_users(users, 11, seed=0)


SHARDS_TRAINED_ON = []  # what the `ensemble` fixture's shards trained on


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory):
    root = tmp_path_factory.mktemp("sisa")
    recipe = load_recipe(None, [f"output_dir={root / 'run'}", f"data.cache_dir={root / 'cache'}", *SMALL_OVERRIDES,
                                "train.max_steps=6", "train.shards=3"])
    with pytest.MonkeyPatch.context() as patch:
        SHARDS_TRAINED_ON[:] = []
        seen = record_training_splits(patch, "llmrec.llm.train")
        train(recipe)
        SHARDS_TRAINED_ON.extend(seen)
    return recipe


def test_no_shard_holds_or_trains_on_a_holdout_user(ensemble):
    """Issue 19: data.holdout users are in-distribution non-members; no SISA shard may train on them."""
    splits = prepare_splits(ensemble.data, ensemble.forget)
    assert len(SHARDS_TRAINED_ON) == 3
    assert_no_holdout_sample(SHARDS_TRAINED_ON, splits)
    assert set().union(*map(sample_ids, SHARDS_TRAINED_ON)) == sample_ids(splits["train"])
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


def test_unlearning_retrains_only_the_shards_that_held_a_forgotten_user(ensemble, tmp_path, monkeypatch):
    model_dir = f"{ensemble.output_dir}/model"
    spec = json.load(open(f"{model_dir}/sisa.json"))
    forgotten = spec["shards"][1]["users"][0]
    users = tmp_path / "forget.txt"
    users.write_text(forgotten + "\n")
    retrained_on = record_training_splits(monkeypatch, "llmrec.llm.train")
    manifest = run_unlearning(unlearn_recipe(ensemble, tmp_path / "out",
                                             "method=sisa", f"forget.users={users}"))
    assert manifest["steps"] == {"shards_retrained": 1, "shards_total": 3, "shards_dropped": 0}
    assert len(retrained_on) == 1 and forgotten not in set(retrained_on[0]["user_id"])
    assert_no_holdout_sample(retrained_on, prepare_splits(ensemble.data, ensemble.forget))
    new = json.load(open(tmp_path / "out" / "sisa.json"))
    assert new["retrained_shards"] == [1]
    assert forgotten not in sum((s["users"] for s in new["shards"]), [])
    assert (tmp_path / "out/shards/shard-1/users.txt").read_text().split() == spec["shards"][1]["users"][1:]
    for k in (0, 2):  # untouched shards hold the same bytes in files of their own (copies or reflinks)
        old = os.path.join(model_dir, spec["shards"][k]["model"], "model.safetensors")
        assert open(old, "rb").read() == (tmp_path / f"out/shards/shard-{k}/model/model.safetensors").read_bytes()
        assert not os.path.samefile(old, tmp_path / f"out/shards/shard-{k}/model/model.safetensors")
    assert read_model_card(tmp_path / "out")["recipe"] == read_model_card(model_dir)["recipe"]
    assert read_model_card(model_dir)["recipe"]["train"]["shards"] == 3  # the ensemble's recipe, not a shard's
    with torch.no_grad():
        ids = torch.tensor([[5, 6, 7]])
        assert not torch.equal(load_llm_module(tmp_path / "out")(input_ids=ids).logits,
                               load_llm_module(model_dir)(input_ids=ids).logits)


def test_the_original_hash_of_an_ensemble_covers_its_shards(ensemble, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(ensemble.output_dir, copy)
    before, ensemble_dir_only = model_hash(copy / "model"), directory_hash(copy / "model")
    with open(copy / "shards/shard-2/model/config.json", "a") as f:  # a shard lives outside model/
        f.write(" ")
    assert directory_hash(copy / "model") == ensemble_dir_only
    assert model_hash(copy / "model") != before


def test_editing_the_unlearned_ensemble_in_place_leaves_the_original_unchanged(ensemble, tmp_path):
    """Issue 18: untouched shards were hard-linked to the original's files, so editing the output in place changed
    the original's hash."""
    original = tmp_path / "original"
    shutil.copytree(ensemble.output_dir, original)
    spec = json.load(open(original / "model" / "sisa.json"))
    users = tmp_path / "forget.txt"
    users.write_text(spec["shards"][1]["users"][0] + "\n")
    run_unlearning(unlearn_recipe(ensemble, tmp_path / "out", f"model={original / 'model'}", "method=sisa",
                                  f"forget.users={users}"))
    before = model_hash(original / "model")
    for k in (0, 2):  # the untouched shards
        for name in ("config.json", "model.safetensors"):
            with open(tmp_path / f"out/shards/shard-{k}/model/{name}", "r+b") as f:
                f.seek(0, os.SEEK_END)
                f.write(b" ")
    assert model_hash(original / "model") == before


def test_a_shard_of_the_original_is_refused_as_output_dir(ensemble, tmp_path, capsys):
    from llmrec.cli import main

    original = tmp_path / "original"
    shutil.copytree(ensemble.output_dir, original)
    before = model_hash(original / "model")
    data = [o for o in SMALL_OVERRIDES if o.startswith("data.")]
    code = main(["unlearn", f"model={original / 'model'}", "method=sisa", f"output_dir={original / 'shards'}",
                 f"data.cache_dir={ensemble.data.cache_dir}", *data])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "contains shard 0 of the original model" in err, err
    assert model_hash(original / "model") == before


def test_sisa_needs_an_ensemble(trained, tmp_path):
    with pytest.raises(LlmrecError, match="method=sisa needs a SISA ensemble"):
        run_unlearning(unlearn_recipe(trained, tmp_path / "out", "method=sisa"))
    assert not (tmp_path / "out").exists()


def test_an_ensemble_of_t5_shards_is_scored_evaluated_and_unlearned(tmp_path):
    """Encoder-decoder shards are scored at their first decoder position, through the ensemble as through one model."""
    from llmrec.eval.evaluate import evaluate
    from llmrec.llm.backbone import is_encoder_decoder
    from llmrec.llm.scoring import answer_logits

    t5 = ["model.tiny.architecture=t5", "model.tiny.num_layers=1", "model.tiny.num_heads=2",
          "data.synthetic.num_users=16", "train.max_steps=2", "train.shards=2"]
    recipe = load_recipe(None, [f"output_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}",
                                *SMALL_OVERRIDES, *t5])
    train(recipe)
    model_dir = f"{recipe.output_dir}/model"
    ensemble = load_llm_module(model_dir)
    assert is_encoder_decoder(ensemble)  # learnt through the wrapper, as for a peft model or one bare shard

    ids, mask = torch.tensor([[0, 5, 6, 7], [8, 9, 10, 11]]), torch.tensor([[0, 1, 1, 1], [1, 1, 1, 1]])
    pair = [ensemble.answer.yes_id, ensemble.answer.no_id]
    with torch.no_grad():
        combined = answer_logits(ensemble, ids, mask)[:, pair].softmax(-1)
        shards = [answer_logits(shard, ids, mask)[:, pair].softmax(-1) for shard in ensemble.shards]
    torch.testing.assert_close(combined, torch.stack(shards).mean(0))

    results = evaluate(recipe)
    assert 0.0 <= results["test"]["auc"] <= 1.0 and results["test"]["samples"] > 0

    spec = json.load(open(f"{model_dir}/sisa.json"))
    users = tmp_path / "forget.txt"
    users.write_text(spec["shards"][0]["users"][0] + "\n")
    manifest = run_unlearning(unlearn_recipe(recipe, tmp_path / "out", "method=sisa", f"forget.users={users}",
                                             "data.synthetic.num_users=16"))  # the data the ensemble was trained on
    assert manifest["steps"]["shards_retrained"] == 1
    unlearned = evaluate(replace(recipe, output_dir=str(tmp_path / "eval"),
                                 eval=replace(recipe.eval, model_dir=str(tmp_path / "out"), splits=["test"])))
    assert unlearned["test"]["samples"] == results["test"]["samples"]


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
