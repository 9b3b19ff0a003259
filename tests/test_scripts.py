import runpy

from tests.conftest import REPO, SMALL_OVERRIDES


def test_logreg_baseline_scores_valid_and_test(capsys):
    baseline = runpy.run_path(str(REPO / "scripts/logreg_baseline.py"))
    results = baseline["main"]([*SMALL_OVERRIDES[:3]])
    assert list(results) == ["valid", "test"]
    assert results["test"]["auc"] > 0.6  # history stars and item like-rate carry the synthetic signal
    assert capsys.readouterr().out.startswith("| split | auc |")
