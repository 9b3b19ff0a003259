"""The one list of unlearning methods: each module registers its runner beside its definition."""

from __future__ import annotations

from collections.abc import Callable

from llmrec.errors import ConfigError

METHODS: dict[str, Callable] = {}


def register(name: str) -> Callable[[Callable], Callable]:
    def decorate(runner: Callable) -> Callable:
        if name in METHODS:
            raise ValueError(f"unlearning method '{name}' is registered twice")
        METHODS[name] = runner
        return runner

    return decorate


def get_method(name: str) -> Callable:
    import llmrec.unlearn.e2urec  # noqa: F401  (registers itself)

    if name not in METHODS:
        raise ConfigError(f"unknown unlearning method '{name}' (known: {', '.join(sorted(METHODS))})")
    return METHODS[name]
