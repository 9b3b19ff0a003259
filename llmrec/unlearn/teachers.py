"""Frozen teachers are computed once: one no-grad pass stores their [yes, no] answer logits per sample.

Distillation then costs one student forward/backward per step, and the stored logits stream from
memory by sample index. Only the two answer columns are kept: they are what the recommender's
score is made of, and a full-vocabulary table would not fit for real LLMs (vocab × samples).
Teachers, stored or recomputed, are evaluated as the E2URec reference evaluates its frozen models
(`unlearning_e2urec.py`: `.eval()`, fp32): in eval mode and float32 (`teacher_mode`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

from llmrec.llm.backbone import AnswerTokens
from llmrec.llm.scoring import answer_logits
from llmrec.progress import progress


def pair_logits(full_logits: torch.Tensor, answer: AnswerTokens) -> torch.Tensor:
    """[batch, vocab] -> [batch, 2] logits of (yes, no)."""
    return full_logits[:, [answer.yes_id, answer.no_id]]


@contextlib.contextmanager
def teacher_mode(*models: nn.Module | None) -> Iterator[None]:
    """Evaluate frozen teachers: no gradient; eval mode, so no dropout (the base model's, e.g. T5's 0.1, or LoRA's)
    even while the student trains, every module's mode restored after; autocast off, so logits come out float32
    (from float32 weights): the forgetting teacher multiplies their rounding by α, and bf16 keeps 8 significant bits."""
    models = [m for m in models if m is not None]
    modes = [(module, module.training) for model in models for module in model.modules()]
    devices = {"cpu"} | {p.device.type for model in models for p in model.parameters()}
    devices = sorted(d for d in devices if torch.amp.is_autocast_available(d))
    try:
        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.no_grad())
            for device in devices:
                stack.enter_context(torch.autocast(device, enabled=False))
            for model in models:
                model.eval()
            yield
    finally:
        for module, training in modes:
            module.training = training


def precompute_answer_logits(model, loader: DataLoader, answer: AnswerTokens, desc: str) -> torch.Tensor:
    """[samples, 2] float32 logits by each batch's `row` index (the loader may visit rows in any order,
    e.g. by length), on the batches' device; computed in `teacher_mode`."""
    rows, logits = [], []
    with teacher_mode(model):
        for batch in progress(loader, desc=desc, leave=False):
            rows.append(batch["row"])
            logits.append(pair_logits(answer_logits(model, batch["input_ids"], batch["attention_mask"]),
                                      answer).float())
    if not rows:
        return torch.empty(0, 2)
    rows, logits = torch.cat(rows), torch.cat(logits)
    table = torch.empty(len(rows), 2, device=logits.device)
    table[rows.to(logits.device)] = logits
    return table
