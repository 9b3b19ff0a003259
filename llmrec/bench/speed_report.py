"""speed.md and speed.png from the speed benchmark's payload (speed.py)."""

from __future__ import annotations

import math
import statistics
from pathlib import Path

RUNS = ["e2urec", "neggrad", "retrain", "ifru (mf)"]  # the whole runs timed at every forget fraction
TARGET_RATIO = {0.01: 1 / 20, 0.2: 1 / 3}  # E2URec wall ÷ retrain wall (the E2URec issue's targets)


def _range(stats: dict, spec: str = ".1f") -> str:
    return f"{stats['median']:{spec}} [{stats['min']:{spec}}–{stats['max']:{spec}}]"


def _seconds(values: list[float], spec: str = ".1f") -> str:
    return _range({"median": statistics.median(values), "min": min(values), "max": max(values)}, spec)


def _yes(flag: bool) -> str:
    return "yes" if flag else "**no**"


def _number(value: float, spec: str = ".4f") -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else format(value, spec)


def paired_ratios(whole: dict, kind: str) -> list[float]:
    """`kind` ÷ retrain within each repeat (the two ran minutes apart, so drift mostly cancels)."""
    return [a / b for a, b in zip(whole[kind]["seconds"], whole["retrain"]["seconds"])]


def speed_markdown(payload: dict, profile: str | None) -> str:
    machine, recipe = payload["machine"], payload["recipe"]
    lines = [f"# Speed: {recipe['model']['name_or_path']} on {recipe['data']['format']}",
             "",
             f"{machine['device']}, {machine['threads']} threads, mixed precision {machine['mixed_precision']}, "
             f"torch {machine['torch']}; {recipe['repeats']} repeats, contenders interleaved; "
             "median [min–max].", ""]

    steps = payload["steps"]
    lines += [f"## 1. One E2URec joint step ({steps[0]['batch_size']} forget + {steps[0]['batch_size']} retained "
              f"samples, {steps[0]['steps']} steps per timing)", "",
              "| variant | samples/s | × reference |", "|---|---|---|"]
    lines += [f"| {row['variant']}{' = **llmrec**' if row['llmrec'] else ''} | {_range(row['samples_per_second'])} | "
              f"{row['speedup']:.2f} |" for row in steps]
    lines += ["", f"Peak RSS of the step comparison (all variants' models held at once): "
              f"{_number(payload['step_peak_mb'], '.0f')} MB.", ""]

    lines += ["## 2. Whole unlearning vs retraining (wall seconds, data preparation and saving included)", "",
              "| forget fraction | forget users / samples | " + " | ".join(RUNS)
              + " | E2URec ÷ retrain (paired) | target | met |",
              "|---|---|" + "---|" * len(RUNS) + "---|---|---|"]
    for fraction, whole in payload["whole"].items():
        check = payload["quality"][fraction]
        ratios = paired_ratios(whole, "e2urec")
        target = TARGET_RATIO.get(float(fraction))
        met = "–" if target is None else _yes(statistics.median(ratios) <= target)
        lines.append(f"| {fraction} | {check['forget_users']} / {check['forget_samples']} | "
                     + " | ".join(_seconds(whole[kind]["seconds"]) for kind in RUNS)
                     + f" | {_seconds(ratios, '.3f')} | {'≤ 1/' + str(round(1 / target)) if target else '–'}"
                     f" | {met} |")
    lines += ["", "Peak RSS (MB, median; the process's resident set while the run was going, so it includes what "
              "earlier stages left loaded):", "",
              "| forget fraction | " + " | ".join(RUNS) + " |", "|---|" + "---|" * len(RUNS)]
    for fraction, whole in payload["whole"].items():
        peaks = [whole[kind]["peak_mb"] for kind in RUNS]
        lines.append(f"| {fraction} | " + " | ".join(
            _number(statistics.median(p), ".0f") if all(v is not None for v in p) else "–" for p in peaks) + " |")

    lines += ["", "Where the time went (seconds, median over repeats; `outside` = loading data and model, hashing the "
              "original before and after, saving):", "", "| forget fraction | run | phases |", "|---|---|---|"]
    for fraction, whole in payload["whole"].items():
        for kind in ("e2urec", "neggrad", "retrain"):
            runs = whole[kind]["phases"]
            cells = ", ".join(f"{name.removesuffix('_seconds')} {statistics.median([r[name] for r in runs]):.1f}"
                              for name in runs[0])
            lines.append(f"| {fraction} | {kind} | {cells} |")
    lines += ["", "Does the E2URec run count? The E2URec issue's targets, on the last repeat's models "
              "(JSD and closure on the forget set, against that fraction's retrain):", "",
              "| forget fraction | model | test AUC | forget AUC | closure | JSD to retrain |", "|---|---|---|---|---|---|"]
    for fraction, check in payload["quality"].items():
        for name in ("original", "retrain", "e2urec", "neggrad"):
            row = check[name]
            lines.append(f"| {fraction} | {name} | {_number(row['test_auc'])} | {_number(row['forget_auc'])} | "
                         f"{_number(row['closure'], '.3f')} | {_number(row['js_divergence'], '.5f')} |")
        targets = check["targets"]
        lines.append(f"| {fraction} | targets | test AUC ≥ retrain − 0.01: "
                     f"{_yes(targets['test_auc_within_0.01_of_retrain'])} | | closure ≥ 0.5: "
                     f"{_yes(targets['closure_at_least_0.5'])} | JSD ≤ original's: "
                     f"{_yes(targets['jsd_at_most_original'])} |")

    scoring = payload["scoring"]
    lines += ["", f"## 3. Scoring ({scoring[0]['prompts']} prompts of the {recipe['score_split']} split, "
              f"batch {scoring[0]['batch_size']})", "",
              "| loop | prompts/s | × plain | AUC | max abs ΔP(yes) vs plain | largest AUC change that ΔP allows |",
              "|---|---|---|---|---|---|"]
    lines += [f"| {row['loop']} | {_range(row['prompts_per_second'])} | {row['speedup']:.2f} | "
              f"{_number(row['auc'])} | {_number(row['max_abs_diff_vs_plain'], '.2e')} | "
              f"{_number(row.get('auc_change_rounding_allows'))} |" for row in scoring]
    if profile:
        lines += ["", "## Profile", "", "```", profile, "```"]
    return "\n".join(lines) + "\n"


def plot_speed(payload: dict, path: Path) -> None:
    """Wall time against forget fraction for every run kind (median, min–max bars; log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fractions = [float(f) for f in payload["whole"]]
    fig, ax = plt.subplots(figsize=(6.5, 4.2), dpi=120)
    for kind in RUNS:
        runs = [whole[kind]["seconds"] for whole in payload["whole"].values()]
        medians = [statistics.median(r) for r in runs]
        errors = [[m - min(r) for m, r in zip(medians, runs)], [max(r) - m for m, r in zip(medians, runs)]]
        ax.errorbar(fractions, medians, yerr=errors, marker="o", capsize=3, label=kind)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xticks(fractions, [str(f) for f in fractions])
    ax.set_xlabel("forget fraction of the training users")
    ax.set_ylabel("wall seconds (median of repeats)")
    ax.set_title(f"Unlearning vs retraining: {payload['recipe']['model']['name_or_path']}")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
