import math

import pytest
import torch

from llmrec.unlearn.losses import (
    bad_teacher_loss,
    distillation_kl,
    e2urec_loss,
    flipped,
    forgetting_teacher_logits,
    neggrad_loss,
)


def test_forgetting_teacher_only_lowers_what_augmentation_raised():
    original = torch.tensor([[1.0, 2.0, 3.0]])
    augmented = torch.tensor([[1.5, 1.0, 3.0]])  # raised class 0 by 0.5, lowered class 1, kept class 2
    teacher = forgetting_teacher_logits(original, augmented, alpha=2.0)
    assert teacher.tolist() == [[0.0, 2.0, 3.0]]
    assert torch.equal(forgetting_teacher_logits(original, original), original)


def test_kl_of_identical_logits_is_zero():
    logits = torch.randn(4, 7)
    assert distillation_kl(logits, logits.clone()).item() == pytest.approx(0.0, abs=1e-7)


def test_kl_matches_a_hand_computed_value():
    teacher = torch.tensor([[math.log(0.75), math.log(0.25)]])
    student = torch.tensor([[0.0, 0.0]])  # uniform
    expected = 0.75 * math.log(0.75 / 0.5) + 0.25 * math.log(0.25 / 0.5)
    assert distillation_kl(teacher, student).item() == pytest.approx(expected, rel=1e-6)
    # the mean over the batch, not the sum
    two = distillation_kl(teacher.repeat(2, 1), torch.tensor([[0.0, 0.0], [math.log(0.75), math.log(0.25)]]))
    assert two.item() == pytest.approx(expected / 2, rel=1e-6)


def test_kl_is_not_symmetric_and_scales_with_temperature_squared():
    a, b = torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 1.0]])
    assert distillation_kl(a, b).item() != pytest.approx(distillation_kl(b, a).item())
    t = 2.0
    scaled = distillation_kl(a / t, b / t).item() * t**2
    assert distillation_kl(a, b, temperature=t).item() == pytest.approx(scaled, rel=1e-6)


def test_gradients_reach_the_student_only():
    teacher = torch.randn(3, 5, requires_grad=True)
    student = torch.randn(3, 5, requires_grad=True)
    distillation_kl(teacher, student).backward()
    assert teacher.grad is None
    assert student.grad is not None and student.grad.abs().sum() > 0


def test_gradients_flow_only_into_lora_weights():
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=20, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2))
    student = get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"], lora_dropout=0.0))
    for name, module in student.named_modules():  # non-zero B so the adapter changes the output
        if name.endswith("lora_B.default"):
            torch.nn.init.normal_(module.weight)
    ids = torch.randint(0, 20, (2, 6))
    with torch.no_grad(), student.disable_adapter():
        teacher_logits = student(input_ids=ids, logits_to_keep=1).logits[:, -1]
    loss = distillation_kl(teacher_logits + torch.randn_like(teacher_logits), student(input_ids=ids, logits_to_keep=1).logits[:, -1])
    loss.backward()
    with_grad = {n for n, p in student.named_parameters() if p.grad is not None and p.grad.abs().sum() > 0}
    assert with_grad and all("lora_" in n for n in with_grad)
    assert all(not p.requires_grad for n, p in student.named_parameters() if "lora_" not in n)


def test_e2urec_loss_weights_remembering_against_forgetting():
    ce, kl_r, kl_f = torch.tensor(0.5), torch.tensor(0.25), torch.tensor(2.0)
    assert e2urec_loss(ce, kl_r, kl_f, 0.6).item() == pytest.approx(0.6 * 0.75 + 0.4 * 2.0)
    assert e2urec_loss(ce, kl_r, kl_f, 1.0).item() == pytest.approx(0.75)
    assert e2urec_loss(ce, kl_r, kl_f, 0.0).item() == pytest.approx(2.0)
    with pytest.raises(ValueError, match="λ"):
        e2urec_loss(ce, kl_r, kl_f, 1.5)


def test_neggrad_descends_on_retained_and_ascends_on_forget():
    retained_ce = torch.tensor(0.5, requires_grad=True)
    forget_ce = torch.tensor(0.25, requires_grad=True)
    loss = neggrad_loss(retained_ce, forget_ce, ascent_weight=2.0)
    assert loss.item() == pytest.approx(0.0)
    loss.backward()
    assert retained_ce.grad.item() == 1.0 and forget_ce.grad.item() == -2.0


def test_flipped_swaps_yes_and_no():
    assert flipped(torch.tensor([1, 0, 0, 1])).tolist() == [0, 1, 1, 0]


def test_bad_teacher_loss_is_the_mixed_batch_mean():
    assert bad_teacher_loss(torch.tensor(0.2), torch.tensor(0.6)).item() == pytest.approx(0.4)


def test_answer_nats_is_the_true_answers_negative_log_probability():
    from llmrec.unlearn.losses import answer_nats

    logits = torch.tensor([[2.0, 0.0], [2.0, 0.0]])
    p_yes = 1 / (1 + math.exp(-2.0))
    assert answer_nats(logits, torch.tensor([1, 0])).tolist() == pytest.approx([-math.log(p_yes), -math.log(1 - p_yes)])


def test_calibrated_alpha_puts_the_teachers_mean_loss_at_the_target():
    """The calibrated forgetting teacher (llmrec's, issue 19): α solved so the forget samples' mean answer loss under
    the teacher is θ₀'s on never-seen users."""
    from llmrec.unlearn.losses import answer_nats, calibrated_alpha

    torch.manual_seed(0)
    labels = torch.randint(0, 2, (200,))
    true_column = torch.stack([labels == 1, labels == 0], dim=1).float()
    original = torch.randn(200, 2) + 1.0 * true_column  # fits the forget samples
    augmented = original + 0.2 * true_column  # over-remembers them a little more
    start = float(answer_nats(original, labels).mean())
    target = start + 0.05
    alpha = calibrated_alpha(original, augmented, labels, target)
    reached = float(answer_nats(forgetting_teacher_logits(original, augmented, alpha), labels).mean())
    assert alpha > 0 and reached == pytest.approx(target, abs=1e-6)
    assert calibrated_alpha(original, augmented, labels, start - 0.1) == 0.0  # θ₀ is at the target already
    assert calibrated_alpha(original, original, labels, target) == 1e4  # aug raised nothing: no α can get there
    with pytest.raises(ValueError, match=r"\[n, 2\]"):
        calibrated_alpha(original, augmented[:10], labels, target)
    with pytest.raises(ValueError, match="finite"):
        calibrated_alpha(original, augmented, labels, float("nan"))
