"""`llmrec audit RECIPE model=DIR`: did the model forget? A membership-inference audit that needs no retrain.

Members are the forget users' training-period samples (split `forget`), non-members those of the data.holdout
users (split `holdout`): users no model trains on, what a forgotten user should look like afterwards. Each
audited model (the unlearned one, its original, a retrain when given) scores both with P(true label); an attack
from `llmrec.eval.audit.ATTACKS` (default offline LiRA) turns those into per-sample membership scores calibrated
by reference models, aggregated per user, and judged by MUSE's PrivLeak rule (`audit.verdict_rule`).

The calibration reference is a *shadow* model (`ensure_shadow`): the original's own training recipe (the one its
model card records, as retrain rebuilds it) trained on a seeded random `audit.shadow_fraction` of the retained
users, so it saw no forget and no holdout user. For every audited sample it is an OUT model of offline LiRA
(Carlini et al., "Membership Inference Attacks From First Principles", IEEE S&P 2022): its confidence is what a
model that never saw the sample gives, the per-sample difficulty the attack subtracts (Watson et al., ICLR 2022);
one such shadow gives most of the power of many (IAM: Wang et al., "Towards Lifecycle Unlearning Commitment
Management: Measuring Sample-level Unlearning Completeness", USENIX Security 2025). It costs about
shadow_fraction of a retrain, is trained once into `audit.shadow_dir` and reused while its fingerprint (data,
forget set, recipe, users) and files are unchanged (`llmrec.stages.ensure_trained`). `audit.reference=DIR`
(or a list) gives ready-made references instead, refused when their cards show they trained on a forget or
holdout user.

Outputs of `llmrec audit` in output_dir: audit.png, audit.md, config.yaml, then audit.json (written last, so it
marks a finished audit; a rerun removes the old one first). Inside `llmrec unlearn` / `llmrec evaluate`
(audit.reference or audit.shadow=true) the same audit writes audit.md and audit.png beside their outputs and
its record into unlearning_manifest.json / evaluation.json under "audit".
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from llmrec.config import (
    THREADS_HELP,
    AuditConfig,
    DataConfig,
    ForgetConfig,
    MixedPrecision,
    Recipe,
    from_dict,
    option,
    to_dict,
    to_yaml,
)
from llmrec.errors import ConfigError, LlmrecError
from llmrec.eval.audit import MIN_PER_SIDE, attack_scores, audit_record, membership_audit
from llmrec.eval.audit_report import audit_markdown, plot_audit
from llmrec.io import hold_lock, write_json, write_text

SHADOW_MARK = "audit_shadow.json"  # claims audit.shadow_dir as a shadow's folder, written before it trains
SHADOW_RUN = "train"  # the shadow's training run inside audit.shadow_dir; the reference is its model/
REPORT = ("audit.md", "audit.png")
OUTPUTS = (*REPORT, "audit.json", "config.yaml")
CALIBRATION = (
    "each sample's attack score is calibrated by reference models that trained on no forget and no holdout user "
    "(OUT models of offline LiRA, Carlini et al. 2022; difficulty calibration, Watson et al. 2022); a shadow is "
    "the original's own training recipe trained on a seeded random fraction of the retained users, one shadow "
    "giving most of the power of many (IAM, Wang et al., USENIX Security 2025)"
)


@dataclass
class AuditRecipe:
    model: str | None = option(None, "the model to audit: an unlearning output (adapter, whole model, ensemble) or "
                               "any llmrec model dir")
    output_dir: str = option("runs/audit", "where audit.md, audit.png, audit.json, config.yaml (and by default "
                             "the shadow, output_dir/shadow) are written")
    data: DataConfig = option(DataConfig(), "the data the audited model's original was trained on (data.holdout "
                              "must be on: its users are the non-members)")
    forget: ForgetConfig = option(ForgetConfig(), "the forget users, for a model without unlearning_manifest.json "
                                  "(one with it is audited on the users it records)")
    audit: AuditConfig = option(AuditConfig(), "attack, references and verdict")
    mixed_precision: MixedPrecision = option("auto", "auto | no | bf16 | fp16 of the accelerator that scores the "
                                             "models (the shadow trains with its recipe's train.mixed_precision)")
    threads: int = option(0, THREADS_HELP, ge=0)


@dataclass
class Prepared:
    """What an audit checked before anything is written: the models it scores, the samples it scores them on, and
    the shadow it still has to train (or reuse)."""

    original: Path | None  # None: the audited model is its own original
    retrain: Path | None
    references: list[Path]  # ready-made ones; the shadow's model dir is appended by `ensure_shadow`
    splits: dict  # {"forget": members (probe users left out), "holdout": non-members}
    forget_users: int
    probe_users_excluded: int
    base_model: str | None = None  # where an adapter's original is, when audit.original moves it
    shadow: Recipe | None = None
    shadow_dir: Path | None = None
    shadow_source: Path | None = None  # the model whose training recipe the shadow repeats
    notes: list[dict] = field(default_factory=list)  # one per reference: dir, kind, users it trained on


def require_holdout(data: DataConfig) -> None:
    """ConfigError unless data.holdout is on: its users are the audit's non-members."""
    if not data.holdout:
        raise ConfigError("the audit needs holdout users: set data.holdout (a fraction of the train users, e.g. "
                          "0.05, or a file of their ids; it must be the setting the original was trained with)")


def audit_samples(splits, probe_users=()) -> tuple[dict, int, int]:
    """({"forget": members, "holdout": non-members}, forget users kept, probe users excluded).

    Members are the forget split's samples without those of `probe_users` (the users a stopping rule looked at
    while unlearning: grading it on them would grade it on its own data). Raises LlmrecError when a side has fewer
    than MIN_PER_SIDE users, so no user-level AUC could be computed, naming the setting to raise.
    """
    from llmrec.data.samples import holdout_users

    holdout = holdout_users(splits)
    if not holdout:
        raise LlmrecError("the audit needs holdout users: set data.holdout (the data have none)")
    if len(holdout) < MIN_PER_SIDE:
        raise LlmrecError(f"the audit needs at least {MIN_PER_SIDE} holdout users for an AUC, the data give "
                          f"{len(holdout)}: raise data.holdout")
    probes = set(probe_users or ())
    users = splits["forget"]["user_id"]
    excluded = len(set(users) & probes)
    kept = [i for i, user in enumerate(users) if user not in probes]
    count = len(set(users) - probes)
    if count < MIN_PER_SIDE:
        without = f" once the {excluded} probe users of the stopping rule are left out" if excluded else ""
        raise LlmrecError(f"the audit needs at least {MIN_PER_SIDE} forget users for an AUC, there are {count}"
                          f"{without}: raise forget.fraction (or list more users in forget.users)")
    return {"forget": splits["forget"].select(kept), "holdout": splits["holdout"]}, count, excluded


def recorded_users_file(only_users: str, model_dir: Path | None) -> Path | None:
    """The train.only_users file a card records, where it is now: at its recorded path, or, when that is gone, the
    file of the same name in the model's folder or the one above (`llmrec unlearn method=retrain` writes
    retained-users.txt into a temporary folder that becomes its output, and the card keeps the temporary path).
    None when neither exists."""
    recorded = Path(only_users)
    if recorded.is_file():
        return recorded
    for folder in ([Path(model_dir), Path(model_dir).parent] if model_dir is not None else []):
        if (folder / recorded.name).is_file():
            return folder / recorded.name
    return None


def trained_users(card: dict, splits, model_dir: Path | None = None) -> tuple[set[str] | None, str | None]:
    """The users whose samples a model trained on, from the training recipe its card records: (users, None), or
    (None, why it cannot tell). `splits` are the audit's (same data, checked by fingerprint): a model trained on
    the whole train split saw every train user, one trained on another split is rebuilt with its own forget set."""
    from llmrec.data.samples import prepare_splits, training_split

    recorded = card.get("recipe")
    try:
        train = recorded["train"]
        train_on, only_users = train.get("train_on", "train"), train.get("only_users")
        forget = from_dict(ForgetConfig, recorded.get("forget", {}), "forget.")
        data = from_dict(DataConfig, recorded["data"], "data.")
    except (KeyError, TypeError, AttributeError, ConfigError):
        return None, "its model card records no training recipe"
    if only_users:
        found = recorded_users_file(only_users, model_dir)
        if found is None:
            return None, f"the train.only_users file it trained with ({only_users}) is gone"
        only_users = str(found)
    try:
        own = splits if train_on == "train" and not only_users else prepare_splits(data, forget)
        return set(training_split(own, train_on, only_users)["user_id"]), None
    except (LlmrecError, OSError) as exc:
        return None, f"its training users cannot be rebuilt ({str(exc).splitlines()[0]})"


def check_unseen(label: str, model_dir: Path, card: dict, splits, forget: set[str], holdout: set[str]) -> int | None:
    """A reference (or a retrain) must not have trained on a forget user, nor a reference on a holdout user: raises
    LlmrecError naming how many it saw. Returns how many users it trained on (None, with a printed warning, when its
    card does not tell)."""
    users, why = trained_users(card, splits, model_dir)
    if users is None:
        print(f"warning: {label}={model_dir}: cannot check that it trained on no forget and no holdout user ({why})")
        return None
    seen = [f"{len(users & group)} {name} users" for name, group in (("forget", forget), ("holdout", holdout))
            if users & group]
    if seen:
        raise LlmrecError(f"{label}={model_dir} trained on {' and '.join(seen)} (the training recipe in its card): "
                          "a reference must never have seen the audited users; give a model trained on retained "
                          "users only (e.g. the shadow: leave audit.reference unset)")
    return len(users)


def shadow_users(retained_users, fraction: float, seed: int) -> list[str]:
    """A seeded random `fraction` of the retained users (at least one), sorted: the users a shadow trains on.
    numpy's default_rng([seed, 2]): a stream unrelated to the forget (seed) and holdout ([seed, 1]) draws."""
    users = sorted(set(retained_users))
    if not users:
        raise LlmrecError("no retained users to train a shadow on")
    count = min(len(users), max(1, round(fraction * len(users))))
    return sorted(np.random.default_rng([seed, 2]).choice(users, size=count, replace=False).tolist())


def shadow_recipe(original: Path, data: DataConfig, forget: ForgetConfig, users_file: Path, run_dir: Path) -> Recipe:
    """The original's training recipe (its card's, as retrain reads it), on this run's data and forget set, trained
    on the retained split restricted to the users in `users_file`, into `run_dir`."""
    from llmrec.llm.train import training_recipe

    base = training_recipe(original)
    return replace(base, output_dir=str(run_dir), data=data, forget=forget, train=replace(
        base.train, train_on="retained", only_users=str(users_file), shards=1, checkpoint_every=0, resume=False))


def check_shadow_dir(shadow_dir: Path) -> None:
    """audit.shadow_dir must be new, empty, or a shadow's (it holds SHADOW_MARK): it is cleared before a shadow
    trains in it. Raises LlmrecError otherwise."""
    if shadow_dir.exists() and not shadow_dir.is_dir():
        raise LlmrecError(f"audit.shadow_dir={shadow_dir} is a file, not a folder; choose another audit.shadow_dir")
    if shadow_dir.is_dir() and any(shadow_dir.iterdir()) and not (shadow_dir / SHADOW_MARK).is_file():
        names = sorted(p.name for p in shadow_dir.iterdir())
        raise LlmrecError(f"audit.shadow_dir={shadow_dir} holds something else ({', '.join(names[:3])}"
                          f"{', …' if len(names) > 3 else ''}; no {SHADOW_MARK}): the shadow would replace it; "
                          "choose a new or empty audit.shadow_dir")


def resolve_original(model_dir: Path, card: dict, original: str | None) -> Path | None:
    """The audited model's original: the one its card names (checked by sha256; audit.original points at it when it
    moved), or audit.original for a model that names none; None when there is neither (the model is audited as its
    own original)."""
    from llmrec.store import original_model_dir, read_model_card

    if any(card.get(key) for key in ("unlearned_from", "merged_from")):
        return original_model_dir(model_dir, card, original, "audit.original")
    if original:
        read_model_card(Path(original))
        return Path(original)
    print(f"note: {model_dir} names no original (not an unlearning output) and audit.original is unset: it is "
          "audited as its own original")
    return None


def prepare_audit(cfg: AuditConfig, data: DataConfig, forget: ForgetConfig, splits, original: Path | None,
                  default_shadow_dir: Path, probe_users=(), base_model: str | None = None,
                  reads: list | None = None, audited: Path | None = None) -> Prepared:
    """Every check an audit makes before anything is written: holdout and forget users enough for an AUC, the
    retrain and references trained on the data (their cards' fingerprints, audit.allow_other_data) and on none of
    the audited users, audit.shadow_dir new or a shadow's and apart from every model read (`reads`: (label, dir)
    of models the caller reads too). Raises LlmrecError (one line). The shadow's recipe is `original`'s (already
    checked by the caller), or, for a model that names none, the `audited` model's own."""
    from llmrec.data.samples import holdout_users
    from llmrec.paths import models_read, recipe_inputs, refuse_overlap
    from llmrec.recommender import check_model_card, model_family
    from llmrec.store import read_model_card

    require_holdout(data)
    chosen, forget_count, excluded = audit_samples(splits, probe_users)
    forget_users, holdout = set(splits["forget"]["user_id"]), holdout_users(splits)
    given = [cfg.reference] if isinstance(cfg.reference, str) else list(cfg.reference or [])
    prepared = Prepared(original=original, retrain=Path(cfg.retrain) if cfg.retrain else None,
                        references=[Path(path) for path in given], splits=chosen, forget_users=forget_count,
                        probe_users_excluded=excluded, base_model=base_model)
    checked = ([("audit.retrain", prepared.retrain)] if prepared.retrain else []) + \
        [("audit.reference", path) for path in prepared.references]
    for label, path in checked:
        card = read_model_card(path)
        check_model_card(path, card, data, cfg.allow_other_data, "audit.allow_other_data")
        users = check_unseen(label, path, card, splits, forget_users,
                             holdout if label == "audit.reference" else set())
        if label == "audit.reference":
            prepared.notes.append({"model_dir": str(path.absolute()), "kind": "given", "trained_users": users})
    if prepared.references or cfg.attack == "loss":
        return prepared
    source = original or audited
    if source is None:
        raise LlmrecError("the shadow is trained with the original's recipe, and none is known: set "
                          "audit.original=DIR or audit.reference=DIR")
    if model_family(read_model_card(source)) != "llm":
        raise LlmrecError(f"{source} is a classic model (MF / LightGCN): the shadow is trained for LLMs only; give "
                          "audit.reference=DIR, a classic model trained on retained users only")
    shadow_dir = Path(cfg.shadow_dir) if cfg.shadow_dir else default_shadow_dir
    check_shadow_dir(shadow_dir)
    refuse_overlap(shadow_dir, models_read(*(reads or []), ("the original", original), ("the audited model", audited),
                                           *checked), what="audit.shadow_dir", writes=[SHADOW_MARK, SHADOW_RUN],
                   inputs=recipe_inputs(replace(Recipe(), data=data, forget=forget)))
    prepared.shadow_dir = shadow_dir
    users = shadow_users(splits["retained"]["user_id"], cfg.shadow_fraction, cfg.shadow_seed)
    prepared.shadow_source = source
    prepared.shadow = shadow_recipe(source, data, forget, Path("<written when the shadow trains>"),
                                    shadow_dir / SHADOW_RUN)  # the card's recipe loads: checked before any write
    prepared.notes.append({"model_dir": str((shadow_dir / SHADOW_RUN / "model").absolute()), "kind": "shadow",
                           "trained_users": len(users), "fraction": cfg.shadow_fraction, "seed": cfg.shadow_seed,
                           "users": users})
    return prepared


def exclude_probes(prepared: Prepared, splits, probe_users) -> Prepared:
    """`prepared` with the members recomputed from the full `splits` without `probe_users` (known only once a
    stopping rule has run). Raises LlmrecError when too few forget users are left (`audit_samples`)."""
    chosen, count, excluded = audit_samples(splits, probe_users)
    return replace(prepared, splits=chosen, forget_users=count, probe_users_excluded=excluded)


@contextmanager
def kept_random_state():
    """Python's, numpy's and torch's global random states as they were before the block (training a shadow seeds
    them), so a run that trains its shadow draws the same numbers after as one that reuses it."""
    import random

    import torch

    python, numpy_state = random.getstate(), np.random.get_state()
    with torch.random.fork_rng(devices=range(torch.cuda.device_count()) if torch.cuda.is_available() else []):
        try:
            yield
        finally:
            random.setstate(python)
            np.random.set_state(numpy_state)


def ensure_shadow(prepared: Prepared) -> None:
    """Train the shadow `prepare_audit` planned (or reuse it: same fingerprint, files intact) and add its model to
    the references; the global random states are left as they were. Claims audit.shadow_dir with SHADOW_MARK
    first, so a killed run leaves a folder the next run recognises as a shadow's. Nothing to do when the audit
    has ready-made references or the shadow is already there."""
    if prepared.shadow is None or prepared.shadow_dir is None:
        return
    with kept_random_state(), hold_lock(prepared.shadow_dir, wait=True, doing="training the audit's shadow in"):
        _train_shadow(prepared)  # a second audit sharing the folder waits, then reuses it


def _train_shadow(prepared: Prepared) -> None:
    from llmrec.stages import ensure_trained
    from llmrec.eval.score import user_file

    note = next(n for n in prepared.notes if n["kind"] == "shadow")
    users = user_file(note.pop("users"), prepared.shadow.data.cache_dir, "audit-shadow-users")
    recipe = replace(prepared.shadow, train=replace(prepared.shadow.train, only_users=str(users)))
    write_json(prepared.shadow_dir / SHADOW_MARK, {
        "what": "the shadow (calibration reference) of llmrec audit: trained on retained users only",
        "recipe_of": str(prepared.shadow_source.absolute()), "users_file": str(users),
        "fraction": note["fraction"], "seed": note["seed"]})
    record = ensure_trained(recipe, "shadow")
    note["fingerprint"] = record["fingerprint"]
    prepared.references.append(Path(recipe.output_dir) / "model")
    prepared.shadow = None


def p_true(labels, p_yes) -> np.ndarray:
    """P(true label) per sample: P(yes) for a positive, 1 - P(yes) for a negative; [n] -> [n]."""
    labels, p_yes = np.asarray(labels), np.asarray(p_yes, dtype=float)
    return np.where(labels == 1, p_yes, 1.0 - p_yes)


def score_true(model_dir: Path, splits: dict, batch_size: int, accelerator, base_model: str | None = None) -> np.ndarray:
    """P(true label) of `model_dir` on the members, then the non-members: [forget samples + holdout samples]."""
    from llmrec.eval.score import score_model

    scored = score_model(Path(model_dir), ["forget", "holdout"], splits, batch_size, accelerator, base_model)
    return np.concatenate([p_true(*scored["forget"]), p_true(*scored["holdout"])])


def audit_models(model_dir: Path, prepared: Prepared, cfg: AuditConfig, accelerator,
                 audited_as: Path | None = None) -> tuple[dict, dict]:
    """Score every model, attack, judge: (the record for the manifest / audit.json, {name: ModelAudit} for the
    picture). The record is `audit.audit_record`'s with the models' dirs (`audited_as` names the audited one when it
    is scored from a temp dir before it is put in place), the references, the counts and the calibration added.
    Trains (or reuses) the shadow first when it is not there yet (`ensure_shadow`)."""
    ensure_shadow(prepared)
    started = time.perf_counter()
    splits = prepared.splits
    members = np.concatenate([np.ones(len(splits["forget"]), bool), np.zeros(len(splits["holdout"]), bool)])
    user_ids = np.array([*splits["forget"]["user_id"], *splits["holdout"]["user_id"]])
    references = None
    if cfg.attack != "loss":
        references = np.stack([score_true(path, splits, cfg.batch_size, accelerator) for path in prepared.references])
    unlearned = score_true(model_dir, splits, cfg.batch_size, accelerator, prepared.base_model)
    original = unlearned if prepared.original is None else score_true(prepared.original, splits, cfg.batch_size,
                                                                      accelerator)
    targets = {"original": original, "unlearned": unlearned}
    if prepared.retrain is not None:
        targets["retrain"] = score_true(prepared.retrain, splits, cfg.batch_size, accelerator)
    models = {name: membership_audit(attack_scores(cfg.attack, p, references), user_ids, members, cfg.aggregate)
              for name, p in targets.items()}
    record = audit_record(models["original"], models["unlearned"], models.get("retrain"), attack=cfg.attack,
                          aggregate=cfg.aggregate, level=cfg.level, tolerance=cfg.tolerance, min_power=cfg.min_power)
    record["model_dirs"] = {"unlearned": str(Path(audited_as or model_dir).absolute()),
                            "original": str((prepared.original or Path(model_dir)).absolute()),
                            **({"retrain": str(prepared.retrain.absolute())} if prepared.retrain else {})}
    record["references"] = prepared.notes if cfg.attack != "loss" else []
    record["calibration"] = CALIBRATION if cfg.attack != "loss" else "none: the loss attack is not calibrated"
    record["counts"] = {"forget_users": prepared.forget_users, "forget_samples": len(splits["forget"]),
                        "holdout_users": len(set(splits["holdout"]["user_id"])),
                        "holdout_samples": len(splits["holdout"]),
                        "probe_users_excluded": prepared.probe_users_excluded}
    record["scoring_seconds"] = time.perf_counter() - started
    return record, models


def report_markdown(record: dict) -> str:
    """audit.md: `audit_report.audit_markdown` plus the references that calibrated the attack and the probe users
    left out."""
    lines = [audit_markdown(record).rstrip("\n"), "", f"Calibration: {record['calibration']}.", ""]
    for note in record["references"]:
        users = "an unknown number of" if note["trained_users"] is None else note["trained_users"]
        how = (f"shadow, trained on {users} retained users (audit.shadow_fraction {note['fraction']}, "
               f"audit.shadow_seed {note['seed']})" if note["kind"] == "shadow" else f"given, trained on {users} users")
        lines.append(f"- reference {note['model_dir']}: {how}")
    counts = record["counts"]
    lines += ["", f"Counts: {counts['forget_samples']} samples of {counts['forget_users']} forget users (members), "
              f"{counts['holdout_samples']} samples of {counts['holdout_users']} holdout users (non-members)."]
    if counts["probe_users_excluded"]:
        lines.append(f"{counts['probe_users_excluded']} forget users were left out: the stopping rule looked at them "
                     "while unlearning (its probe half), so the audit grades it on the other forget users only.")
    return "\n".join(lines) + "\n"


def write_report(out_dir: Path, record: dict, models: dict) -> None:
    """out_dir/audit.png, then out_dir/audit.md, each atomically."""
    out_dir = Path(out_dir)
    plot_audit(models, out_dir / "audit.png", f"attack: {record['attack']}; verdict ({record['level']} level): "
               f"{record['verdict']}")
    write_text(out_dir / "audit.md", report_markdown(record))


def summary(record: dict) -> str:
    """The table and the verdict line, as printed at the end of an audit."""
    text = audit_markdown(record)
    return text[:text.index("\n- ")] if "\n- " in text else text


OTHER_RUNS = ("train_metrics.json", "unlearning_manifest.json", "results.json", "evaluation.json", "bench_record.json",
              "model", "llmrec_model.json", "model.safetensors", "adapter_model.safetensors", "optimizer.bin",
              "contents.json")


def refuse_other_runs_config(out: Path) -> None:
    """LlmrecError when output_dir is another run's folder (training, unlearning, benchmark, evaluation, a model or a
    checkpoint): the audit would replace its config.yaml, or add files a benchmark's stage hash counts as tampering.
    An earlier audit's folder (audit.json) is fine."""
    if not (out / "audit.json").is_file():
        found = [name for name in OTHER_RUNS if (out / name).exists()]
        if found:
            raise LlmrecError(f"output_dir={out} is another run's folder or a model (it holds {found[0]}): the audit "
                              f"would write into it; choose another output_dir")


def run_audit(recipe: AuditRecipe) -> dict:
    """`llmrec audit`: audit recipe.model against its original (and audit.retrain), write audit.png, audit.md,
    config.yaml and audit.json (last) into output_dir; returns the record. Every check comes before any write."""
    from llmrec.data.samples import prepare_splits
    from llmrec.eval.score import check_forget_set, manifest_forget
    from llmrec.llm.accel import make_accelerator
    from llmrec.recommender import check_model_card
    from llmrec.store import read_model_card
    from llmrec.paths import models_read, recipe_inputs, refuse_overlap

    if not recipe.model:
        raise ConfigError("llmrec audit needs the model to audit: model=DIR")
    cfg, model_dir, out = recipe.audit, Path(recipe.model), Path(recipe.output_dir)
    require_holdout(recipe.data)
    card = read_model_card(model_dir)
    original = resolve_original(model_dir, card, cfg.original)
    given = [cfg.reference] if isinstance(cfg.reference, str) else list(cfg.reference or [])
    reads = [("the audited model", model_dir), ("its original", original), ("audit.retrain", cfg.retrain),
             *(("audit.reference", path) for path in given)]
    refuse_overlap(out, models_read(*reads), writes=[*OUTPUTS, *([] if cfg.shadow_dir else ["shadow"])],
                   inputs=recipe_inputs(recipe))
    refuse_other_runs_config(out)
    for path in dict.fromkeys([model_dir, *([original] if original else [])]):
        check_model_card(path, card if path == model_dir else read_model_card(path), recipe.data,
                         cfg.allow_other_data, "audit.allow_other_data")
    accelerator = make_accelerator(recipe.mixed_precision)
    if accelerator.num_processes > 1:
        raise LlmrecError("llmrec audit runs in one process: launch it without accelerate's several processes")
    forget, manifest = manifest_forget(model_dir, recipe.forget, True, recipe.data.cache_dir,
                                       "audit a model whose manifest can be read")
    recipe = replace(recipe, forget=forget)  # config.yaml and audit.json record the forget set actually audited
    splits = prepare_splits(recipe.data, forget)
    probes = []
    if manifest is not None:
        check_forget_set(model_dir, manifest, splits["forget"], forget, True)
        probes = (manifest.get("stopping") or {}).get("probe_user_ids") or []
    prepared = prepare_audit(cfg, recipe.data, forget, splits, original, out / "shadow", probes,
                             cfg.original, reads, audited=model_dir)
    print(f"resolved config:\n{to_yaml(recipe)}")
    with hold_lock(out, doing="auditing into"):
        record, models = audit_models(model_dir, prepared, cfg, accelerator)
        (out / "audit.json").unlink(missing_ok=True)  # a run killed below leaves no finished-looking audit
        write_report(out, record, models)
        write_text(out / "config.yaml", to_yaml(recipe))
        write_json(out / "audit.json", {**record, "recipe": to_dict(recipe)})
    print(summary(record))
    print(f"written: {', '.join(str(out / name) for name in OUTPUTS)}")
    return record
