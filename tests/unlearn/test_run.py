import json

import pytest
import torch

from llmrec.recommender import load_recommender
from llmrec.unlearn.registry import method_names
from llmrec.unlearn.run import UnlearnRecipe, run_unlearning
from llmrec.store import directory_hash
from tests.unlearn.conftest import unlearn_recipe

BASELINES = ["finetune", "neggrad", "bad_t", "bad_teacher"]


def test_every_registered_method_has_a_recipe_section():
    from llmrec.classic.unlearn import ClassicUnlearnRecipe

    from llmrec.unlearn.registry import METHODS

    assert {"retrain", "finetune", "neggrad", "bad_t", "bad_teacher", "e2urec", "sisa"} <= set(method_names("llm"))
    for family, recipe in (("llm", UnlearnRecipe), ("mf", ClassicUnlearnRecipe)):
        for name in method_names(family):  # a method with nothing to set (config None) has no section
            assert (name in recipe.__dataclass_fields__) == (METHODS[name][family].config is not None), name


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
    assert unlearned.family == original.family == "llm"
    assert unlearned.parameter_counts()[1] == original.parameter_counts()[1] + (  # an adapter adds its own weights
        manifest["trainable_parameters"] if finetune == "lora" else 0)
    ids = torch.tensor([[5, 6, 7]])
    with torch.no_grad():
        assert not torch.allclose(unlearned.module(input_ids=ids).logits, original.module(input_ids=ids).logits)


def _copy_original(trained, root):
    import shutil

    return shutil.copytree(f"{trained.output_dir}/model", root / "X" / "model")


@pytest.mark.parametrize("output", ["X", "X/model", "X/model/out"])
def test_an_output_dir_on_above_or_inside_the_original_is_refused_before_anything_is_written(
        trained, tmp_path, capsys, output):
    """Issue 18: `model=X/model output_dir=X` deleted X/model; `output_dir=X/model` replaced it, exit 0."""
    from llmrec.cli import main
    from tests.conftest import SMALL_OVERRIDES
    from tests.unlearn.conftest import QUICK

    original = _copy_original(trained, tmp_path)
    before = directory_hash(original)
    data = [o for o in SMALL_OVERRIDES if o.startswith("data.")]
    code = main(["unlearn", f"model={original}", f"output_dir={tmp_path / output}",
                 f"data.cache_dir={tmp_path / 'cache'}", *data, *QUICK])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "the original model" in err, err
    assert directory_hash(original) == before
    assert sorted(p.name for p in (tmp_path / "X").iterdir()) == ["model"]  # no temp or old sibling either
    assert not (tmp_path / "cache").exists()  # refused before the data cache was built


def test_a_user_file_the_run_reads_is_not_deleted_with_the_output_dir(trained, tmp_path):
    from llmrec.errors import LlmrecError

    users = tmp_path / "out" / "forget.txt"
    users.parent.mkdir()
    users.write_text("1\n")
    with pytest.raises(LlmrecError, match="contains forget.users"):
        run_unlearning(unlearn_recipe(trained, tmp_path / "out", f"forget.users={users}"))
    assert users.read_text() == "1\n"


def test_an_original_changed_during_the_final_rename_fails_loudly(trained, tmp_path, monkeypatch):
    """The hash was only checked before the output was swapped into place; it is checked after, too."""
    from contextlib import contextmanager

    import llmrec.unlearn.run as run_module
    from llmrec.errors import LlmrecError

    original = _copy_original(trained, tmp_path)
    real = run_module.atomic_dir

    @contextmanager
    def swap_then_touch(target):
        with real(target) as tmp:
            yield tmp
        with open(original / "config.json", "a") as f:  # something edits the original as the output lands
            f.write(" ")

    monkeypatch.setattr(run_module, "atomic_dir", swap_then_touch)
    recipe = unlearn_recipe(trained, tmp_path / "out", f"model={original}", "method=finetune", "finetune.epochs=0.3",
                            "finetune.batch_size=8")
    with pytest.raises(LlmrecError, match=r"changed while .* was put in place") as failed:
        run_unlearning(recipe)
    assert "\n" not in str(failed.value)
