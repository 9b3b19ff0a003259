"""Nothing a run reads is trusted blindly: a model's card (answer tokens, the data it was trained on), its files and
its original are checked before they are used; each fault is one line naming the file, exit 2, nothing written."""

import json
import shutil

import pytest
from safetensors.torch import load_file, save_file

from llmrec.cli import main
from llmrec.config import load_recipe
from llmrec.data.samples import data_fingerprint
from llmrec.llm.train import train
from llmrec.unlearn.run import UnlearnRecipe, run_unlearning
from tests.conftest import SMALL_OVERRIDES, small_recipe

DATA = [o for o in SMALL_OVERRIDES if o.startswith("data.")]  # the 60 users the model is trained on
OTHER_DATA = ["data.synthetic.num_users=500", "data.synthetic.num_items=50", "data.synthetic.ratings_per_user=20"]
SMALL_OTHER_DATA = ["data.synthetic.num_users=80", *OTHER_DATA[1:]]  # other data that are quick to build
QUICK_UNLEARN = ["method=finetune", "finetune.finetune=lora", "finetune.epochs=0.2", "finetune.batch_size=8",
                 "mixed_precision=no"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A briefly trained original (60 synthetic users) and an adapter unlearned from it."""
    root = tmp_path_factory.mktemp("checks")
    train(small_recipe(root, "train.max_steps=2"))
    run_unlearning(load_recipe(None, [f"model={root / 'run' / 'model'}", f"output_dir={root / 'adapter'}", *DATA,
                                      f"data.cache_dir={root / 'cache'}", *QUICK_UNLEARN], cls=UnlearnRecipe))
    return root


def copy_model(trained, tmp_path, name="model"):
    target = tmp_path / name
    shutil.copytree(trained / "run" / "model", target)
    return target


def edit_card(model, change):
    path = model / "llmrec_model.json"
    card = json.loads(path.read_text())
    change(card)
    path.write_text(json.dumps(card))


def evaluate(capsys, trained, model, out, *overrides, data=DATA):
    code = main(["evaluate", *data, f"data.cache_dir={trained / 'cache'}", "train.mixed_precision=no",
                 f"eval.model_dir={model}", "eval.splits=[test]", f"output_dir={out}", *overrides])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def unlearn(capsys, trained, model, out, *overrides, data=DATA):
    code = main(["unlearn", *data, f"data.cache_dir={trained / 'cache'}", f"model={model}", f"output_dir={out}",
                 *QUICK_UNLEARN, *overrides])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def refused(code, err, out_dir) -> str:
    """The one error line of a refused run that wrote nothing."""
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("llmrec: error: "), err[-2000:]
    assert not out_dir.exists()
    return lines[0]


def swap_answer_ids(card):
    answer = card["answer"]
    answer["yes_id"], answer["no_id"] = answer["no_id"], answer["yes_id"]


def test_swapped_answer_ids_are_refused_at_evaluate_and_unlearn(trained, tmp_path, capsys):
    model = copy_model(trained, tmp_path)
    code, _, _ = evaluate(capsys, trained, model, tmp_path / "eval-ok")
    assert code == 0
    edit_card(model, swap_answer_ids)  # scored as is, every P(yes) would be a P(no): AUC 1 - AUC
    line = refused(*evaluate(capsys, trained, model, tmp_path / "eval")[::2], tmp_path / "eval")
    assert f"{model / 'llmrec_model.json'}: answer.yes_id is" in line and "' Yes' is token" in line
    line = refused(*unlearn(capsys, trained, model, tmp_path / "forgot")[::2], tmp_path / "forgot")
    assert "answer.yes_id is" in line and "the card is damaged" in line


def test_an_answer_text_that_is_not_the_prompts_word_is_refused(trained, tmp_path, capsys):
    model = copy_model(trained, tmp_path)

    def swap_both(card):  # ids and texts swapped together: each id is its text's token, the meaning inverted
        swap_answer_ids(card)
        card["answer"]["yes_text"], card["answer"]["no_text"] = card["answer"]["no_text"], card["answer"]["yes_text"]

    edit_card(model, swap_both)
    line = refused(*evaluate(capsys, trained, model, tmp_path / "eval")[::2], tmp_path / "eval")
    assert "answer.yes_text ' No' is not the prompt's yes word 'Yes'" in line


def test_a_model_trained_on_other_data_is_refused_naming_both_fingerprints(trained, tmp_path, capsys):
    """The reproducer: a model trained on 60 synthetic users 'unlearned' 80 users of a 500-user data set."""
    model = trained / "run" / "model"
    recorded = json.loads((model / "llmrec_model.json").read_text())["data"]
    assert recorded == data_fingerprint(small_recipe(trained).data)
    other = data_fingerprint(load_recipe(None, OTHER_DATA).data)["sha256"]
    for verb in (evaluate, unlearn):
        out = tmp_path / verb.__name__
        line = refused(*verb(capsys, trained, model, out, data=OTHER_DATA)[::2], out)
        assert f"{model} was trained on other data" in line and recorded["sha256"] in line and other in line
        assert "data.synthetic.num_users 60 there, 500 here" in line
        assert ("eval.allow_other_data=true" if verb is evaluate else "or set allow_other_data=true") in line
    assert not list((trained / "cache").glob(f"samples-*{other}*"))  # refused before any cache was built


def test_other_data_are_evaluated_and_unlearned_when_allowed(trained, tmp_path, capsys):
    code, out, _ = evaluate(capsys, trained, trained / "run" / "model", tmp_path / "eval",
                            "eval.allow_other_data=true", data=SMALL_OTHER_DATA)
    assert code == 0 and "allowed by eval.allow_other_data=true" in out and (tmp_path / "eval").is_dir()
    code, out, err = unlearn(capsys, trained, trained / "run" / "model", tmp_path / "forgot", "allow_other_data=true",
                             data=SMALL_OTHER_DATA)
    assert code == 0, err[-2000:]
    assert "data.synthetic.num_users 60 there, 80 here" in out and (tmp_path / "forgot" / "adapter_config.json").is_file()


def test_a_card_from_before_the_data_fingerprint_loads_with_a_warning(trained, tmp_path, capsys):
    model = copy_model(trained, tmp_path)
    edit_card(model, lambda card: card.pop("data"))
    code, out, _ = evaluate(capsys, trained, model, tmp_path / "eval", data=SMALL_OTHER_DATA)  # nothing to check
    assert code == 0 and "records no fingerprint of the data it was trained on" in out


def test_an_adapter_is_evaluated_against_the_data_of_its_original(trained, tmp_path, capsys):
    adapter = trained / "adapter"
    card = lambda model: json.loads((model / "llmrec_model.json").read_text())  # noqa: E731
    assert card(adapter)["data"] == card(trained / "run" / "model")["data"]
    line = refused(*evaluate(capsys, trained, adapter, tmp_path / "eval", data=OTHER_DATA)[::2], tmp_path / "eval")
    assert f"{adapter} was trained on other data" in line


def test_eval_original_dir_must_be_the_original_an_adapter_was_made_from(trained, tmp_path, capsys):
    """Gap closure scores the original: eval.original_dir is hash-checked like the path the card records."""
    other = copy_model(trained, tmp_path, "other")
    weights = load_file(str(other / "model.safetensors"))
    save_file({k: v.flip(0).contiguous() if v.dim() else v for k, v in weights.items()},
              str(other / "model.safetensors"))  # same architecture, tokenizer, card and data: other weights
    reference = ["eval.splits=[forget]", f"eval.reference_dir={trained / 'run' / 'model'}"]
    code, _, _ = evaluate(capsys, trained, trained / "adapter", tmp_path / "eval-ok", *reference,
                          f"eval.original_dir={trained / 'run' / 'model'}")
    assert code == 0
    line = refused(*evaluate(capsys, trained, trained / "adapter", tmp_path / "eval", *reference,
                             f"eval.original_dir={other}")[::2], tmp_path / "eval")
    assert f"{other} is not the model it was made from" in line and "another eval.original_dir" in line


def test_an_adapter_is_not_unlearned_from_as_if_it_were_a_whole_model(trained, tmp_path, capsys):
    line = refused(*unlearn(capsys, trained, trained / "adapter", tmp_path / "forgot")[::2], tmp_path / "forgot")
    assert "holds an adapter" in line and "merge=true" in line


def truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage, named", [
    (lambda m: truncate(m / "model.safetensors"), "model.safetensors: damaged weights file"),
    (lambda m: (m / "llmrec_model.json").write_text('{"answer": '), "llmrec_model.json: damaged model card"),
    (lambda m: (m / "llmrec_model.json").write_text("[1, 2]"), "llmrec_model.json: damaged model card"),
    (lambda m: truncate(m / "tokenizer.json"), "tokenizer.json: damaged model file"),
    (lambda m: (m / "config.json").write_bytes(b"\xff\xfe\x00"), "config.json: damaged model file"),
    (lambda m: edit_card(m, lambda card: card.pop("answer")), "llmrec_model.json: damaged model card (KeyError"),
    (lambda m: shutil.rmtree(m), "not an llmrec model directory: it does not exist"),
], ids=["truncated-weights", "card-not-json", "card-not-object", "truncated-tokenizer", "config-not-utf8",
        "card-without-answer", "missing-dir"])
def test_a_damaged_model_is_one_line_naming_the_file(trained, tmp_path, capsys, damage, named):
    model = copy_model(trained, tmp_path)
    damage(model)
    for verb in (evaluate, unlearn):
        line = refused(*verb(capsys, trained, model, tmp_path / verb.__name__)[::2], tmp_path / verb.__name__)
        assert f"{model}" in line and named in line


def test_a_damaged_adapter_is_one_line_naming_the_file(trained, tmp_path, capsys):
    adapter = tmp_path / "adapter"
    shutil.copytree(trained / "adapter", adapter)
    truncate(adapter / "adapter_model.safetensors")
    line = refused(*evaluate(capsys, trained, adapter, tmp_path / "eval")[::2], tmp_path / "eval")
    assert f"{adapter / 'adapter_model.safetensors'}: damaged weights file" in line
