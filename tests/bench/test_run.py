import hashlib
import json
import statistics
from dataclasses import replace
from pathlib import Path

import pytest

from llmrec.bench.run import BenchRecipe, base_recipe, check_seed_list, run_benchmark
from llmrec.stages import ensure_trained, fingerprint, reuse_refusal
from llmrec.config import load_recipe
from llmrec.errors import ConfigError
from tests.conftest import SMALL_OVERRIDES
from tests.data.holdout_checks import assert_no_holdout_sample, record_training_splits, sample_ids

METHODS = ["sisa", "apa", "finetune", "neggrad", "bad_t", "bad_teacher", "e2urec"]
BASELINES = ["finetune", "neggrad", "bad_t", "bad_teacher"]
QUICK = [f"{m}.epochs=0.3" for m in BASELINES] + [f"{m}.batch_size=8" for m in [*BASELINES, "e2urec"]] + [
    "e2urec.augment.epochs=0.3", "e2urec.warmup_epochs=0.2", "e2urec.joint_epochs=0.2", "e2urec.lora.r=4",
    "sisa.shards=2", "apa.shards=2", "train.apa.base_epochs=1"]


def bench_recipe(tmp_path, *overrides) -> BenchRecipe:
    return load_recipe(None, [f"output_dir={tmp_path / 'bench'}", f"data.cache_dir={tmp_path / 'cache'}",
                              *SMALL_OVERRIDES, "train.max_steps=15", *QUICK,
                              f"methods=[retrain,{','.join(METHODS)}]", *overrides], cls=BenchRecipe)


BENCH_TRAINED_ON = []  # every split the `finished` benchmark trained an LLM on


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    recipe = bench_recipe(root)
    with pytest.MonkeyPatch.context() as patch:
        BENCH_TRAINED_ON[:] = []
        seen = record_training_splits(patch, "llmrec.llm.train")
        records = run_benchmark(recipe)
        BENCH_TRAINED_ON.extend(seen)
    return recipe, records


def test_no_model_of_the_benchmark_trains_on_a_holdout_user(finished):
    """Issue 19: original, both retrains and the SISA shards never see the data.holdout users' samples."""
    from llmrec.data.samples import prepare_splits

    recipe, _ = finished
    splits = prepare_splits(recipe.data, recipe.forget)
    assert len(BENCH_TRAINED_ON) > 3 + recipe.sisa.shards  # and SISA's retrain of the forget users' shards
    assert_no_holdout_sample(BENCH_TRAINED_ON, splits)
    assert sample_ids(BENCH_TRAINED_ON[0]) == sample_ids(splits["train"])
    assert sample_ids(BENCH_TRAINED_ON[1]) == sample_ids(BENCH_TRAINED_ON[2]) == sample_ids(splits["retained"])


def test_a_method_stopped_by_the_rule_is_graded_on_its_report_half(finished):
    """Issue 19 item 3: the stopping rule looked at its probe users, so the benchmark grades every forget-set column
    of that method on the other users (was: the whole forget set, the probe half included)."""
    from llmrec.data.samples import prepare_splits
    from llmrec.eval.score import score_model
    from llmrec.eval.evaluate import without_probe_users
    from llmrec.eval.metrics import utility_metrics
    from llmrec.llm.accel import make_accelerator

    recipe, records = finished
    e2urec = next(r for r in records if r["method"] == "e2urec")
    manifest = json.loads((Path(e2urec["model_dir"]) / "unlearning_manifest.json").read_text())
    probes = manifest["stopping"]["probe_user_ids"]
    splits = prepare_splits(recipe.data, recipe.forget)
    assert 0 < len(probes) < len(set(splits["forget"]["user_id"]))
    assert e2urec["graded_on"] == {"forget_users": len(set(splits["forget"]["user_id"])) - len(probes),
                                   "probe_users_excluded": len(probes)}
    scored = score_model(Path(e2urec["model_dir"]), ["forget"], splits, 32, make_accelerator("no"))
    report = without_probe_users(scored, splits["forget"]["user_id"], probes)["forget"]
    assert e2urec["forget"]["samples"] == len(report[0]) < len(splits["forget"])
    assert e2urec["forget"]["auc"] == pytest.approx(utility_metrics(*report)["auc"], abs=1e-9)
    assert "graded_on" not in next(r for r in records if r["method"] == "retrain")


def test_every_row_but_the_calibrating_retrain_is_audited(finished):
    """Issue 19 item 2: the audit inside the benchmark, calibrated by the second-seed retrain; members leave out a
    method's probe users."""
    recipe, records = finished
    audited = {r["method"]: r["audit"] for r in records if "audit" in r}
    assert set(audited) == {r["method"] for r in records} - {"retrain (seed 2)"}
    retrain = audited["retrain"]["models"]
    assert retrain["unlearned"] == retrain["retrain"]  # the retrain row is audited as itself
    e2urec = next(r for r in records if r["method"] == "e2urec")
    assert audited["e2urec"]["counts"]["forget_users"] == e2urec["graded_on"]["forget_users"]
    assert audited["original"]["counts"]["probe_users_excluded"] == 0
    assert all(a["verdict"] in ("forgotten", "not forgotten", "inconclusive") for a in audited.values())
    table = (Path(recipe.output_dir) / "results.md").read_text()
    assert "| audit AUC |" in table.splitlines()[0]
    assert "Verdicts: original:" in table and "calibration: per sample, by the benchmark's second-seed" in table


def test_the_model_fingerprint_covers_the_holdout_and_a_holdout_file_by_its_content(tmp_path):
    recipe = base_recipe(bench_recipe(tmp_path), tmp_path / "x")
    others = [replace(recipe, data=replace(recipe.data, **change)) for change in (
        {"holdout": 0}, {"holdout": 0.1}, {"holdout_seed": 1})]
    assert len({fingerprint(r) for r in [recipe, *others]}) == 4
    unused = replace(recipe, data=replace(recipe.data, holdout=0, holdout_seed=3))  # off: the seed draws nothing
    assert fingerprint(unused) == fingerprint(others[0])
    file = tmp_path / "holdout.txt"
    file.write_text("1\n")
    named = replace(recipe, data=replace(recipe.data, holdout=str(file)))
    before = fingerprint(named)
    file.write_text("2\n")  # the same name, other users: another model
    assert fingerprint(named) != before


def test_every_method_is_scored_against_the_same_retrain(finished):
    recipe, records = finished
    assert [r["method"] for r in records] == ["original", "retrain", "retrain (seed 2)", "original (sisa)",
                                              "original (apa)", *METHODS]
    by_name = {r["method"]: r for r in records}
    assert by_name["retrain"]["forgetting"]["js_divergence"] == 0.0
    assert by_name["retrain"]["forgetting"]["forget_gap_closure_auc"] == pytest.approx(1.0)
    assert by_name["original"]["forgetting"]["forget_gap_closure_auc"] == 0.0
    floor = by_name["retrain (seed 2)"]["forgetting"]["js_divergence"]
    assert floor > 0 and all(r["forgetting"]["floor_js_divergence"] == floor for r in records if "graded_on" not in r)
    # a method graded on its report half is compared with the two retrains' distance on that same half
    assert all(r["forgetting"]["floor_js_divergence"] > 0 for r in records if "graded_on" in r)
    assert by_name["retrain"]["wall_vs_retrain"] == 1.0
    assert by_name["e2urec"]["trainable_percent"] < 100 == by_name["neggrad"]["trainable_percent"]
    # SISA is judged from its own starting point, the shard ensemble
    assert by_name["original (sisa)"]["forgetting"]["forget_gap_closure_auc"] == 0.0
    assert by_name["sisa"]["forgetting"]["original_forget_auc"] == by_name["original (sisa)"]["forget"]["auc"]
    # and APA from its adapter ensemble, recording which adapters it retrained
    assert by_name["apa"]["forgetting"]["original_forget_auc"] == by_name["original (apa)"]["forget"]["auc"]
    assert by_name["apa"]["seed"] is None and 0 < by_name["apa"]["unlearning_steps"]["shards_retrained"] <= 2
    for record in records:
        assert record["wall_seconds"] > 0 and record["test"]["samples"] > 0


def test_results_are_written_for_people_and_programs(finished):
    recipe, records = finished
    out = recipe.output_dir
    saved = json.load(open(f"{out}/results.json"))
    assert [r["method"] for r in saved["records"]] == [r["method"] for r in records]
    assert saved["machine"]["torch"] and saved["recipe"]["methods"] == recipe.methods
    table = open(f"{out}/results.md").read()
    assert table.count("\n| ") == len(records) and "**" in table
    assert open(f"{out}/results.png", "rb").read(4) == b"\x89PNG"
    assert load_recipe(f"{out}/config.yaml", [], cls=BenchRecipe) == recipe


def test_a_second_run_reuses_matching_models_and_retrains_changed_ones(finished, capsys):
    recipe, _ = finished
    capsys.readouterr()
    run_benchmark(load_recipe(f"{recipe.output_dir}/config.yaml", ["methods=[neggrad]"], cls=BenchRecipe))
    log = capsys.readouterr().out
    assert log.count("reusing") == 3 and "] training" not in log  # the SISA ensemble is not needed for neggrad

    changed = load_recipe(f"{recipe.output_dir}/config.yaml", ["methods=[neggrad]", "train.learning_rate=0.005"],
                          cls=BenchRecipe)
    assert fingerprint(base_recipe(changed, "x")) != fingerprint(base_recipe(recipe, "x"))
    run_benchmark(changed)
    log = capsys.readouterr().out
    assert log.count("was trained with other settings") == 3 and "reusing" not in log


def test_the_original_fingerprint_ignores_the_forget_set_and_the_references_do_not(finished):
    recipe, _ = finished
    other = replace(recipe, forget=replace(recipe.forget, fraction=0.5))
    assert fingerprint(base_recipe(other, "x")) == fingerprint(base_recipe(recipe, "x"))  # one original for both
    assert fingerprint(base_recipe(other, "x", train_on="retained")) != fingerprint(
        base_recipe(recipe, "x", train_on="retained"))


def test_sequential_requests_report_after_each_request(tmp_path):
    recipe = bench_recipe(tmp_path, "methods=[retrain,e2urec]", "requests=2")
    records = run_benchmark(recipe)
    steps = next(r for r in records if r["method"] == "e2urec")["requests"]
    assert [s["request"] for s in steps] == [1, 2]
    total = next(r for r in records if r["method"] == "original")["forget"]["samples"]
    assert sum(s["counts"]["forget_samples"] for s in steps) == total  # the requests split the forget set
    # users erased by request 1 are not retained data for request 2
    assert steps[1]["counts"]["retained_samples"] == (steps[0]["counts"]["retained_samples"]
                                                      - steps[1]["counts"]["forget_samples"])
    final = next(r for r in records if r["method"] == "e2urec")
    # graded on the users no request's stopping rule probed (each request probes half of its own users)
    from llmrec.data.samples import prepare_splits

    users = set(prepare_splits(recipe.data, recipe.forget)["forget"]["user_id"])
    graded = final["graded_on"]
    assert graded["forget_users"] + graded["probe_users_excluded"] == len(users) and graded["probe_users_excluded"]
    assert 0 < final["forget"]["samples"] < total
    assert "After each request" in open(f"{recipe.output_dir}/results.md").read()


@pytest.mark.parametrize("override, message", [
    ("methods=[sisa2]", "unknown unlearning method 'sisa2'"),
    ("methods=[]", "list at least one method"),
    ("requests=0", "requests must be at least 1"),
    ("seeds=[]", r"seeds: list at least one seed \(default: \[0\]\)"),
    ("seeds=[0,1,0]", "seeds: seed 0 is listed twice"),
    ("seeds=[1,-2]", r"seeds\[1\] must be 0 or more, got -2"),
    ("original_seeds=[]", r"original_seeds: list at least one seed, or null for \[train.seed\]"),
    ("original_seeds=[42,7,7]", "original_seeds: seed 7 is listed twice"),
    ("original_seeds=[-1]", r"original_seeds\[0\] must be 0 or more"),
    ("data.holdout=0 audit.enabled=true", "audit.enabled=true needs holdout users"),  # was: after three trainings
])
def test_bad_benchmark_settings_fail_before_training(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        run_benchmark(bench_recipe(tmp_path, *override.split()))
    assert not (tmp_path / "bench").exists()


def test_a_stage_whose_files_were_damaged_is_trained_again_not_reused(finished, capsys):
    """The fingerprint says only that the settings match: a flipped byte in a stored model (which still loads) or
    an unreadable bench_record.json must not be reused (was: "reusing", and every row scored the damaged model)."""
    recipe, _ = finished
    out = Path(recipe.output_dir)
    rerun = load_recipe(f"{out}/config.yaml", [], cls=BenchRecipe)
    stages = {"original": base_recipe(rerun, out / "original"),
              "reference": base_recipe(rerun, out / "retrain", train_on="retained")}
    weights = out / "original" / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # the last tensor's last byte: the file still loads, with one wrong weight
    weights.write_bytes(bytes(data))
    (out / "retrain" / "bench_record.json").write_text("{")
    capsys.readouterr()
    for label, stage in stages.items():
        ensure_trained(stage, label)
    log = capsys.readouterr().out
    assert "reusing" not in log
    assert f"[original] {out / 'original'} changed since it was trained (content sha256" in log
    assert f"[reference] {out / 'retrain'} has an unreadable bench_record.json (JSONDecodeError); training again" in log
    assert weights.read_bytes() != bytes(data)  # trained again
    for stage in stages.values():  # the rebuilt stages are intact, so a later run reuses them
        assert reuse_refusal(Path(stage.output_dir), fingerprint(stage))[0] is None


def test_the_model_fingerprint_covers_the_samples_format(monkeypatch, tmp_path):
    """Samples built another way from the same bytes (FORMAT_VERSION) train another model: not reused."""
    import llmrec.stages

    recipe = base_recipe(bench_recipe(tmp_path), tmp_path / "x")
    before = fingerprint(recipe)
    monkeypatch.setattr(llmrec.stages, "FORMAT_VERSION", llmrec.stages.FORMAT_VERSION + 1)
    assert fingerprint(recipe) != before


def test_a_run_killed_while_writing_its_reports_leaves_no_finished_looking_results(finished, monkeypatch):
    """Issue 18 item 8 (fault trial 'kill: benchmark / SIGKILL at report'): results.json and results.md were written
    before results.png, so a run killed in the plot left results that looked finished. results.json, the mark of
    a finished run, now goes last, and a rerun's old one is removed before the new reports are written."""
    import llmrec.bench.run

    recipe, _ = finished
    out = Path(recipe.output_dir)
    assert (out / "results.json").is_file()  # the finished run's

    def killed(*args, **kwargs):
        raise KeyboardInterrupt  # what Ctrl-C / SIGTERM are under the CLI; SIGKILL stops at the same point
    monkeypatch.setattr(llmrec.bench.run, "plot_report", killed)
    with pytest.raises(KeyboardInterrupt):
        run_benchmark(load_recipe(f"{out}/config.yaml", ["methods=[neggrad]"], cls=BenchRecipe))
    assert not (out / "results.json").exists()
    monkeypatch.undo()
    run_benchmark(recipe)  # leaves the module's finished run as the other tests expect it
    assert json.loads((out / "results.json").read_text())["recipe"]["methods"] == recipe.methods


def test_seed_lists_built_in_code_are_checked_too():
    """The recipe loader's bounds catch a negative seed in YAML or key=value; a BenchRecipe made in code meets the
    same check in run_benchmark."""
    check_seed_list([0, 3], "seeds")
    check_seed_list(None, "original_seeds")
    with pytest.raises(ConfigError, match=r"seeds\[1\] must be an integer, 0 or more, got -1"):
        check_seed_list([2, -1], "seeds")
    with pytest.raises(ConfigError, match=r"seeds\[0\] must be an integer, 0 or more, got 1.5"):
        check_seed_list([1.5], "seeds")


def fake_scores(path) -> dict:
    """{split: (labels, P(yes))} that differ from model to model: a stand-in for scoring a trained model."""
    import numpy as np

    rng = np.random.default_rng(int(hashlib.sha256(str(path).encode()).hexdigest()[:8], 16))
    labels = [0, 1] * 10
    return {split: (labels, rng.uniform(0.05, 0.95, 20).tolist()) for split in ("test", "forget")}


def test_each_original_seed_trains_its_stages_once_and_each_seed_runs_every_method(tmp_path, monkeypatch):
    """The seeds' wiring, with training, unlearning and scoring stood in for (the real thing: the `slow` test
    below): stages once per original seed under its train.seed, in today's folders for the recipe's own
    train.seed; every method once per (original, seed) with that seed; SISA, which the seed does not change,
    once per original; one record per run, each with its seeds, and the aggregate in results.json."""
    import llmrec.bench.run as run

    trained, unlearned = [], []

    def fake_train(recipe, label, trainer=None):
        trained.append((Path(recipe.output_dir).name, recipe.train.seed, recipe.model.tiny.seed, label))
        return {"fingerprint": fingerprint(recipe), "wall_seconds": 10.0, "peak_memory_mb": None,
                "trainable_percent": 100.0, "compute_seconds": None}

    def fake_unlearn(bench, method, original_dir, requests, folder, accelerator, seed):
        unlearned.append((method, Path(original_dir).parent.name, folder.name, seed))
        return folder / "model", {"wall_seconds": 1.0, "peak_memory_mb": None, "trainable_percent": 100.0}, [], None, []

    monkeypatch.setattr(run, "ensure_trained", fake_train)
    monkeypatch.setattr(run, "run_method", fake_unlearn)
    monkeypatch.setattr(run, "score_model", lambda path, *args, **kwargs: fake_scores(path))
    recipe = bench_recipe(tmp_path, "methods=[retrain,sisa,neggrad]", "seeds=[3,0]", "original_seeds=[42,7]",
                          "audit.enabled=false")  # the stand-in scores are not the splits' samples
    records = run_benchmark(recipe)

    stages = ["original", "retrain", "retrain-seed2", "original-sisa"]
    assert [t[:3] for t in trained] == [
        *zip(stages, [42, 42, 43, 42], [0, 0, 1, 0]),  # the recipe's train.seed (42): the folders it always had
        *zip([f"{s}-trainseed7" for s in stages], [7, 7, 8, 7], [0, 0, 1, 0])]
    assert [u for u in unlearned if u[0] == "neggrad"] == [
        ("neggrad", "original", "neggrad-seed3", 3), ("neggrad", "original", "neggrad", 0),
        ("neggrad", "original-trainseed7", "neggrad-trainseed7-seed3", 3),
        ("neggrad", "original-trainseed7", "neggrad-trainseed7", 0)]
    assert [u for u in unlearned if u[0] == "sisa"] == [  # once per original, from its shard ensemble
        ("sisa", "original-sisa", "sisa-seed3", 3), ("sisa", "original-sisa-trainseed7", "sisa-trainseed7-seed3", 3)]
    references = ["original", "retrain", "retrain (seed 2)", "original (sisa)"]
    assert [(r["original_seed"], r["seed"], r["method"]) for r in records] == [
        run for o in (42, 7) for run in [(o, None, m) for m in references] + [(o, None, "sisa"), (o, 3, "neggrad"),
                                                                               (o, 0, "neggrad")]]
    # each run is judged against its own original's retrain
    for record in records:
        retrain = next(r for r in records if r["method"] == "retrain" and r["original_seed"] == record["original_seed"])
        assert record["forgetting"]["reference_forget_auc"] == retrain["forget"]["auc"]
    saved = json.loads(Path(recipe.output_dir, "results.json").read_text())
    assert len(saved["records"]) == len(records) == 2 * 7
    assert [(e["method"], e["runs"], e["original_seeds"], e["seeds"]) for e in saved["aggregate"]] == [
        *[(m, 2, [7, 42], []) for m in references], ("sisa", 2, [7, 42], []), ("neggrad", 4, [7, 42], [0, 3])]
    table = Path(recipe.output_dir, "results.md").read_text()
    assert "| method | runs | test AUC |" in table and "| neggrad | 4 | " in table and "| neggrad | 7 | 3 |" in table
    # the default (one original at train.seed, one seed) asks for the very same first stages: they would be reused
    default = bench_recipe(tmp_path, "methods=[retrain,sisa,neggrad]")
    assert records[0]["fingerprint"] == fingerprint(base_recipe(default, Path(default.output_dir) / "original"))


@pytest.mark.slow
def test_several_seeds_and_originals_run_every_method_per_run_on_models_trained_once(tmp_path, monkeypatch, capsys):
    """Issue 19 item 4: one record per (original seed, unlearning seed, method); the original and both retrains
    trained once per original seed and shared by its unlearning seeds; results.md shows median [min–max].
    Slow: six trainings and eight unlearning runs (over 20 minutes on 2 busy cores)."""
    recipe = bench_recipe(tmp_path, "methods=[retrain,neggrad,finetune]", "seeds=[0,1]", "original_seeds=[42,43]")
    trained_on = record_training_splits(monkeypatch, "llmrec.llm.train")
    records = run_benchmark(recipe)
    assert len(trained_on) == 3 * 2  # original, retrain, second-seed retrain for each original seed; none per seed
    runs = [(r["original_seed"], r["seed"], r["method"]) for r in records]
    references = ["original", "retrain", "retrain (seed 2)"]
    assert runs == [run for o in (42, 43) for run in [(o, None, m) for m in references] + [
        (o, s, m) for s in (0, 1) for m in ("neggrad", "finetune")]]
    out = Path(recipe.output_dir)
    assert {r["model_dir"] for r in records if r["method"] == "neggrad"} == {
        str(out / "methods" / name / "model") for name in ("neggrad", "neggrad-seed1", "neggrad-trainseed43",
                                                             "neggrad-trainseed43-seed1")}
    originals = {r["original_seed"]: r for r in records if r["method"] == "original"}
    assert originals[42]["model_dir"] == str(out / "original" / "model")  # the recipe's train.seed: today's folder
    assert originals[43]["model_dir"] == str(out / "original-trainseed43" / "model")
    assert originals[42]["test"]["auc"] != originals[43]["test"]["auc"]  # another original, not a copy
    neggrad = {(r["original_seed"], r["seed"]): r["test"]["auc"] for r in records if r["method"] == "neggrad"}
    assert neggrad[42, 0] != neggrad[42, 1]  # the unlearning seed reached the run

    saved = json.loads((out / "results.json").read_text())
    assert len(saved["records"]) == len(records) == 3 * 2 + 2 * 2 * 2
    entry = next(e for e in saved["aggregate"] if e["method"] == "neggrad")
    assert entry["runs"] == 4 and entry["original_seeds"] == [42, 43] and entry["seeds"] == [0, 1]
    assert entry["metrics"]["test.auc"]["median"] == pytest.approx(statistics.median(neggrad.values()))
    table = (out / "results.md").read_text()
    row = next(line for line in table.splitlines() if line.startswith("| neggrad |"))
    low, high = min(neggrad.values()), max(neggrad.values())
    assert row.startswith("| neggrad | 4 | ") and f"[{low:.4f}–{high:.4f}]" in row
    assert "Every run" in table and "| neggrad | 43 | 1 |" in table

    # the default (one original: train.seed 42, one seed) is the same stages in the same folders: all reused
    capsys.readouterr()
    run_benchmark(bench_recipe(tmp_path, "methods=[neggrad]"))
    log = capsys.readouterr().out
    assert log.count("reusing") == 3 and "] training" not in log
