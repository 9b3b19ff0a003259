"""Forgetting is measured on the forget set the model forgot (its unlearning_manifest.json), never on another."""

import json

import pytest

from llmrec.cli import main
from llmrec.config import load_recipe
from llmrec.llm.train import train
from llmrec.unlearn.run import UnlearnRecipe, run_unlearning
from tests.conftest import SMALL_OVERRIDES, small_recipe

DATA = [o for o in SMALL_OVERRIDES if o.startswith("data.")]


@pytest.fixture(scope="module")
def forgot_seed_0(tmp_path_factory):
    """An adapter that forgot the forget.seed=0 users (20% of them) of a briefly trained original."""
    root = tmp_path_factory.mktemp("forget-set")
    train(small_recipe(root, "train.max_steps=2"))
    run_unlearning(load_recipe(None, [f"model={root / 'run' / 'model'}", f"output_dir={root / 'adapter'}", *DATA,
                                      f"data.cache_dir={root / 'cache'}", "method=finetune", "finetune.finetune=lora",
                                      "finetune.epochs=0.2", "finetune.batch_size=8", "mixed_precision=no"],
                               cls=UnlearnRecipe))
    return root


def evaluate(capsys, root, model, out, *overrides):
    code = main(["evaluate", *DATA, f"data.cache_dir={root / 'cache'}", "train.mixed_precision=no",
                 f"eval.model_dir={model}", "eval.splits=[forget]", f"output_dir={out}", *overrides])
    return code, *capsys.readouterr()


def test_the_forget_set_comes_from_the_manifest(forgot_seed_0, tmp_path, capsys):
    manifest = json.loads((forgot_seed_0 / "adapter" / "unlearning_manifest.json").read_text())
    code, out, _ = evaluate(capsys, forgot_seed_0, forgot_seed_0 / "adapter", tmp_path, "forget.seed=1")
    assert code == 0 and "forget set: the one" in out and "forget.seed=0" in out
    saved = json.loads((tmp_path / "evaluation.json").read_text())
    assert saved["recipe"]["forget"]["seed"] == 0
    assert saved["metrics"]["forget"]["samples"] == manifest["counts"]["forget_samples"]


def test_another_forget_set_is_refused_naming_both(forgot_seed_0, tmp_path, capsys):
    code, _, err = evaluate(capsys, forgot_seed_0, forgot_seed_0 / "adapter", tmp_path, "forget.seed=1",
                            "eval.forget_from_manifest=false")
    assert code == 2 and err.count("llmrec: error:") == 1 and not (tmp_path / "evaluation.json").exists()
    assert "forget.fraction=0.2, forget.seed=1" in err and "is not the one this model forgot" in err
    assert "forget.fraction=0.2, forget.seed=0" in err and "eval.forget_from_manifest=true" in err


def test_other_data_give_another_forget_set_even_from_the_manifest(forgot_seed_0, tmp_path, capsys):
    code, _, err = evaluate(capsys, forgot_seed_0, forgot_seed_0 / "adapter", tmp_path, "data.synthetic.seed=1")
    assert code == 2 and "was trained on other data" in err  # the data are checked first (test_model_checks.py)
    code, _, err = evaluate(capsys, forgot_seed_0, forgot_seed_0 / "adapter", tmp_path, "data.synthetic.seed=1",
                            "eval.allow_other_data=true")
    assert code == 2 and "is not the one this model forgot" in err and "the data differ" in err


def test_a_classic_model_is_evaluated_on_the_interactions_it_forgot(tmp_path, capsys):
    from llmrec.classic.train import train_classic
    from llmrec.classic.unlearn import ClassicUnlearnRecipe, run_classic_unlearning
    from tests.classic.conftest import classic_recipe

    original = classic_recipe(tmp_path)
    train_classic(original)
    data = [f"data.cache_dir={original.data.cache_dir}",
            *(f"data.synthetic.{k}={v}" for k, v in vars(original.data.synthetic).items())]
    forget = ["forget.unit=interactions", "forget.fraction=0.05"]
    manifest = run_classic_unlearning(load_recipe(None, [f"model={original.output_dir}/model", *data, *forget,
                                                         f"output_dir={tmp_path / 'forgot'}", "method=finetune"],
                                                  cls=ClassicUnlearnRecipe))
    evaluate = ["evaluate", *data, *forget, "forget.seed=1", f"eval.model_dir={tmp_path / 'forgot'}",
                "eval.splits=[forget]"]
    assert main([*evaluate, "eval.forget_from_manifest=false", f"output_dir={tmp_path / 'refused'}"]) == 2
    err = capsys.readouterr().err
    assert "forget.seed=1, forget.unit=interactions" in err and "forget.seed=0, forget.unit=interactions" in err
    assert main([*evaluate, f"output_dir={tmp_path / 'eval'}"]) == 0
    saved = json.loads((tmp_path / "eval" / "evaluation.json").read_text())
    assert saved["metrics"]["forget"]["samples"] == manifest["counts"]["forget_samples"]
    assert saved["recipe"]["forget"]["seed"] == 0


def test_a_forget_users_file_is_not_needed_again_to_evaluate(forgot_seed_0, tmp_path, capsys, monkeypatch):
    """The manifest's ids define the forget set: the relative users file it was drawn from may be gone or differ."""
    manifest = json.loads((forgot_seed_0 / "adapter" / "unlearning_manifest.json").read_text())
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    work.mkdir(), elsewhere.mkdir()
    (work / "users.txt").write_text("\n".join(manifest["forgotten_user_ids"][:2]) + "\n")
    monkeypatch.chdir(work)
    run_unlearning(load_recipe(None, [f"model={forgot_seed_0 / 'run' / 'model'}", f"output_dir={work / 'adapter'}",
                                      *DATA, f"data.cache_dir={forgot_seed_0 / 'cache'}", "method=finetune",
                                      "finetune.finetune=lora", "finetune.epochs=0.2", "finetune.batch_size=8",
                                      "mixed_precision=no", "forget.users=users.txt"], cls=UnlearnRecipe))
    forgot = json.loads((work / "adapter" / "unlearning_manifest.json").read_text())["counts"]["forget_samples"]
    monkeypatch.chdir(elsewhere)
    (elsewhere / "users.txt").write_text(manifest["forgotten_user_ids"][2] + "\n")  # another file, same name
    code, _, err = evaluate(capsys, forgot_seed_0, work / "adapter", elsewhere / "out")
    assert code == 0, err
    assert json.loads((elsewhere / "out" / "evaluation.json").read_text())["metrics"]["forget"]["samples"] == forgot
    code, _, err = evaluate(capsys, forgot_seed_0, work / "adapter", elsewhere / "out2",
                            "eval.forget_from_manifest=false", "forget.users=users.txt")
    assert code == 2 and "is not the one this model forgot" in err and "contents of the user files" in err
