"""Prompts -> token ids; datasets' own map cache keeps this to one pass per (data, prompt, tokenizer)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict

import torch
from datasets import Dataset
from datasets.fingerprint import Hasher

from llmrec.config import PromptConfig
from llmrec.data.prompts import render_prompt
from llmrec.errors import LlmrecError


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
    samples reads the token ids back instead of rebuilding every prompt."""
    keep = {"label", "user_id", "item_id"}
    tokens = tokenizer_fingerprint(tokenizer)
    fingerprint = None if tokens is None else Hasher.hash(
        [dataset._fingerprint, tokens, asdict(prompt), max_length, Hasher.hash(_encode), Hasher.hash(render_prompt)])
    return dataset.map(
        _encode,
        batched=True,
        fn_kwargs={"tokenizer": tokenizer, "prompt": prompt, "max_length": max_length},
        remove_columns=[c for c in dataset.column_names if c not in keep],
        new_fingerprint=fingerprint,
        desc="tokenizing",
    )


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
