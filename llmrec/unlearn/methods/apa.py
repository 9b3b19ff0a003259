"""APA unlearning (Hu et al., "Exact and Efficient Unlearning for Large Language Model-based Recommendation",
arXiv 2404.10327): retrain exactly the adapters of an APA ensemble (`llmrec.ensemble.apa`) whose shard held a
forgotten user, each from the recipe its card records (its seed, its settings) on its remaining users; every other
adapter and the frozen base are copied unchanged (reflinks where the file system has them, never hard links).

Exact by construction: a retrained adapter is the one training it from scratch on its remaining users gives, bit
for bit on the same machine and thread count (tests/unlearn/methods/test_apa.py), and its shard's centroid is
recomputed from those users' samples. A shard left with no users is dropped. The partition itself is kept (see
`ensemble.apa` on k-means grouping).
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path

from llmrec.config import option
from llmrec.ensemble.apa import read_apa, shard_centroid, train_adapter, write_apa
from llmrec.ensemble.partition import affected_shards
from llmrec.errors import LlmrecError
from llmrec.llm.backbone import load_model, load_tokenizer
from llmrec.llm.train import training_recipe
from llmrec.unlearn.methods.sisa import place_shard
from llmrec.store import read_model_card
from llmrec.unlearn.registry import register


@dataclass
class ApaConfig:
    """Affected adapters are retrained with the recipe they were trained with; little is left to choose here."""

    shards: int = option(4, "adapters of the APA ensemble `llmrec benchmark` trains (llmrec unlearn reads the "
                         "ensemble)", ge=2)
    reflink_unaffected: bool = option(
        True, "copy the base and untouched adapters as reflinks where the file system supports them (Btrfs, XFS), "
        "a plain copy elsewhere; false: always a plain copy. Never hard links")


@register("apa", families=("llm",), rebuilds_model=True, config=ApaConfig)
def unlearn_apa(model_dir: Path, splits, config: ApaConfig, output: Path) -> dict:
    """Retrain the adapters whose shard saw a forgotten user on their remaining users; copy everything else."""
    spec = read_apa(model_dir)
    model_dir = Path(model_dir)
    forget = set(splits["forget"]["user_id"])
    affected = affected_shards({user: k for k, shard in enumerate(spec["shards"]) for user in shard["users"]},
                               forget)
    started = time.perf_counter()
    work = output / "work"  # the base the adapters retrain on, and their training workspaces: removed at the end
    place_shard(model_dir / spec["base"], work / "base", config.reflink_unaffected)
    base_model = tokenizer = None
    adapters, groups, centroids, retrained, dropped, trainable, frozen = [], [], [], [], [], 0, 0
    for k, shard in enumerate(spec["shards"]):
        keep = [u for u in shard["users"] if u not in forget]
        if not keep:
            dropped.append(k)  # every user of this shard is forgotten: the ensemble loses the adapter
            continue
        source = model_dir / shard["adapter"]
        if k not in affected:
            adapters.append(source)
            centroids.append(shard["centroid"])
        else:
            recipe = training_recipe(source)
            summary = train_adapter(recipe, work / "base", keep, work / "shards" / f"shard-{k}")
            trainable += summary["trainable_parameters"]
            frozen = summary["parameters"] - summary["trainable_parameters"]  # the base's
            adapters.append(work / "shards" / f"shard-{k}" / "model")
            if base_model is None:
                base_model, tokenizer = load_model(str(work / "base")), load_tokenizer(str(work / "base"))
            centroids.append(shard_centroid(base_model, tokenizer, replace(recipe, output_dir=str(work)), splits,
                                            keep))
            retrained.append(k)
        groups.append(keep)
    if not adapters:
        raise LlmrecError("every shard held only forgotten users: nothing would be left to remember")
    settings = {key: spec[key] for key in ("aggregation", "temperature", "grouping", "seed") if key in spec}
    write_apa(output, work / "base", adapters, groups, centroids,
              {**settings, "retrained_shards": retrained, "dropped_shards": dropped},
              read_model_card(model_dir).get("recipe"),
              place=lambda source, target: place_shard(source, target, config.reflink_unaffected))
    shutil.rmtree(work)  # the output is the ensemble; the workspaces' checkpoints describe nothing kept
    print(f"[apa] retrained {len(retrained)} of {len(spec['shards'])} adapters {retrained}"
          + (f", dropped {dropped}" if dropped else ""))
    return {"timings": {"retrain_seconds": time.perf_counter() - started},
            "steps": {"shards_retrained": len(retrained), "shards_total": len(spec["shards"]),
                      "shards_dropped": len(dropped), "retrained": retrained},
            "trainable_parameters": trainable, "total_parameters": frozen + trainable}
