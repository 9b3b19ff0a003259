import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import llmrec.llm.train as train_module
from llmrec.config import to_dict
from llmrec.llm.backbone import read_model_card
from llmrec.llm.train import train
from tests.conftest import SMALL_OVERRIDES


def test_train_writes_model_config_metrics_and_checkpoint(recipe_factory):
    recipe = recipe_factory("train.max_steps=6", "train.checkpoint_every=3")
    summary = train(recipe)
    out = recipe.output_dir
    model_dir = f"{out}/model"
    card = read_model_card(model_dir)
    assert card["answer"]["yes_text"] == " Yes" and card["prompt"]["yes"] == "Yes"
    assert AutoModelForCausalLM.from_pretrained(model_dir).config.model_type == "llama"
    assert yaml.safe_load(open(f"{out}/config.yaml")) == to_dict(recipe)
    state = json.load(open(f"{out}/checkpoints/last/trainer_state.json"))
    assert state["global_step"] == 6 and state["epoch"] == 1
    assert summary["epochs"][0]["step"] == 6 and 0 <= summary["best_valid_auc"] <= 1
    assert json.load(open(f"{out}/train_metrics.json"))["best_valid_auc"] == summary["best_valid_auc"]


def _weights(run_dir):
    return load_file(f"{run_dir}/checkpoints/last/model.safetensors")


def test_resume_after_interruption_matches_an_uninterrupted_run(recipe_factory, tmp_path, monkeypatch):
    settings = ("train.epochs=2", "train.checkpoint_every=10")
    straight = recipe_factory(*settings, f"output_dir={tmp_path / 'straight'}")
    train(straight)

    interrupted = recipe_factory(*settings, f"output_dir={tmp_path / 'interrupted'}")
    real_save = train_module.save_checkpoint

    def save_then_crash(accelerator, state, checkpoints):
        real_save(accelerator, state, checkpoints)
        if state.global_step == 40:  # mid-way through epoch 2 (each epoch has 32 steps)
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        train(interrupted)
    monkeypatch.setattr(train_module, "save_checkpoint", real_save)
    assert json.load(open(tmp_path / "interrupted/checkpoints/last/trainer_state.json"))["global_step"] == 40

    steps_after_resume = []
    real_loss = train_module.answer_loss
    monkeypatch.setattr(train_module, "answer_loss", lambda *a: steps_after_resume.append(1) or real_loss(*a))
    train(interrupted)  # same command again: resumes from checkpoints/last
    total = json.load(open(tmp_path / "straight/checkpoints/last/trainer_state.json"))["global_step"]
    assert len(steps_after_resume) == total - 40  # only the steps that were left, not a restart
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "interrupted")
    assert a.keys() == b.keys()
    for name in a:
        torch.testing.assert_close(a[name], b[name], msg=name)
    steps = [e["step"] for e in json.load(open(tmp_path / "interrupted/train_metrics.json"))["epochs"]]
    assert steps == [e["step"] for e in json.load(open(tmp_path / "straight/train_metrics.json"))["epochs"]]


def test_lora_trains_only_the_adapter_and_saves_a_merged_model(recipe_factory, capsys):
    recipe = recipe_factory("model.finetune=lora", "train.max_steps=3", "model.lora.r=4")
    summary = train(recipe)
    assert 0 < summary["trainable_parameters"] < summary["parameters"] * 0.2
    model_dir = f"{recipe.output_dir}/model"
    names = AutoModelForCausalLM.from_pretrained(model_dir).state_dict().keys()
    assert not any("lora" in n for n in names)
    assert "trainable" in capsys.readouterr().out


def test_gradient_accumulation_steps_and_best_epoch_selection(recipe_factory):
    import math

    from llmrec.data.samples import prepare_splits

    recipe = recipe_factory("train.epochs=3", "train.gradient_accumulation_steps=4")
    batches = math.ceil(len(prepare_splits(recipe.data, recipe.forget)["train"]) / recipe.train.batch_size)
    summary = train(recipe)
    assert [e["step"] for e in summary["epochs"]] == [math.ceil(batches / 4) * k for k in (1, 2, 3)]
    best = max(summary["epochs"], key=lambda e: e["valid"]["auc"])
    card = read_model_card(f"{recipe.output_dir}/model")
    assert card["epoch"] == best["epoch"] and card["valid"]["auc"] == summary["best_valid_auc"]


def test_mixed_precision_setting():
    from llmrec.errors import LlmrecError
    from llmrec.llm.accel import resolve_mixed_precision

    assert resolve_mixed_precision("no") == "no" and resolve_mixed_precision("bf16") == "bf16"
    assert resolve_mixed_precision("auto") in ("no", "bf16")
    with pytest.raises(LlmrecError, match="mixed_precision must be auto, no, bf16 or fp16, got 'fp8'"):
        resolve_mixed_precision("fp8")


def test_a_checkpoint_of_another_run_is_not_resumed(recipe_factory):
    from llmrec.errors import LlmrecError

    train(recipe_factory("train.max_steps=2"))
    with pytest.raises(LlmrecError, match="different 'forget' section.*train.resume=false"):
        train(recipe_factory("train.max_steps=4", "forget.seed=3"))
    summary = train(recipe_factory("train.max_steps=4", "train.epochs=2"))  # a longer schedule may resume
    assert summary["epochs"][-1]["step"] == 4
    fresh = train(recipe_factory("train.max_steps=3", "forget.seed=3", "train.resume=false"))
    assert [e["step"] for e in fresh["epochs"]] == [3]


def test_eval_before_records_the_untuned_backbones_valid_metrics_and_leaves_training_unchanged(
        recipe_factory, tmp_path):
    recipe = recipe_factory("train.max_steps=3", "train.eval_before=true", "model.finetune=lora")
    summary = train(recipe)
    before, after = summary["valid_before_training"], summary["epochs"][0]["valid"]
    assert before["samples"] == after["samples"] > 0
    assert before["log_loss"] != after["log_loss"]  # scored before any step, not a copy of the epoch's metrics
    plain = recipe_factory("train.max_steps=3", "model.finetune=lora", f"output_dir={tmp_path / 'plain'}")
    assert train(plain)["valid_before_training"] is None
    # iterating a DataLoader draws from torch's global generator; the extra pass must not change LoRA dropout
    with_eval, without = (load_file(f"{r.output_dir}/model/model.safetensors") for r in (recipe, plain))
    assert all(torch.equal(with_eval[name], without[name]) for name in with_eval)


def test_max_grad_norm_clips_once_per_optimizer_step(recipe_factory, monkeypatch):
    from accelerate import Accelerator

    calls = []
    real = Accelerator.clip_grad_norm_
    monkeypatch.setattr(Accelerator, "clip_grad_norm_",
                        lambda self, parameters, max_norm, **kw: calls.append(max_norm) or real(self, parameters,
                                                                                                 max_norm, **kw))
    train(recipe_factory("train.max_steps=3", "train.gradient_accumulation_steps=2", "train.max_grad_norm=0.5"))
    assert calls == [0.5, 0.5, 0.5]
    calls.clear()
    train(recipe_factory("train.max_steps=2", "train.resume=false"))
    assert calls == []


def _strict_json(path):
    def refuse(constant):
        raise ValueError(f"{path}: {constant} is not JSON")

    return json.loads(Path(path).read_text(), parse_constant=refuse)


def one_class_valid_log(folder: Path) -> Path:
    """The issue's reproducer: 30 users x 20 ratings; the newest 45% of the ratings are all 5 stars, so the
    valid and test splits (the newest 40% of the samples) hold positives only."""
    folder.mkdir()
    rows = ["user_id,item_id,rating,timestamp"]
    for j in range(20):  # the j-th rating of every user, at distinct times
        for u in range(30):
            stars = 5 if j >= 11 else 1 + (u + j) % 5
            rows.append(f"u{u},i{(7 * u + j) % 40},{stars},{1000 + 30 * j + u}")
    (folder / "ratings.csv").write_text("\n".join(rows) + "\n")
    return folder


def test_a_one_class_valid_split_keeps_the_epoch_with_the_lowest_valid_log_loss(tmp_path, capsys):
    from llmrec.cli import main

    out = tmp_path / "run"
    code = main(["train", f"output_dir={out}", f"data.cache_dir={tmp_path / 'cache'}", *SMALL_OVERRIDES,
                 "data.format=csv", f"data.path={one_class_valid_log(tmp_path / 'log')}", "train.epochs=2"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "the valid split has one class (90 positive, 0 negative samples)" in printed
    assert "valid auc undefined (one class)" in printed
    metrics = _strict_json(out / "train_metrics.json")  # null, not NaN / -Infinity
    losses = [e["valid"]["log_loss"] for e in metrics["epochs"]]
    assert [e["valid"]["auc"] for e in metrics["epochs"]] == [None, None]
    assert metrics["best_valid_auc"] is None and metrics["selected_by"].startswith("valid log-loss")
    card = _strict_json(out / "model" / "llmrec_model.json")
    assert card["epoch"] == metrics["best_epoch"] == 1 + losses.index(min(losses))
    assert card["valid"]["log_loss"] == metrics["best_valid_log_loss"] == min(losses)
    _strict_json(out / "checkpoints" / "last" / "trainer_state.json")
    assert AutoModelForCausalLM.from_pretrained(out / "model").config.model_type == "llama"
