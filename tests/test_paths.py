"""An output is never the original, never around it, never inside it (issue 18, item 1), in every verb that writes."""

import json
import os

import pytest

from llmrec.errors import LlmrecError
from llmrec.paths import model_paths, relation, refuse_overlap


def test_relation_of_resolved_paths_through_dots_and_symlinks(tmp_path):
    model = tmp_path / "run" / "model"
    model.mkdir(parents=True)
    (tmp_path / "alias").symlink_to(tmp_path / "run")
    assert relation(tmp_path / "run", model) == "contains"
    assert relation(tmp_path / "run" / "model" / ".." / "model", model) == "is"
    assert relation(tmp_path / "alias" / "model", model) == "is"  # another name for the same folder
    assert relation(tmp_path / "alias", model) == "contains"
    assert relation(model / "sub" / "deeper", model) == "lies inside"  # need not exist yet
    assert relation(tmp_path / "run" / "model-2", model) is None
    assert relation(tmp_path / "other", model) is None


@pytest.mark.parametrize(("output", "words"), [
    ("run", "contains the original model"),
    ("run/model", "is the original model"),
    ("run/model/out", "lies inside the original model"),
])
def test_an_output_dir_on_around_or_inside_the_original_is_one_line(tmp_path, output, words):
    (tmp_path / "run" / "model").mkdir(parents=True)
    with pytest.raises(LlmrecError, match=words) as refused:
        refuse_overlap(tmp_path / output, model_paths(tmp_path / "run" / "model"))
    assert "\n" not in str(refused.value) and "choose another output_dir" in str(refused.value)
    refuse_overlap(tmp_path / "elsewhere", model_paths(tmp_path / "run" / "model"))  # apart: no error


def test_every_shard_of_an_ensemble_is_an_original(tmp_path):
    ensemble = tmp_path / "run" / "model"
    ensemble.mkdir(parents=True)
    (ensemble / "sisa.json").write_text(json.dumps({"shards": [{"model": f"../shards/shard-{k}/model"}
                                                               for k in range(2)]}))
    assert [path for _, path in model_paths(ensemble)] == [ensemble, *(ensemble / f"../shards/shard-{k}/model"
                                                                       for k in range(2))]
    with pytest.raises(LlmrecError, match="shard 1 of the original model"):
        refuse_overlap(tmp_path / "run" / "shards" / "shard-1", model_paths(ensemble))
    (ensemble / "sisa.json").write_text("{")
    with pytest.raises(LlmrecError, match="unreadable SISA ensemble file"):
        model_paths(ensemble)


def test_inputs_may_not_be_replaced_but_may_hold_the_output(tmp_path):
    users = tmp_path / "out" / "users.txt"
    users.parent.mkdir()
    users.write_text("1\n")
    with pytest.raises(LlmrecError, match="contains forget.users"):
        refuse_overlap(tmp_path / "out", [], inputs=[("forget.users", users)])
    refuse_overlap(tmp_path / "data" / "out", [], inputs=[("data.path", tmp_path / "data")])


def test_a_run_that_writes_into_its_folder_is_checked_on_what_it_writes(tmp_path):
    backbone = tmp_path / "old" / "model"
    backbone.mkdir(parents=True)
    writes = ["config.yaml", "model", "checkpoints"]
    with pytest.raises(LlmrecError, match="would replace the backbone"):  # train output_dir=old: old/model replaced
        refuse_overlap(tmp_path / "old", [("the backbone", backbone)], writes=writes)
    with pytest.raises(LlmrecError, match="lies inside the backbone"):
        refuse_overlap(backbone / "x", [("the backbone", backbone)], writes=writes)
    refuse_overlap(tmp_path, [("the backbone", backbone)], writes=writes)  # tmp/model is not old/model


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    """Any small trained model (two steps): what the verbs below read."""
    from llmrec.llm.train import train
    from tests.conftest import small_recipe

    recipe = small_recipe(tmp_path_factory.mktemp("tiny"), "train.max_steps=2")
    train(recipe)
    return recipe


def _copy_model(source, target):
    import shutil

    shutil.copytree(source, target)
    return target


def test_train_refuses_an_output_dir_that_would_replace_its_backbone(tiny_model, tmp_path, capsys):
    """`llmrec train model.name_or_path=X/model output_dir=X` replaced X/model with the new model."""
    from llmrec.cli import main
    from llmrec.store import directory_hash
    from tests.conftest import SMALL_OVERRIDES

    original = _copy_model(f"{tiny_model.output_dir}/model", tmp_path / "X" / "model")
    before = directory_hash(original)
    code = main(["train", f"model.name_or_path={original}", f"output_dir={tmp_path / 'X'}",
                 f"data.cache_dir={tmp_path / 'cache'}", *SMALL_OVERRIDES, "train.max_steps=2"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "would replace the backbone" in err, err
    assert directory_hash(original) == before
    assert sorted(os.listdir(tmp_path / "X")) == ["model"] and not (tmp_path / "cache").exists()


def test_evaluate_refuses_to_write_its_report_into_a_model_it_reads(tiny_model, tmp_path, capsys):
    from llmrec.cli import main
    from llmrec.store import directory_hash
    from tests.conftest import SMALL_OVERRIDES

    original = _copy_model(f"{tiny_model.output_dir}/model", tmp_path / "X" / "model")
    before = directory_hash(original)
    data = [o for o in SMALL_OVERRIDES if o.startswith("data.")]
    code = main(["evaluate", f"eval.model_dir={original}", f"output_dir={original}",
                 f"data.cache_dir={tiny_model.data.cache_dir}", *data])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "is the evaluated model" in err, err
    assert directory_hash(original) == before


def test_a_folder_that_is_no_llmrec_output_is_not_replaced(tmp_path):
    """Fresh tester, issue 18 item 1's kind: `unlearn … output_dir=ux` with ux/mine.txt deleted mine.txt, exit 0."""
    original = tmp_path / "run" / "model"
    original.mkdir(parents=True)
    theirs = tmp_path / "ux"
    theirs.mkdir()
    (theirs / "mine.txt").write_text("precious")
    with pytest.raises(LlmrecError, match=r"output_dir=.*ux holds files that are no llmrec output \(mine.txt\)"):
        refuse_overlap(theirs, model_paths(original))
    (theirs / "unlearning_manifest.json").write_text("{}")  # an earlier run's output: a rerun replaces it
    refuse_overlap(theirs, model_paths(original))
    empty = tmp_path / "empty"
    empty.mkdir()
    refuse_overlap(empty, model_paths(original))


def test_the_data_cache_is_an_input_the_output_may_not_replace(recipe_factory, tmp_path):
    from llmrec.paths import recipe_inputs

    recipe = recipe_factory()
    with pytest.raises(LlmrecError, match="is data.cache_dir"):
        refuse_overlap(recipe.data.cache_dir, [], inputs=recipe_inputs(recipe))
