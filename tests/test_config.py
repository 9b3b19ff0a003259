from pathlib import Path

import pytest
import yaml

from llmrec.bench.run import BenchRecipe
from llmrec.bench.speed import SpeedRecipe
from llmrec.classic.train import ClassicRecipe
from llmrec.classic.unlearn import ClassicUnlearnRecipe
from llmrec.cli import train_family, verb_recipe
from llmrec.config import Recipe, describe, load_recipe, to_yaml
from llmrec.errors import ConfigError
from llmrec.eval.audit_run import AuditRecipe
from llmrec.eval.evaluate import EvalRecipe
from llmrec.unlearn.run import UnlearnRecipe

REPO = Path(__file__).resolve().parents[1]
RECIPES = sorted((REPO / "recipes").rglob("*.yaml"))
ACCELERATE_KEYS = {
    "compute_environment", "distributed_type", "use_cpu", "gpu_ids", "num_machines", "num_processes",
    "machine_rank", "main_training_function", "mixed_precision", "rdzv_backend", "same_network", "debug",
    "deepspeed_config",
}


def test_defaults_round_trip_through_yaml(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(to_yaml(Recipe()))
    assert load_recipe(path) == Recipe()


@pytest.mark.parametrize(
    "override, message",
    [
        ("trian.epochs=2", "unknown recipe key 'trian'"),
        ("train.epoch=2", "unknown recipe key 'train.epoch'"),
        ("data.synthetic.users=3", "unknown recipe key 'data.synthetic.users'"),
        ("train.epochs=two", "train.epochs: expected int, got 'two'"),
        ("train.learning_rate=fast", "train.learning_rate: expected float"),
        ("data.split=0.5", "data.split: expected a list"),
        ("train.epochs", "not of the form key=value"),
        ("data.format=xml", "data.format: expected one of synthetic | auto | ml-100k | ml-1m | csv, got 'xml'"),
        ("train.mixed_precision=fp8", "train.mixed_precision: expected one of auto | no | bf16 | fp16, got 'fp8'"),
        ("model.finetune=half", "model.finetune: expected one of full | lora, got 'half'"),
    ],
)
def test_bad_keys_and_values_are_named(override, message):
    with pytest.raises(ConfigError, match=message.replace("[", r"\[").replace("(", r"\(")):
        load_recipe(None, [override])


def test_overrides_are_parsed_as_yaml():
    recipe = load_recipe(None, ["train.epochs=3", "train.learning_rate=3e-3", "eval.splits=[test]", "data.path=x/y"])
    assert recipe.train.epochs == 3
    assert recipe.train.learning_rate == pytest.approx(0.003)
    assert recipe.eval.splits == ["test"]
    assert recipe.data.path == "x/y"


def test_unknown_key_in_file_is_rejected(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epochs: 1\n  lr: 0.1\n")
    with pytest.raises(ConfigError, match="unknown recipe key 'train.lr'"):
        load_recipe(path)


def test_missing_or_malformed_recipe_file(tmp_path):
    with pytest.raises(ConfigError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_recipe(bad)


def test_every_field_has_help():
    rows = describe()
    assert rows and all(help_text for _, _, help_text in rows)


@pytest.mark.parametrize("path", RECIPES, ids=[str(p.relative_to(REPO)) for p in RECIPES])
def test_every_recipe_loads_and_starts_with_its_command(path):
    first = path.read_text().splitlines()[0]
    relative = str(path.relative_to(REPO))
    assert first.startswith("# ") and relative in first, f"{relative} must begin with the command that runs it"
    if path.parent.name == "accelerate":
        assert first.startswith("# accelerate launch --config_file " + relative)
        config = yaml.safe_load(path.read_text())
        assert set(config) <= ACCELERATE_KEYS, set(config) - ACCELERATE_KEYS
    else:
        assert first.startswith("# llmrec ") or first.startswith("# accelerate launch")
        verb, cls = {"unlearn": ("unlearn", UnlearnRecipe), "bench": ("benchmark", BenchRecipe),
                     "audit": ("audit", AuditRecipe),
                     "speed": ("bench-speed", SpeedRecipe),
                     "classic/train": ("train", ClassicRecipe),
                     "classic/unlearn": ("unlearn", ClassicUnlearnRecipe)}.get(
            str(path.parent.relative_to(REPO / "recipes")), ("train", Recipe))
        if path.parent.name == "demo":  # scripts/demo.sh's pair: the original's and the unlearning recipe
            verb, cls = {"unlearn.yaml": ("unlearn", UnlearnRecipe)}.get(path.name, ("train", Recipe))
        assert f"llmrec {verb} {relative}" in first or f"-m llmrec {verb} {relative}" in first
        assert type(load_recipe(path, cls=cls)) is cls
        if verb == "train":  # `llmrec train` reads it as the recipe of the family it names
            assert verb_recipe(verb, train_family(str(path), [])) is cls


def test_there_are_recipes():
    assert any(p.parent.name == "train" for p in RECIPES) and any(p.parent.name == "speed" for p in RECIPES)
    assert {p.name for p in RECIPES if p.parent.name == "accelerate"} == {
        "cpu.yaml", "single_gpu.yaml", "multi_gpu.yaml", "deepspeed_zero2.yaml"}


RECIPE_CLASSES = [Recipe, UnlearnRecipe, BenchRecipe, SpeedRecipe, ClassicRecipe, ClassicUnlearnRecipe,
                  AuditRecipe, EvalRecipe]


@pytest.mark.parametrize("cls", RECIPE_CLASSES, ids=lambda cls: cls.__name__)
def test_every_default_lies_within_its_bounds(cls):
    from llmrec.config import from_dict, to_dict

    assert from_dict(cls, to_dict(cls())) == cls()  # from_dict checks every value it is given


@pytest.mark.parametrize("verb, override, message", [
    # issue 18's reproducers: a reversed forgetting teacher, a no-op run, fabricated samples (711 -> 747)
    ("unlearn", "e2urec.alpha=-5", "e2urec.alpha must be 0 or more, got -5.0"),
    ("unlearn", "finetune.epochs=0", "finetune.epochs must be greater than 0, got 0.0"),
    ("unlearn", "e2urec.remember_weight=1.5", "e2urec.remember_weight must be between 0 and 1, got 1.5"),
    ("unlearn", "e2urec.joint_epochs=0", "e2urec.joint_epochs must be greater than 0, got 0.0"),  # was a traceback
    ("data", "data.min_history=-1", "data.min_history must be at least 1, got -1"),
    ("train", "train.epochs=0", "train.epochs must be at least 1, got 0"),
    ("train", "train.learning_rate=0", "train.learning_rate must be greater than 0, got 0.0"),
    ("train", "train.batch_size=0", "train.batch_size must be at least 1, got 0"),
    ("train", "train.learning_rate=.inf", "train.learning_rate: expected a finite number, got inf"),
    ("train", "data.split=[0.6, -0.2, 0.6]", "data.split[1] must be greater than 0 and less than 1, got -0.2"),
    ("train", "threads=-1", "threads must be 0 or more, got -1"),
    ("classic-train", "train.epochs=0", "train.epochs must be at least 1, got 0"),
    ("classic-unlearn", "neggrad.learning_rate=-0.1", "neggrad.learning_rate must be greater than 0, got -0.1"),
    ("classic-unlearn", "e2urec.alpha=-1", "e2urec.alpha must be 0 or more, got -1.0"),
    ("benchmark", "bad_teacher.retain_fraction=2", "bad_teacher.retain_fraction must be greater than 0 and at most 1"),
    ("bench-speed", "mf.ifru.cg_iterations=0", "mf.ifru.cg_iterations must be at least 1, got 0"),
])
def test_an_out_of_range_setting_is_one_line_before_anything_is_written(tmp_path, capsys, verb, override, message):
    from llmrec.cli import main
    from tests.conftest import SMALL_OVERRIDES

    data = [o for o in SMALL_OVERRIDES if o.startswith("data.") or verb in ("train", "data")]
    args = [f"output_dir={tmp_path / 'out'}", f"data.cache_dir={tmp_path / 'cache'}", *data, override]
    if verb.endswith("unlearn"):
        args.append(f"model={tmp_path / 'missing-model'}")
    assert main([verb, *args]) == 2
    err = capsys.readouterr().err.strip()
    if verb.startswith("classic-"):  # an alias says so first
        note, err = err.split("\n", 1)
        assert note.startswith(f"note: llmrec {verb} is an alias"), note
    assert err.startswith(f"llmrec: error: {message}") and "\n" not in err, err
    assert list(tmp_path.iterdir()) == []


def test_help_config_shows_each_settings_bounds(capsys):
    from llmrec.cli import main

    assert main(["unlearn", "--help-config"]) == 0
    rows = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()}
    assert rows["e2urec.alpha"].endswith("[0 or more]")
    assert rows["e2urec.remember_weight"].endswith("[between 0 and 1]")
    assert rows["data.min_history"].endswith("[at least 1]")
    assert rows["neggrad.learning_rate"].endswith("[greater than 0]")


def test_a_section_keeps_its_recipes_own_defaults_for_the_keys_left_out():
    from llmrec.classic.unlearn import ClassicUnlearnRecipe
    from llmrec.unlearn.run import UnlearnRecipe

    classic = load_recipe(None, ["neggrad.epochs=2", "bad_t.forget_weight=0.5"], cls=ClassicUnlearnRecipe)
    assert (classic.neggrad.epochs, classic.neggrad.learning_rate, classic.neggrad.batch_size) == (2.0, 1e-2, 256)
    assert (classic.bad_t.forget_weight, classic.bad_t.learning_rate) == (0.5, 1e-2)
    llm = load_recipe(None, ["neggrad.epochs=2"], cls=UnlearnRecipe)  # the same config class, an LLM's defaults
    assert (llm.neggrad.epochs, llm.neggrad.learning_rate, llm.neggrad.batch_size) == (2.0, 1e-3, 32)
    with pytest.raises(ConfigError, match="unknown recipe key 'neggrad.epoch'"):
        load_recipe(None, ["neggrad.epoch=2"], cls=ClassicUnlearnRecipe)


def test_help_config_shows_a_sections_own_defaults():
    rows = {key: default for key, default, _ in describe(ClassicUnlearnRecipe)}
    assert (rows["neggrad.learning_rate"], rows["neggrad.batch_size"]) == ("0.01", "256")
    assert {key: default for key, default, _ in describe(UnlearnRecipe)}["neggrad.learning_rate"] == "0.001"
