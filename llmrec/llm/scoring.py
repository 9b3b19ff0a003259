"""The recommender's score: next-token logits at the answer position only.

Prompts are left-padded, so the answer position is the last one in every row and
`logits_to_keep=1` makes the LM head project one position instead of the whole sequence.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def answer_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, vocab] logits for the token after the prompt; never builds [batch, seq, vocab]."""
    position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
    out = model(
        input_ids=input_ids,
        attention_mask=attention_mask,
        position_ids=position_ids,
        logits_to_keep=1,
        use_cache=False,
    )
    return out.logits[:, -1, :]


def answer_targets(labels: torch.Tensor, yes_id: int, no_id: int) -> torch.Tensor:
    return torch.where(labels.bool(), torch.full_like(labels, yes_id), torch.full_like(labels, no_id))


def answer_loss(logits: torch.Tensor, labels: torch.Tensor, yes_id: int, no_id: int) -> torch.Tensor:
    """Language-model cross-entropy on the answer token alone (full vocabulary), as in instruction tuning."""
    return F.cross_entropy(logits.float(), answer_targets(labels, yes_id, no_id))


def p_yes(logits: torch.Tensor, yes_id: int, no_id: int) -> torch.Tensor:
    """P(yes) from a softmax restricted to the two answer tokens."""
    pair = torch.stack([logits[:, yes_id], logits[:, no_id]], dim=-1).float()
    return pair.softmax(-1)[:, 0]
