import json

import pytest
import torch

from llmrec.classic.store import load_classic, predict, score_classic
from llmrec.classic.train import train_classic
from llmrec.cli import main
from llmrec.data.samples import prepare_splits


@pytest.mark.parametrize("overrides", [[], ["model.kind=lightgcn"], ["train.optimizer=als", "train.als.reg=5"]])
def test_training_learns_and_the_saved_model_scores_the_same(classic_factory, overrides):
    recipe = classic_factory(*overrides)
    metrics = train_classic(recipe)
    assert metrics["valid_auc"] > 0.65
    model, index, card = load_classic(f"{recipe.output_dir}/model")
    assert card["classic"]["kind"] == recipe.model.kind
    splits = prepare_splits(recipe.data, recipe.forget)
    labels, probs = score_classic(f"{recipe.output_dir}/model", ["test"], splits)["test"]
    assert len(probs) == len(splits["test"]) and all(0 < p < 1 for p in probs)
    test = index.encode(splits["test"])
    assert torch.allclose(torch.tensor(probs), predict(model, test.users, test.items))


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
    code = main(["classic-train", "model.kind=lightgcn", "train.optimizer=als", f"output_dir={recipe.output_dir}",
                 f"data.cache_dir={recipe.data.cache_dir}"])
    assert code == 2 and "optimizer=als trains one MF" in capsys.readouterr().err
