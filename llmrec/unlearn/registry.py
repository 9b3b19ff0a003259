"""The one list of unlearning methods, for every model family: each module in `llmrec/unlearn/methods/` (methods for
any family) or `llmrec/classic/methods/` (methods that need a factorisation model) registers its runner beside its
definition, naming the families it runs on and its config dataclass. Nothing else lists methods: recipes take
one section per registered method (`with_method_sections`), the CLI and the benchmark ask `get_method`, so adding
a method is adding its module (and a recipe that runs it).

A gradient method is written once against the family's unlearning context (`unlearn.loop.LlmUnlearning`,
`classic.unlearn.ClassicUnlearning`: trainable weights, batch schedule, loss) and registered for all families:
runner(work, config) -> {"student" | "model", "timings", "steps", ...}. A method that needs a factorisation
model's structure (IFRU, Unlearn-ALS, AltEraser) names the families it runs on; asked for another, it is refused
with one line. A runner that `rebuilds_model` (the LLM's retrain and SISA) writes a whole new recommender itself:
runner(model_dir, splits, config, output_dir) -> timings and counts.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from collections.abc import Callable

from llmrec.config import option
from llmrec.errors import ConfigError

FAMILIES = ("llm", "mf", "lightgcn")
CLASSIC = ("mf", "lightgcn")
METHODS: dict[str, dict[str, Callable]] = {}  # method name -> {family: runner}

METHOD_PACKAGES = ("llmrec.unlearn.methods", "llmrec.classic.methods")  # every module in them is a method


def register(name: str, families: tuple[str, ...] = FAMILIES, config: type | None = None,
             rebuilds_model: bool = False) -> Callable[[Callable], Callable]:
    """Register `runner` as method `name` on `families`; `config` (a dataclass, None: nothing to set) becomes the
    recipe section `name` of every recipe for those families. Raises ValueError for a second registration of a
    name on a family or an unknown family."""

    def decorate(runner: Callable) -> Callable:
        for family in families:
            if family not in FAMILIES:
                raise ValueError(f"unlearning method '{name}': unknown family '{family}'")
            if family in METHODS.get(name, {}):
                raise ValueError(f"unlearning method '{name}' is registered twice for {family}")
        runner.rebuilds_model = rebuilds_model
        runner.families = families
        runner.config = config
        METHODS.setdefault(name, {}).update(dict.fromkeys(families, runner))
        return runner

    return decorate


def load_methods() -> dict[str, dict[str, Callable]]:
    """Every method, imported once from METHOD_PACKAGES (each module registers itself on import)."""
    for package in METHOD_PACKAGES:
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            importlib.import_module(f"{package}.{module.name}")
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


def with_method_sections(base: type, family: str, skip: tuple[str, ...] = (),
                         default: Callable[[type], object] = lambda config: config()) -> type:
    """The recipe dataclass `base` plus one section per method registered for `family` that has a config (but
    those in `skip`), named after the method, in name order, starting from `default(config class)`; the result
    keeps `base`'s name, module and docstring. So a new method's settings appear in every recipe that can run it."""
    sections = []
    for name in method_names(family):
        runner = METHODS[name][family]
        if runner.config is not None and name not in skip:
            sections.append((name, runner.config, option(default(runner.config),
                                                          f"{name} settings ({runner.__module__})")))
    return dataclasses.make_dataclass(base.__name__, sections, bases=(base,),
                                      namespace={"__module__": base.__module__, "__doc__": base.__doc__,
                                                 "__qualname__": base.__qualname__})
