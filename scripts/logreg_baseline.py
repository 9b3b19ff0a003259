"""A non-LLM yardstick on the same split: logistic regression on hand-built features.

Features: mean history stars, share of liked history items, and the item's training like-rate
(smoothed towards the global rate with 5 pseudo-samples). The LLM recommender should beat it.

    python scripts/logreg_baseline.py recipes/train/ml100k.yaml data.path=../shared/data/ml-100k
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression

from llmrec.config import load_recipe
from llmrec.data.samples import build_samples, load_interactions, time_split
from llmrec.eval.metrics import markdown_table, utility_metrics


def features(samples, like_rate, counts, prior: float, threshold: float, smoothing: float = 5.0) -> np.ndarray:
    mean_stars = samples.history_ratings.map(np.mean)
    liked_share = samples.history_ratings.map(lambda r: np.mean(np.asarray(r) > threshold))
    item_rate = samples.item_id.map(
        lambda i: (like_rate.get(i, prior) * counts.get(i, 0) + prior * smoothing) / (counts.get(i, 0) + smoothing)
    )
    return np.c_[mean_stars, liked_share, item_rate]


def main(argv: list[str]) -> dict:
    recipe = load_recipe(argv[0] if argv and "=" not in argv[0] else None, [a for a in argv if "=" in a])
    interactions, _ = load_interactions(recipe.data)
    splits = time_split(build_samples(interactions, recipe.data), recipe.data.split)
    train = splits["train"]
    like_rate, counts = train.groupby("item_id").label.mean(), train.groupby("item_id").label.size()
    prior, threshold = train.label.mean(), recipe.data.like_threshold
    model = LogisticRegression().fit(features(train, like_rate, counts, prior, threshold), train.label)
    results = {
        name: utility_metrics(df.label, model.predict_proba(features(df, like_rate, counts, prior, threshold))[:, 1])
        for name, df in splits.items()
        if name != "train"
    }
    print(markdown_table(results))
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
