"""`llmrec unlearn RECIPE`: the same artefacts for every method.

output_dir/ = a peft adapter (adapter_config.json, adapter_model.safetensors) that loads on top of
the original with `PeftModel.from_pretrained` (or, for a method run with `finetune: full`, a whole
`save_pretrained` model), its tokenizer and llmrec_model.json naming the original, the resolved
`config.yaml` and `unlearning_manifest.json`. SISA writes a new shard ensemble instead (see sisa.py).
The directory appears only when the run succeeded, with the resolved config inside it.

The original is never written: an output_dir that is, contains or lies inside it (or any shard of an
ensemble), or that is or contains a data or user file the run reads, is refused before anything is written
(`llmrec.paths`). Its `model_hash` is taken before the run, checked again before the output is put in place
and once more after the final rename: a change is one line, exit 2.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from llmrec.config import (
    QUANT_HELP,
    THREADS_HELP,
    AuditConfig,
    DataConfig,
    ForgetConfig,
    MixedPrecision,
    PromptConfig,
    Quantization,
    option,
    to_dict,
    to_yaml,
)
from llmrec.data.samples import forget_samples_sha256, prepare_splits, require_user_forgetting
from llmrec.errors import ConfigError, LlmrecError
from llmrec.io import atomic_dir, write_json
from llmrec.llm.accel import make_accelerator, threads_note
from llmrec.llm.backbone import AnswerTokens, load_model, load_tokenizer, merged_copy
from llmrec.recommender import check_model_card
from llmrec.paths import model_paths, models_read, recipe_inputs, refuse_overlap, relation
from llmrec.store import confirm_unchanged, model_hash, original_card, parameter_counts, read_model_card, write_model_card
from llmrec.unlearn.data import UnlearningData
from llmrec.unlearn.loop import LlmUnlearning, require_change, student_changed
from llmrec.unlearn.registry import get_method, with_method_sections
from llmrec.unlearn.stopping import StopConfig


@dataclass
class UnlearnRecipe:
    """`llmrec unlearn` of an LLM; one section per method that runs on an LLM follows (`with_method_sections`)."""

    model: str = option("runs/default/model", "the trained original model directory (never modified)")
    output_dir: str = option("runs/unlearn", "where the adapter, manifest and resolved config are written")
    method: str = option("e2urec", "unlearning method (see llmrec.unlearn.registry)")
    data: DataConfig = option(DataConfig(), "the data the original was trained on")
    forget: ForgetConfig = option(ForgetConfig(), "which training users to forget")
    stop: StopConfig = option(StopConfig(), "when a gradient method (E2URec and the baselines) stops: at parity of the "
                              "probe half of the forget users with the holdout users, or after its fixed schedule "
                              "(llmrec.unlearn.stopping); one rule for every method")
    seed: int = option(0, "shuffling and initialisation seed", ge=0)
    merge: bool = option(
        False, "also write merged/: the original with the adapter folded in, a plain HF model (adapter outputs only)"
    )
    mixed_precision: MixedPrecision = option("auto", "auto | no | bf16 | fp16 (auto: bf16 where the hardware runs it fast)")
    quant: Quantization = option("none", QUANT_HELP)
    threads: int = option(0, THREADS_HELP, ge=0)
    allow_other_data: bool = option(
        False, "unlearn although data.* differ from the data the original was trained on (the data fingerprint in "
        "its llmrec_model.json); false: such a run stops, naming both fingerprints"
    )
    audit: AuditConfig = option(
        AuditConfig(), "membership-inference audit of the output before it is put in place (llmrec.eval.audit_run): "
        "off unless audit.reference=DIR or audit.shadow=true (a shadow costs about audit.shadow_fraction of a "
        "retrain, trained once into audit.shadow_dir, default <output_dir>-shadow, and reused); writes audit.md / "
        "audit.png into output_dir and the record, with its verdict, into unlearning_manifest.json under 'audit'"
    )


UnlearnRecipe = with_method_sections(UnlearnRecipe, "llm")


def check_quantizable(recipe: UnlearnRecipe) -> None:
    """4-bit weights cannot take gradient steps: only adapters train on them."""
    if recipe.quant == "none":
        return
    if recipe.merge:
        raise ConfigError("merge=true with quant=4bit would store re-quantised weights; load the adapter on the "
                          "original instead")
    settings = getattr(recipe, recipe.method, None)
    if recipe.method == "e2urec":
        if settings.augment.finetune != "lora":
            raise ConfigError("quant=4bit: set e2urec.augment.finetune=lora (4-bit weights train through adapters only)")
    elif getattr(settings, "finetune", None) != "lora":
        raise ConfigError(f"quant=4bit: method '{recipe.method}' must run with {recipe.method}.finetune=lora"
                          if hasattr(settings, "finetune") else
                          f"quant=4bit applies to adapter methods; '{recipe.method}' rebuilds whole models")


def unlearn_in_memory(runner, recipe: UnlearnRecipe, card: dict, splits, accelerator, output: Path | None,
                      original_hash: str | None = None) -> dict:
    """Load θ₀, let the method train its student, save the student (adapter or whole model) into `output`.

    Under several processes each one trains on its share of every batch and gradients are averaged
    (unlearn/loop.py), so all hold the same student; only the main process saves it (output None elsewhere),
    with the original's `original_hash` in its card.
    """
    model_dir = Path(recipe.model)
    tokenizer = load_tokenizer(str(model_dir))
    prompt, answer = PromptConfig(**card["prompt"]), AnswerTokens(**card["answer"])
    data = UnlearningData(splits, tokenizer, prompt, card["max_length"], answer, recipe.seed, accelerator.device, stop=recipe.stop,
                          shard=(accelerator.process_index, accelerator.num_processes))
    original = load_model(str(model_dir), quant=recipe.quant)
    if recipe.quant == "none":  # a 4-bit model is placed at load time and cannot be moved
        original = original.to(accelerator.device)
    accelerator.print(f"device: {accelerator.device} | mixed precision: {accelerator.mixed_precision} | "
                      f"processes: {accelerator.num_processes} | {threads_note()} | forget samples: {len(data.forget)}"
                      f" | retained pool: {len(splits['retained'])}")
    result = runner(LlmUnlearning(original, data, accelerator.autocast), getattr(recipe, recipe.method))
    student = result["student"]
    require_change(student_changed(student, model_dir), recipe.method, model_dir)  # before anything is saved
    result["trainable_parameters"], result["total_parameters"] = parameter_counts(student)
    if output is None:
        return result
    student.save_pretrained(output)
    tokenizer.save_pretrained(output)
    write_model_card(output, {**card, **original_card(model_dir, original_hash), "quant": recipe.quant})
    if recipe.merge and hasattr(student, "merge_and_unload"):
        merged_copy(student).save_pretrained(output / "merged")
        tokenizer.save_pretrained(output / "merged")
        inherited = {k: v for k, v in card.items() if not k.startswith("unlearned_from")}  # its original's own
        write_model_card(output / "merged", {**inherited, **original_card(model_dir, original_hash, "merged_from")})
    return result


def unlearning_manifest(recipe, splits, original_hash: str, result: dict, wall: float) -> dict:
    """What was forgotten, from which original (by hash), at what cost: the same record for every method."""
    forget_users = sorted(set(splits["forget"]["user_id"]))
    trainable, total = result["trainable_parameters"], result["total_parameters"]
    return {
        "method": recipe.method,
        "recipe": to_dict(recipe),
        "original_model": str(Path(recipe.model).absolute()),
        "original_model_sha256": original_hash,
        "forgotten_user_ids": forget_users,
        "forgotten_samples_sha256": forget_samples_sha256(splits["forget"]),
        "counts": {"forget_users": len(forget_users), "forget_samples": len(splits["forget"]),
                   "retained_samples": len(splits["retained"])},
        "timings": {**result["timings"], "wall_seconds": wall},
        "steps": result.get("steps", {}),
        "retained_samples_used": result.get("retained_samples_used"),
        "trainable_parameters": trainable,
        "trainable_percent": 100.0 * trainable / total if total else 0.0,
        "threads": torch.get_num_threads(),
        "stopping": result.get("stopping"),  # a stopping rule's record; its probe users are left out of the audit
        **({"teacher": result["teacher"]} if result.get("teacher") else {}),  # E2URec's calibrated teacher
    }


def check_processes(recipe: UnlearnRecipe, runner, processes: int) -> None:
    if processes == 1:
        return
    if getattr(runner, "rebuilds_model", False):
        raise LlmrecError(f"'{recipe.method}' trains whole models: run it in one process, or retrain under several "
                          "with `llmrec train RECIPE train.train_on=retained`")
    batch_size = getattr(getattr(recipe, recipe.method), "batch_size", processes)
    if batch_size % processes:
        raise ConfigError(f"{recipe.method}.batch_size={batch_size} must be a multiple of the {processes} processes "
                          "(each takes an equal share of every batch)")


def audit_models_read(cfg: AuditConfig) -> list[tuple[str, object]]:
    """(label, dir) of the models an audit with settings `cfg` reads besides the original."""
    references = [cfg.reference] if isinstance(cfg.reference, str) else list(cfg.reference or [])
    return [("audit.retrain", cfg.retrain), *(("audit.reference", path) for path in references)]


def prepare_unlearning_audit(recipe: UnlearnRecipe, splits, processes: int):
    """The audit's checks (llmrec.eval.audit_run.prepare_audit), before anything is written; None when no audit
    was asked for. The shadow lives outside output_dir (replaced whole on every run): by default beside it."""
    from llmrec.eval.audit_run import prepare_audit
    from llmrec.eval.evaluate import audit_requested

    cfg = recipe.audit
    if not audit_requested(cfg):
        return None
    if processes > 1:
        raise LlmrecError("the audit (audit.reference / audit.shadow) runs in one process: unlearn without "
                          "accelerate's several processes, or run llmrec audit afterwards")
    if cfg.original:
        raise ConfigError("audit.original: the original of an unlearning run is its `model`; leave audit.original "
                          "unset")
    output = Path(recipe.output_dir)
    shadow_dir = Path(cfg.shadow_dir) if cfg.shadow_dir else output.with_name(f"{output.name}-shadow")
    if relation(shadow_dir, output):
        raise LlmrecError(f"audit.shadow_dir={shadow_dir} {relation(shadow_dir, output)} output_dir={output}, which "
                          "is replaced whole on every run; choose a folder apart from it")
    return prepare_audit(replace(cfg, shadow_dir=str(shadow_dir)), recipe.data, recipe.forget, splits,
                         Path(recipe.model), shadow_dir, reads=[("the original", recipe.model)])


def audit_or_skip(prepared, recipe: UnlearnRecipe, runner, splits) -> tuple[object | None, dict | None]:
    """(prepared, None), or (None, the manifest's skip record) with a printed warning when the stopping rule's probe
    users, drawn before the run (`planned_probe_users`), would leave too few forget users to audit: known before a
    shadow is trained for nothing (a method that rebuilds its model runs no stopping rule and probes no one)."""
    from llmrec.data.samples import holdout_users
    from llmrec.eval.audit_run import exclude_probes
    from llmrec.unlearn.stopping import planned_probe_users

    if prepared is None or getattr(runner, "rebuilds_model", False):
        return prepared, None
    probes = planned_probe_users(recipe.stop, splits["forget"]["user_id"], len(holdout_users(splits)))
    try:
        exclude_probes(prepared, splits, probes)
    except LlmrecError as exc:
        print(f"warning: audit skipped: {exc}")
        return None, {"verdict": None, "skipped": str(exc)}
    return prepared, None


def run_audit_into(tmp: Path, recipe: UnlearnRecipe, prepared, splits, result: dict, accelerator) -> dict:
    """Audit the unlearned model in `tmp` (not yet in place) and write audit.md / audit.png beside it; the forget
    users a stopping rule probed (result["stopping"]["probe_user_ids"]) are left out. Returns the record, or
    {"verdict": None, "skipped": why} when too few forget users are left once the probe users are out (known only
    now: the unlearning is kept, with a printed warning, rather than thrown away)."""
    from llmrec.eval.audit_run import audit_models, exclude_probes, summary, write_report

    probes = (result.get("stopping") or {}).get("probe_user_ids") or []
    try:
        prepared = exclude_probes(prepared, splits, probes)
    except LlmrecError as exc:
        print(f"warning: audit skipped: {exc}")
        return {"verdict": None, "skipped": str(exc)}
    record, models = audit_models(tmp, prepared, recipe.audit, accelerator,
                                  audited_as=Path(recipe.output_dir))
    write_report(tmp, record, models)
    print(summary(record))
    return record


def run_unlearning(recipe: UnlearnRecipe) -> dict | None:
    """The manifest (None on processes other than the main one, which write nothing)."""
    model_dir = Path(recipe.model)
    card = read_model_card(model_dir)
    retrain_recipe = [("retrain.recipe", recipe.retrain.recipe)] if recipe.method == "retrain" else []
    refuse_overlap(recipe.output_dir, [*model_paths(model_dir), *models_read(*audit_models_read(recipe.audit))],
                   inputs=[*recipe_inputs(recipe), *retrain_recipe])
    runner = get_method(recipe.method)
    accelerator = make_accelerator(recipe.mixed_precision)
    check_processes(recipe, runner, accelerator.num_processes)
    require_user_forgetting(recipe.forget, "llmrec unlearn")
    check_quantizable(recipe)
    check_model_card(model_dir, card, recipe.data, recipe.allow_other_data, "allow_other_data")
    with accelerator.main_process_first():
        splits = prepare_splits(recipe.data, recipe.forget)
    audit = prepare_unlearning_audit(recipe, splits, accelerator.num_processes)
    torch.manual_seed(recipe.seed)
    accelerator.print(f"resolved config:\n{to_yaml(recipe)}")
    if not accelerator.is_main_process:
        unlearn_in_memory(runner, recipe, card, splits, accelerator, output=None)
        accelerator.wait_for_everyone()
        return None

    audit, audit_skipped = audit_or_skip(audit, recipe, runner, splits)
    if audit is not None:
        from llmrec.eval.audit_run import ensure_shadow

        ensure_shadow(audit)  # trained (or reused) before the unlearning: a failure here costs no unlearning work
        torch.manual_seed(recipe.seed)
    original_hash = model_hash(model_dir)
    with atomic_dir(Path(recipe.output_dir)) as tmp:  # a failed run leaves no output and earlier outputs intact
        started = time.perf_counter()
        if getattr(runner, "rebuilds_model", False):
            result = runner(model_dir, splits, getattr(recipe, recipe.method), tmp)
            write_model_card(tmp, {**read_model_card(tmp), **original_card(model_dir, original_hash)})
        else:
            result = unlearn_in_memory(runner, recipe, card, splits, accelerator, tmp, original_hash)
        wall = time.perf_counter() - started
        if model_hash(model_dir) != original_hash:
            raise LlmrecError(f"{model_dir} changed during unlearning; refusing to write outputs")
        manifest = unlearning_manifest(recipe, splits, original_hash, result, wall)
        if audit is not None:
            manifest["audit"] = run_audit_into(tmp, recipe, audit, splits, result, accelerator)
        elif audit_skipped is not None:
            manifest["audit"] = audit_skipped
        (tmp / "config.yaml").write_text(to_yaml(recipe))
        write_json(tmp / "unlearning_manifest.json", manifest)
    confirm_unchanged(model_dir, original_hash, Path(recipe.output_dir))
    print(f"unlearned {manifest['counts']['forget_users']} users in {wall:.1f}s; outputs and manifest in "
          f"{recipe.output_dir}")
    accelerator.wait_for_everyone()
    return manifest
