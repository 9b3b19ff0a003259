"""The one list of unlearning methods: each module registers its runner beside its definition."""

from __future__ import annotations

from collections.abc import Callable

from llmrec.errors import ConfigError

METHODS: dict[str, Callable] = {}


def register(name: str, rebuilds_model: bool = False) -> Callable[[Callable], Callable]:
    """Most runners edit the loaded original in memory: runner(original, data, config, autocast) -> student.

    A runner that `rebuilds_model` (SISA) instead writes a whole new recommender itself:
    runner(model_dir, splits, config, output_dir) -> timings and counts.
    """

    def decorate(runner: Callable) -> Callable:
        if name in METHODS:
            raise ValueError(f"unlearning method '{name}' is registered twice")
        runner.rebuilds_model = rebuilds_model
        METHODS[name] = runner
        return runner

    return decorate


METHOD_MODULES = ("e2urec", "finetune", "neggrad", "bad_t", "bad_teacher", "sisa", "retrain")


def get_method(name: str) -> Callable:
    import importlib

    for module in METHOD_MODULES:  # each registers itself on import
        importlib.import_module(f"llmrec.unlearn.{module}")

    if name not in METHODS:
        raise ConfigError(f"unknown unlearning method '{name}' (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]
