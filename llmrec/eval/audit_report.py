"""audit.md and audit.png: the membership-inference audit (llmrec.eval.audit) readable at a glance."""

from __future__ import annotations

import os
from pathlib import Path

from llmrec.eval.audit import ModelAudit
from llmrec.io import write_text


def _number(value) -> str:
    """A table cell: 4 decimals, or an em dash for an undefined value."""
    return "—" if value is None else f"{value:.4f}"


def audit_markdown(record: dict) -> str:
    """The audit as Markdown: one row per model (sample and user AUC and TPR at 1% FPR, with the counts),
    the verdict on the unlearned model's row, then the attack, the aggregation and the rule in words.
    `record` is what `llmrec.eval.audit.audit_record` returns."""
    verdicts = record["verdicts"]
    lines = [
        "# Membership-inference audit: forget users vs holdout users",
        "",
        "| model | sample AUC | sample TPR@1%FPR | user AUC | user TPR@1%FPR | forget / holdout users | verdict |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, levels in record["models"].items():
        sample, user = levels["sample"], levels["user"]
        verdict = verdicts[record["level"]]["verdict"] if name == "unlearned" else ""
        lines.append(f"| {name} | {_number(sample['auc'])} | {_number(sample['tpr_at_1pct_fpr'])} | "
                     f"{_number(user['auc'])} | {_number(user['tpr_at_1pct_fpr'])} | "
                     f"{user['members']} / {user['nonmembers']} | {verdict} |")
    lines += ["", f"**Verdict ({record['level']} level): {record['verdict']}**", ""]
    for level, found in verdicts.items():
        privleak = "—" if found["privleak"] is None else f"{100 * found['privleak']:+.1f}%"
        said = found["verdict"] + (f" ({found['direction']})" if found["direction"] else "")
        lines.append(f"- {level} level: {said}; PrivLeak {privleak} against the {found['reference']} "
                     f"(AUC {_number(found['reference_auc'])}); attack power on the original "
                     f"(AUC - 0.5) {_number(found['power'])}; {found['reason']}")
    skipped = [f"- {name}, {level}: {result[key]}" for name, levels in record["models"].items()
               for level, result in levels.items() for key in ("auc_skipped", "tpr_skipped") if result[key]]
    noise = [f"{name} {level} {_number(result['auc_null_sd'])}" for name, levels in record["models"].items()
             for level, result in levels.items() if result["auc_null_sd"] is not None]
    shared = {level: {_number(levels[level]["auc_null_sd"]) for levels in record["models"].values()}
              for level in ("sample", "user")}
    if all(len(values) == 1 for values in shared.values()):  # same counts for every model: say each once
        noise = [f"{level} {values.pop()}" for level, values in shared.items() if "—" not in values]
    lines += ["", f"Attack: {record['attack_description']}.", "",
              f"Members: {record['members']}; non-members: {record['nonmembers']}; {record['aggregation']}.", "",
              f"Rule: {record['rule']}", ""]
    if noise:
        lines += ["Standard deviation of the AUC if both groups were alike (noise against the ±"
                  f"{record['tolerance']} band): " + ", ".join(noise) + ".", ""]
    if skipped:
        lines += ["Not reported:", *skipped, ""]
    return "\n".join(lines)


def score_bins(scores, count: int = 30):
    """`count` histogram bin edges over `scores`; when their range is too small for `count` distinct float edges
    (a model calibrated by itself scores every user ~0, a few ulps apart, and numpy raises 'Too many bins for data
    range'), one bin of width 1 around them instead. 10 bins for no scores."""
    import numpy as np

    if not len(scores):
        return 10
    try:
        return np.histogram_bin_edges(scores, bins=count)
    except ValueError:
        middle = float(np.mean(scores))
        return np.array([middle - 0.5, middle + 0.5])


def plot_audit(models: dict[str, ModelAudit], path: Path, title: str | None = None) -> None:
    """Histograms of the per-user attack score, forget vs holdout users, one panel per model (original,
    unlearned, retrain...), under `title`; written atomically as PNG: to a temporary name, then `os.replace`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    path = Path(path)
    fig, axes = plt.subplots(1, len(models), figsize=(4.5 * len(models), 3.6), dpi=120, squeeze=False)
    for ax, (name, audit) in zip(axes[0], models.items()):
        both = np.concatenate([audit.forget_user_scores, audit.holdout_user_scores])
        bins = score_bins(both)
        for scores, label, color in ((audit.holdout_user_scores, "holdout users", "tab:blue"),
                                     (audit.forget_user_scores, "forget users", "tab:red")):
            ax.hist(scores, bins=bins, density=True, alpha=0.5, color=color, label=f"{label} ({len(scores)})")
        auc = audit.user.auc
        ax.set_title(f"{name}: user AUC {'—' if auc is None else f'{auc:.3f}'}")
        ax.set_xlabel("per-user attack score (higher = looks trained on)")
        ax.set_ylabel("density")
        ax.legend(fontsize=7, frameon=False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fig.savefig(tmp, format="png")
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def write_audit_report(out_dir: Path, record: dict, models: dict[str, ModelAudit]) -> tuple[Path, Path]:
    """Write `out_dir/audit.md` and `out_dir/audit.png`, each atomically; returns their paths."""
    out_dir = Path(out_dir)
    markdown, picture = out_dir / "audit.md", out_dir / "audit.png"
    plot_audit(models, picture, f"attack: {record['attack']}; verdict ({record['level']} level): {record['verdict']}")
    write_text(markdown, audit_markdown(record))
    return markdown, picture
