"""Classic rows in the benchmark: each backbone a family judged against its own retrain."""

import pytest

from llmrec.bench.run import run_benchmark
from llmrec.errors import ConfigError
from tests.bench.test_run import bench_recipe

CLASSIC = ["classic.model.dim=16", "classic.train.epochs=10", "classic.train.batch_size=128", "classic.als_sweeps=5",
           "classic.shards=2", "classic.train.ensemble.aggregator_epochs=2", "classic.neggrad.epochs=10"]


def test_classic_families_sit_beside_the_llm_rows(tmp_path, capsys):
    recipe = bench_recipe(tmp_path, "methods=[finetune]", "classic.backbones=[mf,lightgcn]",
                          "classic.methods=[ifru,alteraser,unlearn_als,sisa,receraser,neggrad]", *CLASSIC)
    records = run_benchmark(recipe)
    references = ["original", "retrain", "retrain (seed 2)"]
    ifru = ["ifru", "ifru (retained_objective)"]  # a row per classic.ifru_gradients value
    mf = [*references, "original (sisa)", "original (receraser)", *ifru, "alteraser", "sisa", "receraser", "neggrad"]
    lightgcn = [*references, "original (sisa)", "original (receraser)", *ifru, "sisa", "receraser", "neggrad"]
    assert [r["method"] for r in records] == [
        *references, "finetune", *[f"mf/{m}" for m in mf], *[f"lightgcn/{m}" for m in lightgcn],
        *[f"mf-als/{m}" for m in [*references, "unlearn_als"]]]
    by_name = {r["method"]: r for r in records}
    for family in ("mf", "lightgcn", "mf-als"):
        assert by_name[f"{family}/retrain"]["forgetting"]["js_divergence"] == 0.0
        assert by_name[f"{family}/retrain"]["wall_vs_retrain"] == 1.0
        assert by_name[f"{family}/original"]["forgetting"]["forget_gap_closure_auc"] == 0.0
    assert by_name["retrain"]["forgetting"]["js_divergence"] == 0.0  # the LLM keeps its own reference
    assert by_name["mf/sisa"]["forgetting"]["original_forget_auc"] == by_name["mf/original (sisa)"]["forget"]["auc"]
    assert by_name["mf/ifru"]["unlearning_steps"]["affected_users"] > 0
    for family in ("mf", "lightgcn"):
        removed, retained = (by_name[f"{family}/{row}"] for row in ifru)
        assert [r["unlearning_steps"]["gradient"] for r in (removed, retained)] == ["removed", "retained_objective"]
        assert removed["unlearning_steps"]["gradient_norm"] != retained["unlearning_steps"]["gradient_norm"]
        assert removed["forget"]["auc"] != retained["forget"]["auc"]
        assert retained["forgetting"]["original_forget_auc"] == by_name[f"{family}/original"]["forget"]["auc"]
    sweeps = by_name["mf-als/unlearn_als"]["unlearning_steps"]["history"]  # measured against the family's retrain
    assert all(0 <= sweep["forget_gap"]["mean"] <= sweep["forget_gap"]["max"] <= 1 for sweep in sweeps)
    for family in ("mf", "lightgcn", "mf-als"):  # compute time is kept beside wall time, the retrain's ratio is 1
        assert 0 < by_name[f"{family}/retrain"]["compute_seconds"] <= by_name[f"{family}/retrain"]["wall_seconds"]
        assert by_name[f"{family}/retrain"]["compute_vs_retrain"] == 1.0
    table = (tmp_path / "bench" / "results.md").read_text()
    assert "Classic recommender: mf (judged against mf/retrain)" in table and "| lightgcn/ifru |" in table
    assert "compute × retrain" in table

    capsys.readouterr()
    run_benchmark(recipe)
    assert capsys.readouterr().out.count("reusing") == 3 + 5 + 5 + 3  # LLM, mf, lightgcn, mf-als models


def test_classic_settings_are_checked_before_training(tmp_path):
    with pytest.raises(ConfigError, match="unknown backbone 'gcn'"):
        run_benchmark(bench_recipe(tmp_path, "classic.backbones=[gcn]"))
    with pytest.raises(ConfigError, match="unknown unlearning method 'ifr'"):
        run_benchmark(bench_recipe(tmp_path, "classic.backbones=[mf]", "classic.methods=[ifr]"))
    with pytest.raises(ConfigError, match="classic.ifru_gradients: unknown gradient 'retained'"):
        run_benchmark(bench_recipe(tmp_path, "classic.backbones=[mf]", "classic.ifru_gradients=[removed,retained]"))
    with pytest.raises(ConfigError, match="classic.ifru.gradient: the benchmark runs each of classic.ifru_gradients"):
        run_benchmark(bench_recipe(tmp_path, "classic.backbones=[mf]", "classic.ifru.gradient=retained_objective"))
    assert not (tmp_path / "bench").exists()
