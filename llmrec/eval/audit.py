"""Membership-inference audit of an unlearned model: can an attacker tell the forgotten users' samples
from those of holdout users (users no model ever trained on), from this model's outputs?

Pure numpy on plain arrays, so any model family plugs in: per sample, each model gives P(true label)
(or its log-loss in nats, -ln P). *Reference* models are models that never trained on the forget or
the holdout users (a shadow trained on a random half of the non-forget training users, a retrain with
another seed); they calibrate each sample's difficulty, which is what lifts a per-example attack above
a population one (Watson et al. 2022; Carlini et al. 2022). A reference that did train on the forget
users (the original θ₀ used as "before") breaks that premise for them: the score then measures how
far the model moved from θ₀ rather than membership, and reads the other way round.

Pipeline: `lira_offline_scores` / `calibrated_loss_scores` / `loss_scores` (per sample, higher =
more member-like) -> `membership_audit` (sample and user level: ROC AUC, TPR at 1% FPR, counts) ->
`audit_record` (verdict by MUSE's PrivLeak rule, strict-JSON-ready for unlearning_manifest.json).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.stats import norm
from sklearn.metrics import roc_auc_score, roc_curve

from llmrec.eval.forgetting import EPS

MIN_PER_SIDE = 10  # fewest members and non-members (samples or users) for which an AUC is reported
TPR_AT_FPR = 0.01  # the low-FPR operating point (Carlini et al. 2022 argue for reporting TPR at low FPR)
FIXED_VARIANCE_BELOW = 64  # fewer OUT references than this: one global variance (Carlini et al. 2022)
TOLERANCE = 0.05  # MUSE-style band: |AUC - reference AUC| <= this counts as forgotten
MIN_POWER = 0.05  # AUC_original - 0.5 below this: the attack cannot certify anything
NOISE_SDS = 2  # 'not forgotten' needs the gap to the reference beyond this many null SDs of the AUC (~95%)

ATTACKS = {
    "lira_offline": "offline LiRA, one-sided test against a Gaussian fitted to reference models' logit-scaled "
                    "confidences (Carlini et al., \"Membership Inference Attacks From First Principles\", "
                    "IEEE S&P 2022)",
    "calibrated_loss": "reference-calibrated loss, reference loss - target loss (Watson et al., \"On the Importance "
                       "of Difficulty Calibration in Membership Inference Attacks\", ICLR 2022)",
    "loss": "uncalibrated loss threshold, -loss (Yeom et al., \"Privacy Risk in Machine Learning\", CSF 2018)",
}


def _vector(values, name: str) -> np.ndarray:
    """1-D float array of finite values; ValueError naming `name` otherwise."""
    array = np.asarray(values, dtype=float).reshape(-1)
    bad = int((~np.isfinite(array)).sum())
    if bad:
        raise ValueError(f"{name}: {bad} of {len(array)} values are not finite")
    return array


def _references(values, n: int, name: str) -> np.ndarray:
    """Reference models' per-sample values as [k, n] (a 1-D array is one reference model)."""
    array = np.asarray(values, dtype=float)
    array = array.reshape(1, -1) if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[1] != n or array.shape[0] < 1:
        raise ValueError(f"{name} must be [references, {n}] (one row per reference model), "
                         f"got shape {np.shape(values)}")
    _vector(array, name)
    return array


def logit_confidence(p_true) -> np.ndarray:
    """φ = ln(p / (1 - p)) of P(true label), p clipped to [1e-7, 1 - 1e-7]; shape [n] -> [n].

    Carlini et al. 2022 ("logit scaling"): φ of the true-label confidence is close to Gaussian across
    models, which the likelihood test assumes. Their `score.py` (github.com/tensorflow/privacy,
    research/mi_lira_2021) computes log p_true - log(sum of the other classes), which for a Yes/No
    answer is this φ.
    """
    p = np.clip(_vector(p_true, "P(true label)"), EPS, 1 - EPS)
    return np.log(p) - np.log1p(-p)


def true_label_loss(p_true) -> np.ndarray:
    """Cross-entropy of the true label in nats, -ln p with p clipped as in `logit_confidence`."""
    return -np.log(np.clip(_vector(p_true, "P(true label)"), EPS, 1 - EPS))


def lira_offline_scores(target_p, reference_p, fix_variance: bool | None = None) -> np.ndarray:
    """Offline LiRA membership score per sample: ln Pr[Z <= φ_target], Z ~ N(μ_out, σ_out²); higher = member.

    `target_p`: [n] P(true label) from the audited model; `reference_p`: [k, n] (or [n] for k = 1) from
    reference models that trained on none of the audited users (OUT models). Carlini et al. 2022, offline
    variant: with only OUT models, a one-sided test, Λ = 1 - Pr[Z > φ(f(x)_y)]; we return ln Λ (scipy
    `norm.logcdf`, finite far into the tail). μ_out is the per-sample median over the references and
    σ_out, with `fix_variance` (the default when k < 64, always when k = 1), one global standard
    deviation over all references' φ on all audited samples, else per-sample over the references --
    as the authors' `plot.py` (`generate_ours_offline`, same repository) does. One difference: that
    script ranks by the two-sided density (-logpdf); we keep the paper's one-sided test, so a target
    *less* confident than the references never looks like a member. With one reference and a global σ
    the sample ranking equals that of φ_target - φ_ref; the Gaussian's scale matters once scores are
    averaged per user.
    Raises ValueError on non-finite input, mismatched shapes, per-sample variance with k < 2, or σ = 0.
    """
    phi = logit_confidence(target_p)
    refs = _references(reference_p, len(phi), "reference P(true label)")
    ref_phi = logit_confidence(refs.reshape(-1)).reshape(refs.shape)
    fixed = len(refs) < FIXED_VARIANCE_BELOW if fix_variance is None else fix_variance
    if not fixed and len(refs) < 2:
        raise ValueError("per-sample variance needs at least 2 reference models; use fix_variance=True")
    mean = np.median(ref_phi, axis=0)
    std = np.full(len(phi), ref_phi.std()) if fixed else ref_phi.std(axis=0)
    if np.any(std <= 0):
        raise ValueError("reference confidences have zero variance: the OUT Gaussian cannot be fitted")
    return norm.logcdf(phi, loc=mean, scale=std)


def calibrated_loss_scores(target_loss, reference_loss) -> np.ndarray:
    """Difficulty-calibrated loss score per sample: mean reference loss - target loss (nats); higher = member.

    Watson et al. 2022: s_cal(h, z) = s(h, z) - E_g[s(g, z)] with s = -loss and g reference models trained
    without z (their code, github.com/facebookresearch/calibration_membership, takes the difference of the
    two negated cross-entropies). `target_loss`: [n]; `reference_loss`: [k, n] or [n]. ValueError on
    non-finite input or mismatched shapes.
    """
    loss = _vector(target_loss, "target loss")
    return _references(reference_loss, len(loss), "reference loss").mean(axis=0) - loss


def loss_scores(target_loss) -> np.ndarray:
    """Uncalibrated loss attack (Yeom et al. 2018): -loss per sample, higher = member. The baseline the
    calibrated attacks are measured against: easy samples look like members whoever trained on them."""
    return -_vector(target_loss, "target loss")


def attack_scores(attack: str, target_p, reference_p=None) -> np.ndarray:
    """Per-sample scores of the named attack (a key of `ATTACKS`) from P(true label) arrays ([n]; references
    [k, n]). ValueError for an unknown attack or a calibrated one without references."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    if attack == "loss":
        return loss_scores(true_label_loss(target_p))
    if reference_p is None:
        raise ValueError(f"attack {attack!r} needs reference models' P(true label)")
    if attack == "lira_offline":
        return lira_offline_scores(target_p, reference_p)
    refs = np.asarray(reference_p, dtype=float)
    return calibrated_loss_scores(true_label_loss(target_p), true_label_loss(refs.reshape(-1)).reshape(refs.shape))


def user_scores(sample_scores, user_ids, aggregate: str = "mean") -> tuple[np.ndarray, np.ndarray]:
    """A user's score is the mean (or, with `aggregate="max"`, the max) of their samples' scores.

    `sample_scores`, `user_ids`: [n]. Returns (users, scores), both [u], users sorted. The mean pools a
    user's weak per-sample signals (the per-user attack of the issue); the max flags a user whose single
    most-memorised sample stands out.
    """
    scores = _vector(sample_scores, "sample scores")
    ids = np.asarray(user_ids).reshape(-1)
    if ids.shape != scores.shape:
        raise ValueError(f"sample scores and user ids must have the same length, got {len(scores)} and {len(ids)}")
    users, index = np.unique(ids, return_inverse=True)
    if aggregate == "mean":
        counts = np.bincount(index, minlength=len(users))
        return users, np.bincount(index, weights=scores, minlength=len(users)) / counts
    if aggregate == "max":
        out = np.full(len(users), -np.inf)
        np.maximum.at(out, index, scores)
        return users, out
    raise ValueError(f"aggregate must be 'mean' or 'max', got {aggregate!r}")


@dataclass
class AttackResult:
    """An attack's success at telling members (forget) from non-members (holdout) at one level.

    `auc`: ROC AUC (0.5 = cannot tell); `tpr_at_1pct_fpr`: the largest TPR whose FPR <= 1%; None with
    the reason in `auc_skipped` / `tpr_skipped` when the groups are too small. `auc_null_sd`: the AUC's
    standard deviation when both groups come from one distribution (Mann-Whitney, no ties:
    sqrt((m + n + 1) / (12 m n))), the noise against which 0.5 ± tolerance is read.
    """

    members: int
    nonmembers: int
    auc: float | None = None
    tpr_at_1pct_fpr: float | None = None
    auc_null_sd: float | None = None
    auc_skipped: str | None = None
    tpr_skipped: str | None = None


def attack_result(member_scores, nonmember_scores, min_per_side: int = MIN_PER_SIDE,
                  unit: str = "samples") -> AttackResult:
    """ROC AUC (sklearn `roc_auc_score`) and TPR at 1% FPR (sklearn `roc_curve`, all thresholds kept, the
    largest TPR with FPR <= 0.01) of scores where higher means member. Fewer than `min_per_side`
    members or non-members: both None with a reason; fewer than 100 non-members: TPR at 1% FPR is None
    (one false positive is already more than 1%). ValueError on non-finite scores.
    """
    members = _vector(member_scores, "member scores")
    nonmembers = _vector(nonmember_scores, "non-member scores")
    result = AttackResult(members=len(members), nonmembers=len(nonmembers))
    short = [f"{count} {name} {unit} < {min_per_side}"
             for count, name in ((len(members), "forget"), (len(nonmembers), "holdout")) if count < min_per_side]
    if short:
        result.auc_skipped = result.tpr_skipped = "; ".join(short)
        return result
    labels = np.concatenate([np.ones(len(members), dtype=int), np.zeros(len(nonmembers), dtype=int)])
    scores = np.concatenate([members, nonmembers])
    result.auc = float(roc_auc_score(labels, scores))
    result.auc_null_sd = math.sqrt((len(members) + len(nonmembers) + 1) / (12 * len(members) * len(nonmembers)))
    needed = math.ceil(1 / TPR_AT_FPR)
    if len(nonmembers) < needed:
        result.tpr_skipped = f"{len(nonmembers)} holdout {unit} < {needed}: one false positive is already above 1% FPR"
    else:
        fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
        result.tpr_at_1pct_fpr = float(tpr[fpr <= TPR_AT_FPR + 1e-12].max())
    return result


@dataclass
class ModelAudit:
    """One model's attack results at sample and user level, plus the per-user scores (for the picture)."""

    sample: AttackResult
    user: AttackResult
    forget_user_scores: np.ndarray = field(repr=False)
    holdout_user_scores: np.ndarray = field(repr=False)

    def to_dict(self) -> dict:
        """The results without the score arrays, ready for strict JSON."""
        return {"sample": asdict(self.sample), "user": asdict(self.user)}


def membership_audit(scores, user_ids, members, aggregate: str = "mean",
                     min_per_side: int = MIN_PER_SIDE) -> ModelAudit:
    """Attack results for one model. `scores`: per-sample attack scores [n] (higher = member); `user_ids`:
    [n]; `members`: [n] bool, True for forget-user samples, False for holdout-user samples. User level
    aggregates with `user_scores(aggregate)`. ValueError on mismatched lengths or a user on both sides.
    """
    scores = _vector(scores, "sample scores")
    ids = np.asarray(user_ids).reshape(-1)
    member = np.asarray(members, dtype=bool).reshape(-1)
    if not (len(scores) == len(ids) == len(member)):
        raise ValueError("scores, user ids and membership must have one length, "
                         f"got {len(scores)}, {len(ids)}, {len(member)}")
    both = np.intersect1d(ids[member], ids[~member])
    if len(both):
        raise ValueError(f"{len(both)} users are both forget and holdout users, e.g. {both[0]!r}")
    forget = user_scores(scores[member], ids[member], aggregate)[1]
    holdout = user_scores(scores[~member], ids[~member], aggregate)[1]
    return ModelAudit(
        sample=attack_result(scores[member], scores[~member], min_per_side, "samples"),
        user=attack_result(forget, holdout, min_per_side, "users"),
        forget_user_scores=forget, holdout_user_scores=holdout,
    )


def verdict_rule(tolerance: float = TOLERANCE, min_power: float = MIN_POWER) -> str:
    """The verdict rule in words, as written into the report and the manifest."""
    return (f"MUSE's PrivLeak (Shi et al., \"MUSE: Machine Unlearning Six-Way Evaluation for Language Models\", "
            f"2024): PrivLeak = (AUC_unlearned - AUC_ref) / AUC_ref, AUC_ref the retrain's attack AUC when a "
            f"retrain is given, else 0.5 (a model that never saw the users). 'forgotten' when "
            f"|AUC_unlearned - AUC_ref| <= {tolerance}; 'not forgotten' otherwise (above: the forgotten users still "
            f"look like training data; below: over-unlearned, they look less like training data than never-seen "
            f"users, which also gives them away); 'inconclusive' when AUC_original - 0.5 < {min_power} (an attack "
            f"that cannot tell the original's members cannot certify forgetting), when an AUC is undefined, or when "
            f"the audit's noise cannot resolve the band: 'forgotten' needs the AUC's null SD <= {tolerance}, "
            f"'not forgotten' needs |AUC_unlearned - AUC_ref| > {NOISE_SDS} null SDs (null SD: the AUC's standard "
            f"deviation between two groups of one distribution of these sizes, Mann-Whitney).")


@dataclass
class Verdict:
    """The verdict at one level; `privleak` is a fraction (MUSE prints it ×100, in %)."""

    verdict: str
    reference: str
    reference_auc: float | None
    auc: float | None
    privleak: float | None
    power: float | None
    direction: str | None = None
    reason: str | None = None
    null_sd: float | None = None


def verdict(unlearned_auc: float | None, original_auc: float | None, retrain_auc: float | None = None,
            tolerance: float = TOLERANCE, min_power: float = MIN_POWER, retrain_given: bool | None = None,
            null_sd: float | None = None) -> Verdict:
    """Apply `verdict_rule` to attack AUCs at one level. `retrain_given` (default: `retrain_auc is not None`)
    says a retrain was audited; its AUC being None then makes the verdict inconclusive instead of
    falling back to 0.5. `null_sd`: the unlearned model's AUC null SD at this level (`AttackResult.auc_null_sd`);
    None: noise not judged (the verdict of the band alone)."""
    given = retrain_auc is not None if retrain_given is None else retrain_given
    reference, reference_auc = ("retrain", retrain_auc) if given else ("chance", 0.5)
    power = None if original_auc is None else original_auc - 0.5
    result = Verdict("inconclusive", reference, reference_auc, unlearned_auc, None, power, null_sd=null_sd)
    aucs = (("unlearned", unlearned_auc), ("original", original_auc), ("retrain", reference_auc))
    missing = [name for name, auc in aucs if auc is None]
    if missing:
        result.reason = f"attack AUC undefined for: {', '.join(missing)}"
        return result
    result.privleak = (unlearned_auc - reference_auc) / reference_auc
    if power < min_power:
        result.reason = (f"attack too weak: AUC_original - 0.5 = {power:.4f} < {min_power}; "
                         f"it cannot tell the original's members, so it cannot certify forgetting")
        return result
    gap = unlearned_auc - reference_auc
    relation = "<=" if abs(gap) <= tolerance else ">"
    result.reason = f"|AUC_unlearned - AUC_{reference}| = {abs(gap):.4f} {relation} {tolerance}"
    if abs(gap) <= tolerance and null_sd is not None and null_sd > tolerance:
        result.reason += (f", but the AUC's null SD {null_sd:.4f} > {tolerance}: the band is within the audit's "
                          f"noise (more forget and holdout users would resolve it)")
        return result
    if abs(gap) > tolerance and null_sd is not None and abs(gap) <= NOISE_SDS * null_sd:
        result.reason += (f", but within {NOISE_SDS} null SDs ({NOISE_SDS * null_sd:.4f}): the gap is within the "
                          f"audit's noise (more forget and holdout users would resolve it)")
        return result
    if abs(gap) <= tolerance:
        result.verdict = "forgotten"
    else:
        result.verdict, result.direction = "not forgotten", "under-unlearned" if gap > 0 else "over-unlearned"
    return result


def audit_record(original: ModelAudit, unlearned: ModelAudit, retrain: ModelAudit | None = None, *,
                 attack: str, aggregate: str = "mean", level: str = "user",
                 tolerance: float = TOLERANCE, min_power: float = MIN_POWER) -> dict:
    """Everything the audit concluded, as a dict for `llmrec.io.write_json` (unlearning_manifest.json):
    the attack and its paper, the aggregation, the rule in words, each model's results, the verdict at
    sample and user level, and the headline `verdict` at `level` ("user" or "sample")."""
    if attack not in ATTACKS:
        raise ValueError(f"unknown attack {attack!r}; choose one of {', '.join(ATTACKS)}")
    if level not in ("sample", "user"):
        raise ValueError(f"level must be 'sample' or 'user', got {level!r}")
    models = {"original": original, "unlearned": unlearned} | ({"retrain": retrain} if retrain is not None else {})
    verdicts = {
        name: asdict(verdict(getattr(unlearned, name).auc, getattr(original, name).auc,
                             getattr(retrain, name).auc if retrain is not None else None,
                             tolerance, min_power, retrain_given=retrain is not None,
                             null_sd=getattr(unlearned, name).auc_null_sd))
        for name in ("sample", "user")
    }
    return {
        "attack": attack,
        "attack_description": ATTACKS[attack],
        "aggregation": f"a user's score is the {aggregate} of their samples' scores",
        "members": "forget users' samples",
        "nonmembers": "holdout users' samples (users no model trained on)",
        "rule": verdict_rule(tolerance, min_power),
        "tolerance": tolerance,
        "min_power": min_power,
        "level": level,
        "models": {name: audit.to_dict() for name, audit in models.items()},
        "verdicts": verdicts,
        "verdict": verdicts[level]["verdict"],
    }
