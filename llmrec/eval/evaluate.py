"""`llmrec evaluate`: AUC / accuracy / log-loss of a saved model on every requested split."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from accelerate import Accelerator

from llmrec.config import AuditConfig, Recipe, option, to_dict
from llmrec.data.samples import prepare_splits
from llmrec.errors import LlmrecError
from llmrec.eval.forgetting import (
    forget_gap_closure,
    js_divergence,
    l2_distance,
    membership_inference_auc,
    mia_skip_reason,
    symmetric_kl,
    true_label_confidence,
)
from llmrec.eval.metrics import markdown_table, utility_metrics
from llmrec.io import write_json, write_text
from llmrec.llm.accel import make_accelerator
from llmrec.eval.score import check_forget_set, manifest_forget, score_model
from llmrec.recommender import check_model_card
from llmrec.paths import models_read, refuse_overlap
from llmrec.store import original_model_dir, read_model_card


@dataclass
class EvalRecipe(Recipe):
    """`llmrec evaluate`'s recipe: a training recipe plus the membership-inference audit (off unless
    audit.reference or audit.shadow is set)."""

    audit: AuditConfig = option(
        AuditConfig(), "membership-inference audit of the evaluated model (llmrec.eval.audit_run): runs with "
        "audit.reference=DIR or audit.shadow=true (a shadow costs about audit.shadow_fraction of a retrain, so it is "
        "off by default); writes audit.md / audit.png beside evaluation.json and its record into it under 'audit'"
    )


def audit_requested(cfg: AuditConfig | None) -> bool:
    """Whether a verb that audits only on request (unlearn, evaluate) runs the audit."""
    return cfg is not None and bool(cfg.reference or cfg.shadow)


def without_probe_users(scored: dict, forget_user_ids, probe_users) -> dict:
    """`scored` ({split: (labels [n], P(yes) [n])}) with its "forget" entry kept to the samples of users not in
    `probe_users`: the report half of a stopping rule's forget set, so the rule is not graded on the users it
    looked at while unlearning (llmrec.unlearn.stopping). `forget_user_ids`: [n], the forget split's user ids.
    Unchanged when there are no probe users; ValueError when lengths differ or no forget user is left."""
    probes = set(probe_users or ())
    if not probes or "forget" not in scored:
        return scored
    labels, probs = scored["forget"]
    if len(labels) != len(forget_user_ids):
        raise ValueError(f"{len(labels)} forget scores but {len(forget_user_ids)} forget user ids")
    keep = [i for i, user in enumerate(forget_user_ids) if user not in probes]
    if not keep:
        raise ValueError("every forget user is a probe user: no report half is left to grade")
    return {**scored, "forget": ([labels[i] for i in keep], [probs[i] for i in keep])}


def forgetting_metrics(model: dict, reference: dict, original: dict, floor: dict | None = None,
                       folds: int = 5) -> dict[str, float | str | None]:
    """How far the model's forget-set answers moved from the original towards the reference retrain.

    `floor` is a second-seed retrain: retraining is itself noisy, so a method is judged against how
    far two retrains sit apart (floor_*), not against zero. With fewer than `folds` forget or test
    samples the membership-inference AUCs are None and `mia_skipped` says why; the rest is reported.
    """
    labels, probs = model["forget"]
    _, reference_probs = reference["forget"]
    _, original_probs = original["forget"]
    auc = {name: utility_metrics(*scored["forget"])["auc"] for name, scored in
           (("model", model), ("reference", reference), ("original", original))}
    confidence = {name: true_label_confidence(*scored["forget"]) for name, scored in
                  (("model", model), ("reference", reference), ("original", original))}
    metrics = {
        "js_divergence": js_divergence(probs, reference_probs),
        "symmetric_kl": symmetric_kl(probs, reference_probs),
        "l2": l2_distance(probs, reference_probs),
        "original_js_divergence": js_divergence(original_probs, reference_probs),
        "forget_auc": auc["model"],
        "reference_forget_auc": auc["reference"],
        "original_forget_auc": auc["original"],
        "forget_gap_closure_auc": forget_gap_closure(auc["original"], auc["model"], auc["reference"]),
        "forget_gap_closure_confidence": forget_gap_closure(
            confidence["original"], confidence["model"], confidence["reference"]
        ),
    }
    skipped = mia_skip_reason(len(labels), len(model["test"][0]), folds)
    for name, scored in (("model", model), ("reference", reference), ("original", original)):
        key = "mia_auc" if name == "model" else f"{name}_mia_auc"
        metrics[key] = None if skipped else membership_inference_auc(*scored["forget"], *scored["test"], folds=folds)
    if skipped:
        metrics["mia_skipped"] = skipped
    if floor is not None:
        _, floor_probs = floor["forget"]
        metrics["floor_js_divergence"] = js_divergence(floor_probs, reference_probs)
        metrics["floor_symmetric_kl"] = symmetric_kl(floor_probs, reference_probs)
        metrics["floor_l2"] = l2_distance(floor_probs, reference_probs)
        metrics["floor_forget_auc"] = utility_metrics(*floor["forget"])["auc"]
    return metrics


def _cell(value) -> str:
    """A forgetting-table cell: numbers to 4 decimals, a skipped metric as '–', a reason as written."""
    if value is None:
        return "–"
    return value if isinstance(value, str) else f"{value:.4f}"


def evaluate(recipe: Recipe, accelerator: Accelerator | None = None) -> dict[str, dict[str, float]]:
    """Utility per split; with eval.reference_dir also forgetting metrics on the forget set."""
    accelerator = accelerator or make_accelerator(recipe.train.mixed_precision)
    cfg = recipe.eval
    if cfg.floor_reference_dir and not cfg.reference_dir:
        raise LlmrecError("eval.floor_reference_dir is a second retrain to compare with eval.reference_dir; set both")
    model_dir = Path(cfg.model_dir or Path(recipe.output_dir) / "model")
    card = read_model_card(model_dir)
    audit = getattr(recipe, "audit", None) if audit_requested(getattr(recipe, "audit", None)) else None
    audited = [("audit.retrain", audit.retrain), ("audit.original", audit.original),
               *(("audit.reference", path) for path in ([audit.reference] if isinstance(audit.reference, str)
                                                        else audit.reference or []))] if audit else []
    refuse_overlap(recipe.output_dir, models_read(  # evaluation.json/.md must not land in a model read here
        ("the evaluated model", model_dir), ("eval.reference_dir", cfg.reference_dir),
        ("eval.original_dir", cfg.original_dir), ("eval.floor_reference_dir", cfg.floor_reference_dir),
        ("eval.base_model", cfg.base_model), ("its original", card.get("unlearned_from") or card.get("merged_from")),
        *audited), writes=["evaluation.json", "evaluation.md", *(("audit.md", "audit.png", "shadow") if audit else ())])
    if audit and accelerator.num_processes > 1:
        raise LlmrecError("the audit (audit.reference / audit.shadow) runs in one process: evaluate without "
                          "accelerate's several processes, or run llmrec audit afterwards")
    if cfg.forgetting and not cfg.reference_dir:
        raise LlmrecError(
            "forgetting metrics need a reference: set eval.reference_dir to a model retrained on the retained "
            "split (llmrec train RECIPE train.train_on=retained output_dir=...)"
        )
    # every model scored here: its card's answer tokens and the data it was trained on, before anything is written
    for path in dict.fromkeys([model_dir, *(Path(d) for d in (cfg.reference_dir, cfg.original_dir,
                                                              cfg.floor_reference_dir) if d)]):
        check_model_card(path, card if path == model_dir else read_model_card(path), recipe.data,
                         cfg.allow_other_data, "eval.allow_other_data")
    forget, manifest = manifest_forget(model_dir, recipe.forget, cfg.forget_from_manifest, recipe.data.cache_dir)
    recipe = replace(recipe, forget=forget)  # evaluation.json records the forget set actually evaluated
    with accelerator.main_process_first():
        splits = prepare_splits(recipe.data, forget)
    unknown = [s for s in cfg.splits if s not in splits]
    if unknown:
        raise LlmrecError(f"eval.splits: unknown split '{unknown[0]}' (choose from {', '.join(splits)})")
    if manifest is not None and ("forget" in cfg.splits or cfg.reference_dir or audit):
        check_forget_set(model_dir, manifest, splits["forget"], forget, cfg.forget_from_manifest)
    prepared = None
    if audit:  # every check of the audit before any model is scored or anything written
        from llmrec.eval.audit_run import prepare_audit, resolve_original

        probes = ((manifest or {}).get("stopping") or {}).get("probe_user_ids") or []
        prepared = prepare_audit(audit, recipe.data, forget, splits, resolve_original(model_dir, card, audit.original),
                                 Path(recipe.output_dir) / "shadow", probes, audit.original or cfg.base_model,
                                 reads=[("the evaluated model", model_dir)], audited=model_dir)

    skipped = mia_skip_reason(len(splits["forget"]), len(splits["test"])) if cfg.reference_dir else None
    if skipped:  # known from the split sizes, before any model is scored
        accelerator.print(f"membership-inference attack skipped: {skipped}; the other metrics are reported")
    # gap closure needs the original: checked (present, the very model by hash) before anything is scored;
    # an adapter's is checked when it loads, also before scoring
    original_dir = None
    if cfg.reference_dir and any(card.get(key) for key in ("unlearned_from", "merged_from")):
        # eval.original_dir too must be the model this one was made from
        override = ("eval.original_dir", cfg.original_dir) if cfg.original_dir else ("eval.base_model", cfg.base_model)
        original_dir = original_model_dir(model_dir, card, override[1], override[0])
    elif cfg.reference_dir and cfg.original_dir:
        original_dir = Path(cfg.original_dir)
    needed = list(dict.fromkeys([*cfg.splits, *(["forget", "test"] if cfg.reference_dir else [])]))
    scored = score_model(model_dir, needed, splits, cfg.batch_size, accelerator, cfg.base_model)
    results = {name: utility_metrics(*scored[name]) for name in cfg.splits}
    table = markdown_table(results)
    if cfg.reference_dir:
        reference = score_model(Path(cfg.reference_dir), ["forget", "test"], splits, cfg.batch_size, accelerator)
        original_dir = original_dir or model_dir
        original = (
            scored if Path(original_dir) == model_dir
            else score_model(Path(original_dir), ["forget", "test"], splits, cfg.batch_size, accelerator)
        )
        floor = (
            score_model(Path(cfg.floor_reference_dir), ["forget"], splits, cfg.batch_size, accelerator)
            if cfg.floor_reference_dir else None
        )
        # a stopping rule's probe users are left out of every model's forget scores: graded on the report half
        probes = ((manifest or {}).get("stopping") or {}).get("probe_user_ids") or []
        users = splits["forget"]["user_id"]
        graded = [without_probe_users(s, users, probes) if s is not None else None
                  for s in (scored, reference, original, floor)]
        results["forgetting"] = forgetting_metrics(*graded)
        if probes:
            results["forgetting"]["probe_users_excluded"] = len(set(users) & set(probes))
        table += "\n\n| forgetting (forget set) | value |\n|---|---|\n" + "\n".join(
            f"| {key} | {_cell(value)} |" for key, value in results["forgetting"].items()
        )

    record = None
    if prepared is not None:
        from llmrec.eval.audit_run import audit_models, summary, write_report

        record, audit_results = audit_models(model_dir, prepared, audit, accelerator)
        write_report(Path(recipe.output_dir), record, audit_results)
        table += "\n\n" + summary(record)
    if accelerator.is_main_process:
        out = Path(recipe.output_dir)
        write_json(out / "evaluation.json", {"model_dir": str(model_dir), "metrics": results, "recipe": to_dict(recipe),
                                             **({"audit": record} if record is not None else {})})
        write_text(out / "evaluation.md", table + "\n")
        print(table)
        print(f"written: {out / 'evaluation.json'}, {out / 'evaluation.md'}"
              + (f", {out / 'audit.md'}, {out / 'audit.png'}" if record is not None else ""))
    return results
