"""The example method: one file (llmrec/unlearn/methods/gradient_ascent.py) that runs on both families."""

import torch
import torch.nn.functional as F

from llmrec.classic.store import load_classic
from llmrec.classic.train import train_classic
from llmrec.classic.unlearn import ClassicUnlearnRecipe, prepare_work, run_classic_unlearning
from llmrec.data.samples import prepare_splits
from llmrec.unlearn.loop import LlmUnlearning
from llmrec.unlearn.methods.gradient_ascent import GradientAscentConfig, unlearn_gradient_ascent
from llmrec.unlearn.run import UnlearnRecipe
from tests.classic.conftest import classic_recipe
from tests.classic.test_unlearn import unlearn_recipe
from tests.unlearn.conftest import original_and_data, ranking_auc


def test_its_section_appears_in_every_recipe_that_can_run_it():
    assert isinstance(UnlearnRecipe().gradient_ascent, GradientAscentConfig)
    classic = ClassicUnlearnRecipe().gradient_ascent
    assert (classic.learning_rate, classic.batch_size) == (1e-2, 256)  # a classic model's schedule


def test_on_an_llm_it_unlearns_the_forget_ranking_without_retained_data(trained):
    original, data = original_and_data(trained)
    before = ranking_auc(original, data, data.forget)
    result = unlearn_gradient_ascent(LlmUnlearning(original, data),
                                     GradientAscentConfig(epochs=1.0, batch_size=8, learning_rate=1e-3))
    assert ranking_auc(result["student"], data, data.forget) < before - 0.1
    assert result["retained_samples_used"] == 0


def test_on_mf_it_raises_the_forget_loss(tmp_path):
    original = classic_recipe(tmp_path / "original", "train.epochs=30")
    train_classic(original)
    run_classic_unlearning(unlearn_recipe(original, tmp_path / "ga", "method=gradient_ascent",
                                          "gradient_ascent.epochs=30"))
    work = prepare_work(f"{original.output_dir}/model", prepare_splits(original.data, original.forget))
    unlearned = load_classic(tmp_path / "ga")[0]
    with torch.no_grad():
        before, after = (F.binary_cross_entropy_with_logits(m(work.forget.users, work.forget.items), work.forget.labels)
                         for m in (work.model, unlearned))
    assert after > before + 0.05
