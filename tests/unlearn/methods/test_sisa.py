"""SISA (`llmrec.unlearn.methods.sisa`): only the shards that held a forgotten user are retrained, on an LLM
ensemble and on an MF one. The ensembles themselves: tests/ensemble/."""

import json
import os
import shutil
from dataclasses import replace

import pytest
import torch

from llmrec.classic.store import load_classic
from llmrec.classic.unlearn import run_classic_unlearning
from llmrec.config import load_recipe
from llmrec.data.samples import prepare_splits
from llmrec.ensemble.llm import train
from llmrec.errors import LlmrecError
from llmrec.recommender import load_llm_module, load_recommender
from llmrec.store import model_hash, read_model_card
from llmrec.unlearn.run import run_unlearning
from tests.classic.test_unlearn import unlearn_recipe as classic_unlearn_recipe
from tests.conftest import SMALL_OVERRIDES
from tests.data.holdout_checks import assert_no_holdout_sample, record_training_splits
from tests.ensemble.test_classic import forget_within_one_shard, state
from tests.unlearn.conftest import unlearn_recipe


@pytest.fixture
def ensemble(sisa_ensemble):
    return sisa_ensemble[0]


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


def test_classic_sisa_retrains_only_the_shard_that_held_the_forgotten_users(tmp_path):
    original, model_dir = forget_within_one_shard(tmp_path)
    splits = prepare_splits(original.data, original.forget)
    labels, probs = load_recommender(model_dir).score(["test"], splits)["test"]
    assert len(probs) == len(labels) and all(0 < p < 1 for p in probs)

    manifest = run_classic_unlearning(classic_unlearn_recipe(original, tmp_path / "sisa", "method=sisa",
                                                             f"forget.users={tmp_path / 'forget.txt'}"))
    assert manifest["steps"]["shards_retrained"] == 1 and manifest["steps"]["retrained"] == [1]
    before, after = load_classic(model_dir)[0], load_classic(tmp_path / "sisa")[0]
    for shard in (0, 2):
        assert all(torch.equal(a, b) for a, b in zip(state(before, f"shards.{shard}.").values(),
                                                      state(after, f"shards.{shard}.").values()))
    assert not torch.equal(before.shards[1].user.weight, after.shards[1].user.weight)
