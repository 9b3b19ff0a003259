import json

import pytest

from llmrec.errors import LlmrecError
from llmrec.eval.evaluate import evaluate
from llmrec.llm.train import train


def test_evaluate_reports_every_split(recipe_factory):
    recipe = recipe_factory("train.max_steps=4")
    train(recipe)
    results = evaluate(recipe)
    assert list(results) == ["test", "valid", "forget"]
    saved = json.load(open(f"{recipe.output_dir}/evaluation.json"))
    assert saved["metrics"] == results
    for metrics in results.values():
        assert 0 <= metrics["auc"] <= 1 and 0 <= metrics["accuracy"] <= 1 and metrics["log_loss"] > 0
    assert results["valid"]["auc"] == pytest.approx(
        json.load(open(f"{recipe.output_dir}/train_metrics.json"))["epochs"][-1]["valid"]["auc"], abs=1e-6
    )
    assert open(f"{recipe.output_dir}/evaluation.md").read().startswith("| split | auc |")


def test_evaluate_needs_a_trained_model_and_known_splits(recipe_factory, tmp_path):
    with pytest.raises(LlmrecError, match="not an llmrec model directory"):
        evaluate(recipe_factory(f"eval.model_dir={tmp_path}"))
