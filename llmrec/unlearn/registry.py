"""The one list of unlearning methods, for every model family: each module registers its runner beside its
definition, naming the families it runs on.

A gradient method is written once against the family's unlearning context (`unlearn.loop.LlmUnlearning`,
`classic.unlearn.ClassicUnlearning`: trainable weights, batch schedule, loss) and registered for all families:
runner(work, config) -> {"student" | "model", "timings", "steps", ...}. A method that needs a factorisation
model's structure (IFRU, Unlearn-ALS, AltEraser) names the families it runs on; asked for another, it is refused
with one line. A runner that `rebuilds_model` (the LLM's retrain and SISA) writes a whole new recommender itself:
runner(model_dir, splits, config, output_dir) -> timings and counts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from llmrec.errors import ConfigError

FAMILIES = ("llm", "mf", "lightgcn")
CLASSIC = ("mf", "lightgcn")
METHODS: dict[str, dict[str, Callable]] = {}  # method name -> {family: runner}

METHOD_MODULES = (
    "llmrec.unlearn.retrain", "llmrec.unlearn.finetune", "llmrec.unlearn.neggrad", "llmrec.unlearn.bad_t",
    "llmrec.unlearn.bad_teacher", "llmrec.unlearn.e2urec", "llmrec.unlearn.sisa",
    "llmrec.classic.methods.bad_teacher", "llmrec.classic.methods.e2urec", "llmrec.classic.methods.ifru",
    "llmrec.classic.methods.unlearn_als", "llmrec.classic.methods.alteraser", "llmrec.classic.methods.sisa",
    "llmrec.classic.methods.receraser",
)


def register(name: str, families: tuple[str, ...] = FAMILIES, rebuilds_model: bool = False
             ) -> Callable[[Callable], Callable]:
    def decorate(runner: Callable) -> Callable:
        for family in families:
            if family not in FAMILIES:
                raise ValueError(f"unlearning method '{name}': unknown family '{family}'")
            if family in METHODS.get(name, {}):
                raise ValueError(f"unlearning method '{name}' is registered twice for {family}")
        runner.rebuilds_model = rebuilds_model
        runner.families = families
        METHODS.setdefault(name, {}).update(dict.fromkeys(families, runner))
        return runner

    return decorate


def load_methods() -> dict[str, dict[str, Callable]]:
    for module in METHOD_MODULES:  # each registers itself on import
        importlib.import_module(module)
    return METHODS


def method_names(family: str | None = None) -> list[str]:
    """Every registered method, or those that run on `family`."""
    return sorted(name for name, runners in load_methods().items() if family is None or family in runners)


def get_method(name: str, family: str = "llm") -> Callable:
    """The runner of method `name` for a model of `family`. Raises ConfigError, one line, for an unknown method
    or one that does not run on that family."""
    methods = load_methods()
    if name not in methods:
        raise ConfigError(f"unknown unlearning method '{name}' (known: {', '.join(sorted(methods))})")
    if family not in methods[name]:
        raise ConfigError(f"method {name} runs on {' and '.join(methods[name])} models, not on this {family} model "
                          f"(methods for {family}: {', '.join(method_names(family))})")
    return methods[name][family]
