"""Prompts -> token ids; datasets' own map cache keeps this to one pass per (data, prompt, tokenizer), verified
by a sha256 beside it before every reuse."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path

import torch
from datasets import Dataset
from datasets.fingerprint import Hasher, is_caching_enabled

from llmrec.config import PromptConfig
from llmrec.data.prompts import render_prompt
from llmrec.errors import LlmrecError
from llmrec.io import file_sha256, hold_lock, write_text


def as_chat(text: str, tokenizer) -> str:
    """The prompt as the user turn, ending where the assistant's answer starts (instruct models' format)."""
    if not getattr(tokenizer, "chat_template", None):
        raise LlmrecError("prompt.chat_template is true but this tokenizer has no chat template")
    return tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False,
                                         add_generation_prompt=True)


def _encode(batch: dict, tokenizer, prompt: PromptConfig, max_length: int) -> dict:
    rows = [dict(zip(batch, values)) for values in zip(*batch.values())]
    texts = [render_prompt(row, prompt) for row in rows]
    if prompt.chat_template:
        texts = [as_chat(text, tokenizer) for text in texts]
    encoded = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=max_length)
    return {"input_ids": encoded["input_ids"], "length": [len(ids) for ids in encoded["input_ids"]]}


def tokenizer_fingerprint(tokenizer) -> str | None:
    """What decides the token ids: the fast tokenizer's model, normalizer and specials, and the chat template.
    Not the folder it was loaded from, nor truncation state it picked up when called: hashing the whole object
    (datasets' default) changes with both, and every run on a fresh copy of the same tokenizer re-tokenized."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        return None
    state = json.loads(backend.to_str())
    state.pop("truncation", None)
    state.pop("padding", None)
    payload = {"class": type(tokenizer).__name__, "backend": state, "padding_side": tokenizer.padding_side,
               "chat_template": getattr(tokenizer, "chat_template", None)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def tokenize(dataset: Dataset, tokenizer, prompt: PromptConfig, max_length: int) -> Dataset:
    """Cached on disk by (rows, tokenizer, prompt, max_length, this code): a rerun or a second method on the same
    samples reads the token ids back instead of rebuilding every prompt.

    The cache is datasets' `cache-FINGERPRINT.arrow` beside the split's own arrow file, with its sha256 in
    `cache-FINGERPRINT.sha256`; it is written under its lock (a concurrent run waits and reuses it) and verified
    before it is read: a damaged one (or one without its sha256) is rebuilt, said in one line."""
    keep = {"label", "user_id", "item_id"}
    tokens = tokenizer_fingerprint(tokenizer)
    fingerprint = Hasher.hash([dataset._fingerprint, Hasher.hash(tokenizer) if tokens is None else tokens,
                               asdict(prompt), max_length, Hasher.hash(_encode), Hasher.hash(render_prompt)])
    arguments = {"batched": True, "fn_kwargs": {"tokenizer": tokenizer, "prompt": prompt, "max_length": max_length},
                 "remove_columns": [c for c in dataset.column_names if c not in keep],
                 "new_fingerprint": fingerprint, "desc": "tokenizing"}
    if not (is_caching_enabled() and dataset.cache_files):  # in memory: datasets keeps no cache file
        return dataset.map(_encode, **arguments)
    cache = Path(dataset.cache_files[0]["filename"]).parent / f"cache-{fingerprint}.arrow"  # datasets' own name
    checksum = cache.with_suffix(".sha256")
    with hold_lock(cache, wait=True, doing="tokenizing into"):
        if cache.exists() and (problem := _token_cache_damage(cache, checksum)):
            print(f"token cache {cache}: {problem}; rebuilding it", flush=True)
            cache.unlink()
        if not cache.exists():
            checksum.unlink(missing_ok=True)
        tokenized = dataset.map(_encode, cache_file_name=str(cache), **arguments)
        if not checksum.is_file():
            write_text(checksum, file_sha256(cache) + "\n")
    return tokenized


def _token_cache_damage(cache: Path, checksum: Path) -> str | None:
    try:
        recorded = checksum.read_text().strip()
    except FileNotFoundError:
        return f"no {checksum.name} (written before llmrec checked its caches)"
    except (OSError, ValueError) as exc:
        return f"{checksum.name} is unreadable ({type(exc).__name__})"
    return None if recorded == file_sha256(cache) else f"does not match its sha256 in {checksum.name}"


def length_order(dataset: Dataset) -> list[int]:
    """Row indices by prompt length (stable), so each batch pads to nearly its own length."""
    lengths = dataset["length"]
    return sorted(range(len(lengths)), key=lengths.__getitem__)


class AnswerCollator:
    """Left-pads a batch; labels stay 0/1 so the loss can map them to answer tokens."""

    def __init__(self, tokenizer):
        assert tokenizer.padding_side == "left", "answer scoring needs left padding"
        self.tokenizer = tokenizer

    def __call__(self, features: list[dict]) -> dict:
        padded = self.tokenizer.pad({"input_ids": [f["input_ids"] for f in features]}, return_tensors="pt")
        return {
            "input_ids": padded["input_ids"],
            "attention_mask": padded["attention_mask"],
            "labels": torch.tensor([f["label"] for f in features], dtype=torch.long),
        }
