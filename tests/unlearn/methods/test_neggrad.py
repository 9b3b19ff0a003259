from llmrec.unlearn.methods.neggrad import NegGradConfig, unlearn_neggrad
from llmrec.unlearn.loop import LlmUnlearning
from tests.unlearn.conftest import original_and_data, ranking_auc


def test_neggrad_unlearns_the_forget_ranking(trained):
    original, data = original_and_data(trained)
    before = ranking_auc(original, data, data.forget)
    result = unlearn_neggrad(LlmUnlearning(original, data), NegGradConfig(epochs=1.0, batch_size=8, learning_rate=1e-3))
    assert ranking_auc(result["student"], data, data.forget) < before - 0.1
    assert result["steps"]["train"] == -(-len(data.forget) // 8)
    assert result["retained_samples_used"] == result["steps"]["train"] * 8
