import json

import pytest
import torch

from llmrec.classic.store import load_classic
from llmrec.config import LoraSettings
from llmrec.unlearn.loop import Schedule, StudentConfig, batch_ce, make_trainable, optimize
from tests.unlearn.conftest import original_and_data


def test_a_lora_student_trains_only_its_adapter(trained):
    original, data = original_and_data(trained)
    frozen = {name: p.detach().clone() for name, p in original.named_parameters()}
    model = make_trainable(original, "lora", LoraSettings(r=4))
    assert all("lora_" in name for name, p in model.named_parameters() if p.requires_grad)
    schedule = Schedule.for_config(data, StudentConfig(epochs=0.5, batch_size=8), with_retained=False)
    assert schedule.retained is None and schedule.retained_set is None
    optimize(model, schedule.steps, lambda step: batch_ce(model, next(schedule.forget), data.answer), 1e-2)
    assert not model.training
    base = model.get_base_model()
    for name, p in base.named_parameters():
        if "lora_" not in name:
            assert torch.equal(p, frozen[name.replace(".base_layer", "")]), name


def test_a_full_student_trains_every_weight(trained):
    original, data = original_and_data(trained)
    model = make_trainable(original, "full", LoraSettings())
    assert model is original and all(p.requires_grad for p in model.parameters())
    batch = next(iter(data.batches(data.forget, 8, steps=1)))
    before = batch_ce(model, batch, data.answer).item()
    optimize(model, 5, lambda step: batch_ce(model, batch, data.answer), 1e-3)
    assert batch_ce(model, batch, data.answer).item() < before


def error_lines(stderr: str) -> list[str]:
    """What the CLI said, without the progress bars (tqdm ends its bars with a carriage return, not a newline)."""
    return [line[line.index("llmrec:"):] for line in stderr.splitlines() if "llmrec:" in line]


def test_student_changed_tells_a_moved_student_from_the_original(trained):
    from llmrec.unlearn.loop import student_changed

    model_dir = f"{trained.output_dir}/model"
    original, data = original_and_data(trained)
    assert not student_changed(original, model_dir)  # a whole model, as loaded
    adapter = make_trainable(original, "lora", LoraSettings(r=4))
    assert not student_changed(adapter, model_dir)  # a fresh adapter: every lora_B is 0
    batch = next(iter(data.batches(data.forget, 8, steps=1)))
    optimize(adapter, 1, lambda step: batch_ce(adapter, batch, data.answer), 1e-3)
    assert student_changed(adapter, model_dir)
    whole, _ = original_and_data(trained)
    with torch.no_grad():
        next(whole.parameters())[0, 0] += 1e-3
    assert student_changed(whole, model_dir)


@pytest.mark.parametrize("settings", [
    ["method=e2urec", "e2urec.learning_rate=1e-50"],  # steps too small for float32: the LoRA B matrices stay 0
    ["method=finetune", "finetune.learning_rate=1e-30", "finetune.epochs=0.1", "finetune.batch_size=8"],  # full
])
def test_an_unlearning_run_that_changes_no_weight_fails_loudly_and_writes_nothing(trained, tmp_path, capsys, settings):
    """Issue 18: `epochs <= 0` gave weights identical to the original, plus a manifest saying users were forgotten."""
    from llmrec.cli import main
    from tests.unlearn.conftest import ORIGINAL_DATA, QUICK

    data = ORIGINAL_DATA
    out = tmp_path / "out"
    common = [f"model={trained.output_dir}/model", f"output_dir={out}", f"data.cache_dir={trained.data.cache_dir}",
              *data, *QUICK, "mixed_precision=no"]
    assert main(["unlearn", *common, *settings]) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "changed no trainable weight" in errors[0] and "nothing was forgotten" in errors[0]
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == []


def test_a_classic_unlearning_run_that_changes_no_weight_fails_loudly_and_writes_nothing(tmp_path, capsys):
    from llmrec.cli import main
    from llmrec.unlearn.loop import module_changed
    from tests.classic.conftest import CLASSIC_DATA

    data = [*CLASSIC_DATA, f"data.cache_dir={tmp_path / 'cache'}"]
    assert main(["train", "model.family=mf", f"output_dir={tmp_path / 'mf'}", *data, "model.dim=8", "train.epochs=2",
                 "threads=1"]) == 0
    assert json.loads((tmp_path / "mf" / "train_metrics.json").read_text())["threads"] == 1
    model = load_classic(tmp_path / "mf" / "model")[0]
    assert not module_changed(model, load_classic(tmp_path / "mf" / "model")[0])
    capsys.readouterr()
    common = ["unlearn", f"model={tmp_path / 'mf' / 'model'}", f"output_dir={tmp_path / 'out'}", *data,
              "method=neggrad", "neggrad.epochs=0.5"]
    assert main([*common, "neggrad.learning_rate=1e-30"]) == 2
    errors = error_lines(capsys.readouterr().err)
    assert len(errors) == 1 and "neggrad changed no trainable weight" in errors[0], errors
    assert not (tmp_path / "out").exists()
    assert main([*common, "threads=1"]) == 0  # the same run with its default learning rate forgets, and says how
    manifest = json.loads((tmp_path / "out" / "unlearning_manifest.json").read_text())
    assert manifest["threads"] == 1 and module_changed(load_classic(tmp_path / "out")[0], model)
