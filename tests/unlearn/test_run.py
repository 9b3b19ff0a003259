import json

import pytest
import torch

from llmrec.llm.backbone import load_recommender
from llmrec.unlearn.registry import METHOD_MODULES, get_method
from llmrec.unlearn.run import UnlearnRecipe, directory_hash, run_unlearning
from tests.unlearn.conftest import unlearn_recipe

BASELINES = ["finetune", "neggrad", "bad_t", "bad_teacher"]


def test_every_registered_method_has_a_recipe_section():
    for name in METHOD_MODULES:
        get_method(name)
        assert name in UnlearnRecipe.__dataclass_fields__


@pytest.mark.parametrize("method", BASELINES)
@pytest.mark.parametrize("finetune", ["full", "lora"])
def test_a_baseline_writes_a_recommender_and_leaves_the_original_alone(trained, tmp_path, method, finetune):
    model_dir = f"{trained.output_dir}/model"
    before = directory_hash(model_dir)
    out = tmp_path / "out"
    manifest = run_unlearning(unlearn_recipe(trained, out, f"method={method}", f"{method}.epochs=0.3",
                                             f"{method}.batch_size=8", f"{method}.finetune={finetune}"))
    assert directory_hash(model_dir) == before
    assert manifest["method"] == method and manifest["original_model_sha256"] == before
    assert json.loads((out / "unlearning_manifest.json").read_text())["steps"]["train"] > 0
    assert (out / "adapter_config.json").is_file() == (finetune == "lora")
    assert (manifest["trainable_percent"] == 100.0) == (finetune == "full")

    unlearned, original = load_recommender(out), load_recommender(model_dir)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        assert not torch.allclose(unlearned(input_ids=ids).logits, original(input_ids=ids).logits)
