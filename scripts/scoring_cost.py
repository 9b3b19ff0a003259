"""Scoring cost: seconds to score 1,000 prompts (answer-position P(yes)) with each model, an APA ensemble once per
aggregation (adaptive, merge, mean). Run it alone: it times on whatever cores are free.

python scripts/scoring_cost.py RECIPE MODEL_DIR... [--set key=value ...] [--prompts 1000] [--repeats 3]

RECIPE (with --set overrides) gives the data; its test split's first --prompts samples are scored. Prints a
Markdown table: model, aggregation, seconds per 1,000 prompts (median of --repeats, after one warm-up batch),
base forwards per batch, and the ratio to the first model.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace
from pathlib import Path

import torch

from llmrec.config import Recipe, load_recipe
from llmrec.data.samples import prepare_splits
from llmrec.ensemble.apa import ApaEnsemble
from llmrec.llm.accel import make_accelerator
from llmrec.recommender import load_recommender
from llmrec.store import APA_FILE


def seconds(recommender, splits, batch_size: int, accelerator, repeats: int) -> float:
    recommender.score(["warmup"], {"warmup": splits["timed"].select(range(batch_size))}, batch_size, accelerator)
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        recommender.score(["timed"], splits, batch_size, accelerator)
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("recipe")
    parser.add_argument("models", nargs="+")
    parser.add_argument("--set", nargs="*", default=[], dest="overrides")
    parser.add_argument("--prompts", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    recipe = load_recipe(args.recipe, args.overrides, cls=Recipe)
    test = prepare_splits(recipe.data, recipe.forget)["test"]
    splits = {"timed": test.select(range(min(args.prompts, len(test))))}
    accelerator = make_accelerator(recipe.train.mixed_precision)
    rows, first = [], None
    for model_dir in map(Path, args.models):
        recommender = load_recommender(model_dir)
        aggregations = ["adaptive", "merge", "mean"] if (model_dir / APA_FILE).is_file() else [None]
        for aggregation in aggregations:
            if aggregation:
                recommender = replace(recommender, module=ApaEnsemble.load(model_dir, aggregation))
                forwards = {"adaptive": 2, "merge": 1, "mean": len(recommender.module.names)}[aggregation]
            else:
                forwards = len(getattr(recommender.module, "shards", [None]))
            with torch.no_grad():
                per_1000 = seconds(recommender, splits, recipe.eval.batch_size, accelerator, args.repeats) \
                    * 1000 / len(splits["timed"])
            first = first or per_1000
            rows.append(f"| {model_dir} | {aggregation or '-'} | {per_1000:.2f} | {forwards} | {per_1000 / first:.2f} |")
    print(f"threads: {torch.get_num_threads()}, prompts: {len(splits['timed'])}, batch {recipe.eval.batch_size}")
    print("| model | aggregation | seconds / 1,000 prompts | base forwards / batch | × first |")
    print("|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
