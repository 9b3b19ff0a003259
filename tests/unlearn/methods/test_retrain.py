from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from llmrec.data.samples import prepare_splits
from llmrec.errors import LlmrecError
from llmrec.recommender import load_recommender
from llmrec.llm.train import train
from llmrec.store import directory_hash
from llmrec.unlearn.run import run_unlearning
from tests.data.holdout_checks import assert_no_holdout_sample, record_training_splits, sample_ids
from tests.unlearn.conftest import unlearn_recipe


def test_retrain_is_the_original_recipe_on_the_retained_data(trained, tmp_path):
    before = directory_hash(f"{trained.output_dir}/model")
    manifest = run_unlearning(unlearn_recipe(trained, tmp_path / "out", "method=retrain"))
    assert directory_hash(f"{trained.output_dir}/model") == before
    assert manifest["trainable_percent"] == 100.0 and manifest["steps"]["epochs"] == trained.train.epochs
    assert not (tmp_path / "out/training/checkpoints").exists()

    reference = replace(trained, output_dir=str(tmp_path / "reference"),
                        train=replace(trained.train, train_on="retained"))
    train(reference)
    ours, theirs = load_file(tmp_path / "out/model.safetensors"), load_file(tmp_path / "reference/model/model.safetensors")
    assert ours.keys() == theirs.keys()
    for name in ours:  # the same samples, order and seeds: the same model as `llmrec train train.train_on=retained`
        torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=0)
    assert load_recommender(tmp_path / "out").family == "llm"


def test_retrain_needs_the_training_recipe(trained, tmp_path):
    with pytest.raises(LlmrecError, match="no training recipe to retrain with"):
        run_unlearning(unlearn_recipe(trained, tmp_path / "out", "method=retrain",
                                      f"retrain.recipe={tmp_path / 'missing.yaml'}"))
    assert not (tmp_path / "out").exists()


def test_retrain_after_a_killed_run_with_another_recipe_uses_the_originals_recipe(trained, tmp_path, monkeypatch):
    """Issue 18: a killed `llmrec train` rewrote config.yaml, and method=retrain then trained with the killed run's
    recipe (4 epochs at lr 0.02, not the original's). The recipe now travels in the model card."""
    import shutil

    import llmrec.llm.train as train_module
    from llmrec.config import parse_yaml
    from llmrec.store import read_model_card

    run = shutil.copytree(trained.output_dir, tmp_path / "run")
    config = (run / "config.yaml").read_bytes()

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "load_model", killed)
    other = replace(trained, output_dir=str(run),
                    train=replace(trained.train, epochs=4, learning_rate=0.02, resume=False))
    with pytest.raises(KeyboardInterrupt):
        train(other)
    monkeypatch.undo()
    assert (run / "config.yaml").read_bytes() == config  # still the recipe of the model/ beside it
    assert parse_yaml(config.decode()) == read_model_card(run / "model")["recipe"]

    manifest = run_unlearning(unlearn_recipe(trained, tmp_path / "out", f"model={run / 'model'}", "method=retrain"))
    assert manifest["steps"]["epochs"] == trained.train.epochs == 8
    retrained = read_model_card(tmp_path / "out")["recipe"]["train"]
    assert (retrained["epochs"], retrained["learning_rate"]) == (8, trained.train.learning_rate)


def test_the_training_recipe_comes_from_the_card_else_from_config_yaml_with_a_note(trained, tmp_path, capsys):
    import json
    import shutil

    from llmrec.config import to_yaml
    from llmrec.llm.train import training_recipe

    model = shutil.copytree(f"{trained.output_dir}/model", tmp_path / "run" / "model")
    (tmp_path / "run" / "config.yaml").write_text(to_yaml(replace(trained, train=replace(trained.train, epochs=4))))
    assert training_recipe(model).train.epochs == 8  # the card's, not the newer config.yaml's
    assert training_recipe(model, str(tmp_path / "run" / "config.yaml")).train.epochs == 4  # retrain.recipe wins

    card = json.loads((model / "llmrec_model.json").read_text())
    del card["recipe"]  # a model trained before cards recorded their recipe
    (model / "llmrec_model.json").write_text(json.dumps(card))
    capsys.readouterr()
    assert training_recipe(model).train.epochs == 4
    out = capsys.readouterr().out
    assert "records no training recipe" in out and "config.yaml" in out
    (tmp_path / "run" / "config.yaml").unlink()
    with pytest.raises(LlmrecError, match="no training recipe to retrain with"):
        training_recipe(model)


def test_no_holdout_sample_reaches_a_retrain_and_a_card_from_before_the_holdout_held_none_out(tmp_path,
                                                                                                monkeypatch):
    """Issue 19: the retrain trains on the retained users only, never on the data.holdout users (the default 5%).
    A card recipe recorded before data.holdout existed trained on every train user: read with today's default, its
    retrain would refuse the retained users the unlearning run names."""
    import json
    import shutil

    from llmrec.store import MODEL_CARD
    from llmrec.llm.train import training_recipe
    from tests.conftest import small_recipe

    original = small_recipe(tmp_path, "train.max_steps=3")
    train(original)
    trained_on = record_training_splits(monkeypatch, "llmrec.llm.train")
    run_unlearning(unlearn_recipe(original, tmp_path / "out", "method=retrain"))
    splits = prepare_splits(original.data, original.forget)
    assert len(trained_on) == 1 and sample_ids(trained_on[0]) == sample_ids(splits["retained"])
    assert_no_holdout_sample(trained_on, splits)

    assert training_recipe(f"{original.output_dir}/model").data.holdout == original.data.holdout == 0.05
    old = tmp_path / "old"
    shutil.copytree(f"{original.output_dir}/model", old)
    card = json.loads((old / MODEL_CARD).read_text())
    del card["recipe"]["data"]["holdout"], card["recipe"]["data"]["holdout_seed"]
    (old / MODEL_CARD).write_text(json.dumps(card))
    assert training_recipe(old).data.holdout == 0
