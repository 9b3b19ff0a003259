"""The stopping rule (issue 19 item 3): stop when the probe half of the forget users fits no better than the
holdout users, never look at the report half, and keep the fixed schedules exactly as they were."""

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

import llmrec.unlearn.stopping as stopping_module
from llmrec.config import PromptConfig, load_recipe
from llmrec.data.samples import prepare_splits
from llmrec.errors import ConfigError
from llmrec.llm.backbone import AnswerTokens, load_model, load_tokenizer
from llmrec.store import read_model_card
from llmrec.llm.train import train
from llmrec.unlearn.data import UnlearningData
from llmrec.unlearn.stopping import steps_for
from llmrec.unlearn.loop import LlmUnlearning, optimize_until
from llmrec.unlearn.stopping import (
    NO_HOLDOUT,
    StopConfig,
    Stopping,
    check_interval,
    parity_gap,
    reached,
    resolve_rule,
    split_probe,
)
from tests.conftest import SMALL_OVERRIDES
from tests.unlearn.conftest import original_and_data

USERS = [f"u{i}" for i in range(40)]


def test_split_probe_is_disjoint_seeded_and_covers_every_forget_user():
    probe, report = split_probe(USERS, 0.5, seed=0)
    assert len(probe) == len(report) == 20 and not set(probe) & set(report)
    assert sorted(probe + report) == sorted(USERS) and probe == sorted(probe) and report == sorted(report)
    assert split_probe(list(reversed(USERS)) + USERS[:5], 0.5, seed=0) == (probe, report)  # a set: order, repeats
    assert split_probe(USERS, 0.5, seed=1) != (probe, report)
    assert len(split_probe(USERS, 0.25, seed=0)[0]) == 10
    assert split_probe(["a", "b"], 0.5, seed=3)[0] in (["a"], ["b"])


@pytest.mark.parametrize("users, fraction", [(["only"], 0.5), (USERS, 0.01), (USERS, 0.99)])
def test_split_probe_refuses_an_empty_half(users, fraction):
    with pytest.raises(ConfigError, match="empty probe or report half"):
        split_probe(users, fraction, seed=0)


def test_parity_gap_is_holdout_minus_forget_in_the_losses_unit():
    remembered = parity_gap(forget_losses=[0.1, 0.3], holdout_losses=[0.5, 0.6, 0.7])  # means 0.2 and 0.6
    assert remembered == pytest.approx(0.4)
    assert parity_gap(np.array([0.9, 0.7]), torch.tensor([0.5, 0.7])) == pytest.approx(-0.2)  # over-forgotten
    assert parity_gap([math.log(2)], [math.log(2)]) == 0.0  # P(true) = ½ on both sides: parity, in nats
    with pytest.raises(ValueError, match="at least one"):
        parity_gap([], [0.5])


def test_reached_is_gap_at_most_tolerance_and_never_an_unmeasured_gap():
    assert reached(0.0, 0.0) and reached(-0.3, 0.0) and reached(0.04, 0.05)
    assert not reached(0.01, 0.0) and not reached(None, 1.0) and not reached(float("nan"), 1.0)


def test_resolve_rule():
    assert resolve_rule(StopConfig(), holdout_users=3) == "parity"
    assert resolve_rule(StopConfig(), holdout_users=0) == "fixed"
    assert resolve_rule(StopConfig(rule="fixed"), holdout_users=3) == "fixed"
    with pytest.raises(ConfigError) as error:
        resolve_rule(StopConfig(rule="parity"), holdout_users=0)
    assert str(error.value) == NO_HOLDOUT == ("stop.rule=parity needs holdout users (data.holdout > 0); set "
                                              "stop.rule=fixed for the fixed schedule")


def test_optimize_until_checks_at_zero_every_n_and_the_end_and_stops_when_told():
    model = torch.nn.Linear(2, 1)
    seen = []

    def check(step):
        seen.append(step)
        return False

    def loss(step):
        return model(torch.ones(1, 2)).sum()

    assert optimize_until(model, 10, loss, 1e-2, check=check, every=3)[1] == 10
    assert seen == [0, 3, 6, 9, 10]
    seen.clear()
    assert optimize_until(model, 10, loss, 1e-2, check=lambda step: seen.append(step) or step == 6, every=3)[1] == 6
    assert seen == [0, 3, 6]
    assert optimize_until(model, 4, loss, 1e-2)[1] == 4  # no check: the fixed length


# --- the rule inside the methods -----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def held_out(tmp_path_factory):
    """An original like the shared `trained` one (8 short epochs), but with 10% holdout users it never saw."""
    root = tmp_path_factory.mktemp("held_out")
    recipe = load_recipe(None, [f"output_dir={root / 'run'}", f"data.cache_dir={root / 'cache'}", *SMALL_OVERRIDES,
                                "train.epochs=8", "train.learning_rate=3e-3", "data.holdout=0.1"])
    train(recipe)
    return recipe


def held_out_run(held_out, splits=None, **stop):
    """A fresh copy of the held-out original and its data under StopConfig(**stop)."""
    return original_and_data(held_out, stop=StopConfig(**stop), splits=splits)


def test_parity_stops_a_big_learning_rate_early_at_the_first_check_at_parity(held_out):
    """Bad-T at 10× its learning rate: the forget users' fit falls to a never-seen user's within a few steps (the
    tiny model mostly forgets everything: measured, stopped at step 6 of 48; 3e-3 ran to step 40)."""
    from llmrec.unlearn.methods.bad_t import BadTConfig, unlearn_bad_t

    model, data = held_out_run(held_out, rule="parity", every=2, max_epochs=4.0)
    assert data.holdout_users and not set(data.holdout_users) & set(data.forget["user_id"])
    result = unlearn_bad_t(LlmUnlearning(model, data), BadTConfig(batch_size=8, learning_rate=3e-2))
    record = result["stopping"]
    assert json.loads(json.dumps(record, allow_nan=False)) == record  # strict JSON for the manifest
    assert record["rule"] == "parity" and record["budget_steps"] == steps_for(4.0, len(data.forget), 8)
    checks = record["checks"]
    assert checks[0]["step"] == 0 and checks[0]["gap_nats"] > 0  # θ₀ fits its forget users better
    assert record["reached"] and record["stopped_at_step"] <= record["budget_steps"] // 2
    assert checks[-1]["step"] == record["stopped_at_step"] == result["steps"]["train"]
    assert checks[-1]["gap_nats"] <= 0 < min(c["gap_nats"] for c in checks[:-1])  # the first check at parity
    assert [c["step"] for c in checks] == list(range(0, record["stopped_at_step"] + 1, 2))
    assert result["retained_samples_used"] == record["stopped_at_step"] * 8  # only what the steps taken consumed
    assert record["probe_user_ids"] and record["report_user_ids"]
    assert sorted(record["probe_user_ids"] + record["report_user_ids"]) == sorted(set(data.forget["user_id"]))
    assert record["holdout_samples"] == len(data.holdout_pool)  # fewer than max_samples: all of them


def test_the_rule_never_looks_at_the_report_half(held_out, monkeypatch):
    """Every sample it scores is a probe forget user's or a holdout user's; and poisoning the report half's samples
    (their labels flipped) leaves every measured gap, and so every decision, as it was."""
    from llmrec.unlearn.methods.neggrad import NegGradConfig, unlearn_neggrad

    scored = []
    real = stopping_module.sample_losses

    def spy(model, data, dataset, batch_size):
        scored.append(set(dataset["user_id"]))
        return real(model, data, dataset, batch_size)

    monkeypatch.setattr(stopping_module, "sample_losses", spy)
    model, data = held_out_run(held_out, rule="parity", every=3, max_epochs=1.0)
    result = unlearn_neggrad(LlmUnlearning(model, data), NegGradConfig(batch_size=8, learning_rate=1e-3))
    record = result["stopping"]
    report, allowed = set(record["report_user_ids"]), set(record["probe_user_ids"]) | set(data.holdout_users)
    assert len(scored) == 2 * len(record["checks"]) >= 4
    assert all(users <= allowed and not users & report for users in scored)

    splits = prepare_splits(held_out.data, held_out.forget)
    probe = set(record["probe_user_ids"])
    poisoned = dict(splits, forget=splits["forget"].map(
        lambda row: {"label": row["label"] if row["user_id"] in probe else 1 - row["label"]}))
    clean_model, clean = held_out_run(held_out, rule="parity")
    _, dirty = held_out_run(held_out, splits=poisoned, rule="parity")
    assert dirty.forget["label"] != clean.forget["label"]
    assert Stopping(dirty, 1, len(dirty.forget), 8).measure(clean_model) == Stopping(
        clean, 1, len(clean.forget), 8).measure(clean_model)


def test_e2urec_under_parity_runs_warmup_then_joint_within_the_budget(held_out):
    from llmrec.unlearn.methods.e2urec import E2URecConfig, unlearn_e2urec

    config = E2URecConfig(batch_size=8, warmup_epochs=0.25, augment=dataclasses.replace(
        E2URecConfig().augment, epochs=0.25), lora=dataclasses.replace(E2URecConfig().lora, r=4))
    model, data = held_out_run(held_out, rule="parity", every=2, max_epochs=0.75,
                               tolerance=-100.0)  # never reached: the whole budget, retained samples for all of it
    result = unlearn_e2urec(LlmUnlearning(model, data), config)
    budget, warmup = steps_for(0.75, len(data.forget), 8), steps_for(0.25, len(data.forget), 8)
    record = result["stopping"]
    assert record["budget_steps"] == budget == record["stopped_at_step"] and not record["reached"]
    assert result["steps"]["warmup"] == warmup and result["steps"]["joint"] == budget - warmup
    assert result["retained_samples_used"] == (budget - warmup) * 8

    model, data = held_out_run(held_out, rule="parity", every=2, max_epochs=0.75,
                               tolerance=100.0)  # reached at the first check after an update
    result = unlearn_e2urec(LlmUnlearning(model, data), config)
    first = result["stopping"]["every"]  # every=2, capped on this short budget by check_interval
    assert first == min(2, max(1, budget // 10))
    assert result["stopping"]["stopped_at_step"] == first and result["stopping"]["reached"]
    assert result["steps"] == {"augment": steps_for(0.25, len(data.forget), 8), "warmup": first, "joint": 0}
    assert result["retained_samples_used"] == 0


def test_rule_fixed_takes_exactly_the_schedules_from_before_the_rule(held_out):
    """Regression: the step counts every method took before issue 19 (steps_for of its own epochs), also on data
    whose holdout users would allow parity; nothing is checked."""
    from llmrec.unlearn.methods.bad_t import BadTConfig, unlearn_bad_t
    from llmrec.unlearn.methods.bad_teacher import BadTeacherConfig, unlearn_bad_teacher
    from llmrec.unlearn.methods.e2urec import E2URecConfig, unlearn_e2urec
    from llmrec.unlearn.methods.finetune import FinetuneConfig, unlearn_finetune
    from llmrec.unlearn.methods.neggrad import NegGradConfig, unlearn_neggrad

    forget = len(held_out_run(held_out, rule="fixed")[1].forget)
    assert forget == 96  # the numbers below are this forget set's
    small = {"epochs": 0.3, "batch_size": 8}
    for runner, config, steps in [(unlearn_neggrad, NegGradConfig(**small), 4), (unlearn_bad_t, BadTConfig(**small), 4),
                                  (unlearn_finetune, FinetuneConfig(**small), 4),
                                  (unlearn_bad_teacher, BadTeacherConfig(**small), 4)]:
        model, data = held_out_run(held_out, rule="fixed")
        result = runner(LlmUnlearning(model, data), config)
        assert result["steps"] == {"train": steps} == {"train": math.ceil(0.3 * forget / 8)}
        assert result["stopping"]["checks"] == [] and result["stopping"]["rule"] == "fixed"
    model, data = held_out_run(held_out, rule="fixed")
    result = unlearn_e2urec(LlmUnlearning(model, data), E2URecConfig(batch_size=8, warmup_epochs=0.1, joint_epochs=0.2, augment=(
        dataclasses.replace(E2URecConfig().augment, epochs=0.2))))
    assert result["steps"] == {"augment": 3, "warmup": 2, "joint": 3}
    assert result["retained_samples_used"] == 3 * 8 and result["stopping"]["stopped_at_step"] == 5


def test_parity_without_holdout_users_is_one_line_and_auto_falls_back_saying_so(trained, capsys):
    from llmrec.unlearn.methods.neggrad import NegGradConfig, unlearn_neggrad

    model, data = original_and_data(trained, stop=StopConfig(rule="parity"))  # data.holdout=0
    assert data.holdout_users == []
    with pytest.raises(ConfigError) as error:
        unlearn_neggrad(LlmUnlearning(model, data), NegGradConfig(epochs=0.1, batch_size=8))
    assert str(error.value) == NO_HOLDOUT
    model, data = original_and_data(trained, stop=StopConfig())
    result = unlearn_neggrad(LlmUnlearning(model, data), NegGradConfig(epochs=0.1, batch_size=8))
    assert "stop.rule=auto: the data has no holdout users" in capsys.readouterr().out
    assert result["stopping"]["rule"] == "fixed" and result["stopping"]["requested_rule"] == "auto"
    assert result["stopping"]["report_user_ids"] == sorted(set(data.forget["user_id"]))


def test_a_budget_shorter_than_stop_every_is_still_checked_as_it_goes():
    """A small forget set's budget (41 steps) under every=50 was checked only at θ₀ and at the end, so the run took
    the whole budget and overshot; the interval is capped at budget // MIN_CHECKS."""
    assert check_interval(50, 41) == 4
    assert check_interval(50, 1944) == 50  # ML-100K at 20%: the setting stands
    assert check_interval(50, 5) == 1 and check_interval(3, 41) == 3


def test_a_negative_tolerance_is_refused_at_load():
    """Issue 19 (tester item 9): stop.tolerance < 0 asked to forget past parity and was accepted."""
    from llmrec.config import load_recipe
    from llmrec.unlearn.run import UnlearnRecipe

    with pytest.raises(ConfigError, match="stop.tolerance must be 0 or more, got -0.1"):
        load_recipe(None, ["model=x", "stop.tolerance=-0.1"], cls=UnlearnRecipe)


def test_e2urecs_calibrated_teacher_aims_at_the_holdout_users_loss_and_says_so(held_out, capsys):
    """Issue 19 item 3: the paper's forgetting teacher (α 10) raised the ML-100K forget samples' loss by 0.002 nats
    when never-seen users sit 0.011 above; teacher=calibrated solves α for that level."""
    from llmrec.unlearn.methods.e2urec import E2URecConfig, holdout_level, unlearn_e2urec

    config = E2URecConfig(batch_size=8, warmup_epochs=0.25, teacher="calibrated", augment=dataclasses.replace(
        E2URecConfig().augment, epochs=0.25), lora=dataclasses.replace(E2URecConfig().lora, r=4))
    model, data = held_out_run(held_out, rule="parity", every=2, max_epochs=0.5)
    target = holdout_level(LlmUnlearning(model, data), config)
    result = unlearn_e2urec(LlmUnlearning(model, data), config)
    teacher = result["teacher"]
    assert teacher["kind"] == "calibrated" and teacher["target_nats"] == pytest.approx(target, abs=1e-6)
    assert teacher["original_forget_nats"] < target and 0 < teacher["alpha"] < 1e4  # θ₀ remembers its forget users
    assert teacher["teacher_forget_nats"] == pytest.approx(target, abs=1e-4)
    assert "calibrated forgetting teacher: alpha" in capsys.readouterr().out
    assert "teacher" not in unlearn_e2urec(LlmUnlearning(*held_out_run(held_out, rule="fixed")), dataclasses.replace(
        config, teacher="paper", warmup_epochs=0.1, joint_epochs=0.1))


def test_the_calibrated_teacher_without_holdout_users_is_one_line(trained):
    from llmrec.unlearn.methods.e2urec import E2URecConfig, unlearn_e2urec

    model, data = original_and_data(trained, stop=StopConfig(rule="fixed"))  # data.holdout=0
    with pytest.raises(ConfigError, match="e2urec.teacher=calibrated needs holdout users"):
        unlearn_e2urec(LlmUnlearning(model, data), E2URecConfig(batch_size=8, teacher="calibrated"))


def test_the_calibration_line_says_when_alpha_hit_a_bound():
    """Found by the fresh tester: alpha clamped to 0 was printed as if it had put the loss at the holdout level."""
    from llmrec.unlearn.methods.e2urec import calibration_line

    base = {"configured_alpha": 10.0, "configured_teacher_forget_nats": 0.58, "target_nats": 0.60}
    reached = calibration_line({**base, "alpha": 41.7, "teacher_forget_nats": 0.60, "original_forget_nats": 0.57})
    assert reached.startswith("calibrated forgetting teacher: alpha 41.7;") and "target θ₀'s on the holdout users " \
        "0.6000" in reached
    zero = calibration_line({**base, "alpha": 0.0, "teacher_forget_nats": 0.72, "original_forget_nats": 0.72})
    assert "the teacher is θ₀ itself" in zero and "already fit no better than never-seen users" in zero
    short = calibration_line({**base, "alpha": 1e4, "teacher_forget_nats": 0.59, "original_forget_nats": 0.57})
    assert "its bound, falls short of the target" in short
