"""E2URec forgets, measured end to end on the embedded default data (slow: two ten-epoch trainings).

The original is trained long enough to remember its forget set better than a retrain without it
does; E2URec must then close that forget-AUC gap (0.5 to 1.5 of it: overshooting is as wrong as not
moving) while test AUC stays within 0.02 of the original's.
"""

from dataclasses import replace

import pytest

from llmrec.config import load_recipe
from llmrec.eval.evaluate import evaluate
from llmrec.llm.train import train
from llmrec.unlearn.run import UnlearnRecipe, run_unlearning
from tests.conftest import REPO


@pytest.mark.slow
def test_e2urec_closes_the_forget_gap_on_the_default_data(tmp_path):
    common = [f"data.cache_dir={tmp_path / 'cache'}", "train.epochs=10", "train.checkpoint_every=0"]
    original = load_recipe(REPO / "recipes/train/default.yaml", [f"output_dir={tmp_path / 'original'}", *common])
    reference = load_recipe(REPO / "recipes/train/default.yaml",
                            [f"output_dir={tmp_path / 'reference'}", "train.train_on=retained", *common])
    train(original)
    train(reference)
    run_unlearning(load_recipe(REPO / "recipes/unlearn/e2urec.yaml", [
        f"model={tmp_path / 'original/model'}", f"output_dir={tmp_path / 'unlearned'}",
        f"data.cache_dir={tmp_path / 'cache'}"], cls=UnlearnRecipe))

    before = evaluate(replace(original, eval=replace(original.eval, splits=["test"])))
    after = evaluate(replace(original, output_dir=str(tmp_path / "eval"), eval=replace(
        original.eval, splits=["test"], model_dir=str(tmp_path / "unlearned"),
        reference_dir=str(tmp_path / "reference/model"))))
    forgetting = after["forgetting"]
    assert forgetting["original_forget_auc"] - forgetting["reference_forget_auc"] > 0.015  # something to forget
    assert 0.5 <= forgetting["forget_gap_closure_auc"] <= 1.5
    assert abs(after["test"]["auc"] - before["test"]["auc"]) <= 0.02
