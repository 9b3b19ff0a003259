"""A classic model directory: weights (safetensors) + llmrec_model.json with its kind, settings and id index.

It carries the same card file as an LLM model dir, so `llmrec evaluate`, the benchmark and unlearning
outputs (`unlearned_from`) treat both alike.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from llmrec.classic.data import Index
from llmrec.classic.lightgcn import LightGCN
from llmrec.classic.mf import MatrixFactorization
from llmrec.ensemble.classic import ClassicEnsemble
from llmrec.errors import LlmrecError
from llmrec.store import MODEL_CARD, read_model_card, write_model_card

WEIGHTS = "model.safetensors"


def model_spec(model) -> dict:
    """Kind, table sizes and settings: what `build_model` needs to rebuild the model before loading weights."""
    spec = {"kind": model.kind, **model.settings()}
    if isinstance(model, ClassicEnsemble):
        spec["shards"] = [model_spec(shard) for shard in model.shards]
    else:
        spec.update(num_users=model.user.num_embeddings, num_items=model.item.num_embeddings)
    return spec


def save_classic(model, index: Index, output: Path, **card) -> None:
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}, str(output / WEIGHTS))
    write_model_card(output, {**card, "classic": model_spec(model), "users": index.users, "items": index.items})


def build_model(spec: dict, weights: dict | None = None, prefix: str = ""):
    """An untrained model of the shape `spec` describes; a LightGCN takes its graph from weights[prefix + 'edges']."""
    if spec["kind"] == "ensemble":
        shards = [build_model(shard, weights, f"{prefix}shards.{k}.") for k, shard in enumerate(spec["shards"])]
        return ClassicEnsemble(shards, spec["aggregation"], spec["hidden"], spec.get("transform", False))
    settings = {k: v for k, v in spec.items() if k not in ("kind", "num_users", "num_items")}
    if spec["kind"] == "lightgcn":
        return LightGCN(spec["num_users"], spec["num_items"], weights[f"{prefix}edges"], **settings)
    return MatrixFactorization(spec["num_users"], spec["num_items"], **settings)


def load_classic(model_dir: Path) -> tuple[MatrixFactorization, Index, dict]:
    """The model, its id index and card. Raises LlmrecError, one line naming the file, when the card does not
    describe a classic model or the weights are missing, damaged or of another shape than the card says."""
    card = read_model_card(model_dir)  # also checks the safetensors header covers the file
    path = Path(model_dir) / WEIGHTS
    if not path.is_file():
        raise LlmrecError(f"{path}: missing (a classic model directory holds its weights there)")
    try:
        weights = load_file(str(path))
        model = build_model(card["classic"], weights)
        model.load_state_dict(weights)
        index = Index(card["users"], card["items"])
    except (KeyError, TypeError, ValueError, RuntimeError, SafetensorError) as exc:
        # RuntimeError: load_state_dict's missing / unexpected keys and shape mismatches
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise LlmrecError(f"{path} does not load as the model its {MODEL_CARD} describes "
                          f"({type(exc).__name__}: {first})") from None
    return model.eval(), index, card


@torch.no_grad()
def predict(model: MatrixFactorization, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
    return model.probability(model(users, items))
