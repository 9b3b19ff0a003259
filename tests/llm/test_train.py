import json
from pathlib import Path

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

import llmrec.llm.train as train_module
from llmrec.config import to_dict
from llmrec.data.samples import prepare_splits
from llmrec.errors import LlmrecError
from llmrec.store import read_model_card
from llmrec.llm.train import train
from tests.conftest import SMALL_OVERRIDES
from tests.data.holdout_checks import assert_no_holdout_sample, record_training_splits, sample_ids


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


def test_no_holdout_sample_reaches_the_original_or_its_tokenizer(recipe_factory, monkeypatch):
    """Issue 19: data.holdout users' train-split samples are never trained on, nor fit the tiny tokenizer."""
    recipe = recipe_factory("train.max_steps=2")
    trained_on = record_training_splits(monkeypatch, "llmrec.llm.train")
    vocabulary_from, backbone_path = [], train_module.backbone_path
    monkeypatch.setattr(train_module, "backbone_path",
                        lambda r, split, accelerator: vocabulary_from.append(split) or backbone_path(r, split, accelerator))
    train(recipe)
    splits = prepare_splits(recipe.data, recipe.forget)
    assert len(trained_on) == 1 and sample_ids(trained_on[0]) == sample_ids(splits["train"])
    assert_no_holdout_sample(trained_on + vocabulary_from, splits)
    with pytest.raises(LlmrecError, match="data.holdout users are never trained on"):
        train(recipe_factory("train.train_on=holdout", f"output_dir={recipe.output_dir}-holdout"))
    assert not Path(f"{recipe.output_dir}-holdout/model").exists()


def _weights(run_dir):
    return load_file(f"{run_dir}/checkpoints/last/model.safetensors")


def test_resume_after_interruption_matches_an_uninterrupted_run(recipe_factory, tmp_path, monkeypatch):
    settings = ("train.epochs=2", "train.checkpoint_every=10")
    straight = recipe_factory(*settings, f"output_dir={tmp_path / 'straight'}")
    train(straight)

    interrupted = recipe_factory(*settings, f"output_dir={tmp_path / 'interrupted'}")
    real_save = train_module.save_checkpoint

    def save_then_crash(accelerator, state, *args):
        real_save(accelerator, state, *args)
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


def test_the_force_variables_decide_what_auto_means(monkeypatch):
    """One machine runs the suite as either CPU kind would: bf16 where AVX512-BF16/AMX exist, fp32 elsewhere."""
    from llmrec.errors import LlmrecError
    from llmrec.llm.accel import resolve_mixed_precision

    monkeypatch.delenv("LLMREC_FORCE_BF16", raising=False)
    monkeypatch.setenv("LLMREC_FORCE_NO_BF16", "1")
    assert resolve_mixed_precision("auto") == "no" and resolve_mixed_precision("bf16") == "bf16"
    monkeypatch.setenv("LLMREC_FORCE_NO_BF16", "0")
    monkeypatch.setenv("LLMREC_FORCE_BF16", "1")
    assert resolve_mixed_precision("auto") == "bf16" and resolve_mixed_precision("no") == "no"
    monkeypatch.setenv("LLMREC_FORCE_NO_BF16", "1")
    with pytest.raises(LlmrecError, match="both set"):
        resolve_mixed_precision("auto")


def test_a_checkpoint_of_another_run_is_not_resumed(recipe_factory):
    from llmrec.errors import LlmrecError

    train(recipe_factory("train.max_steps=2"))
    with pytest.raises(LlmrecError, match=r"forget.seed \(0 in the checkpoint, now 3\).*train.resume=false"):
        train(recipe_factory("train.max_steps=2", "forget.seed=3"))
    # a longer schedule is another learning-rate schedule, not the rest of this one
    with pytest.raises(LlmrecError, match=r"train.epochs \(1 in the checkpoint, now 2\); train.max_steps \(2 in the "
                       r"checkpoint, now 4\)"):
        train(recipe_factory("train.max_steps=4", "train.epochs=2"))
    summary = train(recipe_factory("train.max_steps=2", "train.checkpoint_every=1", "train.eval_before=true"))
    assert summary["epochs"][-1]["step"] == 2  # settings that do not shape the run may change
    fresh = train(recipe_factory("train.max_steps=3", "forget.seed=3", "train.resume=false"))
    assert [e["step"] for e in fresh["epochs"]] == [3]


def _crash_at_checkpoint(monkeypatch, step, keep=True):
    """Make save_checkpoint raise KeyboardInterrupt at `step`, after writing it (keep) or before."""
    real_save = train_module.save_checkpoint

    def save_then_crash(accelerator, state, *args):
        if keep or state.global_step != step:
            real_save(accelerator, state, *args)
        if state.global_step == step:
            raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "save_checkpoint", save_then_crash)
    return lambda: monkeypatch.setattr(train_module, "save_checkpoint", real_save)


def test_a_checkpoint_resumes_only_with_every_setting_that_shapes_the_run(recipe_factory, monkeypatch, capsys):
    from llmrec.cli import main

    # the case: killed after the step-8 checkpoint, rerun with another train.batch_size
    run = ("train.max_steps=8", "train.checkpoint_every=8")
    recipe = recipe_factory(*run)
    restore = _crash_at_checkpoint(monkeypatch, 8)
    with pytest.raises(KeyboardInterrupt):
        train(recipe)
    restore()
    out = recipe.output_dir
    config = Path(f"{out}/config.yaml")
    assert not config.exists()  # written with model/ only, and the killed run saved none
    common = [f"output_dir={out}", f"data.cache_dir={recipe.data.cache_dir}", *SMALL_OVERRIDES, *run]
    changes = {"train.batch_size=8": "train.batch_size (16 in the checkpoint, now 8)",
               "train.learning_rate=0.01": "train.learning_rate", "train.epochs=2": "train.epochs",
               "train.warmup_ratio=0.2": "train.warmup_ratio", "train.seed=1": "train.seed",
               "train.gradient_accumulation_steps=2": "train.gradient_accumulation_steps",
               "train.weight_decay=0.1": "train.weight_decay", "train.max_grad_norm=1.0": "train.max_grad_norm",
               "model.finetune=lora": "model.finetune", "prompt.yes=Sure": "prompt.yes",
               "eval.batch_size=8": "eval.batch_size"}
    for change, named in changes.items():
        capsys.readouterr()
        assert main(["train", *common, change]) == 2, change
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and named in err and "train.resume=false" in err, err
        assert not config.exists()  # refused before anything is written
        assert not Path(f"{out}/model").exists()

    settings = Path(f"{out}/checkpoints/last/settings.json")
    saved = settings.read_bytes()
    settings.write_text("{")  # a corrupt record of the checkpoint's settings: one line, not a traceback
    capsys.readouterr()
    assert main(["train", *common]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "settings.json (changed)" in err and "train.resume=false" in err, err
    settings.write_bytes(saved)

    # same settings: the checkpoint was the last step, taken mid-epoch; the rerun trains nothing more,
    # but still validates that epoch and writes model/ (it used to stop with no model)
    steps = []
    real_loss = train_module.answer_loss
    monkeypatch.setattr(train_module, "answer_loss", lambda *a: steps.append(1) or real_loss(*a))
    summary = train(recipe)
    assert steps == [] and [e["step"] for e in summary["epochs"]] == [8]
    assert read_model_card(f"{out}/model")["epoch"] == 1


def test_resume_false_starts_over_and_keeps_the_old_checkpoint_until_its_own(recipe_factory, monkeypatch, capsys):
    from llmrec.errors import LlmrecError

    old = recipe_factory("train.max_steps=8", "train.checkpoint_every=4")
    restore = _crash_at_checkpoint(monkeypatch, 8)
    with pytest.raises(KeyboardInterrupt):
        train(old)
    restore()
    state = f"{old.output_dir}/checkpoints/last/trainer_state.json"
    assert json.load(open(state))["global_step"] == 8

    # a fresh run with another batch size, killed before it wrote any checkpoint: the old one is still there
    new = ("train.max_steps=8", "train.checkpoint_every=4", "train.batch_size=8")
    restore = _crash_at_checkpoint(monkeypatch, 4, keep=False)
    with pytest.raises(KeyboardInterrupt):
        train(recipe_factory(*new, "train.resume=false"))
    restore()
    assert "starting over" in capsys.readouterr().out
    assert json.load(open(state))["global_step"] == 8
    # the checkpoint records its own settings: it is not taken for the new run
    with pytest.raises(LlmrecError, match=r"train.batch_size \(16 in the checkpoint, now 8\)"):
        train(recipe_factory(*new))
    summary = train(old)  # and the old command still resumes it
    assert [e["step"] for e in summary["epochs"]] == [8]
    fresh = train(recipe_factory(*new, "train.resume=false"))
    assert [e["step"] for e in fresh["epochs"]] == [8] and json.load(open(state))["global_step"] == 8
    assert json.load(open(f"{old.output_dir}/checkpoints/last/settings.json"))["train.batch_size"] == 8


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


def test_a_damaged_checkpoint_is_refused_with_the_resume_false_hint(recipe_factory, capsys):
    """Issue 18: flipped bytes in a checkpoint, or an edited global_step, were resumed without a word."""
    from llmrec.cli import main
    from llmrec.store import directory_hash

    recipe = recipe_factory("train.max_steps=2")
    train(recipe)
    out, last = Path(recipe.output_dir), Path(recipe.output_dir) / "checkpoints" / "last"
    command = ["train", f"output_dir={out}", f"data.cache_dir={recipe.data.cache_dir}", *SMALL_OVERRIDES,
               "train.max_steps=2"]
    model, metrics = directory_hash(out / "model"), (out / "train_metrics.json").read_bytes()
    weights, state, contents = last / "model.safetensors", last / "trainer_state.json", last / "contents.json"
    flipped = bytearray(weights.read_bytes())
    flipped[-1] ^= 0xFF  # the last byte of the last tensor
    edited = json.loads(state.read_text())
    edited["global_step"] = 1
    damages = [(weights, bytes(flipped), "model.safetensors (changed)"),
               (state, json.dumps(edited).encode(), "trainer_state.json (changed)"),
               (contents, None, "has no contents.json")]
    for path, damaged, named in damages:
        intact = path.read_bytes()
        path.write_bytes(damaged) if damaged is not None else path.unlink()
        capsys.readouterr()
        assert main(command) == 2, named
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and named in err and "train.resume=false" in err, err
        assert directory_hash(out / "model") == model and (out / "train_metrics.json").read_bytes() == metrics
        path.write_bytes(intact)
    assert main(command) == 0  # the intact checkpoint resumes (it was the last step: nothing left to train)
    weights.write_bytes(bytes(flipped))
    assert main([*command, "train.resume=false"]) == 0  # and the hint works
    assert json.loads((last / "trainer_state.json").read_text())["global_step"] == 2


def test_the_threads_setting_is_applied_printed_and_recorded(recipe_factory, capsys):
    """Issue 18: torch's default thread count made training 10-30x slower on a shared machine."""
    from llmrec.cli import main

    recipe = recipe_factory()
    before = torch.get_num_threads()
    try:
        assert main(["train", f"output_dir={recipe.output_dir}", f"data.cache_dir={recipe.data.cache_dir}",
                     *SMALL_OVERRIDES, "train.max_steps=1", "threads=3"]) == 0
        assert torch.get_num_threads() == 3
    finally:
        torch.set_num_threads(before)
    assert "| threads: 3" in capsys.readouterr().out
    assert json.loads(Path(recipe.output_dir, "train_metrics.json").read_text())["threads"] == 3


def test_auto_threads_are_the_cores_free_to_this_process(monkeypatch):
    import llmrec.llm.accel as accel

    assert accel.resolve_threads(3) == (3, "threads setting")
    monkeypatch.setenv("OMP_NUM_THREADS", "5")
    assert accel.resolve_threads(0) == (5, "OMP_NUM_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(accel.os, "sched_getaffinity", lambda pid: {0, 2, 5})
    assert accel.available_cores() <= 3
    monkeypatch.setattr(accel, "available_cores", lambda: 8)
    assert accel.resolve_threads(0)[0] == 8
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # accelerate launch / torchrun: the cores are shared
    assert accel.resolve_threads(0) == (4, "auto: 8 cores free to this process / 2 local processes")
