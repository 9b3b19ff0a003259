"""Two CPU processes (gloo) under torchrun: the same recipes train, evaluate (every sample once) and unlearn."""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from llmrec.data.samples import prepare_splits
from llmrec.llm.train import train
from tests.conftest import REPO, SMALL_OVERRIDES, small_recipe
from tests.unlearn.conftest import QUICK


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch(processes: int, *args: str) -> subprocess.CompletedProcess:
    """`llmrec ARGS` in one process, or under torchrun with `processes` CPU ranks (gloo)."""
    env = {**os.environ, "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"}
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes),
                "--master_addr", "127.0.0.1", "--master_port", str(_free_port())] if processes > 1 else [sys.executable]
    return subprocess.run([*launcher, "-m", "llmrec", *args], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300)


def _llmrec(processes: int, *args: str) -> str:
    done = _launch(processes, *args)
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


def test_two_process_unlearning_matches_one_process(tmp_path):
    """Each process takes half of every batch and gradients are averaged: the same adapter as one process."""
    recipe = small_recipe(tmp_path, "train.epochs=2")
    train(recipe)
    data = [o for o in SMALL_OVERRIDES if o.startswith("data.")]
    common = [f"model={recipe.output_dir}/model", f"data.cache_dir={tmp_path / 'cache'}", *data, *QUICK,
              "e2urec.lora.dropout=0.0", "mixed_precision=no"]
    log = _llmrec(2, "unlearn", f"output_dir={tmp_path / 'two'}", *common)
    assert "processes: 2" in log and log.count("unlearned ") == 1  # the main process alone writes
    _llmrec(1, "unlearn", f"output_dir={tmp_path / 'one'}", *common)
    two, one = (load_file(tmp_path / where / "adapter_model.safetensors") for where in ("two", "one"))
    assert two.keys() == one.keys() and any(t.abs().max() > 0 for name, t in one.items() if "lora_B" in name)
    for name in one:
        torch.testing.assert_close(two[name], one[name], rtol=1e-4, atol=1e-5)
    assert json.loads((tmp_path / "two" / "unlearning_manifest.json").read_text())["counts"] == json.loads(
        (tmp_path / "one" / "unlearning_manifest.json").read_text())["counts"]

    failed = _launch(2, "unlearn", f"output_dir={tmp_path / 'odd'}", *common, "e2urec.batch_size=7")
    assert failed.returncode != 0 and "must be a multiple of the 2 processes" in failed.stderr
    assert not (tmp_path / "odd").exists()
