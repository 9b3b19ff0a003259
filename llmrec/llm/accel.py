"""One place that decides precision, so train, evaluate and later unlearning agree."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import parse_flag_from_env
from accelerate.state import AcceleratorState, GradientState

from llmrec.errors import LlmrecError


FORCE_ENV = {"LLMREC_FORCE_NO_BF16": "no", "LLMREC_FORCE_BF16": "bf16"}


def resolve_mixed_precision(setting: str) -> str:
    """What a `mixed_precision` setting means on this machine: 'auto' is bf16 wherever it is fast (CUDA with bf16
    support, or a CPU with AVX512-BF16/AMX), else 'no'; other settings are taken as given.

    `LLMREC_FORCE_NO_BF16=1` makes 'auto' resolve to 'no' and `LLMREC_FORCE_BF16=1` to 'bf16' (emulated, slower, on
    a CPU without it), so one machine can run the suite as either CPU kind would. Raises LlmrecError on an unknown
    setting or when both variables are set."""
    if setting not in ("auto", "no", "bf16", "fp16"):
        raise LlmrecError(f"mixed_precision must be auto, no, bf16 or fp16, got '{setting}'")
    forced = {value for name, value in FORCE_ENV.items() if os.environ.get(name, "").strip() not in ("", "0")}
    if len(forced) > 1:
        raise LlmrecError("LLMREC_FORCE_NO_BF16 and LLMREC_FORCE_BF16 are both set: unset one")
    if setting != "auto":
        return setting
    if forced:
        return forced.pop()
    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "no"
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "no"
    return "bf16" if ("avx512_bf16" in flags or "amx_bf16" in flags) else "no"


def make_accelerator(mixed_precision: str = "auto", **kwargs) -> Accelerator:
    """A fresh Accelerator for each stage, so train -> evaluate -> unlearn in one process may differ in precision.

    accelerate keeps one AcceleratorState per process; the stage-specific part of it is cleared here,
    the process group (PartialState) is kept.
    """
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()
    return Accelerator(mixed_precision=resolve_mixed_precision(mixed_precision), **kwargs)


def process_state() -> PartialState:
    """This process's place among the launched ones, before any Accelerator exists. `ACCELERATE_USE_CPU` is
    honoured as `Accelerator` honours it: a bare `PartialState()` would initialise the shared state as a single
    non-distributed process on CPU, so every rank would think it is the main one (and the Accelerator made later
    would inherit that state)."""
    return PartialState(cpu=parse_flag_from_env("ACCELERATE_USE_CPU"))


def available_cores() -> int:
    """Cores this process may run on: its CPU affinity (`os.sched_getaffinity`; `os.cpu_count` where the OS has
    none), capped by a cgroup v2 CPU quota (`/sys/fs/cgroup/cpu.max`, e.g. a container given 2 of 64 cores)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def resolve_threads(setting: int) -> tuple[int, str]:
    """(threads, why) for a recipe's `threads`: N > 0 is taken as given; 0 (auto) is OMP_NUM_THREADS when set,
    else `available_cores()` shared among this machine's processes (LOCAL_WORLD_SIZE, set by accelerate launch and
    torchrun). Torch's own default is the machine's physical cores, whatever else runs on them: on a shared
    machine that made training 10-30x slower than one thread (issue 18)."""
    if setting > 0:
        return setting, "threads setting"
    omp = os.environ.get("OMP_NUM_THREADS", "").strip()
    if omp.isdigit() and int(omp) > 0:
        return int(omp), "OMP_NUM_THREADS"
    local = os.environ.get("LOCAL_WORLD_SIZE", "1")
    processes = int(local) if local.isdigit() and int(local) > 0 else 1
    cores = available_cores()
    return max(1, cores // processes), (f"auto: {cores} cores free to this process"
                                        + (f" / {processes} local processes" if processes > 1 else ""))


def apply_threads(setting: int) -> int:
    """torch.set_num_threads(resolve_threads(setting)); returns the count. Call before any work starts."""
    threads, _ = resolve_threads(setting)
    torch.set_num_threads(threads)
    return threads


def threads_note() -> str:
    """'threads: N' for run headers: the count torch computes with now."""
    return f"threads: {torch.get_num_threads()}"
