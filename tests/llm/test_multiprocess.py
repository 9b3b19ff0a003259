"""Two CPU processes (gloo) under torchrun: the same recipe trains, and evaluation counts every sample once."""

import json
import os
import socket
import subprocess
import sys

import pytest

from llmrec.data.samples import prepare_splits
from tests.conftest import REPO, SMALL_OVERRIDES, small_recipe


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _llmrec(processes: int, *args: str) -> str:
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())] if processes > 1 else [sys.executable]
    done = subprocess.run([*launcher, "-m", "llmrec", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_two_processes_train_and_evaluate_every_sample_exactly_once(tmp_path):
    common = [*SMALL_OVERRIDES, f"data.cache_dir={tmp_path / 'cache'}", "eval.batch_size=24"]
    log = _llmrec(2, "train", f"output_dir={tmp_path / 'run'}", *common, "train.max_steps=6")
    assert "processes: 2" in log

    def evaluate(processes: int, where: str) -> dict:
        _llmrec(processes, "evaluate", f"output_dir={tmp_path / where}", *common,
                f"eval.model_dir={tmp_path / 'run' / 'model'}", "eval.splits=[train,valid,test]")
        return json.loads((tmp_path / where / "evaluation.json").read_text())["metrics"]

    two, one = evaluate(2, "eval-2"), evaluate(1, "eval-1")
    recipe = small_recipe(tmp_path)
    splits = prepare_splits(recipe.data, recipe.forget)
    for name in ("train", "valid", "test"):
        assert len(splits[name]) % (2 * 24) != 0  # the last batch is padded across processes...
        assert two[name]["samples"] == len(splits[name])  # ...and the padding is not counted
        for metric in ("auc", "accuracy", "log_loss", "positive_rate"):
            assert two[name][metric] == pytest.approx(one[name][metric], abs=1e-6), (name, metric)
