"""The embedded default data is worth learning: the demo recipe must reach test AUC >= 0.70."""

from llmrec.config import load_recipe
from llmrec.eval.evaluate import evaluate
from llmrec.llm.train import train
from tests.conftest import REPO


def test_default_recipe_reaches_test_auc_070(tmp_path):
    recipe = load_recipe(
        REPO / "recipes/train/default.yaml",
        [f"output_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}", "eval.splits=[test]"],
    )
    train(recipe)
    auc = evaluate(recipe)["test"]["auc"]
    assert auc >= 0.70, f"test AUC {auc:.4f} on the embedded default data"
