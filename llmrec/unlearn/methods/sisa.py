"""SISA unlearning (Bourtoule et al., "Machine Unlearning", IEEE S&P 2021): retrain only the shards of an
ensemble (`llmrec.ensemble`) that held a forgotten user (`ensemble.partition.affected_shards`), so the cost of a
request is the number of shards it touches. One method, two runners:

- LLM (`unlearn_sisa`, rebuilds the model): an affected shard is retrained with the recipe its model card records
  (`llm.train.training_recipe`). Untouched shards are copied into the output, as reflinks where the file system
  has them (Btrfs, XFS: no bytes duplicated until one side changes) and plain copies elsewhere; never hard links,
  which would share inodes with the original, so editing the output would edit the original.
- MF / LightGCN (`sisa_classic`): the original is a shard ensemble (`train.ensemble.shards` > 1, random user
  partition, mean of P(yes)); each affected shard is retrained from scratch, with its own seed, on its users'
  retained triples, so the result is exactly what training the ensemble without the forgotten users would give
  (`retrain_affected_shards`, which RecEraser, `classic.methods.receraser`, shares).
"""

from __future__ import annotations

import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from llmrec.classic.train import fit_aggregator, fit_shard
from llmrec.config import option
from llmrec.ensemble.classic import ClassicEnsemble
from llmrec.ensemble.llm import read_ensemble, train_shard, write_ensemble
from llmrec.ensemble.partition import affected_shards
from llmrec.errors import LlmrecError
from llmrec.llm.train import training_recipe
from llmrec.store import parameter_counts, read_model_card
from llmrec.unlearn.registry import CLASSIC, register


@dataclass
class SisaConfig:
    """Affected shards are retrained with the recipe they were trained with; little is left to choose here."""

    shards: int = option(4, "shards of the ensemble `llmrec benchmark` trains (llmrec unlearn reads the ensemble)",
                        ge=2)
    reflink_unaffected: bool = option(
        True, "copy untouched shard models as reflinks where the file system supports them (Btrfs, XFS: shared "
        "blocks, separate files), a plain copy elsewhere; false: always a plain copy. Never hard links")


FICLONE = 0x40049409  # Linux <linux/fs.h>: _IOW(0x94, 9, int), the ioctl behind `cp --reflink`


def reflink_or_copy(source, target) -> str:
    """`target` as a reflink of `source` where the file system clones files (Linux FICLONE: Btrfs, XFS, ...),
    else a plain `shutil.copy2`; either way a file of its own (own inode), permissions and times copied.
    Returns 'reflink' or 'copy'."""
    if sys.platform == "linux":
        import fcntl

        try:
            with open(source, "rb") as src, open(target, "wb") as dst:
                fcntl.ioctl(dst.fileno(), FICLONE, src.fileno())
            shutil.copystat(source, target)
            return "reflink"
        except OSError:  # EOPNOTSUPP, EXDEV, EINVAL: this file system (or pair) cannot clone
            pass
    shutil.copy2(source, target)
    return "copy"


def place_shard(source: Path, target: Path, reflink: bool) -> None:
    """An untouched shard model in the output: its own files, reflinked where possible (see `reflink_or_copy`)."""
    shutil.copytree(source, target, copy_function=reflink_or_copy if reflink else shutil.copy2)


@register("sisa", families=("llm",), rebuilds_model=True, config=SisaConfig)
def unlearn_sisa(model_dir: Path, splits, config: SisaConfig, output: Path) -> dict:
    """Retrain the shards that saw a forgotten user on their remaining users; keep the others as they are."""
    spec = read_ensemble(model_dir)
    forget = set(splits["forget"]["user_id"])
    affected = affected_shards({user: k for k, shard in enumerate(spec["shards"]) for user in shard["users"]},
                               forget)
    shard_dirs, groups, retrained, dropped, trainable, total = [], [], [], [], 0, 0
    started = time.perf_counter()
    for k, shard in enumerate(spec["shards"]):
        source = (Path(model_dir) / shard["model"]).resolve()
        keep = [u for u in shard["users"] if u not in forget]
        folder = output / "shards" / f"shard-{k}"
        if not keep:
            dropped.append(k)  # every user of this shard is forgotten: the ensemble loses the shard
            continue
        if k not in affected:
            place_shard(source, folder / "model", config.reflink_unaffected)
        else:
            shard_recipe = training_recipe(source)
            summary = train_shard(shard_recipe, keep, folder)
            trainable, total = trainable + summary["trainable_parameters"], total + summary["parameters"]
            retrained.append(k)
        shard_dirs.append(folder)
        groups.append(keep)
    if not shard_dirs:
        raise LlmrecError("every shard held only forgotten users: nothing would be left to remember")
    write_ensemble(output, [d / "model" for d in shard_dirs], groups,
                   {"seed": spec.get("seed"), "retrained_shards": retrained, "dropped_shards": dropped},
                   read_model_card(model_dir).get("recipe"))
    print(f"[sisa] retrained {len(retrained)} of {len(spec['shards'])} shards {retrained}"
          + (f", dropped {dropped}" if dropped else ""))
    return {"timings": {"retrain_seconds": time.perf_counter() - started},
            "steps": {"shards_retrained": len(retrained), "shards_total": len(spec["shards"]),
                      "shards_dropped": len(dropped)},
            "trainable_parameters": trainable, "total_parameters": total}


def retrain_affected_shards(work, method: str) -> dict:
    """Refit, on the retained triples, every shard of a classic ensemble (`work.model`) that held a forgotten user,
    each as `classic.train.fit_shard` trained it (its own seed), and then an attention aggregator from fresh
    weights. `work`: a `classic.unlearn.ClassicUnlearning`; its card's `partition` is the shard of each user row.
    Raises LlmrecError, naming `method`, when the original is not an ensemble."""
    ensemble = work.model
    if not isinstance(ensemble, ClassicEnsemble):
        raise LlmrecError(f"{method} forgets from a shard ensemble: train the original with train.ensemble.shards=4")
    started = time.perf_counter()
    partition = torch.tensor(work.card["partition"])
    affected = affected_shards(dict(enumerate(work.card["partition"])), torch.unique(work.forget.users).tolist())
    shard_of = partition[work.retained.users]
    for shard in affected:
        ensemble.shards[shard] = fit_shard(work.training, work.index, work.retained.subset(shard_of == shard),
                                           work.valid, shard)
    shards_done = time.perf_counter()
    retrained = sum(parameter_counts(ensemble.shards[k])[1] for k in affected)
    if ensemble.aggregation == "attention":
        fit_aggregator(ensemble, work.retained, work.valid, work.training.train)
        retrained += sum(parameter_counts(net)[1] for net in ensemble.aggregator())
    return {"model": ensemble, "timings": {"shards_seconds": shards_done - started,
                                           "aggregator_seconds": time.perf_counter() - shards_done},
            "steps": {"shards": len(ensemble.shards), "shards_retrained": len(affected), "retrained": affected},
            "trainable_parameters": retrained}


@register("sisa", families=CLASSIC)
def sisa_classic(work, config: None) -> dict:
    """SISA on an MF / LightGCN shard ensemble: `retrain_affected_shards`; nothing to set (no recipe section)."""
    return retrain_affected_shards(work, "sisa")
