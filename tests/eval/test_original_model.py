"""An unlearned model is scored on the very original it was made from, from any working directory, or not at all."""

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from llmrec.cli import main
from llmrec.config import load_recipe
from llmrec.llm.train import train
from llmrec.unlearn.run import UnlearnRecipe, run_unlearning
from tests.conftest import SMALL_OVERRIDES, small_recipe

DATA = [o for o in SMALL_OVERRIDES if o.startswith("data.")]


def other_model(original, target):
    """The same architecture and tokenizer with other weights: loads fine, scores differently."""
    shutil.copytree(original, target)
    weights = load_file(str(target / "model.safetensors"))
    save_file({k: v.flip(0).contiguous() if v.dim() else v for k, v in weights.items()},
              str(target / "model.safetensors"))


def evaluate_from(capsys, cwd, monkeypatch, adapter, out, *overrides):
    """Exit code, stderr and (on success) test log-loss of `llmrec evaluate` run in `cwd`."""
    monkeypatch.chdir(cwd)
    code = main(["evaluate", *DATA, f"data.cache_dir={adapter.parent / 'cache'}", "train.mixed_precision=no",
                 f"eval.model_dir={adapter}", "eval.splits=[test]", f"output_dir={out}", *overrides])
    err = capsys.readouterr().err
    saved = out / "evaluation.json"
    return code, err, json.loads(saved.read_text())["metrics"]["test"]["log_loss"] if saved.is_file() else None


def test_an_adapter_finds_its_original_from_any_directory_and_refuses_another(tmp_path, monkeypatch, capsys):
    home, elsewhere, empty = tmp_path / "home", tmp_path / "elsewhere", tmp_path / "empty"
    empty.mkdir()
    train(small_recipe(home, "train.max_steps=2"))  # home/run/model
    other_model(home / "run" / "model", elsewhere / "run" / "model")  # a different model at the same relative path
    monkeypatch.chdir(home)
    run_unlearning(load_recipe(None, ["model=run/model", f"output_dir={tmp_path / 'adapter'}", *DATA,
                                      f"data.cache_dir={tmp_path / 'cache'}", "method=finetune",
                                      "finetune.finetune=lora", "finetune.epochs=0.3", "finetune.batch_size=8",
                                      "mixed_precision=no"], cls=UnlearnRecipe))
    adapter = tmp_path / "adapter"
    card = json.loads((adapter / "llmrec_model.json").read_text())
    assert card["unlearned_from"] == str(home / "run" / "model") and len(card["unlearned_from_sha256"]) == 64

    code, _, right = evaluate_from(capsys, home, monkeypatch, adapter, tmp_path / "eval-home")
    assert code == 0
    # the relative path the command line gave now names another model: the adapter is still scored on its own
    assert evaluate_from(capsys, elsewhere, monkeypatch, adapter, tmp_path / "eval-elsewhere")[::2] == (0, right)
    assert evaluate_from(capsys, empty, monkeypatch, adapter, tmp_path / "eval-empty")[::2] == (0, right)

    (home / "run" / "model").rename(home / "moved")
    code, err, score = evaluate_from(capsys, empty, monkeypatch, adapter, tmp_path / "eval-missing")
    assert (code, score) == (2, None) and len(err.strip().splitlines()) == 1
    assert f"its original model {home / 'run' / 'model'} is missing" in err and "eval.base_model=DIR" in err

    other_model(elsewhere / "run" / "model", home / "run" / "model")  # another model where the original was
    code, err, score = evaluate_from(capsys, empty, monkeypatch, adapter, tmp_path / "eval-swapped")
    assert (code, score) == (2, None) and "is not the model it was made from" in err

    code, _, score = evaluate_from(capsys, empty, monkeypatch, adapter, tmp_path / "eval-base",
                                   f"eval.base_model={home / 'moved'}")
    assert (code, score) == (0, pytest.approx(right, abs=1e-9))
    code, err, score = evaluate_from(capsys, empty, monkeypatch, adapter, tmp_path / "eval-wrong-base",
                                     "eval.base_model=../elsewhere/run/model")
    assert (code, score) == (2, None) and "is not the model it was made from" in err


def test_a_classic_unlearned_model_is_measured_from_its_own_original(tmp_path, monkeypatch, capsys):
    from llmrec.classic.train import train_classic
    from llmrec.classic.unlearn import ClassicUnlearnRecipe, run_classic_unlearning
    from tests.classic.conftest import classic_recipe

    original = classic_recipe(tmp_path)
    train_classic(original)
    synthetic = [f"data.synthetic.{k}={v}" for k, v in vars(original.data.synthetic).items()]
    data = [f"data.cache_dir={original.data.cache_dir}", *synthetic]
    monkeypatch.chdir(tmp_path)
    run_classic_unlearning(load_recipe(None, ["model=classic/model", f"output_dir={tmp_path / 'forgot'}", *data,
                                              "method=finetune"], cls=ClassicUnlearnRecipe))
    evaluate = ["evaluate", *data, f"eval.model_dir={tmp_path / 'forgot'}", f"eval.reference_dir={tmp_path / 'forgot'}"]
    assert main([*evaluate, f"output_dir={tmp_path / 'eval'}"]) == 0
    closure = json.loads((tmp_path / "eval" / "evaluation.json").read_text())["metrics"]["forgetting"]
    capsys.readouterr()

    (tmp_path / "classic" / "model").rename(tmp_path / "moved")
    assert main([*evaluate, f"output_dir={tmp_path / 'eval-missing'}"]) == 2
    assert "its original model" in capsys.readouterr().err and not (tmp_path / "eval-missing").exists()
    assert main([*evaluate, f"eval.base_model={tmp_path / 'moved'}", f"output_dir={tmp_path / 'eval-base'}"]) == 0
    moved = json.loads((tmp_path / "eval-base" / "evaluation.json").read_text())["metrics"]["forgetting"]
    assert moved["original_js_divergence"] == closure["original_js_divergence"] > 0
