"""Frozen teachers are computed once: one no-grad pass stores their [yes, no] answer logits per sample.

Distillation then costs one student forward/backward per step, and the stored logits stream from
memory by sample index. Only the two answer columns are kept: they are what the recommender's
score is made of, and a full-vocabulary table would not fit for real LLMs (vocab × samples).
"""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from llmrec.llm.backbone import AnswerTokens
from llmrec.llm.scoring import answer_logits


def pair_logits(full_logits: torch.Tensor, answer: AnswerTokens) -> torch.Tensor:
    """[batch, vocab] -> [batch, 2] logits of (yes, no)."""
    return full_logits[:, [answer.yes_id, answer.no_id]]


@torch.no_grad()
def precompute_answer_logits(model, loader: DataLoader, answer: AnswerTokens, desc: str) -> torch.Tensor:
    """[samples, 2] float32 logits by each batch's `row` index (the loader may visit rows in any order,
    e.g. by length), on the batches' device."""
    model.eval()
    rows, logits = [], []
    for batch in tqdm(loader, desc=desc, leave=False):
        rows.append(batch["row"])
        logits.append(pair_logits(answer_logits(model, batch["input_ids"], batch["attention_mask"]), answer).float())
    if not rows:
        return torch.empty(0, 2)
    rows, logits = torch.cat(rows), torch.cat(logits)
    table = torch.empty(len(rows), 2, device=logits.device)
    table[rows.to(logits.device)] = logits
    return table
