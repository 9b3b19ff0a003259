"""Retrain: the original's own training recipe, from scratch, on the retained triples — the exact answer."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmrec.classic.registry import register
from llmrec.classic.train import als_matrices, fit_als, fit_gradient, new_model
from llmrec.store import parameter_counts


@dataclass
class ClassicRetrainConfig:
    """Retraining takes every setting from the original's saved recipe; nothing to choose here."""


@register("retrain")
def retrain(work, config: ClassicRetrainConfig) -> dict:
    training = work.training.train
    torch.manual_seed(training.seed)
    model = new_model(work.training.model, work.index, work.retained, link=work.model.link)
    if training.optimizer == "als":
        confidence, preference = als_matrices(work.retained, *work.sizes, training.als)
        history = fit_als(model, confidence, preference, training.als, training.epochs, work.valid, desc="retrain")
    else:
        history = fit_gradient(model, work.retained, work.valid, training, desc="retrain")
    return {"model": model, "timings": {}, "steps": {"epochs": len(history)},
            "trainable_parameters": parameter_counts(model)[1]}
