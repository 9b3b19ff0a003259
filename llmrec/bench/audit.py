"""The membership-inference audit of every LLM row of `llmrec benchmark` (llmrec.eval.audit, as `llmrec audit`).

The benchmark already trains what the audit needs: its second-seed retrain (`retrain (seed 2)`) trained on the
retained users only, so it saw neither a forget user nor a holdout user, and calibrates the attack per sample as
`llmrec audit`'s shadow does (a full-retained-data reference: on ML-100K it made the attack stronger than the
half-data shadow, user AUC 0.73 vs 0.58 on the original). `retrain` is the verdict's reference AUC and its sanity
check (it should come out near 0.5). Members: the forget users' samples less the users a method's stopping rule
probed; non-members: the holdout users' samples.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from llmrec.config import option
from llmrec.eval.audit import MIN_POWER, TOLERANCE, attack_scores, audit_record, membership_audit
from llmrec.eval.audit_run import p_true

CALIBRATION = ("per sample, by the benchmark's second-seed retrain `retrain (seed 2)`: trained on the retained users "
               "only, so on neither a forget nor a holdout user")


@dataclass
class BenchAuditConfig:
    """The audit of every LLM row in the benchmark (none for `retrain (seed 2)`, the calibration itself)."""

    enabled: bool | None = option(None, "audit every LLM row | null: when the data have holdout users (data.holdout)")
    attack: Literal["lira_offline", "calibrated_loss", "loss"] = option(
        "lira_offline", "lira_offline (Carlini et al. 2022) | calibrated_loss (Watson et al. 2022) | loss (Yeom et "
        "al. 2018, uncalibrated)")
    level: Literal["user", "sample"] = option("user", "the level of the headline verdict: user | sample")
    aggregate: Literal["mean", "max"] = option("mean", "a user's score: mean | max of their samples' scores")
    tolerance: float = option(TOLERANCE, "forgotten when |AUC_method - AUC_retrain| <= this (MUSE's PrivLeak band)",
                              ge=0, lt=0.5)
    min_power: float = option(MIN_POWER, "inconclusive when AUC_original - 0.5 is below this", ge=0, lt=0.5)


def audit_on(cfg: BenchAuditConfig, holdout) -> bool:
    """Whether the benchmark audits: `enabled`, or when it is null whether data.holdout is set."""
    return bool(holdout) if cfg.enabled is None else cfg.enabled


def row_audit(cfg: BenchAuditConfig, model: dict, original: dict, retrain: dict, reference: dict,
              forget_user_ids, holdout_user_ids, probe_users=()) -> dict:
    """The audit record of one row (`llmrec.eval.audit.audit_record`, plus calibration and counts).

    `model`, `original` (the row's own starting point), `retrain`, `reference` (the calibration): {split: (labels
    [n], P(yes) [n])} holding "forget" and "holdout". `forget_user_ids` / `holdout_user_ids`: those splits' user
    ids. The samples of `probe_users` (a stopping rule's probe half) are left out of the members.
    ValueError when no member is left.
    """
    probes = set(probe_users or ())
    forget_ids = np.asarray(forget_user_ids)
    keep = np.array([user not in probes for user in forget_ids], dtype=bool)
    if not keep.any():
        raise ValueError("every forget user is a probe user: no member is left to audit")
    holdout_ids = np.asarray(holdout_user_ids)
    ids = np.concatenate([forget_ids[keep], holdout_ids])
    members = np.concatenate([np.ones(int(keep.sum()), bool), np.zeros(len(holdout_ids), bool)])

    def p(scored: dict) -> np.ndarray:  # P(true label) [members + non-members]
        return np.concatenate([p_true(*scored["forget"])[keep], p_true(*scored["holdout"])])

    references = None if cfg.attack == "loss" else p(reference)[None, :]
    audits = {name: membership_audit(attack_scores(cfg.attack, p(scored), references), ids, members, cfg.aggregate)
              for name, scored in (("original", original), ("unlearned", model), ("retrain", retrain))}
    record = audit_record(audits["original"], audits["unlearned"], audits["retrain"], attack=cfg.attack,
                          aggregate=cfg.aggregate, level=cfg.level, tolerance=cfg.tolerance, min_power=cfg.min_power)
    record["calibration"] = CALIBRATION if cfg.attack != "loss" else "none: the loss attack is not calibrated"
    record["counts"] = {"forget_users": len(set(forget_ids[keep].tolist())), "forget_samples": int(keep.sum()),
                        "holdout_users": len(set(holdout_ids.tolist())), "holdout_samples": len(holdout_ids),
                        "probe_users_excluded": len(set(forget_ids.tolist()) & probes)}
    return record
