"""Unlearn-ALS (Xu et al. 2023, "Netflix and Forget"): forget from an ALS-trained MF by warm-started ALS.

The removed user–item pairs lose their confidence — they weigh what a never-rated pair weighs, zero with the
default `unobserved_confidence` — and a few ALS sweeps continue from the trained factors. Each half-sweep
solves its side exactly for the retained data, so the sweeps descend the very objective a retrain minimises;
starting next to its solution, they converge in a few sweeps. With `reference` set, the distance of the
predictions to that retrained model is recorded after every sweep.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


from llmrec.classic.mf import als_objective, als_sweep
from llmrec.classic.store import load_classic, predict
from llmrec.classic.train import als_matrices
from llmrec.config import option
from llmrec.errors import LlmrecError
from llmrec.progress import progress
from llmrec.unlearn.registry import register


@dataclass
class UnlearnAlsConfig:
    sweeps: int = option(3, "warm-started ALS sweeps on the retained ratings", ge=1)
    reference: str | None = option(None, "an ALS model retrained without the forgotten users: distance per sweep")


def prediction_gap(model, reference, triples) -> dict:
    """Largest and mean |ΔP(yes)| between two models on the same triples."""
    gap = (predict(model, triples.users, triples.items) - predict(reference, triples.users, triples.items)).abs()
    return {"max": float(gap.max()), "mean": float(gap.mean())}


@register("unlearn_als", families=("mf",), config=UnlearnAlsConfig)
def unlearn_als(work, config: UnlearnAlsConfig) -> dict:
    training = work.training.train
    if training.optimizer != "als":
        raise LlmrecError("unlearn_als forgets from an ALS-trained MF (train the original with train.optimizer=als)")
    confidence, preference = als_matrices(work.retained, *work.sizes, training.als)
    reference = load_classic(Path(config.reference))[0] if config.reference else None
    model, history = work.model, []
    for sweep in progress(range(1, config.sweeps + 1), desc="unlearn-ALS"):
        als_sweep(model, confidence, preference, training.als.reg)
        record = {"sweep": sweep, "objective": als_objective(model, confidence, preference, training.als.reg)}
        if reference is not None:
            record["forget_gap"] = prediction_gap(model, reference, work.forget)
            record["valid_gap"] = prediction_gap(model, reference, work.valid)
        history.append(record)
    trainable = sum(table.numel() for table in (model.user.weight, model.item.weight, model.user_bias.weight,
                                                 model.item_bias.weight))  # the global bias stays fixed
    return {"model": model, "timings": {}, "steps": {"sweeps": config.sweeps, "history": history},
            "trainable_parameters": trainable}
