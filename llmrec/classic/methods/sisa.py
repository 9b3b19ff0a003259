"""SISA (Bourtoule et al. 2021) on classic models: retrain only the shard models that held forgotten users.

The original is a shard ensemble (`train.ensemble.shards` > 1, random user partition, mean of P(yes));
each affected shard is retrained from scratch, with its own seed, on its users' retained triples, so the
result is exactly what training the ensemble without the forgotten users would give.
"""

from __future__ import annotations

import time

import torch

from llmrec.classic.ensemble import ClassicEnsemble
from llmrec.classic.train import fit_aggregator, fit_shard
from llmrec.errors import LlmrecError
from llmrec.store import parameter_counts
from llmrec.unlearn.registry import CLASSIC, register


def retrain_affected_shards(work, method: str) -> dict:
    ensemble = work.model
    if not isinstance(ensemble, ClassicEnsemble):
        raise LlmrecError(f"{method} forgets from a shard ensemble: train the original with train.ensemble.shards=4")
    started = time.perf_counter()
    partition = torch.tensor(work.card["partition"])
    affected = sorted(set(partition[torch.unique(work.forget.users)].tolist()) - {-1})
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
def sisa(work, config: None) -> dict:
    return retrain_affected_shards(work, "sisa")
