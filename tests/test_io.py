import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from llmrec.errors import LlmrecError
from llmrec.io import atomic_dir, hold_lock, lock_file, recover, write_json
from tests.conftest import SMALL_OVERRIDES


def test_atomic_dir_replaces_the_target_only_on_success(tmp_path):
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as tmp:
            (tmp / "weights").write_text("half")
            raise RuntimeError("crash while writing")
    assert (target / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no temp dir left behind

    with atomic_dir(target) as tmp:
        (tmp / "weights").write_text("new")
    assert (target / "weights").read_text() == "new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_write_json_leaves_no_temp_file(tmp_path):
    write_json(tmp_path / "sub" / "m.json", {"auc": 0.5})
    assert json.loads((tmp_path / "sub" / "m.json").read_text()) == {"auc": 0.5}
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["m.json"]


def test_write_json_writes_non_finite_floats_as_null(tmp_path):
    def refuse(constant):
        raise ValueError(f"{constant} is not JSON")

    payload = {"auc": math.nan, "best": -math.inf, "rows": [1.5, np.float32("nan"), np.array([math.inf, 2.0])],
               "pair": (np.float64(0.25), math.inf), "path": tmp_path}
    write_json(tmp_path / "m.json", payload)
    assert json.loads((tmp_path / "m.json").read_text(), parse_constant=refuse) == {
        "auc": None, "best": None, "rows": [1.5, None, [None, 2.0]], "pair": [0.25, None], "path": str(tmp_path)}


# Kills and concurrent writers, injected in subprocesses (issue 18 items 7 and 8).

REPO = Path(__file__).resolve().parents[1]
KILL_AFTER_FIRST_RENAME = """
import os, pathlib, signal
real_rename = pathlib.Path.rename
def rename(self, target):
    moved = real_rename(self, target)
    if ".old-" in pathlib.Path(target).name:  # atomic_dir moved the old version aside: killed before the second
        os.kill(os.getpid(), signal.SIGKILL)
    return moved
pathlib.Path.rename = rename
"""


def python(code: str, *args, wait: bool = True):
    """`python -c code args...` with this checkout importable: the finished process, or the running one."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    command = [sys.executable, "-c", code, *map(str, args)]
    if wait:
        return subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO, timeout=300)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)


def wait_for(path: Path, process: subprocess.Popen, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.02)


def old_model(tmp_path) -> Path:
    target = tmp_path / "model"
    target.mkdir()
    (target / "weights").write_text("old")
    return target


def test_a_kill_between_the_two_renames_is_finished_by_the_next_run(tmp_path, capsys):
    target = old_model(tmp_path)
    killed = python(KILL_AFTER_FIRST_RENAME + """
import sys
from llmrec.io import atomic_dir
with atomic_dir(pathlib.Path(sys.argv[1])) as tmp:
    (tmp / "weights").write_text("new")
""", target)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not target.exists()  # the state: neither version in place

    recover(target)
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 1 and "finished putting the new version in place" in said[0], said
    assert (target / "weights").read_text() == "new"  # the complete new version, not a restart
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # journal, old version and lock collected


def test_a_writer_killed_before_its_output_was_complete_leaves_the_old_version_and_its_litter_is_collected(
        tmp_path, capsys):
    target = old_model(tmp_path)
    killed = python("""
import os, pathlib, signal, sys
from llmrec.io import atomic_dir
with atomic_dir(pathlib.Path(sys.argv[1])) as tmp:
    (tmp / "weights").write_text("half")
    os.kill(os.getpid(), signal.SIGKILL)
""", target)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert _pid_of_litter(tmp_path) != os.getpid()  # a dead process's temp dir beside the model

    with atomic_dir(target) as tmp:  # the next writer collects it
        (tmp / "weights").write_text("next")
    assert (target / "weights").read_text() == "next"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert capsys.readouterr().out == ""  # an unfinished temp dir is removed without a word: nothing was lost


def _pid_of_litter(folder: Path) -> int:
    (litter,) = [p for p in folder.iterdir() if ".tmp-" in p.name]
    return int(litter.name.rpartition("-")[2])


def test_an_old_version_left_by_a_kill_between_the_renames_of_an_earlier_llmrec_is_restored(tmp_path, capsys):
    """llmrec before the journal: a kill between the renames left `.X.old-PID` and `.X.tmp-PID`, no `X`."""
    dead = python("import os; print(os.getpid())")  # a pid that has exited
    pid = int(dead.stdout)
    for kind, text in (("old", "old"), ("tmp", "new, maybe incomplete")):
        (tmp_path / f".model.{kind}-{pid}").mkdir()
        (tmp_path / f".model.{kind}-{pid}" / "weights").write_text(text)
    recover(tmp_path / "model")
    assert (tmp_path / "model" / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    assert "restored the previous version" in capsys.readouterr().out


def test_a_second_writer_is_refused_naming_the_first_or_waits_for_it(tmp_path, capsys):
    target = old_model(tmp_path)
    ready, go = tmp_path.parent / f"{tmp_path.name}-ready", tmp_path.parent / f"{tmp_path.name}-go"
    first = python("""
import pathlib, sys, time
from llmrec.io import atomic_dir
with atomic_dir(pathlib.Path(sys.argv[1])) as tmp:
    pathlib.Path(sys.argv[2]).touch()
    while not pathlib.Path(sys.argv[3]).exists():
        time.sleep(0.02)
    (tmp / "weights").write_text("first")
""", target, ready, go, wait=False)
    wait_for(ready, first)
    with pytest.raises(LlmrecError, match=rf"model is in use by another llmrec run \(pid {first.pid}\)"):
        with atomic_dir(target):
            pass
    assert (target / "weights").read_text() == "old"

    threading.Timer(0.5, go.touch).start()
    with atomic_dir(target, wait=True) as tmp:  # blocks until the first writer is done
        assert (target / "weights").read_text() == "first"
        (tmp / "weights").write_text("second")
    assert first.wait(60) == 0
    assert f"waiting for pid {first.pid}, which is writing {target}" in capsys.readouterr().out
    assert (target / "weights").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]  # no lock file left behind


def test_a_run_holding_its_output_dir_may_write_inside_it_and_take_its_lock_again(tmp_path):
    out = tmp_path / "run"
    with hold_lock(out):
        with atomic_dir(out) as tmp:  # the same process: nested, not refused
            (tmp / "a").write_text("1")
        with atomic_dir(out / "model") as tmp:
            (tmp / "b").write_text("2")
        assert lock_file(out).read_text().strip() == str(os.getpid())
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "model", "run"]


def test_training_killed_between_the_renames_of_checkpoints_last_resumes_from_it(recipe_factory, tmp_path,
                                                                                 monkeypatch, capsys):
    """The issue's case: checkpoints/last missing after the kill, the rerun silently restarted from step 0."""
    import llmrec.llm.train as train_module

    recipe = recipe_factory("train.max_steps=8", "train.checkpoint_every=4")
    run = python(KILL_AFTER_FIRST_RENAME + """
import sys
from llmrec.cli import main
main(sys.argv[1:])
""", "train", f"output_dir={recipe.output_dir}", f"data.cache_dir={recipe.data.cache_dir}", *SMALL_OVERRIDES,
                 "train.max_steps=8", "train.checkpoint_every=4")
    assert run.returncode == -signal.SIGKILL, run.stderr[-2000:]
    checkpoints = Path(recipe.output_dir) / "checkpoints"
    assert not (checkpoints / "last").exists()  # killed while replacing the step-4 checkpoint by the step-8 one
    (step_8,) = checkpoints.glob(".last.tmp-*")
    step_8_weights = (step_8 / "model.safetensors").read_bytes()

    steps = []
    real_loss = train_module.answer_loss
    monkeypatch.setattr(train_module, "answer_loss", lambda *a: steps.append(1) or real_loss(*a))
    capsys.readouterr()
    train_module.train(recipe)
    out = capsys.readouterr().out
    assert "finished putting the new version in place" in out and "resumed from" in out and "step 8" in out
    assert steps == []  # every step was in the finished checkpoint: none trained again, no restart from step 0
    assert sorted(p.name for p in checkpoints.iterdir()) == ["last"]
    assert (checkpoints / "last" / "model.safetensors").read_bytes() == step_8_weights


def test_two_unlearning_runs_into_one_output_dir_never_both_succeed(recipe_factory, tmp_path, capsys):
    from llmrec.cli import main
    from llmrec.llm.train import train

    original = recipe_factory("train.max_steps=4")
    train(original)
    out, ready, go = tmp_path / "unlearned", tmp_path / "ready", tmp_path / "go"
    data = [o for o in SMALL_OVERRIDES if o.startswith("data.")]
    args = ["unlearn", f"model={original.output_dir}/model", f"output_dir={out}",
            f"data.cache_dir={original.data.cache_dir}", *data, "method=neggrad", "neggrad.epochs=0.1",
            "neggrad.batch_size=8"]
    first = python("""
import pathlib, sys, time
import llmrec.unlearn.run as run
real = run.unlearning_manifest
def held(*args, **kwargs):  # inside the run, which holds output_dir until the test says go
    pathlib.Path(sys.argv[1]).touch()
    while not pathlib.Path(sys.argv[2]).exists():
        time.sleep(0.02)
    return real(*args, **kwargs)
run.unlearning_manifest = held
from llmrec.cli import main
sys.exit(main(sys.argv[3:]))
""", ready, go, *args, "seed=1", wait=False)
    wait_for(ready, first, seconds=240)
    capsys.readouterr()
    code = main([*args, "seed=2"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"in use by another llmrec run (pid {first.pid})" in err[0], err
    assert not out.exists()
    go.touch()
    assert first.wait(240) == 0, first.communicate()
    assert json.loads((out / "unlearning_manifest.json").read_text())["recipe"]["seed"] == 1  # the first run's


def test_an_interrupt_between_the_two_renames_puts_the_old_version_back(tmp_path, monkeypatch):
    """SIGTERM and Ctrl-C are exceptions under the CLI: the run fails, so the earlier output must stay."""
    import pathlib

    target = old_model(tmp_path)
    real_rename = pathlib.Path.rename

    def rename(self, destination):
        moved = real_rename(self, destination)
        if ".old-" in Path(destination).name:
            raise KeyboardInterrupt
        return moved

    monkeypatch.setattr(pathlib.Path, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(target) as tmp:
            (tmp / "weights").write_text("new")
    assert (target / "weights").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_a_failed_write_leaves_no_temp_file_beside_its_target(tmp_path, monkeypatch):
    import errno

    def full_disk(self, text, *args, **kwargs):
        Path.write_bytes(self, text[: len(text) // 2].encode())  # half written, then the disk is full
        raise OSError(errno.ENOSPC, "No space left on device", str(self))

    monkeypatch.setattr(Path, "write_text", full_disk)
    with pytest.raises(OSError):
        write_json(tmp_path / "results.json", {"auc": 0.5})
    assert list(tmp_path.iterdir()) == []  # was: .results.json.tmp-PID left behind


def test_reading_a_model_whose_swap_a_kill_interrupted_finishes_the_swap_first(tmp_path, capsys):
    from llmrec.store import MODEL_CARD, read_model_card

    target = tmp_path / "unlearned"
    target.mkdir()
    (target / MODEL_CARD).write_text('{"version": "old"}')
    killed = python(KILL_AFTER_FIRST_RENAME + f"""
import sys
from llmrec.io import atomic_dir
with atomic_dir(pathlib.Path(sys.argv[1])) as tmp:
    (tmp / "{MODEL_CARD}").write_text('{{"version": "new"}}')
""", target)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not target.exists()  # `llmrec evaluate` said "does not exist" here

    assert read_model_card(target) == {"version": "new"}
    assert "finished putting the new version in place" in capsys.readouterr().out
