"""`llmrec audit` and the audit inside `unlearn` / `evaluate`: its sanity check (models that never saw the forget
users come out near chance), its power (a model over-fitted on them is caught), its refusals, its outputs."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import Dataset, DatasetDict
from torch.utils.data import DataLoader

from llmrec.cli import main
from llmrec.config import PromptConfig, load_recipe
from llmrec.data.samples import prepare_splits
from llmrec.data.tokenize import AnswerCollator, tokenize
from llmrec.errors import LlmrecError
from llmrec.eval.audit_run import (
    SHADOW_MARK,
    audit_samples,
    check_shadow_dir,
    check_unseen,
    recorded_users_file,
    p_true,
    shadow_users,
)
from llmrec.llm.backbone import AnswerTokens, load_model, load_tokenizer
from llmrec.store import read_model_card, write_model_card
from llmrec.llm.scoring import answer_logits, answer_loss
from llmrec.llm.train import train
from tests.conftest import SMALL_OVERRIDES

# 150 users: 18 holdout and 20 forget users, the fewest that leave the user-level AUC's null sd near 0.1
DATA = ["data.synthetic.num_users=150", "data.synthetic.num_items=50", "data.synthetic.ratings_per_user=20",
        "data.holdout=0.15"]
MODEL = [o for o in SMALL_OVERRIDES if not o.startswith("data.")]
BAND = 3  # null standard deviations: a model that never saw the forget users lies within 0.5 ± BAND sd


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *fragments):
    """Exit 2 and one line of llmrec's on stderr, the last one (a data cache built on the way shows progress bars)."""
    assert code == 2, err
    lines = [line for line in err.strip().splitlines() if line.strip() and "%|" not in line]
    assert len(lines) == 1 and lines[0].startswith("llmrec: error: ") and err.rstrip().endswith(lines[0]), err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One torch thread while this module runs (restored after): the CLI's `threads=1` below does the same, and on a
    shared machine the default count spends more time waiting for cores than computing."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def overfit(original: Path, data, forget, out: Path, learning_rate: float = 1e-3, target_loss: float = 0.3,
            max_epochs: int = 40) -> Path:
    """The constructed member: `original` fine-tuned on the forget users' samples alone until their mean answer loss
    in an epoch is below `target_loss` nats (from ln 2 ≈ 0.69: learnt by heart), saved with the original's card (it
    names no original). Raises AssertionError when `max_epochs` are not enough."""
    card = read_model_card(original)
    tokenizer, model = load_tokenizer(str(original)), load_model(str(original))
    prompt, answer = PromptConfig(**card["prompt"]), AnswerTokens(**card["answer"])
    dataset = tokenize(prepare_splits(data, forget)["forget"], tokenizer, prompt, card["max_length"])
    torch.manual_seed(0)
    loader = DataLoader(dataset, batch_size=16, shuffle=True, collate_fn=AnswerCollator(tokenizer))
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    model.train()
    for _ in range(max_epochs):
        losses = []
        for batch in loader:
            logits = answer_logits(model, batch["input_ids"], batch["attention_mask"])
            loss = answer_loss(logits, batch["labels"], answer.yes_id, answer.no_id)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            losses.append(loss.item())
        if np.mean(losses) < target_loss:
            break
    assert np.mean(losses) < target_loss, f"not over-fitted after {max_epochs} epochs: loss {np.mean(losses):.3f}"
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    write_model_card(out, card)
    return out


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """An original (3 epochs), a retrain on the retained users with other seeds, and the audit of the retrain
    against the original, which trains the shadow (the original's recipe on half the retained users)."""
    root = tmp_path_factory.mktemp("audit")
    common = [f"data.cache_dir={root / 'cache'}", *DATA, *MODEL, "train.epochs=3", "train.learning_rate=3e-3"]
    original = load_recipe(None, [f"output_dir={root / 'original'}", *common])
    train(original)
    retrain = load_recipe(None, [f"output_dir={root / 'retrain'}", *common, "train.train_on=retained",
                                 "train.seed=7", "model.tiny.seed=3"])
    train(retrain)
    audit_dir = root / "audit-retrain"
    args = [f"data.cache_dir={root / 'cache'}", *DATA, "mixed_precision=no", "threads=1"]
    code = main(["audit", f"model={root / 'retrain' / 'model'}", f"audit.original={root / 'original' / 'model'}",
                 f"output_dir={audit_dir}", *args])
    assert code == 0
    return {"root": root, "recipe": original, "original": root / "original" / "model",
            "retrain": root / "retrain" / "model", "audit": audit_dir, "shadow": audit_dir / "shadow",
            "reference": audit_dir / "shadow" / "train" / "model", "args": args}


@pytest.mark.slow
def test_a_retrain_audits_at_chance_against_a_shadow_with_other_seeds(world):
    """The audit's own sanity check: neither the retrain nor the shadow saw a forget or holdout user, so the attack
    cannot tell them apart; the band is the AUC's own noise (`auc_null_sd`), not a chosen number."""
    record = json.loads((world["audit"] / "audit.json").read_text())
    user = record["models"]["unlearned"]["user"]  # the audited model is the retrain
    assert user["members"] == 20 and user["nonmembers"] == 18
    assert abs(user["auc"] - 0.5) <= BAND * user["auc_null_sd"], user
    shadow = record["references"][0]
    assert shadow["kind"] == "shadow" and shadow["trained_users"] == round(0.5 * len(
        set(prepare_splits(world["recipe"].data, world["recipe"].forget)["retained"]["user_id"])))
    card = read_model_card(world["reference"])  # the shadow: the original's recipe on retained users only
    assert card["recipe"]["train"]["train_on"] == "retained" and card["recipe"]["train"]["only_users"]
    assert card["recipe"]["train"]["epochs"] == 3 and card["recipe"]["train"]["seed"] == world["recipe"].train.seed


@pytest.mark.slow
def test_a_model_overfitted_on_the_forget_users_is_caught(world, capsys):
    members = overfit(world["original"], world["recipe"].data, world["recipe"].forget, world["root"] / "overfit")
    out = world["root"] / "audit-overfit"
    code, stdout, err = run(capsys, "audit", f"model={members}", f"audit.reference={world['reference']}",
                            f"output_dir={out}", *world["args"])
    assert code == 0, err
    record = json.loads((out / "audit.json").read_text())
    user = record["models"]["unlearned"]["user"]
    assert user["auc"] > 0.5 + BAND * user["auc_null_sd"], user
    assert record["verdict"] == "not forgotten" and record["verdicts"]["user"]["direction"] == "under-unlearned"
    assert "Verdict (user level): not forgotten" in stdout


# --- the verb, unlearn and evaluate on a barely trained model (fast: the shadow repeats its 2 steps) ------------

@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A barely trained model on the audit's data (2 steps): enough for every check, and a shadow as cheap."""
    root = tmp_path_factory.mktemp("quick")
    recipe = load_recipe(None, [f"output_dir={root / 'run'}", f"data.cache_dir={root / 'cache'}", *DATA, *MODEL,
                                "train.max_steps=2"])
    train(recipe)
    return root / "run" / "model", [f"data.cache_dir={root / 'cache'}", *DATA, "threads=1"]


@pytest.fixture(scope="module")
def quick_audit(quick, tmp_path_factory):
    """`llmrec audit model=<quick>`: it trains its shadow into output_dir/shadow. (output_dir, stdout)."""
    import contextlib
    import io

    model, args = quick
    out, printed = tmp_path_factory.mktemp("quick-audit") / "audit", io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(["audit", f"model={model}", f"output_dir={out}", *args]) == 0
    return out, printed.getvalue()


def test_the_audit_writes_its_report_and_its_shadow(quick_audit, quick):
    out, stdout = quick_audit
    for name in ("audit.md", "audit.png", "audit.json", "config.yaml"):
        assert (out / name).is_file(), name
    record = json.loads((out / "audit.json").read_text())
    assert set(record["models"]) == {"original", "unlearned"} and record["attack"] == "lira_offline"
    assert record["model_dirs"]["original"] == record["model_dirs"]["unlearned"] == str(quick[0].absolute())
    assert record["counts"] == {"forget_users": 20, "forget_samples": record["models"]["unlearned"]["sample"]["members"],
                                "holdout_users": 18, "holdout_samples": 182, "probe_users_excluded": 0}
    assert record["recipe"]["audit"]["shadow_fraction"] == 0.5 and record["verdict"] in ("inconclusive",
                                                                                         "not forgotten", "forgotten")
    shadow = out / "shadow"
    assert (shadow / SHADOW_MARK).is_file() and record["references"][0]["model_dir"] == str(
        (shadow / "train" / "model").absolute())
    card = read_model_card(shadow / "train" / "model")
    assert card["recipe"]["train"]["train_on"] == "retained" and card["recipe"]["train"]["max_steps"] == 2
    shadow_users_file = Path(card["recipe"]["train"]["only_users"])
    assert len(shadow_users_file.read_text().split()) == record["references"][0]["trained_users"] == 40
    assert "| original |" in stdout and "Verdict (user level)" in stdout and "Calibration" in (
        out / "audit.md").read_text()


def test_a_second_audit_reuses_the_shadow(quick_audit, quick, tmp_path, capsys):
    model, args = quick
    code, stdout, err = run(capsys, "audit", f"model={model}", f"output_dir={tmp_path / 'again'}",
                            f"audit.shadow_dir={quick_audit[0] / 'shadow'}", "audit.attack=calibrated_loss", *args)
    assert code == 0, err
    assert "[shadow] reusing" in stdout and not (tmp_path / "again" / "shadow").exists()
    assert json.loads((tmp_path / "again" / "audit.json").read_text())["attack"] == "calibrated_loss"


def test_several_references_and_the_uncalibrated_attack(quick_audit, quick, tmp_path, capsys):
    model, args = quick
    reference = quick_audit[0] / "shadow" / "train" / "model"
    code, _, err = run(capsys, "audit", f"model={model}", f"output_dir={tmp_path / 'two'}",
                       f"audit.reference=[{reference},{reference}]", "audit.level=sample", *args)
    assert code == 0, err
    record = json.loads((tmp_path / "two" / "audit.json").read_text())
    assert [note["kind"] for note in record["references"]] == ["given", "given"] and record["level"] == "sample"
    code, _, err = run(capsys, "audit", f"model={model}", f"output_dir={tmp_path / 'loss'}", "audit.attack=loss", *args)
    assert code == 0, err
    record = json.loads((tmp_path / "loss" / "audit.json").read_text())
    assert record["references"] == [] and not (tmp_path / "loss" / "shadow").exists()  # no reference, no shadow


@pytest.fixture(scope="module")
def quick_unlearned(quick, quick_audit, tmp_path_factory):
    """E2URec (a quick schedule) from the quick model with audit.reference (the quick audit's shadow):
    (output dir, stdout)."""
    import contextlib
    import io

    from tests.unlearn.conftest import QUICK

    model, args = quick
    out, printed = tmp_path_factory.mktemp("quick-unlearn") / "unlearned", io.StringIO()
    reference = quick_audit[0] / "shadow" / "train" / "model"
    with contextlib.redirect_stdout(printed):
        assert main(["unlearn", f"model={model}", f"output_dir={out}", f"audit.reference={reference}",
                     "mixed_precision=no", *args, *QUICK]) == 0
    return out, printed.getvalue()


def test_unlearn_with_a_reference_audits_before_the_output_is_in_place(quick_unlearned):
    out, stdout = quick_unlearned
    manifest = json.loads((out / "unlearning_manifest.json").read_text())
    audit = manifest["audit"]
    assert audit["verdict"] in ("forgotten", "not forgotten", "inconclusive") and "PrivLeak" in audit["rule"]
    assert set(audit["models"]) == {"original", "unlearned"} and audit["references"][0]["kind"] == "given"
    assert audit["model_dirs"]["unlearned"] == str(out.absolute())  # not the temp dir it was scored in
    probes = set((manifest["stopping"] or {}).get("probe_user_ids") or [])  # a stopping rule's, where one ran
    assert audit["counts"]["probe_users_excluded"] == len(probes & set(manifest["forgotten_user_ids"]))
    assert audit["counts"]["forget_users"] == len(manifest["forgotten_user_ids"]) - len(probes)
    assert (out / "audit.md").is_file() and (out / "audit.png").is_file()
    assert "Verdict (user level)" in stdout and not out.with_name("unlearned-shadow").exists()


def test_probe_users_of_a_stopping_rule_are_left_out(quick_unlearned, quick_audit, quick, tmp_path, capsys):
    probed = tmp_path / "probed"
    shutil.copytree(quick_unlearned[0], probed)
    manifest = json.loads((probed / "unlearning_manifest.json").read_text())
    manifest["stopping"] = {"probe_user_ids": manifest["forgotten_user_ids"][:4], "rule": "test"}
    (probed / "unlearning_manifest.json").write_text(json.dumps(manifest))
    report = tmp_path / "audit-probed"
    code, _, err = run(capsys, "audit", f"model={probed}", f"output_dir={report}",
                       f"audit.reference={quick_audit[0] / 'shadow' / 'train' / 'model'}", *quick[1])
    assert code == 0, err
    record = json.loads((report / "audit.json").read_text())
    assert record["counts"]["probe_users_excluded"] == 4 and record["counts"]["forget_users"] == 16
    assert record["models"]["unlearned"]["user"]["members"] == 16
    assert "4 forget users were left out" in (report / "audit.md").read_text()


def test_evaluate_with_a_reference_writes_the_audit_beside_evaluation_json(quick, quick_audit, tmp_path):
    from llmrec.eval.evaluate import EvalRecipe, evaluate

    model, args = quick
    out = tmp_path / "evaluated"
    recipe = load_recipe(None, [f"output_dir={out}", f"eval.model_dir={model}", "eval.splits=[test]",
                                f"audit.reference={quick_audit[0] / 'shadow' / 'train' / 'model'}",
                                *args[:-1], *MODEL], cls=EvalRecipe)
    evaluate(recipe)
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["audit"]["verdict"] and saved["audit"]["model_dirs"]["unlearned"] == str(model.absolute())
    assert saved["metrics"]["test"]["auc"] is not None
    assert (out / "audit.md").is_file() and (out / "audit.png").is_file()


# --- refusals: one line, exit 2, nothing written -------------------------------------------------------------

@pytest.mark.parametrize("overrides, fragments", [
    (["data.holdout=0"], ["the audit needs holdout users: set data.holdout"]),
    (["data.synthetic.seed=1"], ["was trained on other data", "audit.allow_other_data=true"]),
    (["forget.fraction=0.05"], ["at least 10 forget users", "forget.fraction"]),
    (["data.holdout=0.05", "audit.allow_other_data=true"], ["at least 10 holdout users", "data.holdout"]),
])
def test_bad_input_is_one_line_before_anything_is_written(quick, tmp_path, capsys, overrides, fragments):
    model, args = quick
    code, _, err = run(capsys, "audit", f"model={model}", f"output_dir={tmp_path / 'out'}", *args, *overrides)
    assert_one_line_error(code, err, *fragments)
    assert not (tmp_path / "out").exists()


def test_a_missing_model_and_a_missing_model_key_are_one_line(quick, tmp_path, capsys):
    _, args = quick
    code, _, err = run(capsys, "audit", f"model={tmp_path / 'nowhere'}", f"output_dir={tmp_path / 'out'}", *args)
    assert_one_line_error(code, err, "nowhere", "does not exist")
    code, _, err = run(capsys, "audit", f"output_dir={tmp_path / 'out'}", *args)
    assert_one_line_error(code, err, "model=DIR")
    assert not (tmp_path / "out").exists()


def test_a_reference_that_trained_on_the_forget_users_is_refused(quick, tmp_path, capsys):
    model, args = quick  # trained on the whole train split: every forget user
    code, _, err = run(capsys, "audit", f"model={model}", f"audit.reference={model}", f"output_dir={tmp_path / 'out'}",
                       *args)
    assert_one_line_error(code, err, "audit.reference=", "trained on 20 forget users")
    assert not (tmp_path / "out").exists()


def test_a_shadow_dir_holding_something_else_is_refused_untouched(quick, tmp_path, capsys):
    model, args = quick
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    code, _, err = run(capsys, "audit", f"model={model}", f"audit.shadow_dir={mine}", f"output_dir={tmp_path / 'out'}",
                       *args)
    assert_one_line_error(code, err, "audit.shadow_dir=", "holds something else")
    assert (mine / "notes.txt").read_text() == "keep me" and not (tmp_path / "out").exists()


def test_unlearn_refuses_a_shadow_inside_its_output_dir(quick, tmp_path, capsys):
    model, args = quick
    out = tmp_path / "out"
    code, _, err = run(capsys, "unlearn", f"model={model}", f"output_dir={out}", "audit.shadow=true",
                       f"audit.shadow_dir={out / 'shadow'}", *args)
    assert_one_line_error(code, err, "audit.shadow_dir=", "replaced whole")
    assert not out.exists()


# --- the pure parts ------------------------------------------------------------------------------------------

def _splits(forget_users: int, holdout_users: int, samples: int = 3) -> DatasetDict:
    def rows(prefix: str, users: int) -> Dataset:
        ids = [f"{prefix}{u}" for u in range(users) for _ in range(samples)]
        return Dataset.from_dict({"user_id": ids, "label": [1] * len(ids)})

    return DatasetDict({"forget": rows("f", forget_users), "holdout": rows("h", holdout_users),
                        "train": rows("f", forget_users), "retained": rows("r", 30)})


def test_audit_samples_leave_the_probe_users_out():
    chosen, kept, excluded = audit_samples(_splits(14, 12), probe_users=["f0", "f1", "f3", "nobody"])
    assert (kept, excluded) == (11, 3) and len(chosen["forget"]) == 33 and len(chosen["holdout"]) == 36
    assert not {"f0", "f1", "f3"} & set(chosen["forget"]["user_id"])
    with pytest.raises(LlmrecError, match="once the 5 probe users"):
        audit_samples(_splits(14, 12), probe_users=[f"f{u}" for u in range(5)])
    with pytest.raises(LlmrecError, match="9 forget users|there are 9"):
        audit_samples(_splits(9, 12))
    with pytest.raises(LlmrecError, match="holdout users"):
        audit_samples(_splits(12, 0))


def test_shadow_users_are_a_seeded_fraction_of_the_retained_users():
    users = [f"u{i}" for i in range(41)] * 2
    half = shadow_users(users, 0.5, seed=0)
    assert len(half) == 20 and half == sorted(set(half)) and set(half) < set(users)
    assert half == shadow_users(users, 0.5, seed=0) and half != shadow_users(users, 0.5, seed=1)
    assert shadow_users(users, 1.0, 0) == sorted(set(users)) and len(shadow_users(users, 0.001, 0)) == 1


def test_p_true_is_p_yes_for_positives_and_its_complement_for_negatives():
    assert np.allclose(p_true([1, 0, 1], [0.9, 0.9, 0.2]), [0.9, 0.1, 0.2])


def test_check_unseen_reads_the_training_users_from_the_card(tmp_path, capsys):
    splits = _splits(12, 12)
    recipe = {"train": {"train_on": "train", "only_users": None}, "forget": {}, "data": {}}
    with pytest.raises(LlmrecError, match="trained on 12 forget users"):
        check_unseen("audit.reference", tmp_path, {"recipe": recipe}, splits, {"f0", *(f"f{u}" for u in range(12))},
                     {"h0"})
    assert check_unseen("audit.retrain", tmp_path, {"recipe": recipe}, splits, {"x"}, set()) == 12
    assert check_unseen("audit.reference", tmp_path, {}, splits, {"f0"}, set()) is None  # no recipe: cannot tell
    assert "cannot check" in capsys.readouterr().out


def test_check_shadow_dir(tmp_path):
    check_shadow_dir(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_shadow_dir(tmp_path / "empty")
    (tmp_path / "ours").mkdir()
    (tmp_path / "ours" / SHADOW_MARK).write_text("{}")
    (tmp_path / "ours" / "train").mkdir()
    check_shadow_dir(tmp_path / "ours")
    (tmp_path / "file").write_text("x")
    with pytest.raises(LlmrecError, match="is a file"):
        check_shadow_dir(tmp_path / "file")


def test_an_unlearning_audit_left_with_too_few_users_after_the_probes_is_skipped_not_fatal(capsys):
    from llmrec.config import AuditConfig
    from llmrec.eval.audit_run import Prepared
    from llmrec.unlearn.run import UnlearnRecipe, run_audit_into

    splits = _splits(14, 12)
    prepared = Prepared(original=None, retrain=None, references=[], splits={}, forget_users=14,
                        probe_users_excluded=0)
    result = {"stopping": {"probe_user_ids": [f"f{u}" for u in range(7)]}}
    record = run_audit_into(Path("unused"), UnlearnRecipe(audit=AuditConfig(shadow=True)), prepared, splits, result,
                            accelerator=None)
    assert record["verdict"] is None and "7 probe users" in record["skipped"]
    assert "warning: audit skipped" in capsys.readouterr().out


def test_a_retrains_users_file_is_found_in_its_output_after_the_temporary_folder_is_renamed(tmp_path):
    """`unlearn method=retrain` records retained-users.txt at its temporary path: the file is found in the output,
    so a retrain that trained on audited users is caught (was: 'cannot check', exit 0, the verdict graded on it)."""
    output = tmp_path / "r1"
    output.mkdir()
    (output / "retained-users.txt").write_text("f0\nf1\n")
    gone = str(tmp_path / ".r1.tmp-123" / "retained-users.txt")
    assert recorded_users_file(gone, output) == output / "retained-users.txt"
    assert recorded_users_file(gone, output / "model") == output / "retained-users.txt"  # the folder above
    assert recorded_users_file(str(output / "retained-users.txt"), None) == output / "retained-users.txt"
    assert recorded_users_file(gone, tmp_path / "elsewhere") is None


def test_a_training_runs_folder_is_refused_as_output_dir_and_left_as_it_was(quick, tmp_path, capsys):
    """Issue 19 (tester item 5): output_dir=<a training run's folder> replaced its config.yaml with the audit's."""
    model, args = quick
    run_dir = Path(model).parent  # the training run: config.yaml, train_metrics.json, model/
    assert (run_dir / "config.yaml").is_file() and (run_dir / "train_metrics.json").is_file()
    before = {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()}
    code, _, err = run(capsys, "audit", f"model={model}", f"output_dir={run_dir}", *args)
    assert_one_line_error(code, err, "another run's folder", "train_metrics.json")
    assert {p.name: p.read_bytes() for p in run_dir.iterdir() if p.is_file()} == before
    # a model folder has no config.yaml, but the audit's files in it would change the model's stage hash (tester)
    other = shutil.copytree(model, tmp_path / "other" / "model")  # another model, not one the audit reads
    model_files = {p.name: p.read_bytes() for p in other.iterdir() if p.is_file()}
    code, _, err = run(capsys, "audit", f"model={model}", f"output_dir={other}", *args)
    assert_one_line_error(code, err, "another run's folder or a model", "llmrec_model.json")
    assert {p.name: p.read_bytes() for p in other.iterdir()} == model_files


def test_an_audit_the_probe_users_would_starve_is_skipped_before_any_shadow_is_trained(capsys):
    """Issue 19 (tester item 4): the skip was found only after the unlearning, once a shadow had been trained."""
    from llmrec.config import AuditConfig
    from llmrec.eval.audit_run import Prepared
    from llmrec.unlearn.registry import get_method
    from llmrec.unlearn.run import UnlearnRecipe, audit_or_skip

    splits = _splits(14, 12)
    prepared = Prepared(original=None, retrain=None, references=[], splits={}, forget_users=14,
                        probe_users_excluded=0)
    recipe = UnlearnRecipe(audit=AuditConfig(shadow=True))  # stop.rule=auto: parity, half of 14 users probed
    kept, skipped = audit_or_skip(prepared, recipe, get_method("neggrad"), splits)
    assert kept is None and "7 probe users" in skipped["skipped"] and skipped["verdict"] is None
    assert "warning: audit skipped" in capsys.readouterr().out
    assert audit_or_skip(prepared, recipe, get_method("retrain"), splits) == (prepared, None)  # probes no one
    fixed = UnlearnRecipe(audit=AuditConfig(shadow=True), stop=dataclasses.replace(recipe.stop, rule="fixed"))
    assert audit_or_skip(prepared, fixed, get_method("neggrad"), splits) == (prepared, None)
