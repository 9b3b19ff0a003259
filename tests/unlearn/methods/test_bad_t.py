from llmrec.unlearn.methods.bad_t import BadTConfig, unlearn_bad_t
from llmrec.unlearn.loop import LlmUnlearning
from tests.unlearn.conftest import original_and_data, ranking_auc


def test_bad_t_learns_the_flipped_answers_on_the_forget_set(trained):
    original, data = original_and_data(trained)
    assert ranking_auc(original, data, data.forget) > 0.6  # the original remembers them
    student = unlearn_bad_t(LlmUnlearning(original, data), BadTConfig(epochs=3.0, batch_size=8, learning_rate=3e-3))["student"]
    assert ranking_auc(student, data, data.forget) < 0.5  # now it ranks them the wrong way round
