"""`llmrec train RECIPE` with model.family mf | lightgcn: MF or LightGCN on the LLM's samples, splits and forget set.

Gradient training (Adam on the regularised BCE of `losses.py`, best epoch by valid AUC) or, for MF,
weighted ALS (a fixed number of sweeps, as Unlearn-ALS needs to retrace it). Outputs in output_dir:
model/ (weights + llmrec_model.json, whose `recipe` is the resolved recipe, the one classic unlearning reads),
train_metrics.json and config.yaml, a copy of that recipe written once model/ is in place, so a killed or
refused run leaves it describing the model/ beside it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import ClassVar, Literal

import torch

from llmrec.classic.data import Index, Triples
from llmrec.classic.losses import regularized_bce
from llmrec.classic.mf import MatrixFactorization, als_objective, als_sweep
from llmrec.classic.store import build_model, predict, save_classic
from llmrec.config import THREADS_HELP, DataConfig, ForgetConfig, option, to_dict, to_yaml
from llmrec.data.samples import data_fingerprint, prepare_splits, training_split
from llmrec.ensemble.classic import ClassicEnsemble
from llmrec.ensemble.partition import balanced_kmeans, random_partition
from llmrec.errors import ConfigError
from llmrec.eval.metrics import utility_metrics
from llmrec.io import atomic_dir, hold_lock, write_json, write_text
from llmrec.llm.accel import threads_note
from llmrec.store import parameter_counts
from llmrec.progress import progress


@dataclass
class ClassicModelConfig:
    RENAMED_KEYS: ClassVar[dict[str, str]] = {"kind": "family"}  # model.kind still reads, with a warning, for a release

    family: Literal["mf", "lightgcn"] = option(
        "mf", "mf | lightgcn (`llmrec train` reads a recipe whose model.family is llm, or unset, as an LLM recipe); "
        "model.kind, its old name, still reads for one release")
    dim: int = option(64, "embedding size", ge=1)
    layers: int = option(2, "LightGCN propagation layers (IFRU uses 1)", ge=1)
    init_std: float = option(0.1, "std of the normal initialisation of the embeddings", gt=0)

    @property
    def kind(self) -> str:
        """`family` by its old name, for code that reads it so."""
        return self.family


@dataclass
class AlsConfig:
    alpha: float = option(4.0, "confidence of a rated pair is 1 + alpha", ge=0)
    unobserved_confidence: float = option(
        0.0, "confidence of a never-rated pair, whose preference is 0 (Hu et al. use 1; 0 fits the ratings only)",
        ge=0)
    reg: float = option(1.0, "ridge on the factors (> 0: keeps every solve well-posed)", gt=0)


@dataclass
class EnsembleConfig:
    shards: int = option(1, "more than 1 trains one model per user shard behind one ensemble (SISA, RecEraser)",
                        ge=1)
    partition: Literal["random", "kmeans"] = option(
        "random", "random (SISA) | kmeans: RecEraser's balanced k-means on the user embeddings of a model trained "
        "on all the data")
    aggregation: Literal["mean", "attention"] = option(
        "mean", "mean of the shards' P(yes) (SISA) | attention over the shards' embeddings (RecEraser)")
    hidden: int = option(32, "attention hidden size", ge=1)
    transform: bool = option(
        True, "attention: RecEraser's per-shard transform W_k e + b_k of the shard embeddings before attention, "
        "trained with the aggregator (the reference's trans_W/trans_B); false: attention on the raw embeddings")
    aggregator_epochs: int = option(10, "epochs of the attention aggregator over all training triples", ge=1)
    kmeans_iterations: int = option(10, "balanced k-means rounds", ge=1)


@dataclass
class ClassicTrainConfig:
    optimizer: Literal["adam", "als"] = option("adam", "adam (BCE on logits) | als (weighted ALS, MF only)")
    epochs: int = option(30, "passes over the training triples (ALS: sweeps)", ge=1)
    batch_size: int = option(1024, "triples per Adam step", ge=1)
    learning_rate: float = option(1e-2, "Adam learning rate", gt=0)
    weight_decay: float = option(1e-4, "L2 coefficient inside the objective (IFRU's Hessian includes it)", ge=0)
    train_on: str = option("train", "split to train on: train | retained | forget")
    only_users: str | None = option(None, "file of user ids: train only on their triples (a shard)")
    seed: int = option(0, "initialisation and shuffling seed", ge=0)
    als: AlsConfig = option(AlsConfig(), "weighted ALS settings (optimizer: als)")
    ensemble: EnsembleConfig = option(EnsembleConfig(), "shard ensemble (shards > 1)")


@dataclass
class ClassicRecipe:
    output_dir: str = option("runs/classic", "where model/, train_metrics.json and config.yaml go")
    data: DataConfig = option(DataConfig(), "input data and sample construction (the LLM's)")
    forget: ForgetConfig = option(ForgetConfig(), "which training users form the forget set")
    model: ClassicModelConfig = option(ClassicModelConfig(), "the classic backbone")
    train: ClassicTrainConfig = option(ClassicTrainConfig(), "training")
    threads: int = option(0, THREADS_HELP, ge=0)


def graph_edges(triples: Triples) -> torch.Tensor:
    """LightGCN's graph: one edge per rated (user, item) pair, liked or not — a rating is an interaction."""
    return torch.stack([triples.users, triples.items])


def new_model(config: ClassicModelConfig, index: Index, train: Triples, link: str = "sigmoid") -> MatrixFactorization:
    spec = {"kind": config.family, "num_users": len(index.users), "num_items": len(index.items), "dim": config.dim,
            "init_std": config.init_std, "link": link}
    if config.family == "lightgcn":
        spec["layers"] = config.layers
    return build_model(spec, {"edges": graph_edges(train)} if config.family == "lightgcn" else None)


def auc(model: MatrixFactorization, triples: Triples) -> float:
    return utility_metrics(triples.labels.tolist(), predict(model, triples.users, triples.items).tolist())["auc"]


def fit_gradient(model: MatrixFactorization, train: Triples, valid: Triples, config: ClassicTrainConfig,
                 desc: str = "train") -> list[dict]:
    """Adam on the regularised BCE, one shuffled pass per epoch; the best epoch by valid AUC is kept."""
    optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate)
    order = torch.Generator().manual_seed(config.seed)
    history, best_auc, best_state = [], -1.0, None
    for epoch in (bar := progress(range(1, config.epochs + 1), desc=desc)):
        model.train()
        for batch in torch.randperm(len(train), generator=order).split(config.batch_size):
            loss = regularized_bce(model(train.users[batch], train.items[batch]), train.labels[batch],
                                   model.parameters(), config.weight_decay)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        valid_auc = auc(model.eval(), valid)
        history.append({"epoch": epoch, "loss": loss.item(), "valid_auc": valid_auc})
        bar.set_postfix(loss=f"{loss.item():.4f}", valid_auc=f"{valid_auc:.4f}")
        if best_state is None or valid_auc > best_auc:  # a nan AUC (one-class valid split) keeps the first epoch
            best_auc, best_state = valid_auc, copy.deepcopy(model.state_dict())
    model.load_state_dict(best_state)
    return history


def als_matrices(train: Triples, num_users: int, num_items: int, config: AlsConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Dense confidence and preference matrices: rated pairs get 1 + alpha and their label, the rest c₀ and 0."""
    confidence = torch.full((num_users, num_items), config.unobserved_confidence)
    preference = torch.zeros(num_users, num_items)
    confidence[train.users, train.items] = 1.0 + config.alpha
    preference[train.users, train.items] = train.labels
    return confidence, preference


def fit_als(model: MatrixFactorization, confidence: torch.Tensor, preference: torch.Tensor, config: AlsConfig,
            sweeps: int, valid: Triples | None = None, desc: str = "ALS") -> list[dict]:
    """`sweeps` full ALS sweeps (all of them: ALS never raises its objective, so there is no epoch to pick)."""
    history = []
    for sweep in (bar := progress(range(1, sweeps + 1), desc=desc)):
        als_sweep(model, confidence, preference, config.reg)
        record = {"sweep": sweep, "objective": als_objective(model, confidence, preference, config.reg)}
        if valid is not None:
            record["valid_auc"] = auc(model, valid)
        history.append(record)
        bar.set_postfix({k: f"{v:.4f}" for k, v in record.items() if k != "sweep"})
    return history


def partition_users(recipe: ClassicRecipe, index: Index, train: Triples, valid: Triples) -> torch.Tensor:
    """Shard of every user row (-1: no training triples): seeded random (`ensemble.partition.random_partition`), or
    RecEraser's balanced k-means (`ensemble.partition.balanced_kmeans`) on the user embeddings of a model first
    trained on all of `train`."""
    config = recipe.train.ensemble
    active = torch.unique(train.users)
    if config.partition == "random":
        return random_partition(len(index.users), active, config.shards, recipe.train.seed)
    assignment = torch.full((len(index.users),), -1, dtype=torch.long)
    torch.manual_seed(recipe.train.seed)
    embedder = new_model(recipe.model, index, train)
    fit_gradient(embedder, train, valid, recipe.train, desc="embeddings for k-means")
    with torch.no_grad():
        vectors = embedder.tables()[0][active]
    assignment[active] = balanced_kmeans(vectors, config.shards, config.kmeans_iterations, recipe.train.seed)
    return assignment


def fit_shard(recipe: ClassicRecipe, index: Index, triples: Triples, valid: Triples, shard: int):
    """Shard `shard`'s model: the recipe's model and optimiser on that shard's triples alone."""
    torch.manual_seed(recipe.train.seed + shard)
    model = new_model(recipe.model, index, triples)
    fit_gradient(model, triples, valid, replace(recipe.train, seed=recipe.train.seed + shard), desc=f"shard {shard}")
    return model


def fit_aggregator(ensemble: ClassicEnsemble, train: Triples, valid: Triples, config: ClassicTrainConfig) -> None:
    """RecEraser's second stage: the attention weights learn to combine frozen shard embeddings."""
    for shard in ensemble.shards:
        shard.requires_grad_(False)
    torch.manual_seed(config.seed)
    ensemble.reset_aggregator()
    fit_gradient(ensemble, train, valid, replace(config, epochs=config.ensemble.aggregator_epochs, weight_decay=0.0),
                 desc="aggregator")
    ensemble.requires_grad_(True)


def fit_ensemble(recipe: ClassicRecipe, index: Index, train: Triples, valid: Triples,
                 assignment: torch.Tensor) -> ClassicEnsemble:
    config = recipe.train.ensemble
    shard_of = assignment[train.users]
    shards = [fit_shard(recipe, index, train.subset(shard_of == k), valid, k) for k in range(config.shards)]
    ensemble = ClassicEnsemble(shards, config.aggregation, config.hidden, config.transform)
    if config.aggregation == "attention":
        fit_aggregator(ensemble, train, valid, recipe.train)
    return ensemble


def train_classic(recipe: ClassicRecipe) -> dict:
    """Train `recipe` into its output_dir, held locked for the run (`llmrec.io.hold_lock`): a second run into it
    is one line naming the first's pid, exit 2, not two runs whose last model/ silently wins."""
    with hold_lock(Path(recipe.output_dir)):
        return _train_classic(recipe)


def _train_classic(recipe: ClassicRecipe) -> dict:
    cfg = recipe.train
    if cfg.optimizer == "als" and (recipe.model.family != "mf" or cfg.ensemble.shards > 1):
        raise ConfigError("train.optimizer=als trains one MF (model.family: mf, train.ensemble.shards: 1)")
    print(f"resolved config:\n{to_yaml(recipe)}")
    print(threads_note())
    splits = prepare_splits(recipe.data, recipe.forget)  # bad data or forget settings stop here
    index = Index.from_splits(splits)
    train = index.encode(training_split(splits, cfg.train_on, cfg.only_users))
    valid, test = index.encode(splits["valid"]), index.encode(splits["test"])
    out = Path(recipe.output_dir)

    torch.manual_seed(cfg.seed)
    started = time.perf_counter()
    card = {"trained_on": cfg.train_on, "recipe": to_dict(recipe), "data": data_fingerprint(recipe.data)}
    if cfg.ensemble.shards > 1:
        assignment = partition_users(recipe, index, train, valid)
        model = fit_ensemble(recipe, index, train, valid, assignment)
        history, card["partition"] = [], assignment.tolist()
    else:
        model = new_model(recipe.model, index, train, link="clamp" if cfg.optimizer == "als" else "sigmoid")
        if cfg.optimizer == "als":
            confidence, preference = als_matrices(train, len(index.users), len(index.items), cfg.als)
            history = fit_als(model, confidence, preference, cfg.als, cfg.epochs, valid)
        else:
            history = fit_gradient(model, train, valid, cfg)
    wall = time.perf_counter() - started
    with atomic_dir(out / "model") as tmp:
        save_classic(model, index, tmp, **card)
    write_text(out / "config.yaml", to_yaml(recipe))  # describes the model/ just put in place
    parameters = parameter_counts(model)[1]
    metrics = {"parameters": parameters, "trainable_parameters": parameters, "train_samples": len(train),
               "valid_auc": auc(model, valid), "test_auc": auc(model, test), "train_seconds": wall, "history": history,
               "threads": torch.get_num_threads()}
    write_json(out / "train_metrics.json", metrics)
    print(f"{recipe.model.family} ({cfg.optimizer}): valid AUC {metrics['valid_auc']:.4f}, test AUC "
          f"{metrics['test_auc']:.4f}, {wall:.1f}s; model in {out / 'model'}")
    return metrics
