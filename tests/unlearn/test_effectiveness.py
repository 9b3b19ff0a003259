"""E2URec forgets, measured end to end on the embedded default data (slow: two ten-epoch trainings).

The original is trained long enough to remember its forget set better than a retrain without it
does; E2URec, stopped by the parity rule (llmrec.unlearn.stopping: the probe half of the forget users
against the holdout users), must then close that forget-AUC gap on the *other* half of the forget users,
the report half the rule never looked at (0.5 to 1.5 of it: overshooting is as wrong as not moving),
for each of three unlearning seeds, while test AUC stays within 0.02 of the original's.
"""

import json
from pathlib import Path

import pytest

from llmrec.config import load_recipe
from llmrec.data.samples import prepare_splits
from llmrec.eval.score import score_model
from llmrec.eval.forgetting import forget_gap_closure
from llmrec.eval.metrics import utility_metrics
from llmrec.llm.accel import make_accelerator
from llmrec.llm.train import train
from llmrec.unlearn.run import UnlearnRecipe, run_unlearning
from tests.conftest import REPO


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    root = tmp_path_factory.mktemp("effectiveness")
    common = [f"data.cache_dir={root / 'cache'}", "train.epochs=10", "train.checkpoint_every=0"]
    original = load_recipe(REPO / "recipes/train/default.yaml", [f"output_dir={root / 'original'}", *common])
    reference = load_recipe(REPO / "recipes/train/default.yaml",
                            [f"output_dir={root / 'reference'}", "train.train_on=retained", *common])
    train(original)
    train(reference)
    return root, original


def auc(model_dir: Path, split: str, splits, accelerator) -> float:
    labels, probs = score_model(model_dir, [split], splits, 64, accelerator)[split]
    return utility_metrics(labels, probs)["auc"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_e2urec_stopped_at_parity_closes_the_forget_gap_on_the_report_half(originals, tmp_path, seed):
    root, original = originals
    out = tmp_path / "unlearned"
    run_unlearning(load_recipe(REPO / "recipes/unlearn/e2urec.yaml", [
        f"model={root / 'original/model'}", f"output_dir={out}", f"data.cache_dir={root / 'cache'}",
        f"seed={seed}", f"stop.seed={seed}", "stop.rule=parity"], cls=UnlearnRecipe))
    stopping = json.loads((out / "unlearning_manifest.json").read_text())["stopping"]
    assert stopping["rule"] == "parity" and stopping["checks"]
    report = set(stopping["report_user_ids"])
    assert report and not report & set(stopping["probe_user_ids"])

    splits = prepare_splits(original.data, original.forget)
    splits["report"] = splits["forget"].filter(lambda row: row["user_id"] in report)
    accelerator = make_accelerator("no")
    before, after, retrain = (auc(d, "report", splits, accelerator)
                              for d in (root / "original/model", out, root / "reference/model"))
    assert before - retrain > 0.015  # something to forget on the report half
    assert 0.5 <= forget_gap_closure(before, after, retrain) <= 1.5, (before, after, retrain, stopping["checks"])
    test_before, test_after = (auc(d, "test", splits, accelerator) for d in (root / "original/model", out))
    assert abs(test_after - test_before) <= 0.02
