import torch

from llmrec.unlearn.bad_teacher import BadTeacherConfig, incompetent_teacher, unlearn_bad_teacher
from llmrec.unlearn.loop import Schedule
from tests.unlearn.conftest import answer_pairs, original_and_data


def kl_to(teacher_logits, student_logits) -> float:
    teacher = teacher_logits.log_softmax(-1)
    return (teacher.exp() * (teacher - student_logits.log_softmax(-1))).sum(-1).mean().item()


def test_bad_teacher_moves_forget_answers_towards_the_random_teacher_and_keeps_the_rest(trained):
    original, data = original_and_data(trained)
    config = BadTeacherConfig(epochs=1.0, batch_size=8, learning_rate=1e-3, incompetent_seed=5)
    retained = Schedule.for_config(data, config).retained_set
    random_forget, _ = answer_pairs(incompetent_teacher(original, seed=5), data, data.forget)
    original_forget, _ = answer_pairs(original, data, data.forget)
    original_retained, _ = answer_pairs(original, data, retained)

    student = unlearn_bad_teacher(original, data, config)["student"]
    student_forget, _ = answer_pairs(student, data, data.forget)
    student_retained, _ = answer_pairs(student, data, retained)
    assert kl_to(random_forget, student_forget) < 0.5 * kl_to(random_forget, original_forget)
    assert kl_to(original_retained, student_retained) < kl_to(original_forget, student_forget)


def test_the_incompetent_teacher_is_seeded_and_untrained(trained):
    original, _ = original_and_data(trained)
    a, b = incompetent_teacher(original, 1), incompetent_teacher(original, 1)
    for (name, pa), pb in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(pa, pb), name
    assert any(not torch.equal(pa, po) for pa, po in zip(a.parameters(), original.parameters()))
