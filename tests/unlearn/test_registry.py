"""The one method registry: every family's runners, one module per gradient method, family-bound methods refused on
other families with one line."""

import inspect

import pytest

from llmrec.errors import ConfigError
from llmrec.unlearn.registry import METHODS, get_method, method_names, register

WRITTEN_ONCE = ("finetune", "neggrad", "bad_t", "gradient_ascent", "bad_teacher", "e2urec")  # one runner, every family


@pytest.mark.parametrize("name", WRITTEN_ONCE)
def test_a_gradient_method_is_one_runner_in_one_module_for_every_family(name):
    runners = {family: get_method(name, family) for family in ("llm", "mf", "lightgcn")}
    assert len(set(runners.values())) == 1
    assert inspect.getmodule(runners["llm"]).__name__ == f"llmrec.unlearn.methods.{name}"


def test_every_family_has_the_baselines_and_the_factorisation_methods_only_where_they_fit():
    assert {"retrain", "finetune", "neggrad", "bad_t", "bad_teacher", "e2urec", "sisa"} <= set(method_names("llm"))
    assert {"ifru", "unlearn_als", "alteraser", "receraser"} <= set(method_names("mf"))
    assert {"ifru", "receraser"} <= set(method_names("lightgcn"))
    assert not {"ifru", "unlearn_als", "alteraser", "receraser"} & set(method_names("llm"))
    assert not {"unlearn_als", "alteraser"} & set(method_names("lightgcn"))


def test_a_method_of_another_family_is_refused_with_one_line_naming_both():
    with pytest.raises(ConfigError) as refused:
        get_method("ifru", "llm")
    message = str(refused.value)
    assert "\n" not in message and "ifru runs on mf and lightgcn models" in message and "llm" in message
    with pytest.raises(ConfigError, match="unknown unlearning method 'nope'"):
        get_method("nope", "mf")


def test_registering_a_name_twice_for_a_family_fails_and_an_unknown_family_too():
    method_names()  # every module registered
    with pytest.raises(ValueError, match="registered twice for mf"):
        register("finetune", families=("mf",))(lambda work, config: {})
    with pytest.raises(ValueError, match="unknown family 'gnn'"):
        register("brand_new", families=("gnn",))(lambda work, config: {})
    assert "brand_new" not in METHODS


def test_every_module_in_the_method_packages_registers_a_method_and_is_found_without_a_list():
    import importlib
    import pkgutil

    from llmrec.unlearn.registry import METHOD_PACKAGES

    method_names()
    registering = {runner.__module__ for runners in METHODS.values() for runner in runners.values()}
    for package in METHOD_PACKAGES:
        for module in pkgutil.iter_modules(importlib.import_module(package).__path__):
            assert f"{package}.{module.name}" in registering, f"{package}.{module.name} registers no method"
