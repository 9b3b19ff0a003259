"""`llmrec evaluate`: AUC / accuracy / log-loss of a saved model on every requested split."""

from __future__ import annotations

from pathlib import Path

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from llmrec.config import PromptConfig, Recipe, to_dict
from llmrec.data.samples import prepare_splits
from llmrec.data.tokenize import AnswerCollator, tokenize
from llmrec.errors import LlmrecError
from llmrec.eval.metrics import markdown_table, utility_metrics
from llmrec.io import write_json, write_text
from llmrec.llm.accel import make_accelerator
from llmrec.llm.backbone import (
    AnswerTokens,
    load_recommender,
    load_tokenizer,
    read_model_card,
)
from llmrec.llm.scoring import answer_logits, p_yes


def make_loader(dataset, collator, batch_size: int, shuffle: bool = False) -> DataLoader:
    return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, collate_fn=collator)


@torch.no_grad()
def score_split(model, loader, accelerator: Accelerator, answer: AnswerTokens, desc: str = "scoring"):
    """Labels and P(yes) for a whole split, gathered across processes without the padding duplicates."""
    model.eval()
    labels, probs = [], []
    for batch in tqdm(loader, desc=desc, disable=not accelerator.is_local_main_process, leave=False):
        logits = answer_logits(model, batch["input_ids"], batch["attention_mask"])
        p, y = accelerator.gather_for_metrics((p_yes(logits, answer.yes_id, answer.no_id), batch["labels"]))
        probs += p.float().cpu().tolist()
        labels += y.cpu().tolist()
    return labels, probs


def evaluate(recipe: Recipe, accelerator: Accelerator | None = None) -> dict[str, dict[str, float]]:
    accelerator = accelerator or make_accelerator(recipe.train.mixed_precision)
    model_dir = Path(recipe.eval.model_dir or Path(recipe.output_dir) / "model")
    card = read_model_card(model_dir)
    prompt = PromptConfig(**card["prompt"])
    answer = AnswerTokens(**card["answer"])
    with accelerator.main_process_first():
        splits = prepare_splits(recipe.data, recipe.forget)
    unknown = [s for s in recipe.eval.splits if s not in splits]
    if unknown:
        raise LlmrecError(f"eval.splits: unknown split '{unknown[0]}' (choose from {', '.join(splits)})")

    tokenizer = load_tokenizer(str(model_dir))
    model = accelerator.prepare(load_recommender(model_dir))
    collator = AnswerCollator(tokenizer)
    results = {}
    for name in recipe.eval.splits:
        with accelerator.main_process_first():
            dataset = tokenize(splits[name], tokenizer, prompt, card["max_length"])
        loader = accelerator.prepare(make_loader(dataset, collator, recipe.eval.batch_size))
        labels, probs = score_split(model, loader, accelerator, answer, desc=name)
        results[name] = utility_metrics(labels, probs)

    table = markdown_table(results)
    if accelerator.is_main_process:
        out = Path(recipe.output_dir)
        write_json(out / "evaluation.json", {"model_dir": str(model_dir), "metrics": results, "recipe": to_dict(recipe)})
        write_text(out / "evaluation.md", table + "\n")
        print(table)
        print(f"written: {out / 'evaluation.json'}, {out / 'evaluation.md'}")
    return results
