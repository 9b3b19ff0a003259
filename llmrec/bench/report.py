"""The benchmark as a person reads it: a Markdown table with the best method per column in bold, and one plot.

A benchmark over several unlearning seeds and originals (`seeds`, `original_seeds`) has several runs of each
method: its row then shows, per column, the median [min–max] over those runs (`summarise`, `aggregate`), with the
run count, and a table of every run follows. With one run per method the table is the plain one.
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path

# what methods are judged against (classic rows carry their backbone: "mf/original", "mf/retrain", ...)
REFERENCE_ROWS = ("original", "retrain", "retrain (seed 2)", "original (sisa)", "original (apa)",
                  "original (receraser)")
RUN_KEYS = ("original_seed", "seed")  # which run a record is: not a measurement, never aggregated


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


def runs_by_method(records: list[dict]) -> dict[str, list[dict]]:
    """Every run of each method (one per original seed × unlearning seed), methods in first-seen order."""
    grouped: dict[str, list[dict]] = {}
    for record in records:
        grouped.setdefault(record["method"], []).append(record)
    return grouped


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def summarise(values: list) -> dict:
    """median, min and max of the values that were measured, how many were (`runs`) and how many were not
    (`missing`: None or NaN, e.g. a peak memory no probe could read). median/min/max are None when none was.
    The median of an even count is the mean of the middle two (`statistics.median`)."""
    present = [value for value in values if not _missing(value)]
    if not present:
        return {"median": None, "min": None, "max": None, "runs": 0, "missing": len(values)}
    return {"median": statistics.median(present), "min": min(present), "max": max(present), "runs": len(present),
            "missing": len(values) - len(present)}


def numeric_leaves(record: dict, prefix: str = "") -> dict[str, float]:
    """{'test.auc': 0.8, 'forgetting.js_divergence': 0.004, 'wall_seconds': 12.0, ...}: every number of a record,
    nested dicts by dotted path; lists (the per-request history), text, booleans and the run's seeds left out."""
    leaves = {}
    for key, value in record.items():
        if not prefix and key in RUN_KEYS:
            continue
        if isinstance(value, dict):
            leaves.update(numeric_leaves(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            leaves[f"{prefix}{key}"] = value
        elif value is None:
            leaves[f"{prefix}{key}"] = None  # counted as missing where other runs measured it
    return leaves


def aggregate(records: list[dict]) -> list[dict]:
    """One entry per method (per family, in table order): its run count, the seeds it ran with, and
    `summarise` of every numeric field of its records by dotted path (`numeric_leaves`). A field that is None
    in every run has median None and `missing` = runs."""
    entries = []
    for method, runs in runs_by_method(records).items():
        leaves = [numeric_leaves(run) for run in runs]
        paths = list(dict.fromkeys(path for leaf in leaves for path in leaf))
        entries.append({
            "method": method, "family": runs[0].get("family", "llm"), "runs": len(runs),
            "original_seeds": sorted({r["original_seed"] for r in runs if r.get("original_seed") is not None}),
            "seeds": sorted({r["seed"] for r in runs if r.get("seed") is not None}),
            "metrics": {path: summarise([leaf.get(path) for leaf in leaves]) for path in paths},
        })
    return entries


def audit_auc(record: dict) -> float | None:
    """The row's membership-inference audit AUC at its headline level (llmrec.bench.audit), None when not audited."""
    audit = record.get("audit")
    return audit["models"]["unlearned"][audit["level"]]["auc"] if audit else None


# (header, value of a record, how "best" is chosen among the methods, number format)
COLUMNS = [
    ("test AUC", lambda r: r["test"]["auc"], "max", ".4f"),
    ("forget AUC", lambda r: r["forget"]["auc"], "nearest_reference_forget_auc", ".4f"),
    ("closure (AUC)", lambda r: r["forgetting"]["forget_gap_closure_auc"], "nearest_one", ".2f"),
    ("JSD to retrain", lambda r: r["forgetting"]["js_divergence"], "min", ".3g"),
    ("L2 to retrain", lambda r: r["forgetting"]["l2"], "min", ".3g"),
    ("MIA AUC", lambda r: r["forgetting"]["mia_auc"], "nearest_reference_mia", ".3f"),
    ("audit AUC", audit_auc, "nearest_reference_audit", ".3f"),
    ("wall s", lambda r: r["wall_seconds"], "min", ".1f"),
    ("× retrain", lambda r: r["wall_vs_retrain"], "min", ".3f"),
    ("compute s", lambda r: r.get("compute_seconds"), "min", ".3g"),
    ("compute × retrain", lambda r: r.get("compute_vs_retrain"), "min", ".3g"),
    ("trainable %", lambda r: r["trainable_percent"], "min", ".3g"),
    ("peak MB", lambda r: r["peak_memory_mb"], "min", ".0f"),
]


def column_summaries(runs: list[dict], columns: list[tuple] = COLUMNS) -> dict[str, dict]:
    """{header: summarise(that column over `runs`)} for one method's runs."""
    return {header: summarise([value(r) for r in runs]) for header, value, _, _ in columns}


def _distance_rule(rule: str, references: dict[str, dict]):
    target = {"nearest_one": 1.0,
              "nearest_reference_forget_auc": references["forget AUC"]["median"],
              "nearest_reference_mia": references["MIA AUC"]["median"],
              "nearest_reference_audit": references["audit AUC"]["median"]}[rule]
    return lambda value: abs(value - target)


OPTIONAL_COLUMNS = {"compute s", "compute × retrain", "audit AUC"}  # classic rows only; audited runs only


def family_columns(records: list[dict]) -> list[tuple]:
    """Every column, less the optional ones no record of this family has (the audit's: shown, '–' where its AUC is
    undefined, whenever a record was audited)."""
    return [column for column in COLUMNS
            if column[0] not in OPTIONAL_COLUMNS or any(column[1](r) is not None for r in records)
            or (column[0] == "audit AUC" and any(r.get("audit") for r in records))]


def best_methods(records: list[dict]) -> dict[str, set[str]]:
    """Per column header, the method(s) with the best value among the unlearning methods of one family: the best
    median over each method's runs (its one value when it ran once), judged against the retrain's median."""
    summaries = {method: column_summaries(runs) for method, runs in runs_by_method(records).items()}
    retrain = next(summary for method, summary in summaries.items() if method.split("/", 1)[-1] == "retrain")
    methods = [method for method in summaries if method.split("/", 1)[-1] not in REFERENCE_ROWS]
    best = {}
    for header, _, rule, _ in COLUMNS:
        values = {m: summaries[m][header]["median"] for m in methods}
        values = {m: v for m, v in values.items() if v is not None}
        if not values:
            best[header] = set()
            continue
        if rule.startswith("nearest_reference") and retrain[header]["median"] is None:
            best[header] = set()  # nothing to be nearest to
            continue
        score = {"max": lambda v: -v, "min": lambda v: v}.get(rule) or _distance_rule(rule, retrain)
        top = min(score(v) for v in values.values())
        best[header] = {m for m, v in values.items() if math.isclose(score(v), top, rel_tol=1e-9, abs_tol=1e-12)}
    return best


def spread_cell(summary: dict, spec: str, bold: bool = False) -> str:
    """'0.7800' for one run (or runs that agree to the shown digits); '0.7800 [0.7712–0.7905]' (median [min–max])
    for several; ' (4 of 5 runs)' appended when some runs did not measure it; '–' when none did."""
    if summary["median"] is None:
        return "–"
    text = format(summary["median"], spec)
    text = f"**{text}**" if bold else text
    low, high = format(summary["min"], spec), format(summary["max"], spec)
    if low != high:
        text += f" [{low}–{high}]"
    if summary["missing"]:
        text += f" ({summary['runs']} of {summary['runs'] + summary['missing']} runs)"
    return text


def several_runs(records: list[dict]) -> bool:
    return any(len(runs) > 1 for runs in runs_by_method(records).values())


def family_table(records: list[dict]) -> list[str]:
    """One row per method; with several runs of a method, median [min–max] cells and a `runs` column."""
    best, columns, grouped = best_methods(records), family_columns(records), runs_by_method(records)
    counted = several_runs(records)
    headers = ["method", *(["runs"] if counted else []), *(column[0] for column in columns)]
    lines = ["| " + " | ".join(headers) + " |", "|---" * len(headers) + "|"]
    for name, runs in grouped.items():
        summaries = column_summaries(runs, columns)
        cells = [spread_cell(summaries[header], spec, name in best[header]) for header, _, _, spec in columns]
        lines.append("| " + " | ".join([name, *([str(len(runs))] if counted else []), *cells]) + " |")
    return lines


def _seed_text(value) -> str:
    return "–" if value is None else str(value)


def runs_table(records: list[dict]) -> list[str]:
    """Every run of one family, one row each, with its original seed and unlearning seed ('–': the row does not
    depend on it, e.g. a retrain)."""
    columns = family_columns(records)
    lines = ["| method | original seed | seed | " + " | ".join(column[0] for column in columns) + " |",
             "|---" * (len(columns) + 3) + "|"]
    for record in records:
        cells = [spread_cell(summarise([value(record)]), spec) for _, value, _, spec in columns]
        lines.append(f"| {record['method']} | {_seed_text(record.get('original_seed'))} | "
                     f"{_seed_text(record.get('seed'))} | " + " | ".join(cells) + " |")
    return lines


def floor_text(members: list[dict]) -> str | None:
    """The noise floor (JSD between two retrains, on the whole forget set) of one family: one value per original,
    median [min–max]. Read from the second-seed retrain's own row where there is one (a method graded on its
    report half carries the floor on that half)."""
    floors = [r for r in members if base_name(r) == "retrain (seed 2)"]
    per_original = ({r.get("original_seed"): r["forgetting"].get("js_divergence") for r in floors} if floors else
                    {r.get("original_seed"): r["forgetting"].get("floor_js_divergence") for r in members})
    summary = summarise(list(per_original.values()))
    return None if summary["median"] is None else spread_cell(summary, ".3g")


def audit_notes(records: list[dict]) -> list[str]:
    """How the audit was done and each row's verdicts (counted over its runs), or nothing when none was audited."""
    audited = [r for r in records if r.get("audit")]
    if not audited:
        return []
    first = audited[0]["audit"]
    counts: dict[str, dict[str, int]] = {}
    for record in audited:
        verdict = record["audit"]["verdict"]
        counts.setdefault(record["method"], {}).setdefault(verdict, 0)
        counts[record["method"]][verdict] += 1
    graded = [r for r in records if r.get("graded_on")]
    lines = [f"Audit AUC: membership inference, forget users' samples vs holdout users' ({first['attack']}, "
             f"{first['level']} level, {first['aggregation']}); calibration: {first['calibration']}. Verdict "
             f"(MUSE's PrivLeak): forgotten when within ±{first['tolerance']} of the retrain's AUC; inconclusive "
             f"when the original's AUC is below 0.5 + {first['min_power']}; the retrain should come out near 0.5.",
             "Verdicts: " + "; ".join(f"{method}: " + ", ".join(f"{verdict} ×{n}" if n > 1 else verdict
                                                                  for verdict, n in verdicts.items())
                                      for method, verdicts in counts.items()) + "."]
    skipped = first["models"]["unlearned"][first["level"]].get("auc_skipped")
    if skipped:
        lines.append(f"Audit AUC undefined at {first['level']} level ({skipped}): raise data.holdout or "
                     "forget.fraction, or set audit.level=sample.")
    if graded:
        lines.append("A method stopped by the stopping rule is graded on the report half of the forget users (its "
                     "forget AUC, closure, JSD, L2 and audit, and the original's and retrain's values it is compared "
                     "with): the rule looked at the other half while unlearning.")
    return lines


def run_label(record: dict, several: bool) -> str:
    if not several:
        return record["method"]
    return f"{record['method']} (original seed {_seed_text(record.get('original_seed'))}, seed " \
           f"{_seed_text(record.get('seed'))})"


def markdown_report(records: list[dict], requests: int = 1) -> str:
    grouped = families(records)
    lines = []
    for family, members in grouped.items():
        if len(grouped) > 1:
            lines += [("LLM recommender" if family == "llm" else f"Classic recommender: {family} (judged against "
                       f"{family}/retrain)"), ""]
        lines += family_table(members) + ([""] if len(grouped) > 1 else [])
    floor = floor_text(grouped["llm"]) if "llm" in grouped else None
    several = several_runs(records)
    notes = [
        "",
        "Bold: best among the unlearning methods (forget AUC and MIA AUC: nearest the retrain's; closure: nearest 1).",
        *(["Several runs per method (unlearning seeds × originals): each cell is the median [min–max] over its runs "
           "(bold: the best median); `runs` counts them; every run is listed below."] if several else []),
        *([f"Noise floor: JSD between two retrains with different seeds = {floor}."] if floor is not None else []),
        *([f"Noise floor of {family}: {floor_text(members)}." for family, members in
           grouped.items() if family != "llm" and floor_text(members) is not None]),
        "Forgetting columns are on the forget set, against `retrain` (trained from scratch without the forgotten "
        "users); closure = (forget AUC of original − method) / (original − retrain).",
        *audit_notes(records),
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
                notes.append(f"| {run_label(record, several)} | {step['request']} | {erased} | {step['test_auc']:.4f} "
                             f"| {step['forgotten_so_far_auc']:.4f} | {step['wall_seconds']:.0f} |")
    if several:
        notes += ["", "Every run (original seed: train.seed of the original and its retrains; seed: the unlearning "
                  "seed, '–' where the row does not depend on it):", ""]
        for family, members in grouped.items():
            if several_runs(members):
                notes += ([family, ""] if len(grouped) > 1 else []) + runs_table(members) + [""]
    return "\n".join(lines + notes).rstrip("\n") + "\n"


def plot_report(records: list[dict], path: Path) -> None:
    """Forgetting (JSD to the retrain, left is better) against utility (test AUC, up is better); area ∝ wall time.

    One panel per model family, each against its own retrain. A method run several times shows a small dot per
    run and its median as the large marker, with whiskers from the lowest to the highest run.
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


def _value(summary: dict, key: str = "median") -> float:
    return math.nan if summary[key] is None else summary[key]


def plot_family(ax, records: list[dict], title: str) -> None:
    """Points named in a legend (methods crowd near the retrain, where labels would overlap); the x axis is
    linear up to the noise floor and logarithmic beyond, so a collapsed method does not squash the rest."""
    columns = [c for c in COLUMNS if c[0] in ("test AUC", "JSD to retrain", "wall s")]
    summaries = {method: column_summaries(runs, columns) for method, runs in runs_by_method(records).items()}
    largest = max(_value(s["wall s"]) for s in summaries.values()) or 1.0
    markers = iter("oDv^<>pP*hX" * 3)
    for method, runs in runs_by_method(records).items():
        reference = is_reference(runs[0])
        summary = summaries[method]
        wall, jsd, auc = _value(summary["wall s"]), summary["JSD to retrain"], summary["test AUC"]
        name = base_name(runs[0]) + (f", {len(runs)} runs" if len(runs) > 1 else "")
        label = f"{name} ({wall:.1f}s)" if wall < 10 else f"{name} ({wall:.0f}s)"
        point = ax.scatter([_value(jsd)], [_value(auc)], s=40 + 600 * wall / largest,
                           alpha=0.6, marker="s" if reference else next(markers),
                           color="grey" if reference else None, edgecolors="black", linewidths=0.5, label=label)
        if len(runs) > 1:
            color = point.get_facecolor()[0]
            ax.scatter([r["forgetting"]["js_divergence"] for r in runs], [r["test"]["auc"] for r in runs], s=12,
                       color=color, alpha=0.9, edgecolors="none")
            ax.errorbar([_value(jsd)], [_value(auc)], xerr=[[_value(jsd) - _value(jsd, "min")],
                                                            [_value(jsd, "max") - _value(jsd)]],
                        yerr=[[_value(auc) - _value(auc, "min")], [_value(auc, "max") - _value(auc)]],
                        color=color, alpha=0.8, linewidth=1, capsize=2, fmt="none")
    floor = summarise([r["forgetting"].get("floor_js_divergence") for r in records])["median"]
    if floor:
        ax.axvline(floor, linestyle="--", color="grey", linewidth=1, label="retrain vs retrain (noise floor)")
        ax.set_xscale("symlog", linthresh=floor)
    ax.set_xlim(left=0)
    retrain = next(s for method, s in summaries.items() if method.split("/", 1)[-1] == "retrain")
    ax.axhline(_value(retrain["test AUC"]), linestyle=":", color="grey", linewidth=1, label="retrain test AUC")
    ax.set_xlabel("JSD to the retrained model on the forget set (lower = forgot more like retraining)")
    ax.set_ylabel("test AUC (higher = more useful)")
    several = "\nsmall dots: each run; large marker: median of the runs; whiskers: min–max" \
        if several_runs(records) else ""
    ax.set_title(f"{title}: forgetting vs utility (marker area ∝ wall time){several}")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), markerscale=0.5, frameon=False)
