"""Retrain: train from scratch on the retained data, with the recipe the original was trained with.

The gold standard every other method is measured against, and the most expensive: its cost is a
whole training, whatever the size of the request. The original's recipe is the one its model card
(`llmrec_model.json`, written in the same atomic step as the weights) records under `recipe`, so a later run
in the same folder, killed or refused, cannot change it; `retrain.recipe` overrides it. A model trained before
cards recorded their recipe falls back, with a printed note, to the `config.yaml` beside `model/`.
Training runs on the training split restricted to the retained users, so the result is exactly the
retained-data model. A classic model (MF / LightGCN) is retrained the same way, in memory, with its card's
recipe (`retrain_classic`): the optimiser, seed and epochs it was trained with.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from llmrec.classic.train import als_matrices, fit_als, fit_gradient, new_model
from llmrec.config import option
from llmrec.io import write_text
from llmrec.llm.train import train, training_recipe
from llmrec.store import parameter_counts
from llmrec.unlearn.registry import CLASSIC, register


@dataclass
class RetrainConfig:
    recipe: str | None = option(
        None, "training recipe of the original; default: the recipe its llmrec_model.json records (models trained "
        "before cards recorded it: config.yaml beside the model dir)")
    keep_checkpoints: bool = option(False, "keep the resumable training checkpoints in the output")


@register("retrain", families=("llm",), config=RetrainConfig, rebuilds_model=True)
def unlearn_retrain(model_dir: Path, splits, config: RetrainConfig, output: Path) -> dict:
    recipe = training_recipe(model_dir, config.recipe)
    users = output / "retained-users.txt"
    write_text(users, "\n".join(sorted(set(splits["retained"]["user_id"]))) + "\n")
    run = output / "training"
    summary = train(replace(recipe, output_dir=str(run), train=replace(
        recipe.train, train_on="train", only_users=str(users), shards=1, resume=False)))
    for item in (run / "model").iterdir():  # the output directory is the recommender itself
        item.rename(output / item.name)
    (run / "model").rmdir()
    if not config.keep_checkpoints:
        shutil.rmtree(run / "checkpoints", ignore_errors=True)
    return {"timings": {"train_seconds": summary["train_seconds_this_run"]},
            "steps": {"epochs": len(summary["epochs"])},
            "trainable_parameters": summary["trainable_parameters"], "total_parameters": summary["parameters"]}


@register("retrain", families=CLASSIC)
def retrain_classic(work, config: None) -> dict:
    """The original's own recipe (its card's, nothing to set) from scratch on the retained triples, in memory."""
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
