"""scripts/fault_trials.py (the fault-injection harness) loaded as a module, run against this checkout."""

from __future__ import annotations

import importlib.util
import sys

import pytest

from tests.conftest import REPO


def _load_harness():
    spec = importlib.util.spec_from_file_location("fault_trials", REPO / "scripts" / "fault_trials.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["fault_trials"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


ft = _load_harness()


@pytest.fixture(scope="session")
def harness(tmp_path_factory):
    """Runs `python -c` subprocesses with PYTHONPATH=REPO; its fixtures (a tiny original, ...) are built once."""
    return ft.Harness(REPO, tmp_path_factory.mktemp("faults"))


def trial_params(trials, pending: dict[str, str]) -> list:
    """pytest params of harness trials; those in `pending` ("kind / name": why) are xfail until their fix lands."""
    params = []
    for trial in trials:
        key = f"{trial.kind} / {trial.name}"
        marks = [pytest.mark.xfail(strict=False, reason=pending[key])] if key in pending else []
        params.append(pytest.param(trial, id=key, marks=marks))
    return params


def assert_ends_cleanly(harness, trial, folder) -> None:
    """Run one harness trial; it must end cleanly as scripts/fault_trials.py's docstring defines it."""
    done = ft.run_trial(harness, trial, folder)
    assert done.reason is None, f"{done.reason}: {done.detail}"
