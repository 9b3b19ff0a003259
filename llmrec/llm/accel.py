"""One place that decides precision, so train, evaluate and later unlearning agree."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState

from llmrec.errors import LlmrecError


def resolve_mixed_precision(setting: str) -> str:
    """'auto' means bf16 wherever it is fast: CUDA with bf16 support, or a CPU with AVX512-BF16/AMX."""
    if setting not in ("auto", "no", "bf16", "fp16"):
        raise LlmrecError(f"mixed_precision must be auto, no, bf16 or fp16, got '{setting}'")
    if setting != "auto":
        return setting
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
