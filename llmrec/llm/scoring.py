"""The recommender's score: next-token logits at the answer position only.

Prompts are left-padded, so the answer position is the last one in every row and
`logits_to_keep=1` makes the LM head project one position instead of the whole sequence.
An encoder-decoder (T5) reads the prompt in its encoder and answers at the first decoder position.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from torch.utils.data import DataLoader

from llmrec.data.tokenize import length_order
from llmrec.llm.backbone import AnswerTokens, is_encoder_decoder, model_config
from llmrec.progress import progress


def answer_logits(model, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """[batch, vocab] logits for the token after the prompt; never builds [batch, seq, vocab]."""
    if is_encoder_decoder(model):
        start = decoder_start_id(model)
        decoder_input_ids = torch.full((input_ids.shape[0], 1), start, dtype=input_ids.dtype, device=input_ids.device)
        out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids,
                    use_cache=False)
        return out.logits[:, -1, :]
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


def decoder_start_id(model) -> int:
    config = model_config(model)
    start = config.decoder_start_token_id
    return config.pad_token_id if start is None else start


def make_loader(dataset, collator, batch_size: int, shuffle: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collator)


@torch.no_grad()
def score_dataset(model, dataset, collator, batch_size: int, accelerator: Accelerator, answer: AnswerTokens,
                  desc: str = "scoring"):
    """Labels and P(yes) in dataset order, scored in length order (less padding, the same numbers)."""
    order = length_order(dataset)
    loader = accelerator.prepare(make_loader(dataset.select(order), collator, batch_size))
    labels, probs = score_split(model, loader, accelerator, answer, desc=desc)
    restored_labels, restored_probs = [0] * len(order), [0.0] * len(order)
    for position, row in enumerate(order):
        restored_labels[row], restored_probs[row] = labels[position], probs[position]
    return restored_labels, restored_probs


@torch.no_grad()
def score_split(model, loader, accelerator: Accelerator, answer: AnswerTokens, desc: str = "scoring"):
    """Labels and P(yes) for a whole split, gathered across processes without the padding duplicates."""
    model.eval()
    labels, probs = [], []
    for batch in progress(loader, desc=desc, disable=not accelerator.is_local_main_process, leave=False):
        logits = answer_logits(model, batch["input_ids"], batch["attention_mask"])
        p, y = accelerator.gather_for_metrics((p_yes(logits, answer.yes_id, answer.no_id), batch["labels"]))
        probs += p.float().cpu().tolist()
        labels += y.cpu().tolist()
    return labels, probs
