import json
import shutil
from dataclasses import replace

import pytest
import torch

from llmrec.classic.methods.unlearn_als import prediction_gap
from llmrec.classic.store import load_classic
from llmrec.classic.train import train_classic
from llmrec.classic.unlearn import ClassicUnlearnRecipe, run_classic_unlearning
from llmrec.cli import main
from llmrec.config import load_recipe
from llmrec.data.samples import prepare_splits
from llmrec.errors import ConfigError
from llmrec.store import directory_hash

ALS = ["train.optimizer=als", "train.als.reg=5", "model.dim=8"]


def synthetic_args(original) -> list[str]:
    """The overrides that give an unlearning run the synthetic data `original` was trained on."""
    return [f"data.synthetic.{k}={v}" for k, v in vars(original.data.synthetic).items()]


def unlearn_recipe(original, output, *overrides):
    data = [f"data.cache_dir={original.data.cache_dir}", *synthetic_args(original)]
    return load_recipe(None, [f"model={original.output_dir}/model", f"output_dir={output}", *data, *overrides],
                       cls=ClassicUnlearnRecipe)


def test_unlearn_als_converges_to_the_als_retrain(classic_factory, tmp_path):
    original = classic_factory(*ALS, "train.epochs=60")
    train_classic(original)
    reference = classic_factory(*ALS, "train.epochs=400", "train.train_on=retained", f"output_dir={tmp_path / 'ref'}")
    train_classic(reference)
    recipe = unlearn_recipe(original, tmp_path / "als", "method=unlearn_als", "unlearn_als.sweeps=400",
                            f"unlearn_als.reference={tmp_path / 'ref' / 'model'}")
    manifest = run_classic_unlearning(recipe)
    history = manifest["steps"]["history"]
    assert history[-1]["forget_gap"]["max"] < 1e-4 and history[-1]["valid_gap"]["max"] < 1e-4
    assert history[0]["forget_gap"]["max"] > 10 * history[-1]["forget_gap"]["max"]  # it converges, not starts, there
    splits = prepare_splits(recipe.data, recipe.forget)
    model, index, _ = load_classic(tmp_path / "als")
    retrained, _, _ = load_classic(tmp_path / "ref" / "model")
    assert prediction_gap(model, retrained, index.encode(splits["test"]))["max"] < 1e-4


def test_ifru_moves_lightgcn_toward_the_retrain_and_leaves_the_original_alone(classic_factory, tmp_path):
    original = classic_factory("model.family=lightgcn")
    train_classic(original)
    reference = classic_factory("model.family=lightgcn", "train.train_on=retained", f"output_dir={tmp_path / 'ref'}")
    train_classic(reference)
    before = directory_hash(tmp_path / "classic" / "model")
    # this small, briefly trained model is far from convex: a strong damping keeps the Newton step sensible
    manifest = run_classic_unlearning(unlearn_recipe(original, tmp_path / "ifru", "method=ifru", "ifru.damping=0.1"))
    assert directory_hash(tmp_path / "classic" / "model") == before
    assert manifest["method"] == "ifru" and manifest["counts"]["forget_users"] > 0
    assert 0 < manifest["trainable_parameters"] < sum(p.numel() for p in load_classic(tmp_path / "ifru")[0].parameters())

    splits = prepare_splits(original.data, original.forget)
    forget = load_classic(tmp_path / "ifru")[1].encode(splits["forget"])
    models = {name: load_classic(path)[0] for name, path in
              (("original", tmp_path / "classic" / "model"), ("ifru", tmp_path / "ifru"),
               ("retrain", tmp_path / "ref" / "model"))}
    gap = {name: prediction_gap(models[name], models["retrain"], forget)["mean"] for name in ("original", "ifru")}
    assert gap["ifru"] < 0.75 * gap["original"]
    card = json.loads((tmp_path / "ifru" / "llmrec_model.json").read_text())
    assert card["unlearned_from"] == str(tmp_path / "classic" / "model")
    assert not torch.equal(models["ifru"].edges, models["original"].edges)  # the forgotten edges left the graph


def test_retrain_method_reproduces_the_reference_training(classic_factory, tmp_path):
    original = classic_factory()
    train_classic(original)
    train_classic(classic_factory("train.train_on=retained", f"output_dir={tmp_path / 'ref'}"))
    run_classic_unlearning(unlearn_recipe(original, tmp_path / "retrain", "method=retrain"))
    ours, reference = load_classic(tmp_path / "retrain")[0], load_classic(tmp_path / "ref" / "model")[0]
    assert all(torch.equal(a, b) for a, b in zip(ours.state_dict().values(), reference.state_dict().values()))


@pytest.mark.parametrize(("overrides", "message"), [
    (["method=nope"], "unknown unlearning method 'nope'"),
    (["method=unlearn_als"], "unlearn_als forgets from an ALS-trained MF"),
    (["method=ifru", "forget.fraction=0.999"], "whole training set"),
])
def test_bad_requests_fail_with_one_line_and_write_nothing(classic_factory, tmp_path, capsys, overrides, message):
    original = classic_factory()
    train_classic(original)
    recipe = unlearn_recipe(original, tmp_path / "out", *overrides)
    args = ["unlearn", f"model={recipe.model}", f"output_dir={recipe.output_dir}",
            f"data.cache_dir={recipe.data.cache_dir}", *[f"data.synthetic.{k}={v}" for k, v in
                                                           vars(recipe.data.synthetic).items()], *overrides]
    assert main(args) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_interaction_level_forgetting_runs_on_classic_models_and_is_refused_by_the_llm(classic_factory, tmp_path,
                                                                                      capsys):
    original = classic_factory()
    train_classic(original)
    manifest = run_classic_unlearning(unlearn_recipe(original, tmp_path / "ifru", "method=ifru",
                                                     "forget.unit=interactions", "forget.fraction=0.02"))
    splits = prepare_splits(original.data, replace(original.forget, unit="interactions", fraction=0.02))
    assert manifest["counts"]["forget_samples"] == len(splits["forget"]) == round(0.02 * len(splits["train"]))
    counts = manifest["counts"]
    assert f"unlearned {counts['forget_samples']} interactions of {counts['forget_users']} users" in \
        capsys.readouterr().out
    llm = tmp_path / "llm-card"  # the same files with a card that names no classic model: `unlearn` takes the LLM path
    shutil.copytree(f"{original.output_dir}/model", llm)
    card = json.loads((llm / "llmrec_model.json").read_text())
    del card["classic"]
    (llm / "llmrec_model.json").write_text(json.dumps(card))
    code = main(["unlearn", f"model={llm}", "forget.unit=interactions", f"output_dir={tmp_path / 'llm'}"])
    assert code == 2 and "forgets whole users" in capsys.readouterr().err


@pytest.mark.parametrize("output", ["X", "X/model", "X/model/out"])
def test_an_output_dir_on_above_or_inside_the_original_is_refused(classic_factory, tmp_path, capsys, output):
    """Issue 18: `classic-unlearn model=X/model output_dir=X` (now `unlearn`) deleted X/model, exit 0."""
    original = classic_factory(f"output_dir={tmp_path / 'X'}")
    train_classic(original)
    before = directory_hash(tmp_path / "X" / "model")
    capsys.readouterr()
    code = main(["unlearn", f"model={tmp_path / 'X' / 'model'}", f"output_dir={tmp_path / output}",
                 f"data.cache_dir={original.data.cache_dir}",
                 *synthetic_args(original)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "the original model" in err, err
    assert directory_hash(tmp_path / "X" / "model") == before
    assert sorted(p.name for p in (tmp_path / "X").iterdir()) == ["config.yaml", "model", "train_metrics.json"]


def test_an_original_changed_during_the_final_rename_fails_loudly(classic_factory, tmp_path, monkeypatch):
    from contextlib import contextmanager

    import llmrec.classic.unlearn as unlearn_module
    from llmrec.errors import LlmrecError

    original = classic_factory()
    train_classic(original)
    real = unlearn_module.atomic_dir

    @contextmanager
    def swap_then_touch(target):
        with real(target) as tmp:
            yield tmp
        with open(tmp_path / "classic" / "model" / "llmrec_model.json", "a") as f:
            f.write(" ")

    monkeypatch.setattr(unlearn_module, "atomic_dir", swap_then_touch)
    with pytest.raises(LlmrecError, match=r"changed while .* was put in place"):
        run_classic_unlearning(unlearn_recipe(original, tmp_path / "out", "method=finetune"))


def test_a_killed_classic_train_leaves_config_yaml_describing_model(classic_factory, tmp_path, monkeypatch):
    """config.yaml was rewritten at the start of every run: after a killed one it no longer described model/."""
    import llmrec.classic.train as train_module
    from llmrec.config import parse_yaml
    from llmrec.store import read_model_card

    original = classic_factory()
    train_classic(original)
    config = (tmp_path / "classic" / "config.yaml").read_text()
    assert parse_yaml(config) == read_model_card(tmp_path / "classic" / "model")["recipe"]

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(train_module, "fit_gradient", killed)
    with pytest.raises(KeyboardInterrupt):
        train_classic(classic_factory("train.epochs=4", "train.learning_rate=0.02"))
    assert (tmp_path / "classic" / "config.yaml").read_text() == config


@pytest.mark.parametrize("family", ["mf", "lightgcn"])
def test_teacher_tables_are_the_per_batch_scores_bit_for_bit(family):
    """E2URec and Bad Teacher read a frozen model's (yes, no) logits from a table taken once (`teacher_table`); on a
    classic model that must equal scoring each batch as it comes (what the classic modules did before they were
    merged with the LLM's), to the bit, so their results did not move."""
    from llmrec.classic.data import Index, Triples
    from llmrec.classic.lightgcn import LightGCN
    from llmrec.classic.loop import batch_stream, two_class
    from llmrec.classic.mf import MatrixFactorization
    from llmrec.classic.unlearn import ClassicUnlearning

    torch.manual_seed(0)
    users, items = torch.randint(0, 30, (500,)), torch.randint(0, 20, (500,))
    triples = Triples(users, items, torch.randint(0, 2, (500,)).float())
    model = (MatrixFactorization(30, 20, dim=16) if family == "mf"
             else LightGCN(30, 20, torch.stack([users, items]), dim=16)).eval()
    work = ClassicUnlearning(model, Index([str(u) for u in range(30)], [str(i) for i in range(20)]), triples, triples,
                             triples, triples, None, {})
    table = work.teacher_table(model, triples)
    assert table.shape == (500, 2) and table.dtype == torch.float32
    stream = batch_stream(triples, 64, seed=3)
    for _ in range(10):
        batch = next(stream)
        with torch.no_grad():
            assert torch.equal(table[work.rows(batch)], two_class(model(batch.users, batch.items)))


def test_the_former_classic_e2urec_keys_are_read_under_their_new_names_with_a_note(capsys):
    recipe = load_recipe(None, ["e2urec.epochs=3", "e2urec.rank=2", "e2urec.augment_epochs=1",
                                "e2urec.augment_learning_rate=0.05"], cls=ClassicUnlearnRecipe)
    config = recipe.e2urec
    assert (config.joint_epochs, config.lora.r, config.augment.epochs, config.augment.learning_rate) == (3, 2, 1, 0.05)
    assert (config.alpha, config.warmup_epochs, config.batch_size) == (1.0, 0.0, 256)  # the rest: classic defaults
    err = capsys.readouterr().err
    for old, new in (("epochs", "joint_epochs"), ("rank", "lora.r"), ("augment_epochs", "augment.epochs")):
        assert f"e2urec.{old} is deprecated and will be removed in a later release; write e2urec.{new}" in err
    with pytest.raises(ConfigError, match="e2urec.rank .2. and e2urec.lora.r .4. differ"):
        load_recipe(None, ["e2urec.rank=2", "e2urec.lora.r=4"], cls=ClassicUnlearnRecipe)


def test_an_old_name_against_the_recipe_files_new_name_is_one_line_that_says_where_each_may_come_from():
    """The shipped recipe writes the new names: an override by the old name that differs is refused, saying which
    name to give (the old name alone, or both agreeing, still load)."""
    with pytest.raises(ConfigError, match=r"e2urec.epochs \(3\) and e2urec.joint_epochs \(5.0\) differ \(the recipe "
                                          r"file may give one, an override the other\).*give only e2urec.joint_epochs"):
        load_recipe("recipes/classic/unlearn/e2urec.yaml", ["e2urec.epochs=3"], cls=ClassicUnlearnRecipe)
    agreeing = load_recipe("recipes/classic/unlearn/e2urec.yaml", ["e2urec.epochs=5.0", "e2urec.rank=8"],
                           cls=ClassicUnlearnRecipe)
    assert (agreeing.e2urec.joint_epochs, agreeing.e2urec.lora.r) == (5.0, 8)


def test_a_classic_card_that_names_no_model_kind_is_one_line(classic_factory, tmp_path, capsys):
    original = classic_factory()
    train_classic(original)
    damaged = tmp_path / "damaged"
    shutil.copytree(f"{original.output_dir}/model", damaged)
    card = json.loads((damaged / "llmrec_model.json").read_text())
    del card["classic"]["kind"]
    (damaged / "llmrec_model.json").write_text(json.dumps(card))
    code = main(["unlearn", "recipes/classic/unlearn/e2urec.yaml", f"model={damaged}", f"output_dir={tmp_path / 'out'}",
                 *synthetic_args(original),
                 f"data.cache_dir={original.data.cache_dir}", "data.format=synthetic"])
    err = capsys.readouterr().err
    assert code == 2 and "its classic section names no model kind" in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_run_gives_the_same_result_whatever_the_process_drew_before(classic_factory, tmp_path):
    """E2URec's low-rank update starts from random draws: the recipe's `seed` fixes them (before, a CLI run drew them
    from wherever the process's generator stood, so two runs of one recipe differed)."""
    original = classic_factory()
    train_classic(original)

    def unlearned(name, noise, *overrides):
        torch.manual_seed(noise)  # what else the process drew before
        run_classic_unlearning(unlearn_recipe(original, tmp_path / name, "method=e2urec", "e2urec.joint_epochs=2",
                                              *overrides))
        return load_classic(tmp_path / name)[0].state_dict()

    first, second, other = unlearned("a", 1), unlearned("b", 2), unlearned("c", 1, "seed=1")
    assert all(torch.equal(first[k], second[k]) for k in first)
    assert any(not torch.equal(first[k], other[k]) for k in first)


@pytest.mark.parametrize("method, setting, said", [
    ("bad_teacher", "bad_teacher.retain_fraction=0.3", "bad_teacher.retain_fraction"),
    ("e2urec", "e2urec.length_buckets=true", "length_buckets"),
    ("e2urec", "e2urec.augment.finetune=lora", "augment.finetune=lora"),
    ("finetune", "finetune.finetune=lora", "finetune=lora"),
])
def test_a_setting_only_an_llm_has_is_one_line_and_writes_nothing(classic_factory, tmp_path, capsys, method, setting,
                                                                   said):
    """The shared method modules ask the family for what the setting needs; a classic model refuses it by name."""
    original = classic_factory()
    train_classic(original)
    before = directory_hash(tmp_path / "classic" / "model")
    capsys.readouterr()
    code = main(["unlearn", f"recipes/classic/unlearn/{method}.yaml", f"model={original.output_dir}/model",
                 f"output_dir={tmp_path / 'out'}", f"data.cache_dir={original.data.cache_dir}", "data.format=synthetic",
                 setting,
                 *synthetic_args(original)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and said in err and "classic model" in err, err
    assert not (tmp_path / "out").exists()
    assert directory_hash(tmp_path / "classic" / "model") == before
