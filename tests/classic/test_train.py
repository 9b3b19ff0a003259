import json
from pathlib import Path

import pytest
import torch

from llmrec.recommender import load_recommender
from llmrec.classic.store import load_classic, predict
from llmrec.classic.train import train_classic
from llmrec.cli import main
from llmrec.data.samples import prepare_splits
from tests.data.holdout_checks import assert_no_holdout_sample, record_training_splits, sample_ids


@pytest.mark.parametrize("overrides", [[], ["model.family=lightgcn"], ["train.optimizer=als", "train.als.reg=5"]])
def test_training_learns_and_the_saved_model_scores_the_same(classic_factory, overrides):
    recipe = classic_factory(*overrides)
    metrics = train_classic(recipe)
    assert metrics["valid_auc"] > 0.65
    model, index, card = load_classic(f"{recipe.output_dir}/model")
    assert card["classic"]["kind"] == recipe.model.family
    splits = prepare_splits(recipe.data, recipe.forget)
    recommender = load_recommender(f"{recipe.output_dir}/model")
    assert recommender.family == recipe.model.family
    assert recommender.parameter_counts() == (metrics["parameters"],) * 2  # as trained; every row trains
    labels, probs = recommender.score(["test"], splits)["test"]
    assert len(probs) == len(splits["test"]) and all(0 < p < 1 for p in probs)
    test = index.encode(splits["test"])
    assert torch.allclose(torch.tensor(probs), predict(model, test.users, test.items))


def test_holdout_users_can_be_scored_but_no_mf_or_receraser_shard_trains_on_them(classic_factory, monkeypatch):
    """Issue 19: the index knows the data.holdout users and items (the audit scores them), training never sees
    them. With no L2 term their MF rows keep their initial values exactly (Adam moves a row only by its gradient);
    every other user's row moves."""
    from llmrec.classic.data import Index
    from llmrec.classic.train import new_model

    recipe = classic_factory("train.epochs=2", "train.weight_decay=0")
    trained_on = record_training_splits(monkeypatch, "llmrec.classic.train")
    train_classic(recipe)
    splits = prepare_splits(recipe.data, recipe.forget)
    assert len(trained_on) == 1 and sample_ids(trained_on[0]) == sample_ids(splits["train"])
    assert_no_holdout_sample(trained_on, splits)
    model, index, _ = load_classic(f"{recipe.output_dir}/model")
    assert index == Index.from_splits(splits) and len(load_recommender(f"{recipe.output_dir}/model").score(
        ["holdout"], splits)["holdout"][1]) == len(splits["holdout"])
    torch.manual_seed(recipe.train.seed)  # as llmrec train draws the initial tables
    initial = new_model(recipe.model, index, index.encode(splits["train"]))
    held = index.user_rows(splits["holdout"]["user_id"])
    trained = index.user_rows(splits["train"]["user_id"])
    for table in ("user", "user_bias"):
        after, before = getattr(model, table).weight.detach(), getattr(initial, table).weight.detach()
        assert torch.equal(after[held], before[held]) and not (after[trained] == before[trained]).all(-1).any()

    shards = classic_factory("train.epochs=1", "train.ensemble.shards=2", "output_dir=" + recipe.output_dir + "-rec")
    train_classic(shards)
    assert len(trained_on) == 2 and sample_ids(trained_on[1]) == sample_ids(splits["train"])
    _, _, card = load_classic(f"{shards.output_dir}/model")
    partition = torch.tensor(card["partition"])
    assert (partition[held] == -1).all() and (partition[trained] >= 0).all()  # in no RecEraser shard


def test_evaluate_scores_a_classic_model_like_an_llm(classic_factory, tmp_path):
    recipe = classic_factory()
    train_classic(recipe)
    data = [f"data.cache_dir={recipe.data.cache_dir}"] + [
        f"data.synthetic.{k}={v}" for k, v in vars(recipe.data.synthetic).items()]
    code = main(["evaluate", *data, f"eval.model_dir={recipe.output_dir}/model", f"output_dir={tmp_path / 'eval'}"])
    assert code == 0
    metrics = json.loads((tmp_path / "eval" / "evaluation.json").read_text())["metrics"]
    saved = json.loads((tmp_path / "classic" / "train_metrics.json").read_text())
    assert metrics["test"]["auc"] == pytest.approx(saved["test_auc"])


def test_als_on_lightgcn_is_refused_with_one_line(classic_factory, capsys):
    recipe = classic_factory()
    code = main(["train", "model.family=lightgcn", "train.optimizer=als", f"output_dir={recipe.output_dir}",
                 f"data.cache_dir={recipe.data.cache_dir}"])
    assert code == 2 and "optimizer=als trains one MF" in capsys.readouterr().err


# The model card: what a classic model was trained on travels with it and is checked before it is used.

def classic_unlearn(capsys, recipe, out, *overrides, data=None):
    data = data or [f"data.synthetic.{k}={v}" for k, v in vars(recipe.data.synthetic).items()]
    capsys.readouterr()  # what earlier steps printed
    code = main(["unlearn", *data, f"data.cache_dir={recipe.data.cache_dir}",
                 f"model={recipe.output_dir}/model", f"output_dir={out}", "method=finetune", *overrides])
    return code, *capsys.readouterr()


def test_the_card_records_the_data_and_classic_unlearn_refuses_other_data(classic_factory, tmp_path, capsys):
    """The reproducer: a model trained on 60 synthetic users 'unlearned' 80 users of a 500-user data set."""
    from llmrec.data.samples import data_fingerprint

    recipe = classic_factory()
    train_classic(recipe)
    recorded = json.loads((tmp_path / "classic" / "model" / "llmrec_model.json").read_text())["data"]
    assert recorded == data_fingerprint(recipe.data)
    other = ["data.synthetic.num_users=500", "data.synthetic.num_items=50", "data.synthetic.ratings_per_user=20"]
    code, _, err = classic_unlearn(capsys, recipe, tmp_path / "forgot", data=other)
    assert code == 2 and len(err.strip().splitlines()) == 1 and not (tmp_path / "forgot").exists()
    assert recorded["sha256"] in err and "data.synthetic.num_users 60 there, 500 here" in err
    assert "allow_other_data=true" in err

    reseeded = [f"data.synthetic.{k}={v}" for k, v in vars(recipe.data.synthetic).items() if k != "seed"]
    code, out, err = classic_unlearn(capsys, recipe, tmp_path / "forgot", "allow_other_data=true",
                                     data=[*reseeded, "data.synthetic.seed=1"])  # the ids the model knows
    assert code == 0 and "allowed by allow_other_data=true" in out, err[-2000:]
    code, _, err = classic_unlearn(capsys, recipe, tmp_path / "same")
    assert code == 0, err[-2000:]
    assert json.loads((tmp_path / "same" / "llmrec_model.json").read_text())["data"] == recorded  # passed on


@pytest.mark.parametrize("damage, named", [
    (lambda m: (m / "model.safetensors").write_bytes((m / "model.safetensors").read_bytes()[:-7]),
     "model.safetensors: damaged weights file"),
    (lambda m: (m / "model.safetensors").unlink(), "model.safetensors: missing"),
    (lambda m: (m / "llmrec_model.json").write_text("{"), "llmrec_model.json: damaged model card"),
], ids=["truncated-weights", "missing-weights", "card-not-json"])
def test_a_damaged_classic_model_is_one_line_naming_the_file(classic_factory, tmp_path, capsys, damage, named):
    recipe = classic_factory()
    train_classic(recipe)
    damage(tmp_path / "classic" / "model")
    code, _, err = classic_unlearn(capsys, recipe, tmp_path / "forgot")
    assert code == 2 and len(err.strip().splitlines()) == 1 and named in err and not (tmp_path / "forgot").exists()
    data = [f"data.synthetic.{k}={v}" for k, v in vars(recipe.data.synthetic).items()]
    assert main(["evaluate", *data, f"data.cache_dir={recipe.data.cache_dir}",
                 f"eval.model_dir={recipe.output_dir}/model", f"output_dir={tmp_path / 'eval'}"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and named in err and not (tmp_path / "eval").exists()


def test_a_classic_original_retrained_in_place_is_not_taken_for_the_original(classic_factory, tmp_path, capsys):
    """Gap closure scores the original the unlearned model names: retrained in place (same shapes, other
    weights), it is refused by hash."""
    recipe = classic_factory()
    train_classic(recipe)
    assert classic_unlearn(capsys, recipe, tmp_path / "forgot")[0] == 0
    train_classic(classic_factory("train.seed=1"))  # the same directory, another model
    data = [f"data.synthetic.{k}={v}" for k, v in vars(recipe.data.synthetic).items()]
    capsys.readouterr()
    code = main(["evaluate", *data, f"data.cache_dir={recipe.data.cache_dir}",
                 f"eval.model_dir={tmp_path / 'forgot'}", f"eval.reference_dir={tmp_path / 'forgot'}",
                 f"output_dir={tmp_path / 'eval'}"])
    err = capsys.readouterr().err
    assert code == 2 and "is not the model it was made from" in err and not (tmp_path / "eval").exists()


def test_a_second_classic_train_into_a_held_output_dir_is_one_line(tmp_path, capsys):
    """Issue 18 item 8: two runs into one output_dir both ran and the last model/ silently won."""
    import subprocess
    import sys
    import time

    from llmrec.cli import main
    from tests.classic.conftest import CLASSIC_DATA

    out, ready, go = tmp_path / "classic", tmp_path / "ready", tmp_path / "go"
    holder = subprocess.Popen([sys.executable, "-c", """
import pathlib, sys, time
from llmrec.io import hold_lock
with hold_lock(pathlib.Path(sys.argv[1])):
    pathlib.Path(sys.argv[2]).touch()
    while not pathlib.Path(sys.argv[3]).exists():
        time.sleep(0.02)
""", str(out), str(ready), str(go)], cwd=Path(__file__).resolve().parents[2])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert holder.poll() is None and time.monotonic() < deadline
            time.sleep(0.02)
        code = main(["train", "model.family=mf", f"output_dir={out}", f"data.cache_dir={tmp_path / 'cache'}",
                     *CLASSIC_DATA, "model.dim=8", "train.epochs=1"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 2 and len(err) == 1 and f"in use by another llmrec run (pid {holder.pid})" in err[0], err
        assert not (out / "model").exists()
    finally:
        go.touch()
        holder.wait(60)
