"""`llmrec unlearn RECIPE`: the same artefacts for every method.

output_dir/ = a peft adapter (adapter_config.json, adapter_model.safetensors) that loads on top of
the original with `PeftModel.from_pretrained`, its tokenizer and llmrec_model.json, the resolved
`config.yaml` and `unlearning_manifest.json`. The directory appears only when the run succeeded.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from llmrec.config import DataConfig, ForgetConfig, PromptConfig, option, to_dict, to_yaml
from llmrec.data.samples import prepare_splits
from llmrec.data.tokenize import AnswerCollator, tokenize
from llmrec.errors import LlmrecError
from llmrec.io import atomic_dir, write_json
from llmrec.llm.backbone import (
    AnswerTokens,
    load_model,
    load_tokenizer,
    parameter_counts,
    read_model_card,
    write_model_card,
)
from llmrec.unlearn.e2urec import E2URecConfig
from llmrec.unlearn.registry import get_method


@dataclass
class UnlearnRecipe:
    model: str = option("runs/default/model", "the trained original model directory (never modified)")
    output_dir: str = option("runs/unlearn", "where the adapter, manifest and resolved config are written")
    method: str = option("e2urec", "unlearning method (see llmrec.unlearn.registry)")
    data: DataConfig = option(DataConfig(), "the data the original was trained on")
    forget: ForgetConfig = option(ForgetConfig(), "which training users to forget")
    e2urec: E2URecConfig = option(E2URecConfig(), "E2URec settings")
    seed: int = option(0, "shuffling and initialisation seed")


def directory_hash(folder: Path) -> str:
    """sha256 over every file's name and bytes: proves the original was left untouched."""
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(folder)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


class RowCollator(AnswerCollator):
    """Adds each sample's index so precomputed teacher logits can be looked up per batch."""

    def __call__(self, features: list[dict]) -> dict:
        batch = super().__call__(features)
        batch["row"] = torch.tensor([f["row"] for f in features], dtype=torch.long)
        return batch


def loaders(dataset, collator, batch_size: int, seed: int) -> tuple[DataLoader, DataLoader]:
    """(shuffled for training, in order for the teacher pass)."""
    dataset = dataset.add_column("row", list(range(len(dataset))))
    generator = torch.Generator().manual_seed(seed)
    return (
        DataLoader(dataset, batch_size=batch_size, shuffle=True, collate_fn=collator, generator=generator),
        DataLoader(dataset, batch_size=batch_size * 2, shuffle=False, collate_fn=collator),
    )


def run_unlearning(recipe: UnlearnRecipe) -> dict:
    model_dir = Path(recipe.model)
    card = read_model_card(model_dir)
    runner = get_method(recipe.method)
    splits = prepare_splits(recipe.data, recipe.forget)
    torch.manual_seed(recipe.seed)
    print(f"resolved config:\n{to_yaml(recipe)}")

    original_hash = directory_hash(model_dir)
    tokenizer = load_tokenizer(str(model_dir))
    prompt, answer = PromptConfig(**card["prompt"]), AnswerTokens(**card["answer"])
    collator = RowCollator(tokenizer)
    config = recipe.e2urec
    forget_set = tokenize(splits["forget"], tokenizer, prompt, card["max_length"])
    retained_set = tokenize(splits["retained"], tokenizer, prompt, card["max_length"])

    started = time.perf_counter()
    result = runner(
        load_model(str(model_dir)),
        loaders(forget_set, collator, config.batch_size, recipe.seed),
        loaders(retained_set, collator, config.batch_size, recipe.seed + 1),
        answer,
        config,
    )
    wall = time.perf_counter() - started
    if directory_hash(model_dir) != original_hash:
        raise LlmrecError(f"{model_dir} changed during unlearning; refusing to write outputs")

    student = result["student"]
    trainable, total = parameter_counts(student)
    forget_users = sorted(set(splits["forget"]["user_id"]))
    forgotten = sorted(zip(splits["forget"]["user_id"], splits["forget"]["item_id"], splits["forget"]["timestamp"]))
    manifest = {
        "method": recipe.method,
        "recipe": to_dict(recipe),
        "original_model": str(model_dir),
        "original_model_sha256": original_hash,
        "forgotten_user_ids": forget_users,
        "forgotten_samples_sha256": hashlib.sha256(repr(forgotten).encode()).hexdigest(),
        "counts": {"forget_users": len(forget_users), "forget_samples": len(splits["forget"]),
                   "retained_samples": len(splits["retained"])},
        "timings": {**result["timings"], "wall_seconds": wall},
        "trainable_parameters": trainable,
        "trainable_percent": 100.0 * trainable / total,
    }
    with atomic_dir(Path(recipe.output_dir)) as tmp:
        student.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_model_card(tmp, {**card, "unlearned_from": str(model_dir)})
        (tmp / "config.yaml").write_text(to_yaml(recipe))
        write_json(tmp / "unlearning_manifest.json", manifest)
    print(f"unlearned {len(forget_users)} users in {wall:.1f}s; adapter + manifest in {recipe.output_dir}")
    return manifest
