"""scripts/demo.sh's story (llmrec/demo.py) end to end on a small log, and its reuse by fingerprint."""

import json

import pytest
import yaml

from llmrec import demo
from llmrec.config import load_recipe, to_dict
from llmrec.unlearn.run import UnlearnRecipe
from tests.conftest import REPO, SMALL_OVERRIDES

SMALL = [o for o in SMALL_OVERRIDES if not o.startswith(("eval.", "train.mixed_precision"))]
DATA = ["data.synthetic.num_users=80", "data.holdout=0.2"]  # 12 holdout users: enough for the audit
FAST_E2UREC = ["e2urec.augment.epochs=1.0", "e2urec.warmup_epochs=1.0", "e2urec.joint_epochs=0.5"]


def small_recipes(tmp_path, *unlearn_overrides: str):
    """recipes/demo's pair on a small synthetic log (cache in tmp_path), written where DemoConfig.recipes points."""
    folder = tmp_path / "recipes"
    folder.mkdir(exist_ok=True)
    common = [*SMALL, f"data.cache_dir={tmp_path / 'cache'}", *DATA]
    train = to_dict(load_recipe(REPO / "recipes/demo/train.yaml", [*common, "train.max_steps=30"]))
    unlearn = to_dict(load_recipe(REPO / "recipes/demo/unlearn.yaml",
                                  [o for o in [*common, *FAST_E2UREC, *unlearn_overrides]
                                   if not o.startswith(("model.", "train."))], cls=UnlearnRecipe))
    (folder / "train.yaml").write_text(yaml.safe_dump(train))
    (folder / "unlearn.yaml").write_text(yaml.safe_dump(unlearn))
    return folder


def run(tmp_path, capsys, *extra):
    code = demo.main([f"output_dir={tmp_path / 'demo'}", f"recipes={tmp_path / 'recipes'}", "forget_users=10",
                      "mixed_precision=no", *extra])
    return code, capsys.readouterr()


def test_the_demo_tells_the_story_then_reuses_every_stage(tmp_path, capsys, monkeypatch):
    small_recipes(tmp_path)
    code, first = run(tmp_path, capsys)
    assert code == 0, first.err[-2000:]
    out = tmp_path / "demo"
    users = (out / "forget_users.txt").read_text().split()
    assert len(users) == 10 and f"written to {out / 'forget_users.txt'}: {', '.join(users)}" in first.out
    summary = (out / "summary.md").read_text()
    assert summary in first.out
    for text in ("| test AUC (utility) |", "| forget-set AUC |", "| audit AUC, sample level", "**forgotten?**",
                 "x the retrain's", str(out / "original" / "model"), str(out / "e2urec"), "Next:"):
        assert text in summary, text
    manifest = json.loads((out / "e2urec" / "unlearning_manifest.json").read_text())
    assert sorted(manifest["forgotten_user_ids"]) == sorted(users) and manifest["method"] == "e2urec"
    retrain = json.loads((out / "retrain" / "unlearning_manifest.json").read_text())
    assert f"{manifest['timings']['wall_seconds'] / retrain['timings']['wall_seconds']:.2f}x" in summary
    audit = json.loads((out / "evaluation" / "e2urec" / "evaluation.json").read_text())["audit"]
    assert audit["verdicts"]["sample"]["verdict"] in summary

    calls = []
    monkeypatch.setattr("llmrec.cli.main", lambda argv: calls.append(argv) or 0)
    code, second = run(tmp_path, capsys)
    assert code == 0 and calls == [] and second.out.count("reusing") == 6
    assert (out / "summary.md").read_text() == summary

    # another unlearning setting: the unlearning and its evaluation run again, the rest is reused
    small_recipes(tmp_path, "e2urec.alpha=5.0")
    monkeypatch.undo()
    code, third = run(tmp_path, capsys)
    assert code == 0, third.err[-2000:]
    assert third.out.count("reusing") == 4 and "[unlearn] $ llmrec unlearn" in third.out
    assert "[evaluate e2urec] $ llmrec evaluate" in third.out


def test_a_changed_output_is_not_reused(tmp_path):
    stage = demo.Stage("x", ["train", str(REPO / "recipes/demo/train.yaml")], tmp_path / "x", [])
    stage.out.mkdir()
    (stage.out / "model.bin").write_bytes(b"weights")
    fingerprint = demo.stage_fingerprint(stage)
    (stage.out / demo.STAGE_RECORD).write_text(json.dumps(
        {"fingerprint": fingerprint, "seconds": 1.0, "outputs_sha256": demo.tree_hash(stage.out)}))
    assert demo.reusable(stage, fingerprint) is not None
    assert demo.reusable(stage, "another") is None
    (stage.out / "model.bin").write_bytes(b"edited")
    assert demo.reusable(stage, fingerprint) is None


@pytest.mark.parametrize("argument, message", [
    ("forget_users=5", "forget_users"),
    ("forget_users=40", "forget at most half"),
    ("colour=blue", "colour"),
])
def test_bad_demo_settings_stop_with_one_line_before_anything_is_written(tmp_path, capsys, argument, message):
    small_recipes(tmp_path)
    assert demo.main([f"output_dir={tmp_path / 'demo'}", f"recipes={tmp_path / 'recipes'}", argument]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "demo").exists()


def test_too_few_holdout_users_stop_before_anything_is_trained(tmp_path, capsys):
    small_recipes(tmp_path)
    for name in ("train.yaml", "unlearn.yaml"):
        recipe = tmp_path / "recipes" / name
        recipe.write_text(recipe.read_text().replace("holdout: 0.2", "holdout: 0.1"))
    assert demo.main([f"output_dir={tmp_path / 'demo'}", f"recipes={tmp_path / 'recipes'}", "forget_users=10"]) == 2
    assert "needs at least 10 holdout users" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()


def test_a_folder_that_is_not_a_demos_is_refused(tmp_path, capsys):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    assert demo.main([f"output_dir={tmp_path / 'mine'}"]) == 2
    assert "not a demo's folder" in capsys.readouterr().err
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


@pytest.mark.parametrize("method, message", [("..", "not an unlearning method"), ("original", "not an unlearning"),
                                             ("retrain", "the demo's reference"), ("sisa", "SISA ensemble")])
def test_a_method_the_demo_cannot_run_is_refused_before_any_folder_is_touched(tmp_path, capsys, method, message):
    small_recipes(tmp_path)
    (tmp_path / "keep.txt").write_text("mine")
    code = demo.main([f"output_dir={tmp_path / 'demo'}", f"recipes={tmp_path / 'recipes'}", f"method={method}"])
    assert code == 2 and message in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine" and not (tmp_path / "demo").exists()


def test_recipes_of_other_data_are_refused_before_anything_is_trained(tmp_path, capsys):
    small_recipes(tmp_path)
    unlearn = tmp_path / "recipes" / "unlearn.yaml"
    unlearn.write_text(unlearn.read_text().replace("num_users: 80", "num_users: 81"))
    assert demo.main([f"output_dir={tmp_path / 'demo'}", f"recipes={tmp_path / 'recipes'}"]) == 2
    assert "describes other data" in capsys.readouterr().err and not (tmp_path / "demo").exists()


def test_what_auto_means_here_is_part_of_the_fingerprint(tmp_path, monkeypatch):
    """A model trained in fp32 is not reused where 'auto' now means bf16 (and the other way round)."""
    stage = demo.Stage("x", ["train", str(REPO / "recipes/demo/train.yaml"), "train.mixed_precision=auto"],
                       tmp_path / "x", [])
    monkeypatch.setenv("LLMREC_FORCE_NO_BF16", "1")
    fp32 = demo.stage_fingerprint(stage)
    monkeypatch.delenv("LLMREC_FORCE_NO_BF16")
    monkeypatch.setenv("LLMREC_FORCE_BF16", "1")
    assert demo.stage_fingerprint(stage) != fp32
    stage.argv[-1] = "train.mixed_precision=no"
    monkeypatch.delenv("LLMREC_FORCE_BF16")
    assert demo.stage_fingerprint(stage) == fp32


def test_a_run_stopped_before_its_first_record_can_be_rerun(tmp_path):
    small_recipes(tmp_path)
    config = demo.DemoConfig(output_dir=str(tmp_path / "demo"), recipes=str(tmp_path / "recipes"))
    (tmp_path / "demo" / "original" / "backbone").mkdir(parents=True)  # what a Ctrl-C in the first stage leaves
    with pytest.raises(demo.ConfigError, match="not a demo's folder"):
        demo.check_settings(config)
    (tmp_path / "demo" / demo.MARK).write_text("{}")  # the demo claims its folder before the first stage
    demo.check_settings(config)
