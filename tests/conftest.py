"""Shared fixtures: offline hub, a private datasets cache, tiny synthetic data."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from llmrec.config import load_recipe  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
ML100K = REPO.parent / "shared" / "data" / "ml-100k"


SMALL_OVERRIDES = [
    "data.synthetic.num_users=60",
    "data.synthetic.num_items=50",
    "data.synthetic.ratings_per_user=20",
    "model.tiny.vocab_size=600",
    "model.tiny.hidden_size=32",
    "model.tiny.intermediate_size=64",
    "model.max_length=256",
    "train.batch_size=16",
    "eval.batch_size=32",
    "train.mixed_precision=no",
]


def small_recipe(tmp_path: Path, *overrides: str):
    """A recipe on a small synthetic log that trains in seconds."""
    return load_recipe(
        None, [f"output_dir={tmp_path / 'run'}", f"data.cache_dir={tmp_path / 'cache'}", *SMALL_OVERRIDES, *overrides]
    )


@pytest.fixture
def recipe_factory(tmp_path):
    return lambda *overrides: small_recipe(tmp_path, *overrides)


@pytest.fixture(scope="session")
def sisa_ensemble(tmp_path_factory):
    """A tiny 3-shard LLM SISA ensemble (`llmrec.ensemble.llm.train`, 6 steps a shard), trained once for the
    ensemble tests (tests/ensemble/test_llm.py) and SISA's (tests/unlearn/methods/test_sisa.py): its recipe and
    the splits its shards trained on, in shard order."""
    from llmrec.ensemble.llm import train
    from tests.data.holdout_checks import record_training_splits

    root = tmp_path_factory.mktemp("sisa")
    recipe = load_recipe(None, [f"output_dir={root / 'run'}", f"data.cache_dir={root / 'cache'}", *SMALL_OVERRIDES,
                                "train.max_steps=6", "train.shards=3"])
    with pytest.MonkeyPatch.context() as patch:
        seen = record_training_splits(patch, "llmrec.llm.train")
        train(recipe)
    return recipe, seen


@pytest.fixture(scope="session")
def apa_ensemble(tmp_path_factory):
    """A tiny 3-adapter APA ensemble (`train.partition=apa`, k-means grouping, 6 steps an adapter), trained once for
    tests/ensemble/test_apa.py and tests/unlearn/methods/test_apa.py: its recipe and the splits its adapters trained
    on, in shard order."""
    from llmrec.ensemble.llm import train
    from tests.data.holdout_checks import record_training_splits

    root = tmp_path_factory.mktemp("apa")
    recipe = load_recipe(None, [f"output_dir={root / 'run'}", f"data.cache_dir={root / 'cache'}", *SMALL_OVERRIDES,
                                "train.max_steps=6", "train.shards=3", "train.partition=apa",
                                "train.apa.base_epochs=1"])
    with pytest.MonkeyPatch.context() as patch:
        seen = record_training_splits(patch, "llmrec.llm.train")
        train(recipe)
    return recipe, seen
