"""The one list of classic unlearning methods: each module in llmrec/classic/methods registers itself.

A runner gets a `ClassicUnlearning` (a copy of the original to edit, the triples, the original's
training recipe) and its config, and returns {"model", "timings", "steps", "trainable_parameters"}.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from llmrec.errors import ConfigError

CLASSIC_METHODS: dict[str, Callable] = {}
CLASSIC_METHOD_MODULES = ("retrain", "finetune", "neggrad", "bad_t", "bad_teacher", "e2urec", "unlearn_als", "ifru",
                          "alteraser", "sisa", "receraser")


def register(name: str) -> Callable[[Callable], Callable]:
    def decorate(runner: Callable) -> Callable:
        if name in CLASSIC_METHODS:
            raise ValueError(f"classic unlearning method '{name}' is registered twice")
        CLASSIC_METHODS[name] = runner
        return runner

    return decorate


def get_classic_method(name: str) -> Callable:
    for module in CLASSIC_METHOD_MODULES:
        importlib.import_module(f"llmrec.classic.methods.{module}")
    if name not in CLASSIC_METHODS:
        raise ConfigError(f"unknown classic unlearning method '{name}' (known: {', '.join(sorted(CLASSIC_METHODS))})")
    return CLASSIC_METHODS[name]
