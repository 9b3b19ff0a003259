"""`llmrec bench-speed RECIPE`: what unlearning costs next to retraining, measured side by side in one process.

1. One E2URec step as the reference code computes it, then with llmrec's changes added one at a time (steps.py).
2. Whole runs at each forget fraction: E2URec (augmented model, teacher cache, distillation), NegGrad, a retrain
   from scratch on the retained data to the original's epochs, and IFRU on an MF: what `llmrec unlearn`,
   `llmrec train` and `llmrec unlearn` (of the MF) do, timed in-process, data preparation and saving included.
3. Scoring throughput: `llmrec evaluate`'s loop against a plain loop that builds full logits.
Each measurement is repeated `repeats` times, the contenders interleaved (their order rotates every repeat)
so that drift of the machine lands on all of them; medians and min–max are reported. The split cache and
the tokenised datasets are built before any clock starts. Writes speed.json, speed.md, speed.png and, with
`profile`, profile.txt (torch.profiler, one step of the reference and one of llmrec).
"""

from __future__ import annotations

import copy
import shutil
import statistics
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from llmrec.bench.classic import classic_recipe
from llmrec.bench.memory import PeakMemory
from llmrec.bench.run import base_recipe, machine_info
from llmrec.stages import ensure_trained
from llmrec.bench.speed_report import RUNS, plot_speed, speed_markdown
from llmrec.bench.steps import VARIANTS, StepRunner, Variant, bf16_autocast, full_logits, llmrec_variant
from llmrec.classic.methods.ifru import IfruConfig
from llmrec.classic.train import ClassicModelConfig, ClassicTrainConfig, train_classic
from llmrec.classic.unlearn import ClassicUnlearnRecipe, run_classic_unlearning
from llmrec.config import Recipe, option, to_dict, to_yaml
from llmrec.data.samples import prepare_splits, require_user_forgetting
from llmrec.data.tokenize import AnswerCollator, tokenize
from llmrec.errors import ConfigError
from llmrec.llm.scoring import make_loader, score_dataset
from llmrec.eval.score import score_model
from llmrec.eval.forgetting import forget_gap_closure, js_divergence
from llmrec.eval.metrics import utility_metrics
from llmrec.io import write_json, write_text
from llmrec.llm.accel import make_accelerator
from llmrec.llm.backbone import AnswerTokens, add_lora, card_settings, load_model, load_tokenizer
from llmrec.recommender import load_llm_module
from llmrec.store import read_model_card
from llmrec.llm.scoring import p_yes
from llmrec.llm.train import train
from llmrec.unlearn.data import UnlearningData
from llmrec.unlearn.loop import LlmUnlearning
from llmrec.unlearn.methods.e2urec import E2URecConfig, Teachers
from llmrec.unlearn.methods.neggrad import NegGradConfig
from llmrec.unlearn.run import UnlearnRecipe, run_unlearning
from llmrec.unlearn.teachers import precompute_answer_logits


@dataclass
class MfSpeedConfig:
    model: ClassicModelConfig = option(ClassicModelConfig(), "the MF that IFRU forgets from")
    train: ClassicTrainConfig = option(ClassicTrainConfig(), "its training")
    ifru: IfruConfig = option(IfruConfig(), "IFRU settings")


@dataclass
class StepBenchConfig:
    steps: int = option(3, "joint-phase steps timed per variant and repeat (after one untimed warm-up step)")
    batch_size: int = option(0, "forget and retained samples per step (0: e2urec.batch_size)", ge=0)


@dataclass
class SpeedRecipe(Recipe):
    """A training recipe (the original and the retrains) plus what the speed benchmark times."""

    output_dir: str = option("runs/speed", "where models, speed.json/.md/.png and config.yaml go")
    fractions: list[float] = option([0.01, 0.05, 0.2], "forget fractions of the training users for the whole runs")
    repeats: int = option(3, "times each measurement is repeated (median and min–max reported)")
    seed: int = option(0, "seed of every unlearning run", ge=0)
    e2urec: E2URecConfig = option(E2URecConfig(), "E2URec settings")
    neggrad: NegGradConfig = option(NegGradConfig(), "NegGrad settings")
    mf: MfSpeedConfig = option(MfSpeedConfig(), "the IFRU-on-MF row")
    step: StepBenchConfig = option(StepBenchConfig(), "the single-step comparison (at forget.fraction)")
    score_split: str = option("test", "split scored in the scoring comparison")
    profile: bool = option(True, "write profile.txt: torch.profiler of one reference and one llmrec step")


def spread(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def timed(run) -> tuple[float, float | None, object]:
    """(wall seconds, peak MB, result) of `run()`."""
    with PeakMemory() as memory:
        started = time.perf_counter()
        result = run()
        wall = time.perf_counter() - started
    return wall, memory.peak_mb, result


def phases(kind: str, wall: float, result) -> dict:
    """Where a whole run's time went: the method's own phases (manifest timings), the rest is loading the data
    and model, hashing the original (before and after) and saving."""
    if kind == "retrain":
        inside = {"training_seconds": sum(epoch["train_seconds"] for epoch in result["epochs"]),
                  "validation_seconds": sum(epoch["valid_seconds"] for epoch in result["epochs"])}
    else:
        inside = {k: v for k, v in result["timings"].items() if k.endswith("_seconds") and k != "wall_seconds"}
    return {**inside, "outside": wall - sum(inside.values())}


def check_speed(recipe: SpeedRecipe) -> None:
    if recipe.repeats < 1:
        raise ConfigError(f"repeats must be at least 1, got {recipe.repeats}")
    if not recipe.fractions:
        raise ConfigError("fractions: list at least one forget fraction")
    for fraction in recipe.fractions:
        if not 0 < fraction < 1:
            raise ConfigError(f"fractions: {fraction} is not between 0 and 1")
    if recipe.step.steps < 1:
        raise ConfigError(f"step.steps must be at least 1, got {recipe.step.steps}")
    require_user_forgetting(recipe.forget, "the speed benchmark")


# ---------------------------------------------------------------- 1. one step

def step_benchmark(recipe: SpeedRecipe, original_dir: Path, splits, accelerator) -> tuple[list[dict], str | None]:
    card, tokenizer = read_model_card(original_dir), load_tokenizer(str(original_dir))
    prompt, answer = card_settings(original_dir, tokenizer, card)  # answer ids checked against the tokenizer
    config, batch_size, steps = recipe.e2urec, recipe.step.batch_size or recipe.e2urec.batch_size, recipe.step.steps
    data = UnlearningData(splits, tokenizer, prompt, card["max_length"], answer, recipe.seed)
    needed = (steps + 1) * recipe.repeats + 1
    retained = data.retained_sample(needed * batch_size)

    original = load_model(str(original_dir))  # the reference holds three models: student, θ₀, augmented
    for p in original.parameters():
        p.requires_grad_(False)
    augmented = copy.deepcopy(original)  # its weights do not change a forward's cost
    student = add_lora(copy.deepcopy(original), config.lora)
    teachers = Teachers(LlmUnlearning(original, data), student, None, config.alpha)
    with accelerator.autocast():
        augmented_forget = precompute_answer_logits(augmented, data.all_rows(data.forget, 2 * batch_size), answer,
                                                    "teacher aug forget")
        teachers.precompute(data.forget, retained, 2 * batch_size, augmented_forget)
    runner = StepRunner(student, original, augmented, teachers, config, answer, bf16_autocast(accelerator.device))

    def batches(by_length: bool, dataset, seed_offset: int) -> list[dict]:
        return list(data.batches(dataset, batch_size, needed, seed_offset=seed_offset, by_length=by_length))

    plans = {bucketed: (batches(bucketed, data.forget, 0), batches(bucketed, retained, 1)) for bucketed in (False, True)}
    seconds = {v.name: [] for v in VARIANTS}
    cursor = 0
    for repeat in range(recipe.repeats):
        order = VARIANTS[repeat % len(VARIANTS):] + VARIANTS[:repeat % len(VARIANTS)]
        for variant in order:
            forget_batches, retained_batches = plans[variant.length_buckets]
            runner.step(variant, forget_batches[cursor], retained_batches[cursor])  # warm-up, untimed
            started = time.perf_counter()
            for k in range(1, steps + 1):
                runner.step(variant, forget_batches[cursor + k], retained_batches[cursor + k])
            seconds[variant.name].append(time.perf_counter() - started)
        cursor += steps + 1
        print(f"[step] repeat {repeat + 1}/{recipe.repeats}: " + ", ".join(
            f"{name} {2 * batch_size * steps / s[-1]:.1f}/s" for name, s in seconds.items()))
    reference = statistics.median(seconds[VARIANTS[0].name])
    ours = getattr(llmrec_variant(accelerator.mixed_precision, config.length_buckets), "name", None)
    rows = [{"variant": name, "samples_per_second": spread([2 * batch_size * steps / s for s in values]),
             "speedup": reference / statistics.median(values), "seconds": values, "llmrec": name == ours,
             "batch_size": batch_size, "steps": steps} for name, values in seconds.items()]

    profile = None
    if recipe.profile:
        profile = profile_steps(runner, plans, cursor, llmrec_variant(accelerator.mixed_precision,
                                                                      config.length_buckets) or VARIANTS[-1])
    return rows, profile


def profile_steps(runner: StepRunner, plans: dict, cursor: int, ours: Variant) -> str:
    from torch.profiler import ProfilerActivity, profile

    parts = []
    for variant in (VARIANTS[0], ours):
        forget_batches, retained_batches = plans[variant.length_buckets]
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            runner.step(variant, forget_batches[cursor], retained_batches[cursor])
        parts.append(f"{variant.name}: one step, top operators by self CPU time\n"
                     + prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    return "\n\n".join(parts)


# ---------------------------------------------------------------- 2. whole runs

def run_once(recipe: SpeedRecipe, kind: str, fraction: float, original_dir: Path, mf_dir: Path, out: Path):
    """A callable doing one whole run of `kind` at `fraction` into `out`."""
    forget = replace(recipe.forget, fraction=fraction)
    if kind == "retrain":
        retrain = base_recipe(replace(recipe, forget=forget), out, train_on="retained")
        return lambda: train(retrain)
    if kind == "ifru (mf)":
        ifru = ClassicUnlearnRecipe(model=str(mf_dir), output_dir=str(out), method="ifru", data=recipe.data,
                                    forget=forget, ifru=recipe.mf.ifru)
        return lambda: run_classic_unlearning(ifru)
    unlearn = UnlearnRecipe(model=str(original_dir), output_dir=str(out), method=kind, data=recipe.data,
                            forget=forget, seed=recipe.seed, mixed_precision=recipe.train.mixed_precision,
                            **{kind: getattr(recipe, kind)})
    return lambda: run_unlearning(unlearn)


def whole_runs(recipe: SpeedRecipe, original_dir: Path, mf_dir: Path, out: Path) -> dict:
    """{fraction: {kind: {"seconds": [...], "peak_mb": [...]}}}; the last repeat's outputs are kept (quality)."""
    results = {f: {kind: {"seconds": [], "peak_mb": [], "phases": []} for kind in RUNS} for f in recipe.fractions}
    for repeat in range(recipe.repeats):
        kinds = RUNS[repeat % len(RUNS):] + RUNS[:repeat % len(RUNS)]
        for fraction in recipe.fractions:
            for kind in kinds:
                target = out / "runs" / f"forget-{fraction}" / kind.split()[0]
                shutil.rmtree(target, ignore_errors=True)
                print(f"[whole] repeat {repeat + 1}/{recipe.repeats}, forget {fraction}: {kind}")
                wall, peak, result = timed(run_once(recipe, kind, fraction, original_dir, mf_dir, target))
                results[fraction][kind]["seconds"].append(wall)
                results[fraction][kind]["peak_mb"].append(peak)
                results[fraction][kind]["phases"].append(phases(kind, wall, result))
                print(f"[whole] {kind} at {fraction}: {wall:.1f}s")
    return results


def quality(recipe: SpeedRecipe, original_dir: Path, out: Path, accelerator) -> dict:
    """The E2URec issue's targets, on the last repeat's E2URec and retrain at each fraction."""
    checks = {}
    for fraction in recipe.fractions:
        splits = prepare_splits(recipe.data, replace(recipe.forget, fraction=fraction))
        folder = out / "runs" / f"forget-{fraction}"
        dirs = {"original": original_dir, "retrain": folder / "retrain" / "model", "e2urec": folder / "e2urec",
                "neggrad": folder / "neggrad"}
        scored = {name: score_model(Path(path), ["test", "forget"], splits, recipe.eval.batch_size, accelerator)
                  for name, path in dirs.items()}
        utility = {name: {split: utility_metrics(*s[split]) for split in ("test", "forget")}
                   for name, s in scored.items()}
        row = {"forget_samples": len(splits["forget"]), "forget_users": len(set(splits["forget"]["user_id"]))}
        for name in ("original", "retrain", "e2urec", "neggrad"):
            row[name] = {"test_auc": utility[name]["test"]["auc"], "forget_auc": utility[name]["forget"]["auc"],
                         "js_divergence": js_divergence(scored[name]["forget"][1], scored["retrain"]["forget"][1])}
            row[name]["closure"] = forget_gap_closure(utility["original"]["forget"]["auc"],
                                                      utility[name]["forget"]["auc"],
                                                      utility["retrain"]["forget"]["auc"])
        e2urec = row["e2urec"]
        row["targets"] = {
            "test_auc_within_0.01_of_retrain": e2urec["test_auc"] >= row["retrain"]["test_auc"] - 0.01,
            "closure_at_least_0.5": e2urec["closure"] >= 0.5,  # nan (no gap to close) is not met
            "jsd_at_most_original": e2urec["js_divergence"] <= row["original"]["js_divergence"],
        }
        checks[fraction] = row
    return checks


# ---------------------------------------------------------------- 3. scoring

@torch.no_grad()
def plain_scores(model, dataset, collator, batch_size: int, answer: AnswerTokens) -> list[float]:
    """What a plain loop does: dataset order, full logits in the model's dtype, the last position read."""
    probs = []
    for batch in make_loader(dataset, collator, batch_size):
        logits = full_logits(model, batch["input_ids"], batch["attention_mask"])[:, -1, :]
        probs += p_yes(logits, answer.yes_id, answer.no_id).tolist()
    return probs


def pairs_within(labels, probs, gap: float) -> float:
    """Share of (positive, negative) pairs whose scores lie within `gap` of each other: the most the AUC can
    change when every score moves by at most gap/2 (only those pairs can swap order). labels, probs: [samples]."""
    labels, probs = np.asarray(labels), np.asarray(probs, dtype=float)
    positives, negatives = probs[labels == 1], np.sort(probs[labels == 0])
    if len(positives) == 0 or len(negatives) == 0:
        return float("nan")
    close = np.searchsorted(negatives, positives + gap, side="right") - np.searchsorted(negatives, positives - gap)
    return float(close.sum() / (len(positives) * len(negatives)))


def scoring_benchmark(recipe: SpeedRecipe, original_dir: Path, splits, accelerator) -> list[dict]:
    card, tokenizer = read_model_card(original_dir), load_tokenizer(str(original_dir))
    prompt, answer = card_settings(original_dir, tokenizer, card)
    dataset = tokenize(splits[recipe.score_split], tokenizer, prompt, card["max_length"])
    collator, batch_size = AnswerCollator(tokenizer), recipe.eval.batch_size
    ours = accelerator.prepare(load_llm_module(original_dir))
    plain = load_model(str(original_dir)).eval()
    contenders = {
        "plain loop (full logits, fp32, dataset order)": lambda: plain_scores(plain, dataset, collator, batch_size,
                                                                              answer),
        f"llmrec evaluate (answer logits, length order, {accelerator.mixed_precision} autocast)": lambda: score_dataset(
            ours, dataset, collator, batch_size, accelerator, answer, desc="scoring")[1],
    }
    seconds, probs = {name: [] for name in contenders}, {}
    for repeat in range(recipe.repeats):
        for name in (list(contenders) if repeat % 2 == 0 else list(contenders)[::-1]):
            started = time.perf_counter()
            probs[name] = contenders[name]()
            seconds[name].append(time.perf_counter() - started)
    names = list(contenders)
    base = statistics.median(seconds[names[0]])
    labels = dataset["label"]
    rows = []
    for name in names:
        diff = max(abs(a - b) for a, b in zip(probs[name], probs[names[0]]))
        rows.append({"loop": name, "prompts_per_second": spread([len(dataset) / s for s in seconds[name]]),
                     "speedup": base / statistics.median(seconds[name]),
                     "auc": utility_metrics(labels, probs[name])["auc"], "max_abs_diff_vs_plain": diff,
                     "auc_change_rounding_allows": pairs_within(labels, probs[names[0]], 2 * diff),
                     "prompts": len(dataset), "batch_size": batch_size})
    return rows


# ---------------------------------------------------------------- the benchmark

def run_speed(recipe: SpeedRecipe) -> dict:
    check_speed(recipe)
    out = Path(recipe.output_dir)
    splits = prepare_splits(recipe.data, recipe.forget)  # bad data stops here, before anything is written
    if recipe.score_split not in splits:
        raise ConfigError(f"score_split: unknown split '{recipe.score_split}' (choose from {', '.join(splits)})")
    for fraction in recipe.fractions:  # the split cache is built now, not inside a timed run
        prepare_splits(recipe.data, replace(recipe.forget, fraction=fraction))
    write_text(out / "config.yaml", to_yaml(recipe))
    accelerator = make_accelerator(recipe.train.mixed_precision)

    original = ensure_trained(base_recipe(recipe, out / "original"), "original")
    original_dir = out / "original" / "model"
    mf = classic_recipe(recipe, recipe.mf, out / "mf-original", "mf")
    ensure_trained(mf, "mf/original", train_classic)
    mf_dir = out / "mf-original" / "model"

    print("[step] one E2URec step: reference vs llmrec")
    with PeakMemory() as memory:
        steps, profile = step_benchmark(recipe, original_dir, splits, accelerator)
    step_peak = memory.peak_mb
    if profile:
        write_text(out / "profile.txt", profile + "\n")
    print("[scoring] llmrec evaluate vs a plain loop")
    scoring = scoring_benchmark(recipe, original_dir, splits, accelerator)
    whole = whole_runs(recipe, original_dir, mf_dir, out)
    checks = quality(recipe, original_dir, out, accelerator)

    payload = {"steps": steps, "step_peak_mb": step_peak, "scoring": scoring,
               "whole": {str(f): v for f, v in whole.items()}, "quality": {str(f): v for f, v in checks.items()},
               "original_training": original, "recipe": to_dict(recipe), "machine": machine_info(accelerator)}
    write_json(out / "speed.json", payload)
    table = speed_markdown(payload, profile)
    write_text(out / "speed.md", table)
    plot_speed(payload, out / "speed.png")
    print(table)
    print(f"written: {out / 'speed.json'}, {out / 'speed.md'}, {out / 'speed.png'}")
    return payload
