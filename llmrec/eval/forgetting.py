"""Forgetting metrics: how close an unlearned model's Yes/No answers on the forget set come to a
reference model retrained without the forgotten users, and whether the forget samples still look
like training data.

Each model gives, per sample, P(yes); the answer distribution of a sample is the Bernoulli 2-vector
[P(yes), 1 - P(yes)]. Probabilities are clipped to [1e-7, 1 - 1e-7] so that logs stay finite.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

EPS = 1e-7


def _probs(values) -> np.ndarray:
    """Per-sample P(yes) as a clipped 1-D float array."""
    return np.clip(np.asarray(values, dtype=float).reshape(-1), EPS, 1 - EPS)


def _pair(p, q) -> tuple[np.ndarray, np.ndarray]:
    """Two models' P(yes) on the same samples; a length mismatch means they were not."""
    p, q = _probs(p), _probs(q)
    if p.shape != q.shape:
        raise ValueError(f"p and q must cover the same samples, got {len(p)} and {len(q)} values")
    return p, q


def _mean(values: np.ndarray) -> float:
    """Mean over samples, nan (without a warning) when there are none."""
    return float(values.mean()) if len(values) else float("nan")


def _bernoulli_kl(p: np.ndarray, q: np.ndarray) -> np.ndarray:
    """Per-sample KL([p, 1-p] || [q, 1-q]) in nats."""
    return p * (np.log(p) - np.log(q)) + (1 - p) * (np.log1p(-p) - np.log1p(-q))


def js_divergence(p, q) -> float:
    """Mean Jensen-Shannon divergence (natural log) between the two models' answer distributions.

    This is the true JSD, 0.5*KL(P||M) + 0.5*KL(Q||M) with M = (P+Q)/2, so it is symmetric and
    bounded by ln 2 per sample, which makes values comparable across datasets.
    """
    p, q = _pair(p, q)
    m = (p + q) / 2
    return _mean(0.5 * _bernoulli_kl(p, m) + 0.5 * _bernoulli_kl(q, m))


def symmetric_kl(p, q) -> float:
    """Mean over samples of 0.5*KL(P||Q) + 0.5*KL(Q||P) (nats) between the two models' answer distributions.

    The E2URec reference (`evaluate.py`, github.com/justarter/E2URec) reports exactly this per-sample
    average under the name "JSD"; we keep its value so numbers compare with theirs. It is not the
    Jensen-Shannon divergence (see `js_divergence`) and is unbounded. One difference: the reference
    takes P and Q over the whole vocabulary at the answer position, we over the Yes/No pair.
    `p`, `q`: P(yes) per sample, shape [n]; raises ValueError when the lengths differ.
    """
    p, q = _pair(p, q)
    return _mean(0.5 * _bernoulli_kl(p, q) + 0.5 * _bernoulli_kl(q, p))


def l2_distance(p, q) -> float:
    """Mean Euclidean distance between the answer 2-vectors, i.e. sqrt(2) * |p - q| per sample."""
    p, q = _pair(p, q)
    return _mean(np.sqrt(2.0) * np.abs(p - q))


def forget_gap_closure(original: float, unlearned: float, reference: float) -> float:
    """Share of the original-to-reference gap the unlearned model closed.

    Computed as (original - unlearned) / (original - reference): 1 means it landed on the reference,
    0 that it did not move, above 1 that it overshot and below 0 that it moved away. Used on
    forget-set AUC and on mean P(true label). Returns nan when original equals reference: there is
    no gap, so nothing to close.
    """
    gap = original - reference
    if gap == 0:
        return float("nan")
    return float((original - unlearned) / gap)


def _true_label_confidence(labels, probs) -> np.ndarray:
    """Per-sample P(true label): p where the label is 1, 1 - p where it is 0."""
    labels = np.asarray(labels, dtype=int).reshape(-1)
    probs = _probs(probs)
    if labels.shape != probs.shape:
        raise ValueError(f"labels and probs must have the same length, got {len(labels)} and {len(probs)}")
    return np.where(labels == 1, probs, 1 - probs)


def true_label_confidence(labels, probs) -> float:
    """Mean P(true label): how sure the model is of the right answer, which forgetting should lower."""
    return _mean(_true_label_confidence(labels, probs))


def mia_skip_reason(members: int, nonmembers: int, folds: int = 5) -> str | None:
    """Why the membership-inference attack cannot run on groups of these sizes, or None when it can.

    Each group must hold at least `folds` samples (the larger is subsampled to the smaller, then split
    into `folds` stratified folds). Sizes are known before any model is scored, so callers check first.
    """
    short = [f"{count} {name} samples < {folds} folds"
             for count, name in ((members, "forget"), (nonmembers, "test")) if count < folds]
    return "; ".join(short) or None


def membership_inference_auc(
    member_labels, member_probs, nonmember_labels, nonmember_probs, folds: int = 5, seed: int = 0
) -> float:
    """ROC AUC of a loss-based membership-inference attack telling forget samples from never-seen ones.

    Features per sample are the cross-entropy loss of the true label and P(true label); a scaled
    logistic regression is cross-validated (stratified `folds`, seeded) on groups balanced by
    subsampling the larger one, so the AUC of its out-of-fold probabilities is not flattered by
    class imbalance. 0.5 means the forget samples look like never-seen ones; near 1, the model
    still remembers them. Raises ValueError when a group has fewer than `folds` samples (see
    `mia_skip_reason`).
    """
    member_conf = _true_label_confidence(member_labels, member_probs)
    nonmember_conf = _true_label_confidence(nonmember_labels, nonmember_probs)
    for name, conf in (("members", member_conf), ("non-members", nonmember_conf)):
        if len(conf) < folds:
            raise ValueError(
                f"membership inference needs at least folds={folds} {name}, got {len(conf)} samples"
            )

    rng = np.random.default_rng(seed)
    size = min(len(member_conf), len(nonmember_conf))
    member_conf = member_conf[np.sort(rng.choice(len(member_conf), size=size, replace=False))]
    nonmember_conf = nonmember_conf[np.sort(rng.choice(len(nonmember_conf), size=size, replace=False))]

    conf = np.concatenate([member_conf, nonmember_conf])
    features = np.column_stack([-np.log(conf), conf])
    target = np.concatenate([np.ones(size, dtype=int), np.zeros(size, dtype=int)])

    attack = make_pipeline(StandardScaler(), LogisticRegression())
    splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_predict(attack, features, target, cv=splits, method="predict_proba")[:, 1]
    return float(roc_auc_score(target, scores))
