"""RecEraser (Chen et al. 2022, "Recommendation Unlearning"): balanced k-means user shards, one sub-model per
shard, attention-based aggregation of the sub-models' embeddings, each first mapped by its shard's own transform
W_k e + b_k as in the reference code (chenchongthu/Recommendation-Unlearning, RecEraser_BPR.py L197-199;
`train.ensemble.transform`, on by default). Unlearning retrains the shards that held forgotten users and then the
whole aggregator (transform and attention, from fresh weights), on the retained triples. Where the aggregator
differs from the reference: the table in ensemble/classic.py.

Train the original with train.ensemble: {shards: 4, partition: kmeans, aggregation: attention}. Of the paper's
three partitions (user-, item-, interaction-based) the user-based one is built here: user deletion touches one
shard per user, where item- or interaction-based shards would all hold some of a deleted user's triples.
"""

from __future__ import annotations

from llmrec.errors import LlmrecError
from llmrec.unlearn.methods.sisa import retrain_affected_shards
from llmrec.unlearn.registry import CLASSIC, register


@register("receraser", families=CLASSIC)
def receraser(work, config: None) -> dict:
    if getattr(work.model, "aggregation", None) != "attention":
        raise LlmrecError("receraser forgets from an attention ensemble: train the original with "
                          "train.ensemble.partition=kmeans train.ensemble.aggregation=attention")
    return retrain_affected_shards(work, "receraser")
