"""QLoRA: the frozen original in 4-bit NF4 under E2URec and the LoRA baselines."""

import importlib.util

import pytest
import torch

from llmrec.config import load_recipe
from llmrec.errors import ConfigError
from llmrec.llm.backbone import load_model
from llmrec.recommender import load_recommender
from llmrec.store import read_model_card
from llmrec.llm.train import train
from llmrec.store import directory_hash
from llmrec.unlearn.run import run_unlearning
from tests.conftest import SMALL_OVERRIDES
from tests.unlearn.conftest import answer_pairs, original_and_data, unlearn_recipe


@pytest.mark.parametrize("overrides, message", [
    (["quant=4bit"], "e2urec.augment.finetune=lora"),
    (["quant=4bit", "method=neggrad"], "neggrad.finetune=lora"),
    (["quant=4bit", "method=retrain"], "rebuilds whole models"),
    (["quant=4bit", "e2urec.augment.finetune=lora", "merge=true"], "re-quantised"),
    (["quant=8bit"], "quant: expected one of none | 4bit"),
])
def test_4bit_needs_adapters_everywhere(trained, tmp_path, overrides, message):
    with pytest.raises(ConfigError, match=message):
        run_unlearning(unlearn_recipe(trained, tmp_path / "out", *overrides))
    assert not (tmp_path / "out").exists()


@pytest.mark.bnb
@pytest.mark.skipif(importlib.util.find_spec("bitsandbytes") is None, reason="needs bitsandbytes>=0.47")
def test_e2urec_on_a_4bit_original_saves_an_adapter_scored_on_the_4bit_original(tmp_path):
    # bitsandbytes' CPU 4-bit kernels need widths of at least 64 (the shared tiny original is 32 wide)
    trained = load_recipe(None, [f"output_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}",
                                 *SMALL_OVERRIDES, "model.tiny.hidden_size=64", "model.tiny.intermediate_size=128",
                                 "train.epochs=4", "train.learning_rate=3e-3"])
    train(trained)
    model_dir = f"{trained.output_dir}/model"
    before = directory_hash(model_dir)
    run_unlearning(unlearn_recipe(trained, tmp_path / "out", "quant=4bit", "e2urec.augment.finetune=lora"))
    assert directory_hash(model_dir) == before
    assert read_model_card(tmp_path / "out")["quant"] == "4bit"

    student = load_recommender(tmp_path / "out").module
    assert type(student.base_model.model.model.layers[0].self_attn.k_proj).__name__ == "Linear4bit"
    _, data = original_and_data(trained)
    with torch.no_grad():
        adapted, _ = answer_pairs(student, data, data.forget)
        with student.disable_adapter():
            plain, _ = answer_pairs(student, data, data.forget)
    assert not torch.allclose(adapted, plain)  # the adapter trained on 4-bit weights changes the answers

    footprint = {quant: load_model(model_dir, dtype=torch.bfloat16, quant=quant).get_memory_footprint()
                 for quant in ("none", "4bit")}
    assert footprint["4bit"] < footprint["none"]
