"""Shard ensembles, for both model families: SISA (Bourtoule et al. 2021), RecEraser (Chen et al. 2022) and, for
LLMs, APA (Hu et al. 2024: LoRA adapters on one frozen base).

- Training users are partitioned into disjoint shards, a user's whole history in one shard, since requests
  erase users.
- One model per shard, trained only on its shard's data; the shards are combined when scoring (mean P(yes), or
  RecEraser's attention over the shards' embeddings).
- Unlearning retrains exactly the shards that held a forgotten user (`partition.affected_shards`); the others are
  kept as they are.
- Holdout users (`data.holdout`) never reach a shard: partitions are built from the training split.
- No backbone imports this package (`tests/test_imports.py`): ensembles are built from single models.

Modules: `partition` (pure: shard_users, random_partition, balanced_kmeans, affected_shards), `llm` (SISA
ensembles of LLMs on disk: train, SisaEnsemble, shard models under shards/), `apa` (adapter ensembles: train_apa,
ApaEnsemble, base and adapters inside model/), `classic` (ClassicEnsemble,
Attention, ShardTransform for MF / LightGCN). The unlearning runners are `llmrec.unlearn.methods.sisa` (both
families), `llmrec.unlearn.methods.apa` and `llmrec.classic.methods.receraser`. This file imports nothing, so a module that needs one part
does not load the others.
"""
