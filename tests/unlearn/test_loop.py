import torch

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
