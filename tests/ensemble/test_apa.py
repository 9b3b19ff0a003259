"""APA ensembles (`llmrec.ensemble.apa`): the aggregation maths on their own, what the adapters train on, what is
checked at load. Unlearning from them: tests/unlearn/methods/test_apa.py."""

import json
import shutil

import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from llmrec.data.samples import prepare_splits
from llmrec.ensemble.apa import ApaEnsemble, adaptive_weights, catalogue_corpus, centroid, weighted_adapters
from llmrec.errors import LlmrecError
from llmrec.llm.scoring import answer_logits
from llmrec.recommender import load_llm_module
from tests.data.holdout_checks import assert_no_holdout_sample, sample_ids


def test_adaptive_weights_are_a_softmax_of_cosine_over_temperature():
    hidden = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    centroids = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    weights = adaptive_weights(hidden, centroids, temperature=0.5)
    # sample 0: cos = (1, 1/√2); sample 1: cos = (0, 1/√2), each divided by 0.5 before the softmax
    expected = torch.tensor([[2.0, 2 ** 0.5], [0.0, 2 ** 0.5]]).softmax(-1)
    torch.testing.assert_close(weights, expected)
    assert torch.allclose(weights.sum(-1), torch.ones(2))
    sharp = adaptive_weights(hidden, centroids, temperature=1e-3)  # a small temperature picks the nearest shard
    assert sharp.argmax(-1).tolist() == [0, 1] and sharp.max(-1).values.min() > 0.999


def test_centroid_is_the_mean_of_unit_rows():
    torch.testing.assert_close(centroid(torch.tensor([[2.0, 0.0], [0.0, 5.0]])), torch.tensor([0.5, 0.5]))


def two_adapter_model():
    """A random tiny Llama with two LoRA adapters whose B matrices are non-zero (peft starts B at 0)."""
    torch.manual_seed(0)
    base = LlamaForCausalLM(LlamaConfig(vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                                        num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=32))
    config = dict(r=4, lora_alpha=8, lora_dropout=0.0, target_modules=["q_proj", "v_proj", "up_proj"])
    model = get_peft_model(base, LoraConfig(**config), adapter_name="one")
    model.add_adapter("two", LoraConfig(**config))
    for name, parameter in model.named_parameters():
        if "lora_" in name:
            parameter.data.normal_(0, 0.3)
    return model.eval()


def test_per_sample_weighted_adapters_equal_merging_each_samples_weights():
    """APA's parameter-level aggregation: the hooked forward equals, sample by sample, one adapter built as
    Σ w_k ΔW_k by peft (add_weighted_adapter, cat) and run on that sample alone."""
    model = two_adapter_model()
    ids, mask = torch.randint(0, 50, (3, 7)), torch.ones(3, 7, dtype=torch.long)
    weights = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]])
    with torch.no_grad(), weighted_adapters(model, ["one", "two"], weights):
        hooked = answer_logits(model, ids, mask)
    assert model.active_adapters == ["one"]  # restored on exit
    for i in range(3):
        model.add_weighted_adapter(["one", "two"], weights[i].tolist(), f"w{i}", combination_type="cat")
        model.set_adapter(f"w{i}")
        with torch.no_grad():
            torch.testing.assert_close(hooked[i:i + 1], answer_logits(model, ids[i:i + 1], mask[i:i + 1]))
    with torch.no_grad():  # and it is not the base alone: the adapters change the answer
        with model.disable_adapter():
            assert not torch.allclose(hooked, answer_logits(model, ids, mask), atol=1e-3)


@pytest.fixture
def ensemble(apa_ensemble):
    return apa_ensemble[0]


def test_no_adapter_holds_or_trains_on_a_holdout_user(apa_ensemble):
    ensemble, trained_on = apa_ensemble
    splits = prepare_splits(ensemble.data, ensemble.forget)
    assert len(trained_on) == 3
    assert_no_holdout_sample(trained_on, splits)
    assert set().union(*map(sample_ids, trained_on)) == sample_ids(splits["train"])
    spec = json.load(open(f"{ensemble.output_dir}/model/apa.json"))
    groups = [set(s["users"]) for s in spec["shards"]]
    assert sum(map(len, groups)) == len(set().union(*groups)) == len(set(splits["train"]["user_id"]))
    assert max(map(len, groups)) <= -(-len(set(splits["train"]["user_id"])) // 3)  # balanced k-means capacity


def test_the_base_corpus_holds_no_user_data(ensemble):
    """The tiny base and its tokenizer learn from catalogue prompts only: no user's history or profile."""
    corpus = catalogue_corpus(ensemble, 2)
    assert len(corpus) == 2 * ensemble.data.synthetic.num_items
    assert corpus == catalogue_corpus(ensemble, 2)  # seeded
    assert not any("year-old" in text for text in corpus)  # no profile line


@pytest.mark.parametrize("aggregation", ["adaptive", "merge", "mean"])
def test_each_aggregation_scores_and_mean_is_the_adapters_mean(ensemble, aggregation):
    model_dir = f"{ensemble.output_dir}/model"
    model = ApaEnsemble.load(model_dir, aggregation=aggregation)
    ids = torch.tensor([[5, 6, 7], [8, 9, 10]])
    pair = [model.answer.yes_id, model.answer.no_id]
    with torch.no_grad():
        probs = model(input_ids=ids).logits[:, -1, pair].softmax(-1)
        singles = []
        for name in model.names:
            model.model.set_adapter(name)
            singles.append(answer_logits(model.model, ids, torch.ones_like(ids))[:, pair].softmax(-1))
    assert probs.shape == (2, 2) and torch.isfinite(probs).all()
    if aggregation == "mean":
        torch.testing.assert_close(probs, torch.stack(singles).mean(0))


def test_the_default_aggregation_is_the_recorded_one(ensemble):
    model = load_llm_module(f"{ensemble.output_dir}/model")
    assert isinstance(model, ApaEnsemble) and model.aggregation == "adaptive" and model.centroids.shape[0] == 3


def test_a_changed_adapter_or_base_is_refused_at_load(ensemble, tmp_path):
    for part in ("adapters/adapter-1/adapter_config.json", "base/config.json"):
        copy = tmp_path / part.split("/")[0]
        shutil.copytree(f"{ensemble.output_dir}/model", copy)
        with open(copy / part, "a") as f:
            f.write(" ")
        with pytest.raises(LlmrecError, match="changed since the ensemble was written"):
            ApaEnsemble.load(copy)


@pytest.mark.parametrize("overrides, message", [
    (["train.shards=1"], "train.partition=apa trains one adapter per shard: set train.shards to 2 or more"),
    (["train.shards=3", "model.tiny.architecture=t5"], "train.partition=apa needs a decoder-only model"),
])
def test_an_apa_recipe_it_cannot_train_is_one_line_and_writes_nothing(tmp_path, capsys, overrides, message):
    from llmrec.cli import main
    from tests.conftest import SMALL_OVERRIDES

    code = main(["train", f"output_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}",
                 *SMALL_OVERRIDES, "train.partition=apa", *overrides])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and message in err[0]
    assert not (tmp_path / "run" / "model").exists() and not (tmp_path / "run" / "base").exists()


def test_an_adapter_kept_apart_loads_on_the_base_it_names_and_refuses_another(ensemble, tmp_path):
    """model.lora.merge=false: model/ is the peft adapter alone; its card names the base by path and hash."""
    adapter = f"{ensemble.output_dir}/shards/shard-0/model"
    model = load_llm_module(adapter)
    ids = torch.tensor([[5, 6, 7]])
    apa = ApaEnsemble.load(f"{ensemble.output_dir}/model", aggregation="mean")
    apa.model.set_adapter("shard-0")
    with torch.no_grad():
        torch.testing.assert_close(answer_logits(model, ids, torch.ones_like(ids)),
                                   answer_logits(apa.model, ids, torch.ones_like(ids)))
    other = tmp_path / "other"
    shutil.copytree(f"{ensemble.output_dir}/base", other)
    (other / "config.json").write_text((other / "config.json").read_text() + " ")
    with pytest.raises(LlmrecError, match="is not the one it was trained on"):
        load_llm_module(adapter, base_model=str(other))
