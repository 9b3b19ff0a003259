import pytest
import torch

from llmrec.errors import ConfigError
from llmrec.unlearn.loop import LlmUnlearning, Schedule, mixed_pool
from llmrec.unlearn.methods.bad_teacher import BadTeacherConfig, unlearn_bad_teacher
from tests.unlearn.conftest import answer_pairs, original_and_data


def kl_to(teacher_logits, student_logits) -> float:
    teacher = teacher_logits.log_softmax(-1)
    return (teacher.exp() * (teacher - student_logits.log_softmax(-1))).sum(-1).mean().item()


def test_bad_teacher_moves_forget_answers_towards_the_random_teacher_and_keeps_the_rest(trained):
    original, data = original_and_data(trained)
    config = BadTeacherConfig(epochs=1.0, batch_size=8, learning_rate=1e-3, incompetent_seed=5)
    retained = Schedule.for_config(data, config).retained_set
    random_forget, _ = answer_pairs(LlmUnlearning(original, data).incompetent(5), data, data.forget)
    original_forget, _ = answer_pairs(original, data, data.forget)
    original_retained, _ = answer_pairs(original, data, retained)

    student = unlearn_bad_teacher(LlmUnlearning(original, data), config)["student"]
    student_forget, _ = answer_pairs(student, data, data.forget)
    student_retained, _ = answer_pairs(student, data, retained)
    assert kl_to(random_forget, student_forget) < 0.5 * kl_to(random_forget, original_forget)
    assert kl_to(original_retained, student_retained) < kl_to(original_forget, student_forget)


def test_the_incompetent_teacher_is_seeded_and_untrained(trained):
    original, _ = original_and_data(trained)
    a, b = LlmUnlearning(original, None).incompetent(1), LlmUnlearning(original, None).incompetent(1)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, po) for pa, po in zip(a.parameters(), original.parameters()))


def test_retain_fraction_distils_from_the_papers_30_percent_subset_mixed_with_the_forget_set(trained):
    """The reference samples int(0.3·|retained|) retained samples and shuffles them together with the forget set
    (bad-teaching-unlearning, CIFARSuper20_Rocket_Unlearn.ipynb; UnLearningData in dataset.py)."""
    original, data = original_and_data(trained)
    pool, subset = mixed_pool(data, 0.3)
    forgets = len(data.forget)
    assert len(subset) == int(0.3 * len(data.retained_pool))
    assert list(pool["input_ids"]) == list(data.forget["input_ids"]) + list(subset["input_ids"])  # forget rows first, then the subset
    assert list(pool["row"]) == list(range(forgets + len(subset)))

    config = BadTeacherConfig(epochs=1.0, batch_size=8, learning_rate=1e-3, incompetent_seed=5, retain_fraction=0.3)
    random_forget, _ = answer_pairs(LlmUnlearning(original, data).incompetent(5), data, data.forget)
    original_forget, _ = answer_pairs(original, data, data.forget)
    original_subset, _ = answer_pairs(original, data, subset)
    batches = list(data.batches(pool, 8, -(-len(pool) // 8)))
    assert any(0 < (b["row"] < forgets).sum() < len(b["row"]) for b in batches)  # batches mix the two kinds

    result = unlearn_bad_teacher(LlmUnlearning(original, data), config)
    assert result["retained_samples_used"] == len(subset)
    assert result["steps"]["train"] == -(-(forgets + len(subset)) // 8)  # one pass over forget ∪ subset
    student_forget, _ = answer_pairs(result["student"], data, data.forget)
    student_subset, _ = answer_pairs(result["student"], data, subset)
    assert kl_to(random_forget, student_forget) < 0.5 * kl_to(random_forget, original_forget)
    assert kl_to(original_subset, student_subset) < kl_to(original_forget, student_forget)


@pytest.mark.parametrize("fraction", [0.0, 1.5])
def test_retain_fraction_outside_0_1_is_a_config_error(trained, fraction):
    original, data = original_and_data(trained)
    with pytest.raises(ConfigError, match=r"bad_teacher.retain_fraction must be in \(0, 1\]"):
        unlearn_bad_teacher(LlmUnlearning(original, data), BadTeacherConfig(retain_fraction=fraction))
