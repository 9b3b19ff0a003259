"""One `llmrec train` and one `llmrec unlearn` for both model families: model.family (train) or the model's card
(unlearn) chooses the recipe; classic-train / classic-unlearn stay as aliases for one release."""

import json

import pytest
import torch
from safetensors.torch import load_file

from llmrec.classic.train import ClassicRecipe, train_classic
from llmrec.classic.unlearn import ClassicUnlearnRecipe
from llmrec.cli import main, verb_recipe
from llmrec.config import Recipe, load_recipe, to_yaml
from llmrec.unlearn.run import UnlearnRecipe
from tests.classic.conftest import CLASSIC_DATA, classic_recipe

FAST = ["model.dim=8", "train.epochs=3", "train.batch_size=128"]
TRAIN_NOTE = ("note: llmrec classic-train is an alias of llmrec train (model.family chooses the family) and will be "
              "removed in a later release")
UNLEARN_NOTE = ("note: llmrec classic-unlearn is an alias of llmrec unlearn (the model's card chooses the family) and "
                "will be removed in a later release")


def run(capsys, *argv):
    capsys.readouterr()  # what earlier steps printed
    code = main([str(a) for a in argv])
    return code, *capsys.readouterr()


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def same_weights(a, b) -> bool:
    a, b = weights(a), weights(b)
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def one_error_line(code, err, *fragments):
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("llmrec: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_train_of_a_classic_recipe_trains_it_as_classic_train_does(tmp_path, capsys):
    recipe = classic_recipe(tmp_path, *FAST)
    path = tmp_path / "mf.yaml"
    path.write_text(to_yaml(recipe))
    assert "family: mf" in path.read_text()
    code, out, err = run(capsys, "train", path, f"output_dir={tmp_path / 'new'}")
    assert code == 0 and "note:" not in err and "warning:" not in err, err[-2000:]
    assert "mf (adam): valid AUC" in out
    code, _, err = run(capsys, "classic-train", path, f"output_dir={tmp_path / 'old'}")
    assert code == 0 and err.splitlines()[0] == TRAIN_NOTE, err[-2000:]

    assert same_weights(tmp_path / "new" / "model", tmp_path / "old" / "model")
    metrics = [json.loads((tmp_path / run_ / "train_metrics.json").read_text()) for run_ in ("new", "old")]
    for record in metrics:
        record.pop("train_seconds")
    assert metrics[0] == metrics[1]
    card = json.loads((tmp_path / "new" / "model" / "llmrec_model.json").read_text())
    assert card["classic"]["kind"] == "mf" and card["recipe"]["model"]["family"] == "mf"
    assert not (tmp_path / "new" / "checkpoints").exists()  # not the LLM trainer

    code, out, _ = run(capsys, "train", "model.family=lightgcn", *CLASSIC_DATA, *FAST,  # an override chooses too
                       f"data.cache_dir={tmp_path / 'cache'}", f"output_dir={tmp_path / 'gcn'}")
    assert code == 0 and "lightgcn (adam): valid AUC" in out
    assert json.loads((tmp_path / "gcn" / "model" / "llmrec_model.json").read_text())["classic"]["kind"] == "lightgcn"


def unlearn_args(original, out, *extra):
    return [f"model={original.output_dir}/model", f"output_dir={out}", f"data.cache_dir={original.data.cache_dir}",
            *[f"data.synthetic.{k}={v}" for k, v in vars(original.data.synthetic).items()], *extra]


def test_unlearn_of_a_classic_model_runs_the_classic_method_as_classic_unlearn_does(tmp_path, capsys):
    original = classic_recipe(tmp_path, *FAST)
    train_classic(original)
    method = ["method=ifru", "ifru.damping=0.1"]  # a method only classic models have
    code, out, err = run(capsys, "unlearn", *unlearn_args(original, tmp_path / "new", *method))
    assert code == 0 and "note:" not in err, err[-2000:]
    assert "ifru: unlearned" in out
    code, _, err = run(capsys, "classic-unlearn", *unlearn_args(original, tmp_path / "old", *method))
    assert code == 0 and err.splitlines()[0] == UNLEARN_NOTE, err[-2000:]

    assert same_weights(tmp_path / "new", tmp_path / "old")
    manifests = [json.loads((tmp_path / run_ / "unlearning_manifest.json").read_text()) for run_ in ("new", "old")]
    assert manifests[0]["method"] == manifests[1]["method"] == "ifru"
    for key in ("counts", "forgotten_user_ids", "original_model_sha256", "forgotten_samples_sha256", "steps"):
        assert manifests[0][key] == manifests[1][key], key
    card = json.loads((tmp_path / "new" / "llmrec_model.json").read_text())
    assert "classic" in card and card["unlearned_from"] == f"{original.output_dir}/model"

    # no card to tell the family (a model not trained yet): the recipe's schema does, and the missing model is named
    for recipe in ([], method):  # the LLM recipe reads the first, only the classic one the second
        code, _, err = run(capsys, "unlearn", f"model={tmp_path / 'nowhere'}", f"output_dir={tmp_path / 'out'}",
                           *recipe)
        one_error_line(code, err, f"{tmp_path / 'nowhere'}: not an llmrec model directory: it does not exist")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("how", ["override", "file"])
def test_an_unknown_family_is_one_line_naming_the_families(tmp_path, capsys, how):
    args = ["model.family=bpr"]
    if how == "file":
        (tmp_path / "r.yaml").write_text("model:\n  family: bpr\n")
        args = [tmp_path / "r.yaml"]
    code, _, err = run(capsys, "train", *args, f"output_dir={tmp_path / 'out'}")
    one_error_line(code, err, "model.family: expected one of llm | mf | lightgcn, got 'bpr'")
    assert not (tmp_path / "out").exists()
    code, _, err = run(capsys, "train", *args, "--help-config")
    one_error_line(code, err, "model.family")

    # the family is looked up before the recipe loads: a file or override that does not read is named as before
    (tmp_path / "bad.yaml").write_text("model: [1, 2\n")
    code, _, err = run(capsys, "train", tmp_path / "bad.yaml")
    one_error_line(code, err, "bad.yaml: not valid YAML")
    code, _, err = run(capsys, "train", tmp_path / "none.yaml")
    one_error_line(code, err, "none.yaml: no such recipe file")
    code, _, err = run(capsys, "train", "model.family=mf", "train.epochs")
    one_error_line(code, err, "override 'train.epochs' is not of the form key=value")


def test_model_kind_still_reads_with_one_warning_line(tmp_path, capsys):
    (tmp_path / "old.yaml").write_text("model:\n  kind: mf\n  dim: 8\n")
    common = [*CLASSIC_DATA, "train.epochs=2", f"data.cache_dir={tmp_path / 'cache'}"]
    code, out, err = run(capsys, "train", tmp_path / "old.yaml", *common, f"output_dir={tmp_path / 'mf'}")
    assert code == 0, err[-2000:]
    assert [line for line in err.splitlines() if "model.kind" in line] == [  # progress bars aside
        "warning: model.kind is deprecated and will be removed in a later release; write model.family instead "
        "(same values)"]
    assert "mf (adam): valid AUC" in out
    card = json.loads((tmp_path / "mf" / "model" / "llmrec_model.json").read_text())
    assert card["recipe"]["model"]["family"] == "mf" and "kind" not in card["recipe"]["model"]

    code, out, err = run(capsys, "train", "model.kind=lightgcn", "model.dim=8", *common, f"output_dir={tmp_path / 'g'}")
    assert code == 0 and err.count("warning: model.kind is deprecated") == 1 and "lightgcn (adam)" in out
    recipe = load_recipe(None, ["model.kind=lightgcn"], cls=ClassicRecipe)
    assert recipe.model.family == recipe.model.kind == "lightgcn"

    # a model trained before the rename records model.kind in its card's recipe: unlearning reads it, silently
    card["recipe"]["model"] = {"kind": card["recipe"]["model"].pop("family"), **card["recipe"]["model"]}
    (tmp_path / "mf" / "model" / "llmrec_model.json").write_text(json.dumps(card))
    original = classic_recipe(tmp_path, f"output_dir={tmp_path / 'mf'}", "model.dim=8", "train.epochs=2")
    code, out, err = run(capsys, "unlearn", *unlearn_args(original, tmp_path / "forgot", "method=finetune"))
    assert code == 0 and "warning" not in err and "finetune: unlearned" in out, err[-2000:]


@pytest.mark.parametrize("given", [["model.kind=lightgcn", "model.family=mf"], ["model.family=mf"]])
def test_model_kind_and_model_family_that_differ_are_one_line(tmp_path, capsys, given):
    (tmp_path / "r.yaml").write_text("model:\n  kind: lightgcn\n")
    recipe = [tmp_path / "r.yaml"] if given == ["model.family=mf"] else []  # the file's kind, an override's family
    code, _, err = run(capsys, "train", *recipe, *given, f"output_dir={tmp_path / 'out'}")
    one_error_line(code, err, "model.kind ('lightgcn') and model.family ('mf') differ", "give only model.family")
    assert not (tmp_path / "out").exists()
    code, _, err = run(capsys, "classic-train", *recipe, *given, f"output_dir={tmp_path / 'out'}")
    assert code == 2 and err.strip().splitlines()[1:] == [
        "llmrec: error: model.kind ('lightgcn') and model.family ('mf') differ (the recipe file may give one, an "
        "override the other): model.kind is the old name of model.family; give only model.family"]


def help_rows(capsys, *argv) -> dict:
    code, out, _ = run(capsys, *argv, "--help-config")
    assert code == 0
    return {line.split()[0]: line for line in out.splitlines()}


def test_help_config_lists_the_keys_of_the_family_asked_for(tmp_path, capsys):
    llm = help_rows(capsys, "train")
    assert "train.mixed_precision" in llm and "'llm'" in llm["model.family"] and "train.als.reg" not in llm
    for argv in (["model.family=mf"], ["model.family=lightgcn"], ["model.kind=mf"]):
        classic = help_rows(capsys, "train", *argv)
        assert "train.als.reg" in classic and "'mf'" in classic["model.family"], argv
        assert "train.mixed_precision" not in classic and "model.kind" not in classic
    (tmp_path / "gcn.yaml").write_text("model:\n  family: lightgcn\n")
    assert "train.ensemble.shards" in help_rows(capsys, "train", tmp_path / "gcn.yaml")
    assert help_rows(capsys, "classic-train").keys() == help_rows(capsys, "train", "model.family=mf").keys()

    assert "audit.shadow" in help_rows(capsys, "unlearn") and "ifru.damping" not in help_rows(capsys, "unlearn")
    original = classic_recipe(tmp_path, *FAST)
    train_classic(original)
    classic = help_rows(capsys, "unlearn", f"model={original.output_dir}/model")
    assert "ifru.damping" in classic and "unlearn_als.sweeps" in classic and "audit.shadow" not in classic
    (tmp_path / "u.yaml").write_text(f"model: {original.output_dir}/model\n")
    assert help_rows(capsys, "unlearn", tmp_path / "u.yaml").keys() == classic.keys()
    assert help_rows(capsys, "classic-unlearn").keys() == classic.keys()


def test_verb_recipe_keeps_its_one_argument_form_and_picks_a_family():
    assert verb_recipe("train") is verb_recipe("train", "llm") is Recipe
    assert verb_recipe("train", "mf") is verb_recipe("train", "lightgcn") is ClassicRecipe
    assert verb_recipe("classic-train") is ClassicRecipe
    assert verb_recipe("unlearn") is UnlearnRecipe
    assert verb_recipe("unlearn", "classic") is verb_recipe("classic-unlearn") is ClassicUnlearnRecipe
    assert load_recipe(None, ["model.family=llm"]).model.family == "llm"  # an LLM recipe may say so


def test_help_lists_the_aliases_as_aliases(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "classic-train alias of train" in out and "classic-unlearn alias of unlearn" in out


def test_an_interrupted_classic_training_is_not_promised_a_resume():
    from llmrec.cli import _rerun

    assert "resumes from its last checkpoint" in _rerun("train", "llm")
    assert "resumes" not in _rerun("train", "mf") and "resumes" not in _rerun("classic-train")
