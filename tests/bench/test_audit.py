"""The benchmark's per-row audit (llmrec.bench.audit), on constructed scores."""

import numpy as np
import pytest

from llmrec.bench.audit import BenchAuditConfig, audit_on, row_audit


def scored(forget_p_true, holdout_p_true):
    """{split: (labels, P(yes))} with every label 1, so P(yes) = P(true label)."""
    return {"forget": ([1] * len(forget_p_true), list(forget_p_true)),
            "holdout": ([1] * len(holdout_p_true), list(holdout_p_true))}


@pytest.fixture
def world():
    rng = np.random.default_rng(0)
    # 200 users a side: the user-level null SD (0.029) is inside the ±0.05 band, so a verdict can be reached
    forget_users = np.repeat([f"f{i}" for i in range(200)], 5)
    holdout_users = np.repeat([f"h{i}" for i in range(200)], 5)
    base_f, base_h = rng.uniform(0.3, 0.7, 1000), rng.uniform(0.3, 0.7, 1000)
    never_saw = scored(base_f, base_h)  # the forget users look like the holdout users
    memorised = scored(np.clip(base_f + 0.25, 0, 0.99), base_h)  # trained on the forget users
    reference = scored(base_f + rng.normal(0, 0.01, 1000), base_h + rng.normal(0, 0.01, 1000))
    return forget_users, holdout_users, never_saw, memorised, reference


def test_a_model_that_kept_the_forget_users_is_told_apart_and_one_that_never_saw_them_is_not(world):
    forget_users, holdout_users, never_saw, memorised, reference = world
    cfg = BenchAuditConfig()
    kept = row_audit(cfg, memorised, memorised, never_saw, reference, forget_users, holdout_users)
    assert kept["models"]["unlearned"]["user"]["auc"] > 0.95 and kept["verdict"] == "not forgotten"
    gone = row_audit(cfg, never_saw, memorised, never_saw, reference, forget_users, holdout_users)
    assert gone["models"]["unlearned"]["user"]["auc"] == pytest.approx(gone["models"]["retrain"]["user"]["auc"])
    assert abs(gone["models"]["retrain"]["user"]["auc"] - 0.5) < 0.2 and gone["verdict"] == "forgotten"
    assert gone["counts"] == {"forget_users": 200, "forget_samples": 1000, "holdout_users": 200,
                              "holdout_samples": 1000, "probe_users_excluded": 0}


def test_probe_users_are_no_members(world):
    forget_users, holdout_users, never_saw, memorised, reference = world
    probes = [f"f{i}" for i in range(150)]
    record = row_audit(BenchAuditConfig(), memorised, memorised, never_saw, reference, forget_users, holdout_users,
                       probes)
    assert record["counts"]["forget_users"] == 50 and record["counts"]["probe_users_excluded"] == 150
    assert record["models"]["unlearned"]["user"]["members"] == 50
    with pytest.raises(ValueError, match="no member"):
        row_audit(BenchAuditConfig(), memorised, memorised, never_saw, reference, forget_users, holdout_users,
                  sorted(set(forget_users)))


def test_the_audit_runs_when_the_data_have_holdout_users_unless_told_otherwise():
    assert audit_on(BenchAuditConfig(), 0.05) and not audit_on(BenchAuditConfig(), 0)
    assert audit_on(BenchAuditConfig(enabled=True), 0) is True
    assert not audit_on(BenchAuditConfig(enabled=False), "holdout.txt")
