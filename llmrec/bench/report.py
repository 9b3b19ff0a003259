"""The benchmark as a person reads it: a Markdown table with the best method per column in bold, and one plot."""

from __future__ import annotations

import math
from pathlib import Path

# what methods are judged against (classic rows carry their backbone: "mf/original", "mf/retrain", ...)
REFERENCE_ROWS = ("original", "retrain", "retrain (seed 2)", "original (sisa)", "original (receraser)")


def base_name(record: dict) -> str:
    return record["method"].split("/", 1)[-1]


def is_reference(record: dict) -> bool:
    return base_name(record) in REFERENCE_ROWS


def families(records: list[dict]) -> dict[str, list[dict]]:
    """Records grouped by model family (the LLM, then each classic backbone), each judged against its own retrain."""
    grouped: dict[str, list[dict]] = {}
    for record in records:
        grouped.setdefault(record.get("family", "llm"), []).append(record)
    return grouped

# (header, value of a record, how "best" is chosen among the methods, number format)
COLUMNS = [
    ("test AUC", lambda r: r["test"]["auc"], "max", ".4f"),
    ("forget AUC", lambda r: r["forget"]["auc"], "nearest_reference_forget_auc", ".4f"),
    ("closure (AUC)", lambda r: r["forgetting"]["forget_gap_closure_auc"], "nearest_one", ".2f"),
    ("JSD to retrain", lambda r: r["forgetting"]["js_divergence"], "min", ".3g"),
    ("L2 to retrain", lambda r: r["forgetting"]["l2"], "min", ".3g"),
    ("MIA AUC", lambda r: r["forgetting"]["mia_auc"], "nearest_reference_mia", ".3f"),
    ("wall s", lambda r: r["wall_seconds"], "min", ".1f"),
    ("× retrain", lambda r: r["wall_vs_retrain"], "min", ".3f"),
    ("compute s", lambda r: r.get("compute_seconds"), "min", ".3g"),
    ("compute × retrain", lambda r: r.get("compute_vs_retrain"), "min", ".3g"),
    ("trainable %", lambda r: r["trainable_percent"], "min", ".3g"),
    ("peak MB", lambda r: r["peak_memory_mb"], "min", ".0f"),
]


def _distance_rule(rule: str, records: list[dict]):
    reference = next(r for r in records if base_name(r) == "retrain")
    target = {"nearest_one": 1.0,
              "nearest_reference_forget_auc": reference["forget"]["auc"],
              "nearest_reference_mia": reference["forgetting"]["mia_auc"]}[rule]
    return lambda value: abs(value - target)


OPTIONAL_COLUMNS = {"compute s", "compute × retrain"}  # recorded for the classic rows only


def family_columns(records: list[dict]) -> list[tuple]:
    """Every column, less the optional ones no record of this family has."""
    return [column for column in COLUMNS
            if column[0] not in OPTIONAL_COLUMNS or any(column[1](r) is not None for r in records)]


def best_methods(records: list[dict]) -> dict[str, set[str]]:
    """Per column header, the method(s) with the best value among the unlearning methods of one family."""
    methods = [r for r in records if not is_reference(r)]
    best = {}
    for header, value, rule, _ in COLUMNS:
        values = {r["method"]: value(r) for r in methods}
        values = {m: v for m, v in values.items() if v is not None and not math.isnan(v)}
        if not values:
            best[header] = set()
            continue
        score = {"max": lambda v: -v, "min": lambda v: v}.get(rule) or _distance_rule(rule, records)
        top = min(score(v) for v in values.values())
        best[header] = {m for m, v in values.items() if math.isclose(score(v), top, rel_tol=1e-9, abs_tol=1e-12)}
    return best


def _cell(value, spec: str, bold: bool) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    text = format(value, spec)
    return f"**{text}**" if bold else text


def family_table(records: list[dict]) -> list[str]:
    best, columns = best_methods(records), family_columns(records)
    lines = ["| method | " + " | ".join(column[0] for column in columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for record in records:
        name = record["method"]
        cells = [_cell(value(record), spec, name in best[header]) for header, value, _, spec in columns]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def markdown_report(records: list[dict], requests: int = 1) -> str:
    grouped = families(records)
    lines = []
    for family, members in grouped.items():
        if len(grouped) > 1:
            lines += [("LLM recommender" if family == "llm" else f"Classic recommender: {family} (judged against "
                       f"{family}/retrain)"), ""]
        lines += family_table(members) + ([""] if len(grouped) > 1 else [])
    floor = grouped["llm"][0]["forgetting"].get("floor_js_divergence") if "llm" in grouped else None
    notes = [
        "",
        "Bold: best among the unlearning methods (forget AUC and MIA AUC: nearest the retrain's; closure: nearest 1).",
        *([f"Noise floor: JSD between two retrains with different seeds = {floor:.3g}."] if floor is not None else []),
        *([f"Noise floor of {family}: {members[0]['forgetting']['floor_js_divergence']:.3g}." for family, members in
           grouped.items() if family != "llm" and members[0]["forgetting"].get("floor_js_divergence") is not None]),
        "Forgetting columns are on the forget set, against `retrain` (trained from scratch without the forgotten "
        "users); closure = (forget AUC of original − method) / (original − retrain).",
        *(["Wall s: the whole command (reading data, saving the model included); compute s: the training or "
           "unlearning computation alone, the cost that grows with the data."]
          if any(r.get("compute_seconds") is not None for r in records) else []),
    ]
    if requests > 1:
        notes.append(f"Methods ran as {requests} successive deletion requests, each on the previous output; wall "
                     "time is their sum. `retrain` is one retrain without all of them.")
        notes += ["", "After each request (forget AUC on every user erased so far):", "",
                  "| method | request | users erased | test AUC | forget AUC so far | wall s |", "|---|---|---|---|---|---|"]
        for record in records:
            erased = 0
            for step in record.get("requests") or []:
                erased += step["counts"]["forget_users"]
                notes.append(f"| {record['method']} | {step['request']} | {erased} | {step['test_auc']:.4f} | "
                             f"{step['forgotten_so_far_auc']:.4f} | {step['wall_seconds']:.0f} |")
    return "\n".join(lines + notes) + "\n"


def plot_report(records: list[dict], path: Path) -> None:
    """Forgetting (JSD to the retrain, left is better) against utility (test AUC, up is better); area ∝ wall time.

    One panel per model family, each against its own retrain.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grouped = families(records)
    fig, axes = plt.subplots(1, len(grouped), figsize=(9.5 * len(grouped), 5), dpi=120, squeeze=False)
    for ax, (family, members) in zip(axes[0], grouped.items()):
        plot_family(ax, members, "LLM" if family == "llm" else family)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_family(ax, records: list[dict], title: str) -> None:
    """Points named in a legend (methods crowd near the retrain, where labels would overlap); the x axis is
    linear up to the noise floor and logarithmic beyond, so a collapsed method does not squash the rest."""
    largest = max(r["wall_seconds"] for r in records) or 1.0
    markers = iter("oDv^<>pP*hX" * 3)
    for record in records:
        reference = is_reference(record)
        wall = record["wall_seconds"]
        label = f"{base_name(record)} ({wall:.1f}s)" if wall < 10 else f"{base_name(record)} ({wall:.0f}s)"
        ax.scatter([record["forgetting"]["js_divergence"]], [record["test"]["auc"]],
                   s=40 + 600 * wall / largest, alpha=0.6, marker="s" if reference else next(markers),
                   color="grey" if reference else None, edgecolors="black", linewidths=0.5, label=label)
    floor = records[0]["forgetting"].get("floor_js_divergence")
    if floor:
        ax.axvline(floor, linestyle="--", color="grey", linewidth=1, label="retrain vs retrain (noise floor)")
        ax.set_xscale("symlog", linthresh=floor)
    ax.set_xlim(left=0)
    retrain = next(r for r in records if base_name(r) == "retrain")
    ax.axhline(retrain["test"]["auc"], linestyle=":", color="grey", linewidth=1, label="retrain test AUC")
    ax.set_xlabel("JSD to the retrained model on the forget set (lower = forgot more like retraining)")
    ax.set_ylabel("test AUC (higher = more useful)")
    ax.set_title(f"{title}: forgetting vs utility (marker area ∝ wall time)")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=0.5, frameon=False)
