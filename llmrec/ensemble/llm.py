"""LLM shard ensembles: SISA (Bourtoule et al., "Machine Unlearning", IEEE S&P 2021), Sharded, Isolated, Sliced,
Aggregated training of an LLM recommender.

Training users are split into S disjoint shards (a user's whole history in one shard, since requests erase
users; `partition.shard_users`), one model is trained per shard, and the recommender's P(yes) is the mean over
shards.
Forgetting (`llmrec.unlearn.methods.sisa`) retrains only the shards that held a forgotten user. Slicing (checkpoints
inside a shard, so a retrain can restart mid-shard) is not implemented: an affected shard is retrained from its
start.

`llmrec train RECIPE train.shards=4` writes the ensemble (`train_ensemble`; `train` chooses it by train.shards).
No backbone imports this module: an ensemble is built from single models, never the other way round.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from llmrec.config import Recipe, to_dict, to_yaml
from llmrec.data.samples import prepare_splits, training_split
from llmrec.ensemble.partition import shard_users
from llmrec.errors import ConfigError, LlmrecError
from llmrec.io import atomic_dir, write_json, write_text
from llmrec.llm import train as single
from llmrec.llm.backbone import AnswerTokens, load_model, load_tokenizer
from llmrec.llm.scoring import answer_logits
from llmrec.store import ENSEMBLE_FILE, read_model_card, shard_model_dirs, verified_hash, write_model_card


def train_shard(recipe: Recipe, users: list[str], folder: Path) -> dict:
    """One shard model, trained on its users' samples only, with every other setting of `recipe`."""
    write_text(folder / "users.txt", "\n".join(users) + "\n")
    return single.train(replace(recipe, output_dir=str(folder),
                         train=replace(recipe.train, shards=1, only_users=str(folder / "users.txt"), resume=False)))


def write_ensemble(target: Path, shard_models: list[Path], shard_groups: list[list[str]], extra: dict,
                   recipe: dict | None = None) -> None:
    """The ensemble directory: sisa.json (shard models by relative path, their users), tokenizer and model card.

    Paths are relative to `target`, and `target` may be a temporary sibling of the final directory. The card
    is the first shard's, with `recipe` (the ensemble's training recipe, when known) in place of the shard's own.
    Each shard's `directory_hash` is recorded, so a shard changed in place is refused at load (`check_shards`).
    """
    from llmrec.store import directory_hash

    load_tokenizer(str(shard_models[0])).save_pretrained(target)
    card = {key: value for key, value in read_model_card(shard_models[0]).items() if key != "recipe"}
    write_model_card(target, {**card, "sisa_shards": len(shard_models), **({"recipe": recipe} if recipe else {})})
    write_json(target / ENSEMBLE_FILE, {
        "shards": [{"model": os.path.relpath(m, target), "users": g, "sha256": directory_hash(m)}
                   for m, g in zip(shard_models, shard_groups)],
        **extra,
    })


def train_ensemble(recipe: Recipe) -> dict:
    """`llmrec train` with train.shards > 1: shard models under output_dir/shards/, the ensemble in output_dir/model."""
    out = Path(recipe.output_dir)
    splits = prepare_splits(recipe.data, recipe.forget)
    users = sorted(set(training_split(splits, recipe.train.train_on)["user_id"]))  # never the holdout users
    groups = shard_users(users, recipe.train.shards, recipe.train.seed)
    started = time.perf_counter()
    summaries = []
    for k, group in enumerate(groups):
        print(f"[sisa] shard {k + 1}/{len(groups)}: {len(group)} users")
        summaries.append(train_shard(recipe, group, out / "shards" / f"shard-{k}"))
    with atomic_dir(out / "model") as tmp:
        write_ensemble(tmp, [out / "shards" / f"shard-{k}" / "model" for k in range(len(groups))], groups,
                       {"seed": recipe.train.seed}, to_dict(recipe))
    write_text(out / "config.yaml", to_yaml(recipe))  # a copy of the card's recipe: it describes model/
    summary = {"shards": summaries, "train_seconds_this_run": time.perf_counter() - started,
               "parameters": sum(s["parameters"] for s in summaries),
               "trainable_parameters": sum(s["trainable_parameters"] for s in summaries),
               "model_dir": str(out / "model")}
    write_json(out / "train_metrics.json", summary)
    return summary


class SisaEnsemble(nn.Module):
    """Shard models behind one forward: answer logits are log of the mean shard P(yes), P(no).

    Causal-LM and encoder-decoder shards alike: each shard is scored by `scoring.answer_logits`, which learns the
    kind from the shard's own config."""

    def __init__(self, shards: list[nn.Module], answer: AnswerTokens):
        super().__init__()
        self.shards = nn.ModuleList(shards)
        self.answer = answer

    @classmethod
    def load(cls, model_dir: Path) -> SisaEnsemble:
        card = read_model_card(model_dir)
        check_shards(model_dir)
        return cls([load_model(str(shard)) for shard in shard_model_dirs(model_dir)], AnswerTokens(**card["answer"])).eval()

    def forward(self, input_ids, attention_mask=None, **ignored):
        """[batch, 1, vocab] logits, -1e4 outside the answer pair. input_ids, attention_mask: [batch, seq], left-padded.
        What a caller adds for one kind of model (position_ids, decoder_input_ids, logits_to_keep) is `ignored`:
        answer_logits derives it for each shard."""
        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        pair = [self.answer.yes_id, self.answer.no_id]
        probs, vocab = [], 0
        for shard in self.shards:
            shard_logits = answer_logits(shard, input_ids, attention_mask)
            probs.append(shard_logits[:, pair].float().softmax(-1))
            vocab = shard_logits.shape[-1]
        probs = torch.stack(probs).mean(0)
        logits = torch.full((input_ids.shape[0], 1, vocab), -1e4, device=input_ids.device)
        logits[:, 0, pair] = probs.clamp_min(1e-12).log()
        return SimpleNamespace(logits=logits)


def check_shards(model_dir: Path) -> None:
    """Every shard model is the one the ensemble was written with (its recorded `directory_hash`; hashed once per
    process while its files keep their sizes and times). Raises LlmrecError naming the first changed or missing
    shard: shards live outside the ensemble directory, so one retrained or edited in place would otherwise be
    scored, and unlearned, without a word. Ensembles written before hashes were recorded are not checked."""
    for k, (shard, path) in enumerate(zip(read_ensemble(model_dir)["shards"], shard_model_dirs(model_dir))):
        if not path.is_dir():
            raise LlmrecError(f"{model_dir}: shard {k} ({path}) is missing")
        if "sha256" in shard and verified_hash(path) != shard["sha256"]:
            raise LlmrecError(f"{model_dir}: shard {k} ({path}) changed since the ensemble was written (sha256 "
                              f"{verified_hash(path)[:12]}…, recorded {shard['sha256'][:12]}…)")


def read_ensemble(model_dir: Path) -> dict:
    path = Path(model_dir) / ENSEMBLE_FILE
    if not path.is_file():
        raise LlmrecError(f"{model_dir}: method=sisa needs a SISA ensemble (train one with train.shards=4); "
                          f"no {ENSEMBLE_FILE} here")
    return json.loads(path.read_text())


def train(recipe: Recipe) -> dict:
    """What `llmrec train` runs: one model (`llm.train.train`), or with train.shards > 1 an ensemble: of shard
    models (`train_ensemble`), or with train.partition=apa of adapters on one base (`ensemble.apa.train_apa`),
    each under the same output_dir lock. Returns the training summary."""
    if recipe.train.partition == "apa" and recipe.train.shards < 2:
        raise ConfigError("train.partition=apa trains one adapter per shard: set train.shards to 2 or more")
    if recipe.train.shards > 1 and recipe.train.partition == "apa":
        from llmrec.ensemble.apa import train_apa

        return single.train(recipe, body=train_apa)
    return single.train(recipe, body=train_ensemble if recipe.train.shards > 1 else None)
