from llmrec.unlearn.methods.finetune import FinetuneConfig, unlearn_finetune
from llmrec.unlearn.loop import Schedule
from llmrec.unlearn.loop import LlmUnlearning
from tests.unlearn.conftest import mean_answer_ce, original_and_data


def test_finetune_fits_the_retained_samples_it_draws(trained):
    original, data = original_and_data(trained)
    config = FinetuneConfig(epochs=1.0, batch_size=8, learning_rate=1e-3)
    retained = Schedule.for_config(data, config).retained_set  # the same seeded draw the method makes
    before = mean_answer_ce(original, data, retained)
    result = unlearn_finetune(LlmUnlearning(original, data), config)
    assert mean_answer_ce(result["student"], data, retained) < before
    assert result["retained_samples_used"] == len(retained)
