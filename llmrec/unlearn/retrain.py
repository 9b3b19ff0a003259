"""Retrain: train from scratch on the retained data, with the recipe the original was trained with.

The gold standard every other method is measured against, and the most expensive: its cost is a
whole training, whatever the size of the request. The original's recipe is the `config.yaml` that
`llmrec train` wrote beside `model/` (or `retrain.recipe`). Training runs on the training split
restricted to the retained users, so the result is exactly the retained-data model.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path

from llmrec.config import Recipe, load_recipe, option
from llmrec.errors import LlmrecError
from llmrec.io import write_text
from llmrec.unlearn.registry import register


@dataclass
class RetrainConfig:
    recipe: str | None = option(None, "training recipe of the original; default: config.yaml beside the model dir")
    keep_checkpoints: bool = option(False, "keep the resumable training checkpoints in the output")


@register("retrain", rebuilds_model=True)
def unlearn_retrain(model_dir: Path, splits, config: RetrainConfig, output: Path) -> dict:
    from llmrec.llm.train import train

    recipe_path = Path(config.recipe) if config.recipe else Path(model_dir).parent / "config.yaml"
    if not recipe_path.is_file():
        raise LlmrecError(f"{recipe_path}: no training recipe to retrain with; set retrain.recipe to the recipe "
                          "the original was trained with")
    recipe = load_recipe(str(recipe_path), [], cls=Recipe)
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
