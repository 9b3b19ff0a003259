from types import SimpleNamespace

import torch

from llmrec.bench.steps import (
    VARIANTS,
    StepRunner,
    _soft_cross_entropy,
    last_of_full_logits,
    reference_step_loss,
    with_answer,
)
from llmrec.config import LoraSettings
from llmrec.llm.backbone import AnswerTokens, add_lora
from llmrec.llm.scoring import answer_logits
from llmrec.unlearn.loop import LlmUnlearning
from llmrec.unlearn.methods.e2urec import E2URecConfig, Teachers
from tests.llm.test_scoring import tiny_llama

ANSWER = AnswerTokens(yes_id=5, no_id=6, yes_text="Yes", no_text="No")


def batch(rows: int, width: int, seed: int) -> dict:
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(7, 50, (rows, width), generator=generator)
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # one left-padded row
    ids[0, :2] = 0
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([1, 0, 1][:rows]),
            "row": torch.arange(rows)}


def test_with_answer_appends_the_label_token_and_labels_only_it():
    forced = with_answer(batch(3, 5, 0), ANSWER)
    assert forced["input_ids"][:, -1].tolist() == [5, 6, 5]
    assert (forced["lm_labels"][:, :-1] == -100).all() and forced["lm_labels"][:, -1].tolist() == [5, 6, 5]
    assert forced["attention_mask"][:, -1].tolist() == [1, 1, 1]


def test_soft_cross_entropy_is_the_reference_formula():
    teacher, student = torch.tensor([[0.0, 1.0]]), torch.tensor([[1.0, 0.0]])
    p, q = teacher.softmax(-1), student.softmax(-1)
    assert _soft_cross_entropy(teacher, student).item() == torch.tensor(-(p * q.log()).sum().item()).item()


def test_full_logits_give_the_same_answer_logits_as_logits_to_keep():
    model = tiny_llama().eval()
    b = batch(3, 6, 1)
    assert torch.allclose(last_of_full_logits(model, b["input_ids"], b["attention_mask"]),
                          answer_logits(model, b["input_ids"], b["attention_mask"]), atol=1e-5)


def test_the_reference_loss_is_answer_ce_plus_the_teachers_full_vocabulary_cross_entropy():
    """A fresh LoRA student equals θ₀, so with λ = 1 the reference loss is CE(answer) + H(θ₀) on the retained batch,
    both read at the answer position of the teacher-forced prompt + answer input."""
    original = tiny_llama().eval()
    student = add_lora(tiny_llama().eval(), LoraSettings(r=2, alpha=4, dropout=0.0))
    config = E2URecConfig(alpha=0.0, remember_weight=1.0)
    forget, retained = batch(3, 6, 2), batch(3, 6, 3)
    reference = reference_step_loss(student, original, original, forget, retained, config, ANSWER)
    logits = answer_logits(original, retained["input_ids"], retained["attention_mask"])
    ce = torch.nn.functional.cross_entropy(logits, torch.where(retained["labels"].bool(), 5, 6))
    entropy = -(logits.softmax(-1) * torch.log(logits.softmax(-1) + 1e-12)).sum(-1).mean()
    assert torch.allclose(reference, ce + entropy, atol=1e-4)


def test_every_variant_takes_an_optimizer_step_on_the_lora_weights_only():
    original = tiny_llama().eval()
    for p in original.parameters():
        p.requires_grad_(False)
    student = add_lora(tiny_llama().eval(), LoraSettings(r=2, alpha=4, dropout=0.0))
    forget, retained = batch(3, 6, 4), batch(3, 6, 5)
    teachers = Teachers(LlmUnlearning(original, SimpleNamespace(answer=ANSWER)), student, None, alpha=2.0)
    teachers.forget_table = torch.zeros(3, 2)
    teachers.retained_table = torch.zeros(3, 2)
    runner = StepRunner(student, original, original, teachers, E2URecConfig(learning_rate=1e-2), ANSWER)
    base = {n: p.clone() for n, p in student.named_parameters() if "lora" not in n}
    for variant in VARIANTS:
        before = {n: p.clone() for n, p in student.named_parameters() if "lora_B" in n}
        assert torch.isfinite(torch.tensor(runner.step(variant, forget, retained)))
        assert any(not torch.equal(before[n], p) for n, p in student.named_parameters() if "lora_B" in n)
    assert all(torch.equal(base[n], p) for n, p in student.named_parameters() if "lora" not in n)
