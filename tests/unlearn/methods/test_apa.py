"""APA unlearning (`llmrec.unlearn.methods.apa`) is exact: each retrained adapter equals, bit for bit, an adapter
trained from scratch on its shard without the forgotten users; everything else is byte-identical to the original."""

import json
import os
from dataclasses import replace

import pytest
import torch
from safetensors.torch import load_file

from llmrec.cli import main
from llmrec.data.samples import prepare_splits
from llmrec.ensemble.apa import centroid, representations
from llmrec.llm import train as single
from llmrec.llm.backbone import load_model, load_tokenizer
from llmrec.store import directory_hash, model_hash
from llmrec.unlearn.run import run_unlearning
from tests.unlearn.conftest import unlearn_recipe


@pytest.fixture
def ensemble(apa_ensemble):
    return apa_ensemble[0]


def scratch_adapter(ensemble, base, users: list[str], folder) -> dict:
    """An adapter trained from scratch, written out by hand from the ensemble's recipe (not through ensemble.apa):
    LoRA on the base, kept apart, on `users` only, the same seed."""
    folder.mkdir(parents=True)
    (folder / "users.txt").write_text("\n".join(users) + "\n")
    lora = replace(ensemble.model.lora, merge=False,
                   target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    recipe = replace(ensemble, output_dir=str(folder),
                     model=replace(ensemble.model, name_or_path=str(base), finetune="lora", lora=lora),
                     train=replace(ensemble.train, shards=1, partition="sisa", only_users=str(folder / "users.txt")))
    single.train(recipe)
    return load_file(folder / "model" / "adapter_model.safetensors")


def test_unlearning_retrains_exactly_the_affected_adapters_to_their_from_scratch_weights(ensemble, tmp_path):
    model_dir = f"{ensemble.output_dir}/model"
    spec = json.load(open(f"{model_dir}/apa.json"))
    forgotten = spec["shards"][1]["users"][:2]
    (tmp_path / "forget.txt").write_text("\n".join(forgotten) + "\n")
    before = model_hash(model_dir)
    manifest = run_unlearning(unlearn_recipe(ensemble, tmp_path / "out", "method=apa",
                                             f"forget.users={tmp_path / 'forget.txt'}"))
    assert model_hash(model_dir) == before  # the original is never modified
    assert manifest["steps"] == {"shards_retrained": 1, "shards_total": 3, "shards_dropped": 0, "retrained": [1]}
    new = json.load(open(tmp_path / "out" / "apa.json"))
    keep = spec["shards"][1]["users"][2:]
    assert new["shards"][1]["users"] == keep and new["retrained_shards"] == [1]
    assert not set(forgotten) & set(sum((s["users"] for s in new["shards"]), []))

    scratch = scratch_adapter(ensemble, f"{model_dir}/base", keep, tmp_path / "scratch")
    retrained = load_file(tmp_path / "out" / "adapters" / "adapter-1" / "adapter_model.safetensors")
    original = load_file(f"{model_dir}/adapters/adapter-1/adapter_model.safetensors")
    assert scratch.keys() == retrained.keys()
    assert all(torch.equal(scratch[k], retrained[k]) for k in scratch)  # bit for bit
    assert not all(torch.equal(original[k], retrained[k]) for k in original)  # and it did change

    for k in (0, 2):  # untouched adapters: the same bytes, in files of their own
        assert directory_hash(tmp_path / "out" / "adapters" / f"adapter-{k}") == spec["shards"][k]["sha256"]
        assert new["shards"][k]["centroid"] == spec["shards"][k]["centroid"]
        assert not os.path.samefile(f"{model_dir}/adapters/adapter-{k}/adapter_model.safetensors",
                                    tmp_path / "out" / "adapters" / f"adapter-{k}" / "adapter_model.safetensors")
    assert directory_hash(tmp_path / "out" / "base") == spec["base_sha256"]

    # the retrained shard's centroid is that of its remaining users' samples
    train = prepare_splits(ensemble.data, ensemble.forget)["train"]
    rows = [i for i, u in enumerate(train["user_id"]) if u in set(keep)]
    vectors = representations(load_model(f"{model_dir}/base"), load_tokenizer(f"{model_dir}/base"),
                              train.select(rows), ensemble)
    torch.testing.assert_close(torch.tensor(new["shards"][1]["centroid"]), centroid(vectors))
    assert not (tmp_path / "out" / "work").exists()


def test_a_shard_whose_users_are_all_forgotten_is_dropped(ensemble, tmp_path):
    spec = json.load(open(f"{ensemble.output_dir}/model/apa.json"))
    (tmp_path / "forget.txt").write_text("\n".join(spec["shards"][2]["users"]) + "\n")
    manifest = run_unlearning(unlearn_recipe(ensemble, tmp_path / "out", "method=apa",
                                             f"forget.users={tmp_path / 'forget.txt'}"))
    assert manifest["steps"]["shards_dropped"] == 1 and manifest["steps"]["shards_retrained"] == 0
    new = json.load(open(tmp_path / "out" / "apa.json"))
    assert len(new["shards"]) == 2 and new["dropped_shards"] == [2]
    assert [s["sha256"] for s in new["shards"]] == [s["sha256"] for s in spec["shards"][:2]]


def test_apa_on_a_model_that_is_no_apa_ensemble_is_one_line_and_writes_nothing(sisa_ensemble, tmp_path, capsys):
    ensemble = sisa_ensemble[0]
    code = main(["unlearn", f"model={ensemble.output_dir}/model", "method=apa", f"output_dir={tmp_path / 'out'}",
                 *[f"{k}={v}" for k, v in (("data.cache_dir", ensemble.data.cache_dir),)],
                 "data.synthetic.num_users=60", "data.synthetic.num_items=50", "data.synthetic.ratings_per_user=20",
                 f"data.holdout={ensemble.data.holdout}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "needs an APA ensemble" in err[0] and "apa.json" in err[0]
    assert not (tmp_path / "out").exists()
