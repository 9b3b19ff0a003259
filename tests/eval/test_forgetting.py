import math

import numpy as np
import pytest

from llmrec.eval.forgetting import (
    forget_gap_closure,
    js_divergence,
    l2_distance,
    membership_inference_auc,
    symmetric_kl,
    true_label_confidence,
)


def test_js_divergence_identical_is_zero():
    p = [0.1, 0.5, 0.9, 0.999]
    assert abs(js_divergence(p, p)) < 1e-12


def test_js_divergence_is_symmetric():
    p, q = [0.2, 0.7, 0.95], [0.6, 0.1, 0.5]
    assert js_divergence(p, q) == pytest.approx(js_divergence(q, p))


def test_js_divergence_hand_computed():
    m_yes, m_no = (0.9 + 0.5) / 2, (0.1 + 0.5) / 2
    kl_p_m = 0.9 * math.log(0.9 / m_yes) + 0.1 * math.log(0.1 / m_no)
    kl_q_m = 0.5 * math.log(0.5 / m_yes) + 0.5 * math.log(0.5 / m_no)
    expected = 0.5 * kl_p_m + 0.5 * kl_q_m
    assert js_divergence([0.9], [0.5]) == pytest.approx(expected)


def test_js_divergence_bounded_by_ln2():
    value = js_divergence([1.0], [0.0])
    assert math.isfinite(value)
    assert value <= math.log(2)
    assert value == pytest.approx(math.log(2), abs=1e-5)


def test_symmetric_kl_identical_is_zero():
    p = [0.1, 0.5, 0.9]
    assert abs(symmetric_kl(p, p)) < 1e-12


def test_symmetric_kl_is_the_e2urec_reference_half_sum():
    """E2URec's evaluate.py: 0.5*KL(p||q) + 0.5*KL(q||p) per sample, then the mean over samples."""
    p, q = [0.9, 0.2, 0.6], [0.7, 0.4, 0.5]

    def kl(a, b):  # Bernoulli KL([a, 1-a] || [b, 1-b]) in nats, written out
        return a * math.log(a / b) + (1 - a) * math.log((1 - a) / (1 - b))

    per_sample = [0.5 * kl(a, b) + 0.5 * kl(b, a) for a, b in zip(p, q)]
    expected = sum(per_sample) / 3
    # by hand, sample 1: KL(p||q) = 0.9 ln(9/7) + 0.1 ln(1/3) = 0.11632, KL(q||p) = 0.7 ln(7/9) + 0.3 ln 3 = 0.15366
    assert per_sample == pytest.approx([0.134993, 0.098083, 0.020273], abs=1e-6)
    assert expected == pytest.approx(0.084450, abs=1e-6)
    assert symmetric_kl(p, q) == pytest.approx(expected, rel=1e-9)


def test_symmetric_kl_is_symmetric_and_exceeds_jsd():
    p, q = [0.2, 0.7, 0.95], [0.6, 0.1, 0.5]
    assert symmetric_kl(p, q) == pytest.approx(symmetric_kl(q, p))
    assert symmetric_kl(p, q) > js_divergence(p, q)


def test_mismatched_lengths_raise():
    with pytest.raises(ValueError, match="same samples"):
        js_divergence([0.1, 0.2], [0.3])


def test_l2_distance():
    assert l2_distance([0.75], [0.25]) == pytest.approx(math.sqrt(2) * 0.5)
    assert l2_distance([0.3, 0.6], [0.3, 0.6]) == 0.0


def test_forget_gap_closure():
    assert forget_gap_closure(0.80, 0.76, 0.76) == pytest.approx(1.0)
    assert forget_gap_closure(0.80, 0.80, 0.76) == pytest.approx(0.0)
    assert forget_gap_closure(0.80, 0.72, 0.76) == pytest.approx(2.0)  # overshoot
    assert math.isnan(forget_gap_closure(0.80, 0.70, 0.80))


def test_true_label_confidence():
    assert true_label_confidence([1, 0], [0.8, 0.3]) == pytest.approx(0.75)


def _group(rng, size, confidence):
    """Labels and P(yes) whose P(true label) is near `confidence`."""
    labels = rng.integers(0, 2, size)
    conf = np.clip(rng.normal(confidence, 0.03, size), 0.01, 0.99)
    return labels, np.where(labels == 1, conf, 1 - conf)


def test_membership_inference_same_distribution_is_chance():
    rng = np.random.default_rng(0)
    members = rng.binomial(1, 0.5, 400), rng.uniform(size=400)
    nonmembers = rng.binomial(1, 0.5, 400), rng.uniform(size=400)
    assert membership_inference_auc(*members, *nonmembers) == pytest.approx(0.5, abs=0.08)


def test_membership_inference_detects_memorised_members():
    rng = np.random.default_rng(1)
    members = _group(rng, 300, 0.95)
    nonmembers = _group(rng, 500, 0.6)  # unbalanced on purpose: the larger group is subsampled
    assert membership_inference_auc(*members, *nonmembers) > 0.9


def test_membership_inference_is_deterministic():
    rng = np.random.default_rng(2)
    members = _group(rng, 120, 0.7)
    nonmembers = _group(rng, 200, 0.65)
    first = membership_inference_auc(*members, *nonmembers, seed=3)
    assert membership_inference_auc(*members, *nonmembers, seed=3) == first


def test_membership_inference_needs_enough_samples():
    with pytest.raises(ValueError, match="at least folds=5 members, got 3"):
        membership_inference_auc([1, 0, 1], [0.9, 0.2, 0.8], [1, 0] * 10, [0.6, 0.4] * 10, folds=5)
