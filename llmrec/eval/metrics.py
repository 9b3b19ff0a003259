"""Utility metrics every method is judged by, from scikit-learn so nobody has to trust our maths."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, log_loss, roc_auc_score


def utility_metrics(labels, probs, threshold: float = 0.5) -> dict[str, float]:
    """AUC, accuracy at `threshold` and log-loss of P(yes) against 0/1 labels."""
    labels = np.asarray(labels, dtype=int)
    probs = np.clip(np.asarray(probs, dtype=float), 1e-7, 1 - 1e-7)
    auc = roc_auc_score(labels, probs) if len(np.unique(labels)) == 2 else float("nan")
    return {
        "auc": float(auc),
        "accuracy": float(accuracy_score(labels, probs > threshold)),
        "log_loss": float(log_loss(labels, probs, labels=[0, 1])),
        "samples": int(len(labels)),
        "positive_rate": float(labels.mean()) if len(labels) else float("nan"),
    }


def markdown_table(results: dict[str, dict[str, float]], columns=("auc", "accuracy", "log_loss", "samples")) -> str:
    """One row per split, as a Markdown table that also reads well in a terminal."""
    lines = ["| split | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for split, metrics in results.items():
        cells = [f"{metrics[c]:.4f}" if isinstance(metrics[c], float) else str(metrics[c]) for c in columns]
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
