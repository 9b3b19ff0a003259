import dataclasses
import json

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

import llmrec.unlearn.run as run_module
from llmrec.config import PromptConfig
from llmrec.data.samples import prepare_splits
from llmrec.errors import ConfigError
from llmrec.llm.backbone import AnswerTokens, add_lora, load_model, load_tokenizer
from llmrec.store import read_model_card
from llmrec.llm.train import train
from llmrec.unlearn.data import UnlearningData
from llmrec.unlearn.methods.e2urec import E2URecConfig, Teachers, build_augmented, student_loss
from llmrec.store import directory_hash
from llmrec.unlearn.run import run_unlearning
from llmrec.unlearn.loop import LlmUnlearning
from tests.unlearn.conftest import unlearn_recipe


def test_unlearning_writes_a_loadable_adapter_and_a_manifest(trained, tmp_path):
    model_dir = f"{trained.output_dir}/model"
    before = directory_hash(model_dir)
    manifest = run_unlearning(unlearn_recipe(trained, tmp_path / "out", "merge=true"))
    assert directory_hash(model_dir) == before  # the original is never modified

    out = tmp_path / "out"
    assert (out / "adapter_config.json").is_file() and (out / "adapter_model.safetensors").is_file()
    saved = json.load(open(out / "unlearning_manifest.json"))
    assert saved == json.loads(json.dumps(manifest))
    assert saved["method"] == "e2urec" and saved["original_model_sha256"] == before
    splits = prepare_splits(trained.data, trained.forget)
    assert saved["forgotten_user_ids"] == sorted(set(splits["forget"]["user_id"]))
    assert saved["counts"]["forget_samples"] == len(splits["forget"])
    assert 0 < saved["trainable_percent"] < 100
    assert set(saved["timings"]) >= {"augment_seconds", "teacher_seconds", "student_seconds", "wall_seconds"}

    base = AutoModelForCausalLM.from_pretrained(model_dir)
    model = PeftModel.from_pretrained(base, out)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        adapted = model(input_ids=ids).logits
        with model.disable_adapter():
            plain = model(input_ids=ids).logits
    assert not torch.allclose(adapted, plain)  # the adapter changes the recommender
    with torch.no_grad():  # merge=true: the same recommender as a plain transformers model
        merged = AutoModelForCausalLM.from_pretrained(out / "merged")(input_ids=ids).logits
    torch.testing.assert_close(merged, adapted, rtol=1e-4, atol=1e-4)


def test_precomputed_teachers_give_the_same_loss_as_per_step_teachers(trained):
    model_dir = f"{trained.output_dir}/model"
    card = read_model_card(model_dir)
    answer, prompt = AnswerTokens(**card["answer"]), PromptConfig(**card["prompt"])
    tokenizer = load_tokenizer(model_dir)
    data = UnlearningData(prepare_splits(trained.data, trained.forget), tokenizer, prompt, 256, answer, seed=0)
    retained = data.retained_sample(40)
    config = E2URecConfig()

    torch.manual_seed(0)
    work = LlmUnlearning(load_model(model_dir), data)
    augmented, _ = build_augmented(work, dataclasses.replace(config, batch_size=8,
                                                             augment=dataclasses.replace(config.augment, epochs=0.5)))
    student = work.low_rank_student(config.lora)
    for name, param in student.named_parameters():  # move the student away from θ₀ so every term is non-zero
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.05)
    student.eval()
    per_step = Teachers(work, student, augmented, config.alpha)
    precomputed = Teachers(work, student, augmented, config.alpha)
    precomputed.precompute(data.forget, retained, 16)

    forget_batch = next(iter(data.batches(data.forget, 8, steps=1)))
    retained_batch = next(iter(data.batches(retained, 8, steps=1)))
    for retained_or_none in (None, retained_batch):
        a = student_loss(work, student, per_step, forget_batch, retained_or_none, config)
        b = student_loss(work, student, precomputed, forget_batch, retained_or_none, config)
        assert a.item() > 0
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_a_failed_run_leaves_earlier_outputs_untouched(trained, tmp_path, monkeypatch):
    out = tmp_path / "out"
    run_unlearning(unlearn_recipe(trained, out))
    before = directory_hash(out)

    def crash(*args, **kwargs):
        raise RuntimeError("killed mid-training")

    monkeypatch.setattr(run_module, "get_method", lambda name: crash)
    with pytest.raises(RuntimeError):
        run_unlearning(unlearn_recipe(trained, out, "seed=3"))
    assert directory_hash(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_cli_errors(trained, tmp_path, capsys):
    from llmrec.cli import main
    from tests.unlearn.conftest import ORIGINAL_DATA

    data = ORIGINAL_DATA
    common = [f"model={trained.output_dir}/model", f"output_dir={tmp_path / 'out'}",
              f"data.cache_dir={trained.data.cache_dir}", *data]
    assert main(["unlearn", *common, "method=scrub"]) == 2
    assert "unknown unlearning method 'scrub'" in capsys.readouterr().err
    empty = tmp_path / "nobody.txt"
    empty.write_text("\n")
    assert main(["unlearn", *common, f"forget.users={empty}"]) == 2
    assert "the forget set is empty" in capsys.readouterr().err
    assert main(["unlearn", *common[1:], f"model={tmp_path}"]) == 2
    assert "not an llmrec model directory" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_evaluate_scores_an_unlearning_output(trained, tmp_path):
    from dataclasses import replace

    from llmrec.eval.evaluate import evaluate

    run_unlearning(unlearn_recipe(trained, tmp_path / "out"))
    recipe = replace(trained, output_dir=str(tmp_path / "eval"),
                     eval=replace(trained.eval, model_dir=str(tmp_path / "out"), splits=["forget"]))
    results = evaluate(recipe)
    assert results["forget"]["samples"] == len(prepare_splits(trained.data, trained.forget)["forget"])


def test_forgetting_metrics_against_a_reference_retrain(trained, tmp_path):
    import math
    from dataclasses import replace

    from llmrec.errors import LlmrecError
    from llmrec.eval.evaluate import evaluate

    reference = replace(trained, output_dir=str(tmp_path / "reference"),
                        train=replace(trained.train, train_on="retained"))
    train(reference)
    with pytest.raises(LlmrecError, match="forgetting metrics need a reference"):
        evaluate(replace(trained, eval=replace(trained.eval, forgetting=True)))

    # the original against the reference: it has not moved, so its gap closure is exactly 0
    original = evaluate(replace(trained, output_dir=str(tmp_path / "e0"), eval=replace(
        trained.eval, splits=["test"], model_dir=f"{trained.output_dir}/model",
        reference_dir=f"{reference.output_dir}/model", forgetting=True)))
    forgetting = original["forgetting"]
    assert forgetting["forget_gap_closure_auc"] == 0.0 and forgetting["forget_gap_closure_confidence"] == 0.0
    assert forgetting["js_divergence"] == forgetting["original_js_divergence"] > 0
    assert forgetting["symmetric_kl"] > forgetting["js_divergence"]
    assert 0 <= forgetting["mia_auc"] <= 1 and forgetting["mia_auc"] == forgetting["original_mia_auc"]

    run_unlearning(unlearn_recipe(trained, tmp_path / "unlearned"))
    unlearned = evaluate(replace(trained, output_dir=str(tmp_path / "e1"), eval=replace(
        trained.eval, splits=["test"], model_dir=str(tmp_path / "unlearned"),
        reference_dir=f"{reference.output_dir}/model")))["forgetting"]
    assert unlearned["original_forget_auc"] == forgetting["forget_auc"]  # the original is found from the adapter
    assert math.isfinite(unlearned["forget_gap_closure_auc"]) and unlearned["l2"] > 0


def test_lora_augmentation_shares_the_original_weights_and_leaves_them_unchanged(trained, tmp_path):
    """augment.finetune=lora: no second model copy; once its logits are taken the adapter is stripped again."""
    from llmrec.unlearn.methods.e2urec import unlearn_e2urec
    from tests.unlearn.conftest import answer_pairs, original_and_data

    original, data = original_and_data(trained)
    before, _ = answer_pairs(original, data, data.forget)
    config = E2URecConfig(augment=dataclasses.replace(E2URecConfig().augment, finetune="lora", epochs=1.0),
                          warmup_epochs=0.2, joint_epochs=0.2, batch_size=8)
    student = unlearn_e2urec(LlmUnlearning(original, data), config)["student"]
    with student.disable_adapter():
        after, _ = answer_pairs(student, data, data.forget)
    torch.testing.assert_close(after, before)  # θ₀ under the student is θ₀, not the augmented model
    assert len(student.peft_config) == 1  # only the student's adapter is left

    with pytest.raises(ConfigError, match="precompute_teachers"):
        unlearn_e2urec(LlmUnlearning(original_and_data(trained)[0], data), dataclasses.replace(config, precompute_teachers=False))


def t5_teachers(alpha: float = 10.0, lora_dropout: float = 0.5):
    """A tiny T5 (E2URec's backbone: dropout 0.1 in its own layers) under a LoRA student with dropout, an augmented
    copy that differs from it, and one left-padded batch: Teachers as `precompute_teachers: false` uses them."""
    from tests.bench.test_steps import batch
    from tests.llm.test_scoring import tiny_t5

    original, augmented = tiny_t5(), tiny_t5()
    with torch.no_grad():
        augmented.lm_head.weight.add_(0.3 * torch.randn_like(augmented.lm_head.weight))
    student = add_lora(original, dataclasses.replace(E2URecConfig().lora, r=2, dropout=lora_dropout))
    with torch.no_grad():
        for name, param in student.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.3)
    return student, augmented, Teachers(batch_work(original), student, augmented, alpha), batch(3, 6, 0)


def batch_work(model):
    """The LLM family's context over ready-made batches (no dataset): a teacher table from a list of batches."""
    from types import SimpleNamespace

    from llmrec.unlearn.teachers import precompute_answer_logits
    from tests.bench.test_steps import ANSWER

    work = LlmUnlearning(model, SimpleNamespace(answer=ANSWER))
    work.teacher_table = lambda m, batches, size, desc: precompute_answer_logits(m, batches, ANSWER, desc)
    return work


def test_teachers_are_evaluated_in_eval_mode_while_the_student_trains():
    """Per-step teachers (precompute_teachers: false) see no dropout, as the reference's `.eval()` teachers; the student
    and the augmented model are left in the mode they were in."""
    from llmrec.llm.scoring import answer_logits

    student, augmented, teachers, one = t5_teachers()
    student.eval()
    expected_forget, expected_retained = teachers.forget(one), teachers.retained(one)
    student.train()
    augmented.train()
    for _ in range(2):
        torch.testing.assert_close(teachers.forget(one), expected_forget, rtol=0, atol=0)
        torch.testing.assert_close(teachers.retained(one), expected_retained, rtol=0, atol=0)
    assert all(m.training for m in student.modules()) and all(m.training for m in augmented.modules())
    with torch.no_grad():  # the student itself still trains with dropout on
        assert not torch.equal(answer_logits(student, one["input_ids"], one["attention_mask"]),
                               answer_logits(student, one["input_ids"], one["attention_mask"]))
    teachers.precompute([one], [one], 0)
    assert all(m.training for m in student.modules())
    torch.testing.assert_close(teachers.forget(one), expected_forget, rtol=1e-6, atol=1e-6)


def test_teacher_logits_are_float32_under_bf16_autocast():
    """α multiplies the teachers' rounding: their logits are float32 whatever autocast the caller runs under
    (bf16 is forced here, so the test does not depend on the CPU having bf16 support)."""
    _, _, teachers, one = t5_teachers()
    full_forget, full_retained = teachers.forget(one), teachers.retained(one)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        forget, retained = teachers.forget(one), teachers.retained(one)
        teachers.precompute([one], [one], 0)
    for logits, full in ((forget, full_forget), (retained, full_retained),
                         (teachers.forget_table, full_forget), (teachers.retained_table, full_retained)):
        assert logits.dtype == torch.float32
        torch.testing.assert_close(logits, full, rtol=1e-5, atol=1e-5)  # computed in float32, not rounded to bf16
