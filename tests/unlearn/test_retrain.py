from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from llmrec.errors import LlmrecError
from llmrec.llm.backbone import load_recommender
from llmrec.llm.train import train
from llmrec.unlearn.run import directory_hash, run_unlearning
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
    assert load_recommender(tmp_path / "out") is not None


def test_retrain_needs_the_training_recipe(trained, tmp_path):
    with pytest.raises(LlmrecError, match="no training recipe to retrain with"):
        run_unlearning(unlearn_recipe(trained, tmp_path / "out", "method=retrain",
                                      f"retrain.recipe={tmp_path / 'missing.yaml'}"))
    assert not (tmp_path / "out").exists()
