"""Atomic outputs: write into a temp sibling, then rename, so a crash never leaves half a directory.

Every JSON file llmrec writes goes through `json_text`: strict JSON (RFC 8259), where a metric that is
undefined (NaN, e.g. the AUC of a one-class split) or infinite is `null`, never Python's bare `NaN`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def atomic_dir(target: Path):
    """Yield a temp dir; on success it replaces `target` (the old one is kept until the swap is done)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    old = target.with_name(f".{target.name}.old-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if target.exists():
        target.rename(old)
    tmp.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def finite_or_none(value):
    """`value` with every NaN/±inf float (also numpy scalars and arrays) inside dicts and lists replaced by None."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite_or_none(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite_or_none(item) for item in value]
    if hasattr(value, "tolist") and type(value).__module__ == "numpy":  # numpy scalar or array
        return finite_or_none(value.tolist())
    return value


def json_text(payload, indent: int | None = 2) -> str:
    """Strict JSON of `payload`: non-finite floats become null; objects json cannot encode become str (paths)."""
    return json.dumps(finite_or_none(payload), indent=indent, default=str, allow_nan=False)


def write_json(path: Path, payload) -> None:
    """Atomically write `payload` as strict JSON (see `json_text`)."""
    write_text(path, json_text(payload))


def write_text(path: Path, text: str) -> None:
    """Readers see the old file or the new one, never a half-written one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    tmp.replace(path)
