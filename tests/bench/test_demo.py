"""The shipped demo suite end to end (slow: about 14 minutes on 2 CPU cores; tests/bench/test_run.py is its smoke)."""

import pytest

from llmrec.bench.run import BenchRecipe, run_benchmark
from llmrec.config import load_recipe
from tests.conftest import REPO


@pytest.mark.slow
def test_the_demo_suite_runs_every_method(tmp_path):
    recipe = load_recipe(REPO / "recipes/bench/demo.yaml",
                         [f"output_dir={tmp_path / 'bench'}", f"data.cache_dir={tmp_path / 'cache'}"], cls=BenchRecipe)
    records = run_benchmark(recipe)
    assert [r["method"] for r in records] == ["original", "retrain", "retrain (seed 2)", "original (sisa)",
                                              *[m for m in recipe.methods if m != "retrain"]]
    by_name = {r["method"]: r for r in records}
    assert by_name["original"]["forget"]["auc"] > by_name["retrain"]["forget"]["auc"]  # something to forget
    assert all(r["wall_vs_retrain"] < 1 for r in records if r["method"] in ("finetune", "neggrad", "bad_t",
                                                                               "bad_teacher", "e2urec"))
    for name in ("results.json", "results.md", "results.png"):
        assert (tmp_path / "bench" / name).stat().st_size > 0
