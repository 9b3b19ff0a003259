"""Reusing a finished training stage: a fingerprint of everything that shapes the model, and a content hash of
what the stage hands on, so a benchmark, an audit's shadow model or the demo trains only what changed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import replace
from pathlib import Path

from llmrec.bench.memory import PeakMemory
from llmrec.config import Recipe, to_dict
from llmrec.data.samples import FORMAT_VERSION, holdout_settings, input_fingerprint
from llmrec.ensemble.llm import train
from llmrec.errors import LlmrecError
from llmrec.io import write_json
from llmrec.store import model_hash


def fingerprint(recipe: Recipe) -> str:
    """Everything that shapes a trained model: the input bytes, the data/forget/prompt/model/train settings and
    the samples' FORMAT_VERSION (how samples are built from the same bytes).

    A model trained on the whole train split never sees the forget set, so the forget section is left out:
    the same original serves a 20% and a 1% forget benchmark. data.rating_scale only checks the input. A
    data.holdout file counts by its content (`samples.holdout_settings`).
    """
    shaping = ("data", "prompt", "model", "train") if recipe.train.train_on == "train" else (
        "data", "forget", "prompt", "model", "train")
    settings = {key: value for key, value in to_dict(recipe).items() if key in shaping}
    for key in ("path", "cache_dir", "rating_scale", "holdout", "holdout_seed"):
        settings["data"].pop(key, None)
    settings["data"].update(holdout_settings(recipe.data))  # a holdout file by its content; nothing when off
    if settings.get("forget", {}).get("unit") == "users":
        del settings["forget"]["unit"]  # the default: fingerprints from before the option existed stay valid
    settings["train"].pop("resume", None)
    family = settings["model"].pop("family", None)  # fingerprints from before model.family existed stay valid:
    if family not in (None, "llm"):  # an LLM's is always llm; a classic model's was model.kind
        settings["model"]["kind"] = family
    payload = json.dumps({"input": input_fingerprint(recipe.data), "settings": settings,
                          "samples_format": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def fit_seconds(train_metrics: dict) -> float | None:
    """The fit alone, without reading data or saving (classic trainings record it; LLM ones time whole epochs)."""
    return train_metrics.get("train_seconds")


def stage_hash(out: Path) -> str:
    """sha256 of what a reused stage hands on: its model (`model_hash`: every file, and an ensemble's shard models)
    and train_metrics.json. Raises OSError / ValueError / LlmrecError when they are missing or unreadable."""
    digest = hashlib.sha256(model_hash(out / "model").encode())
    digest.update((out / "train_metrics.json").read_bytes())
    return digest.hexdigest()


def reuse_refusal(out: Path, wanted: str) -> tuple[str | None, dict | None]:
    """(None, record) when `out` holds a finished stage with fingerprint `wanted` whose files still hash to the
    stage_sha256 recorded when it was trained; else (why not, None). A fingerprint only says the settings match:
    a damaged or edited model with the right settings must not be reused."""
    try:
        record = json.loads((out / "bench_record.json").read_text())
        recorded, recorded_hash = record["fingerprint"], record.get("stage_sha256")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"has an unreadable bench_record.json ({type(exc).__name__})", None
    if recorded != wanted:
        return f"was trained with other settings (fingerprint {recorded} ≠ {wanted})", None
    if recorded_hash is None:
        return "has no content hash in bench_record.json (written before stages were checked)", None
    try:
        now = stage_hash(out)
    except (OSError, ValueError, KeyError, LlmrecError) as exc:
        return f"is incomplete or damaged ({type(exc).__name__}: {exc})", None
    if now != recorded_hash:
        return (f"changed since it was trained (content sha256 {now[:16]}, recorded {recorded_hash[:16]}): damaged or "
                "edited files are not reused"), None
    return None, record


def ensure_trained(recipe, label: str, trainer=train) -> dict:
    """Train `recipe` unless its output holds a finished run with the same fingerprint and intact files
    (`reuse_refusal`); returns its cost record.

    `trainer` is `ensemble.train` (one model or a shard ensemble) for the LLM rows and `classic.train.train_classic` for the classic ones.
    """
    out = Path(recipe.output_dir)
    wanted = fingerprint(recipe)
    if (out / "bench_record.json").is_file():
        refusal, record = reuse_refusal(out, wanted)
        if refusal is None:
            print(f"[{label}] reusing {out} (fingerprint {wanted} matches, files intact; trained in "
                  f"{record['wall_seconds']:.0f}s)")
            metrics = json.loads((out / "train_metrics.json").read_text())
            return {"compute_seconds": fit_seconds(metrics), **record}  # records from before compute was kept
        print(f"[{label}] {out} {refusal}; training again")
    shutil.rmtree(out, ignore_errors=True)
    print(f"[{label}] training {out}")
    with PeakMemory() as memory:
        started = time.perf_counter()
        trainer(replace(recipe, train=replace(recipe.train, resume=False)) if hasattr(recipe.train, "resume")
                else recipe)
        wall = time.perf_counter() - started
    trainable = json.loads((out / "train_metrics.json").read_text())
    record = {"fingerprint": wanted, "wall_seconds": wall, "peak_memory_mb": memory.peak_mb,
              "trainable_percent": 100.0 * trainable["trainable_parameters"] / trainable["parameters"],
              "compute_seconds": fit_seconds(trainable), "stage_sha256": stage_hash(out)}
    write_json(out / "bench_record.json", record)
    return record
