import json
import math

import pytest

from llmrec.bench.speed import SpeedRecipe, pairs_within, run_speed
from llmrec.bench.speed_report import RUNS
from llmrec.bench.steps import VARIANTS
from llmrec.cli import main
from llmrec.config import load_recipe
from llmrec.llm.accel import resolve_mixed_precision
from tests.conftest import SMALL_OVERRIDES

QUICK = ["train.max_steps=10", "e2urec.batch_size=8", "e2urec.augment.epochs=0.3", "e2urec.warmup_epochs=0.2",
         "e2urec.joint_epochs=0.2", "e2urec.lora.r=4", "neggrad.epochs=0.3", "neggrad.batch_size=8",
         "mf.train.epochs=2", "step.steps=1", "fractions=[0.1,0.3]", "repeats=2", "train.mixed_precision=auto",
         "e2urec.length_buckets=true"]


def speed_recipe(root, *overrides) -> SpeedRecipe:
    return load_recipe(None, [f"output_dir={root / 'speed'}", f"data.cache_dir={root / 'cache'}", *SMALL_OVERRIDES,
                              *QUICK, *overrides], cls=SpeedRecipe)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    recipe = speed_recipe(tmp_path_factory.mktemp("speed"))
    return recipe, run_speed(recipe)


def test_every_contender_is_timed_once_per_repeat(finished):
    recipe, payload = finished
    assert [row["variant"] for row in payload["steps"]] == [v.name for v in VARIANTS]
    for row in payload["steps"]:
        assert len(row["seconds"]) == recipe.repeats and all(s > 0 for s in row["seconds"])
        stats = row["samples_per_second"]
        assert stats["min"] <= stats["median"] <= stats["max"]
    assert payload["steps"][0]["speedup"] == 1.0
    # the llmrec row is what mixed_precision=auto resolves to on this CPU: bf16 autocast where it runs fast
    # (AVX512-BF16 / AMX), else length-bucketed batches in fp32 (was: bf16 expected on every CPU)
    ours = VARIANTS[-1] if resolve_mixed_precision("auto") == "bf16" else VARIANTS[-2]
    assert [row["variant"] for row in payload["steps"] if row["llmrec"]] == [ours.name]
    assert set(payload["whole"]) == {"0.1", "0.3"}
    for runs in payload["whole"].values():
        assert set(runs) == set(RUNS)
        assert all(len(run["seconds"]) == recipe.repeats and min(run["seconds"]) > 0 for run in runs.values())
    assert [row["speedup"] for row in payload["scoring"]][0] == 1.0


def test_the_two_scoring_loops_agree_on_the_answers(finished):
    _, payload = finished
    plain, ours = payload["scoring"]
    assert ours["prompts"] == plain["prompts"] > 0
    assert ours["max_abs_diff_vs_plain"] < 0.05  # bf16 autocast against fp32: close, not equal
    # bf16 rounding may swap only pairs that sit within 2·ΔP of each other; a misaligned or wrong score moves AUC
    # further. (A 10-step model's scores are nearly tied, so rounding alone moved its AUC by 0.024.)
    assert abs(ours["auc"] - plain["auc"]) <= ours["auc_change_rounding_allows"]


def test_pairs_within_counts_the_positive_negative_pairs_rounding_can_swap():
    labels, probs = [1, 1, 0, 0, 0], [0.50, 0.90, 0.49, 0.52, 0.10]
    # pairs (pos, neg): (0.50: 0.49, 0.52 within 0.03; 0.10 not), (0.90: none) -> 2 of 6
    assert pairs_within(labels, probs, 0.03) == pytest.approx(2 / 6)
    assert pairs_within(labels, probs, 0.0) == 0.0
    assert pairs_within(labels, probs, 1.0) == 1.0
    assert math.isnan(pairs_within([1, 1], [0.2, 0.3], 0.1))


def test_quality_is_checked_against_each_fractions_own_retrain(finished):
    _, payload = finished
    for check in payload["quality"].values():
        assert check["retrain"]["js_divergence"] == 0.0
        assert check["original"]["closure"] == 0.0 or math.isnan(check["original"]["closure"])
        assert check["forget_samples"] > 0 and set(check["targets"]) == {
            "test_auc_within_0.01_of_retrain", "closure_at_least_0.5", "jsd_at_most_original"}
    assert payload["quality"]["0.3"]["forget_users"] > payload["quality"]["0.1"]["forget_users"]


def test_outputs_for_people_and_programs(finished):
    recipe, payload = finished
    out = recipe.output_dir
    assert json.load(open(f"{out}/speed.json"))["recipe"]["repeats"] == recipe.repeats
    table = open(f"{out}/speed.md").read()
    for heading in ("## 1. One E2URec joint step", "## 2. Whole unlearning", "## 3. Scoring", "## Profile"):
        assert heading in table
    assert table.count("| + ") == len(VARIANTS) - 1
    assert open(f"{out}/speed.png", "rb").read(4) == b"\x89PNG"
    assert "self cpu" in open(f"{out}/profile.txt").read().lower()
    assert load_recipe(f"{out}/config.yaml", [], cls=SpeedRecipe) == recipe


@pytest.mark.parametrize("override, message", [
    ("repeats=0", "repeats must be at least 1"),
    ("fractions=[1.5]", "fractions: 1.5 is not between 0 and 1"),
    ("fractions=[]", "fractions: list at least one"),
    ("score_split=nope", "score_split: unknown split 'nope'"),
])
def test_bad_settings_stop_before_anything_is_written(tmp_path, capsys, override, message):
    args = [f"output_dir={tmp_path / 'speed'}", f"data.cache_dir={tmp_path / 'cache'}", *SMALL_OVERRIDES, override]
    assert main(["bench-speed", *args]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "speed").exists()
