"""A small synthetic log and a classic recipe on it that trains in about a second."""

from __future__ import annotations

import pytest

from llmrec.config import load_recipe
from tests.conftest import SMALL_OVERRIDES

CLASSIC_DATA = [o for o in SMALL_OVERRIDES if o.startswith("data.")]


def classic_recipe(tmp_path, *overrides):
    from llmrec.classic.train import ClassicRecipe

    return load_recipe(None, [f"output_dir={tmp_path / 'classic'}", f"data.cache_dir={tmp_path / 'cache'}",
                              *CLASSIC_DATA, "model.dim=16", "train.epochs=15", "train.batch_size=128", *overrides],
                       cls=ClassicRecipe)


@pytest.fixture
def classic_factory(tmp_path):
    return lambda *overrides: classic_recipe(tmp_path, *overrides)
