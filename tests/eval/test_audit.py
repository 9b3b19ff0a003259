"""The membership-inference audit: attack scores, per-user aggregation, AUC / TPR at 1% FPR, the verdict
rule and the report, on constructed populations with known answers."""

import json
import math

import numpy as np
import pytest

from llmrec.eval.audit import (
    MIN_POWER,
    TOLERANCE,
    attack_result,
    attack_scores,
    audit_record,
    calibrated_loss_scores,
    lira_offline_scores,
    loss_scores,
    membership_audit,
    true_label_loss,
    user_scores,
    verdict,
)
from llmrec.eval.audit_report import audit_markdown, write_audit_report
from llmrec.io import json_text


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def population(rng, users: int, per_user: int, shift: float, first_id: int = 0):
    """Samples of `users` users: a per-sample difficulty d (logit of the never-trained confidence), a
    reference model's P(true label) = sigmoid(d + noise) and a target's sigmoid(d + noise + shift)."""
    ids = np.repeat(np.arange(first_id, first_id + users), per_user)
    difficulty = rng.normal(0.0, 2.0, size=len(ids))
    reference = sigmoid(difficulty + rng.normal(0.0, 0.3, size=len(ids)))
    target = sigmoid(difficulty + rng.normal(0.0, 0.3, size=len(ids)) + shift)
    return ids, reference, target


def audit_of(rng, shift: float, users: int = 1000, per_user: int = 5, attack: str = "lira_offline"):
    """A model's audit when forget users' samples are `shift` logits more confident than holdout users'."""
    f_ids, f_ref, f_target = population(rng, users, per_user, shift)
    h_ids, h_ref, h_target = population(rng, users, per_user, 0.0, first_id=users)
    scores = attack_scores(attack, np.concatenate([f_target, h_target]), np.concatenate([f_ref, h_ref]))
    members = np.concatenate([np.ones(len(f_ids), bool), np.zeros(len(h_ids), bool)])
    return membership_audit(scores, np.concatenate([f_ids, h_ids]), members)


def null_sd(m: int, n: int) -> float:
    """Standard deviation of the Mann-Whitney AUC when both groups come from one distribution."""
    return math.sqrt((m + n + 1) / (12 * m * n))


def test_same_distribution_gives_chance_auc_and_forgotten():
    rng = np.random.default_rng(0)
    original = audit_of(rng, shift=1.0)
    unlearned = audit_of(rng, shift=0.0)  # forget and holdout users drawn alike: nothing to find
    # 1000 users a side: the AUC under H0 has sd 0.0129, so 3 sd (0.039) fits inside the 0.05 band.
    assert unlearned.user.auc_null_sd == pytest.approx(null_sd(1000, 1000))
    assert abs(unlearned.user.auc - 0.5) <= 3 * null_sd(1000, 1000)
    assert abs(unlearned.sample.auc - 0.5) <= 3 * null_sd(5000, 5000)
    record = audit_record(original, unlearned, attack="lira_offline")
    assert record["verdict"] == "forgotten"
    assert record["verdicts"]["user"]["reference"] == "chance"
    assert record["verdicts"]["user"]["power"] > MIN_POWER


def test_members_clearly_more_confident_are_found_and_not_forgotten():
    rng = np.random.default_rng(1)
    original = audit_of(rng, shift=1.5)
    unlearned = audit_of(rng, shift=1.0)  # moved, but the forget users still stand out
    assert original.user.auc > 0.9 and unlearned.user.auc > 0.9
    assert unlearned.user.tpr_at_1pct_fpr > 0.2  # 1000 holdout users: the 1% point is defined
    found = verdict(unlearned.user.auc, original.user.auc)
    assert found.verdict == "not forgotten" and found.direction == "under-unlearned"
    assert found.privleak == pytest.approx((unlearned.user.auc - 0.5) / 0.5)


def test_difficulty_calibration_lifts_a_weak_loss_attack():
    # Per-sample difficulty (sd 2 logits) swamps a 1-logit membership shift for the plain loss attack:
    # AUC = Phi(1 / (sqrt(4.09) * sqrt(2))) = 0.64. A reference model removes the difficulty: on the logit
    # difference (what LiRA with one reference ranks by) AUC = Phi(1 / (sqrt(0.18) * sqrt(2))) = 0.95;
    # Watson's loss difference is squeezed on confident samples (loss = ln(1 + e^-logit)), so less, but > 0.85.
    rng = np.random.default_rng(2)
    f_ids, f_ref, f_target = population(rng, 500, 4, 1.0)
    h_ids, h_ref, h_target = population(rng, 500, 4, 0.0, first_id=500)
    target, reference = np.concatenate([f_target, h_target]), np.concatenate([f_ref, h_ref])
    members = np.concatenate([np.ones(len(f_ids), bool), np.zeros(len(h_ids), bool)])

    def auc(scores):
        return attack_result(scores[members], scores[~members]).auc

    plain = auc(loss_scores(true_label_loss(target)))
    watson = auc(calibrated_loss_scores(true_label_loss(target), true_label_loss(reference)))
    lira = auc(lira_offline_scores(target, reference))
    assert 0.64 - 3 * null_sd(2000, 2000) < plain < 0.64 + 3 * null_sd(2000, 2000)
    assert watson > 0.85
    assert 0.95 - 3 * null_sd(2000, 2000) < lira


def test_lira_offline_by_hand():
    # Two references, two samples, logits [[0, 2], [2, 0]]: per-sample median 1, global sd 1 (fixed variance,
    # the default below 64 references). Target logits [1, 3] sit at z = 0 and 2 above the OUT Gaussian.
    references = sigmoid(np.array([[0.0, 2.0], [2.0, 0.0]]))
    scores = lira_offline_scores(sigmoid(np.array([1.0, 3.0])), references)
    assert scores == pytest.approx([math.log(0.5), math.log(0.5 * (1 + math.erf(2 / math.sqrt(2))))], abs=1e-5)
    # Per-sample variance: sd over the two references is 1 for both samples here, so the same numbers.
    per_sample = lira_offline_scores(sigmoid(np.array([1.0, 3.0])), references, fix_variance=False)
    assert per_sample == pytest.approx(scores, abs=1e-5)
    with pytest.raises(ValueError, match="at least 2 reference"):
        lira_offline_scores([0.5], [0.6], fix_variance=False)
    with pytest.raises(ValueError, match="zero variance"):
        lira_offline_scores([0.5, 0.7], [0.6, 0.6])


def test_calibrated_loss_by_hand():
    # Reference losses [[1, 2], [3, 4]] average to [2, 3]; target losses [0.5, 3.5].
    assert calibrated_loss_scores([0.5, 3.5], [[1.0, 2.0], [3.0, 4.0]]) == pytest.approx([1.5, -0.5])
    with pytest.raises(ValueError, match="reference loss must be"):
        calibrated_loss_scores([0.5, 3.5], [1.0, 2.0, 3.0])


def test_tpr_at_one_percent_fpr_by_hand():
    # 100 holdout scores 0..99. At threshold 98.5 one holdout (99) is above: FPR 0.01; forget scores
    # 101, 100, 99.5, 98.5 are at or above it: TPR 4/10. Threshold 98 would add a second false positive.
    members = [101, 100, 99.5, 98.5, 50, 40, 30, 20, 10, 5]
    result = attack_result(members, np.arange(100))
    assert result.tpr_at_1pct_fpr == pytest.approx(0.4)
    # AUC by hand: each member beats the holdout scores below it.
    wins = sum(sum(1 for h in range(100) if m > h) + 0.5 * sum(1 for h in range(100) if m == h) for m in members)
    assert result.auc == pytest.approx(wins / 1000)
    assert (result.members, result.nonmembers) == (10, 100)


def test_small_auc_by_hand():
    # Pairs (3>2, 3>0, 1<2, 1>0): 3 of 4.
    assert attack_result([3, 1], [2, 0], min_per_side=2).auc == pytest.approx(0.75)


def test_user_scores_by_hand():
    users, means = user_scores([1.0, 2.0, 3.0, 10.0], ["b", "a", "b", "a"])
    assert list(users) == ["a", "b"] and means == pytest.approx([6.0, 2.0])
    assert user_scores([1.0, 2.0, 3.0, 10.0], ["b", "a", "b", "a"], "max")[1] == pytest.approx([10.0, 3.0])
    with pytest.raises(ValueError, match="aggregate"):
        user_scores([1.0], ["a"], "median")


def test_undefined_cases_are_none_with_a_reason():
    few = attack_result(np.arange(5.0), np.arange(30.0), unit="users")
    assert few.auc is None and few.tpr_at_1pct_fpr is None and few.auc_null_sd is None
    assert few.auc_skipped == "5 forget users < 10"
    no_tail = attack_result(np.arange(20.0), np.arange(50.0), unit="users")
    assert no_tail.auc is not None and no_tail.tpr_at_1pct_fpr is None
    assert no_tail.tpr_skipped.startswith("50 holdout users < 100")

    weak = verdict(0.5, 0.5 + MIN_POWER / 2)
    assert weak.verdict == "inconclusive" and "too weak" in weak.reason
    undefined = verdict(None, 0.9)
    assert undefined.verdict == "inconclusive" and "unlearned" in undefined.reason and undefined.privleak is None
    no_retrain_auc = verdict(0.5, 0.9, None, retrain_given=True)
    assert no_retrain_auc.verdict == "inconclusive" and "retrain" in no_retrain_auc.reason

    with pytest.raises(ValueError, match="not finite"):
        attack_result([np.nan] * 10, np.arange(10.0))
    with pytest.raises(ValueError, match="both forget and holdout"):
        membership_audit([1.0, 2.0], ["u", "u"], [True, False])


def test_verdict_against_a_retrain():
    found = verdict(0.56, 0.9, 0.52)
    assert found.verdict == "forgotten" and found.reference == "retrain"
    assert found.privleak == pytest.approx(0.04 / 0.52)
    over = verdict(0.40, 0.9, 0.52)
    assert over.verdict == "not forgotten" and over.direction == "over-unlearned"
    assert verdict(0.5 + TOLERANCE + 0.01, 0.9).verdict == "not forgotten"


def test_record_is_strict_json_and_report_holds_the_numbers(tmp_path):
    rng = np.random.default_rng(3)
    original, unlearned = audit_of(rng, 1.5, users=60, per_user=3), audit_of(rng, 0.0, users=60, per_user=3)
    retrain = audit_of(rng, 0.0, users=60, per_user=3)
    record = audit_record(original, unlearned, retrain, attack="calibrated_loss")
    loaded = json.loads(json_text(record), parse_constant=lambda name: pytest.fail(f"non-strict JSON: {name}"))
    assert loaded["models"]["unlearned"]["user"]["tpr_at_1pct_fpr"] is None  # 60 holdout users < 100
    assert "Watson" in loaded["attack_description"] and "PrivLeak" in loaded["rule"]

    markdown, picture = write_audit_report(tmp_path / "report", record,
                                           {"original": original, "unlearned": unlearned, "retrain": retrain})
    text = markdown.read_text()
    assert text == audit_markdown(record)
    for audit in (original, unlearned, retrain):
        assert f"{audit.sample.auc:.4f}" in text and f"{audit.user.auc:.4f}" in text
    assert f"{original.sample.tpr_at_1pct_fpr:.4f}" in text
    assert f"**Verdict (user level): {record['verdict']}**" in text
    assert "unlearned, user: 60 holdout users < 100" in text  # why a cell is empty, said under the table
    assert picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in picture.parent.iterdir()) == ["audit.md", "audit.png"]  # no temporary files left


def test_a_verdict_within_the_audits_noise_is_inconclusive():
    """Issue 19 (tester item 7): 30 holdout users give a user-level null SD near 0.06, wider than the ±0.05 band."""
    assert verdict(0.52, 0.9, 0.5, null_sd=0.02).verdict == "forgotten"
    noisy = verdict(0.52, 0.9, 0.5, null_sd=0.06)
    assert noisy.verdict == "inconclusive" and "null SD 0.0600 > 0.05" in noisy.reason and noisy.null_sd == 0.06
    near = verdict(0.58, 0.9, 0.5, null_sd=0.045)  # 0.08 beyond the band but within 2 SDs (0.09)
    assert near.verdict == "inconclusive" and "within 2 null SDs" in near.reason
    far = verdict(0.75, 0.9, 0.5, null_sd=0.045)
    assert far.verdict == "not forgotten" and far.direction == "under-unlearned"
    assert verdict(0.52, 0.9, 0.5).verdict == "forgotten"  # no null SD given: the band alone


def test_scores_a_few_ulps_apart_still_get_histogram_bins():
    """A model calibrated by itself scores every user ~0, a few ulps apart: numpy refuses 30 bins over that range
    ('Too many bins for data range'), which crashed llmrec evaluate's audit plot with a traceback."""
    from llmrec.eval.audit_report import score_bins

    tiny = np.array([1.0, 1.0 + 2.2e-16] * 10)
    with pytest.raises(ValueError, match="Too many bins"):
        np.histogram_bin_edges(tiny, bins=30)
    edges = score_bins(tiny)
    assert edges[0] < tiny.min() and edges[-1] > tiny.max()
    assert len(score_bins(np.linspace(0, 1, 50))) == 31 and score_bins(np.array([])) == 10
