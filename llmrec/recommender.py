"""The seam both model families sit behind: what evaluation, the audit and the benchmark may ask of a model.

    model dir ──► llmrec_model.json ──► family ──► llm.recommender.LlmRecommender     (prompt → answer logits)
                  (llmrec.store)                  classic.recommender.ClassicRecommender (user, item ids → score)

Whatever its family, a recommender scores named splits to P(yes) and counts its parameters; the caller never asks
which family it holds. An LLM directory may hold a trained model, an unlearning output (an adapter on its
original, checked by hash) or a SISA ensemble of shard models (`llmrec.ensemble.llm`); loading them is done here, so
no backbone imports the ensembles built from it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from accelerate import Accelerator
from safetensors import SafetensorError
from torch import nn

from llmrec.classic.recommender import ClassicRecommender
from llmrec.config import DataConfig
from llmrec.classic.store import load_classic
from llmrec.ensemble.apa import ApaEnsemble
from llmrec.ensemble.llm import SisaEnsemble
from llmrec.errors import LlmrecError
from llmrec.llm.backbone import card_settings, load_model, load_tokenizer
from llmrec.llm.recommender import LlmRecommender
from llmrec.store import (
    APA_FILE,
    ENSEMBLE_FILE,
    MODEL_CARD,
    check_trained_data,
    model_family,
    original_model_dir,
    read_model_card,
    verified_hash,
)


class Recommender(Protocol):
    family: str  # llm | mf | lightgcn
    module: nn.Module  # the weights

    def score(self, names: list[str], splits, batch_size: int, accelerator: Accelerator) -> dict:
        """{split name: (labels [n] in {0, 1}, P(yes) [n] as probabilities)}, in each split's row order."""

    def parameter_counts(self) -> tuple[int, int]:
        """(trainable, total) parameter counts."""


def check_model_card(model_dir: Path, card: dict, data: DataConfig, allow_other_data: bool, key: str) -> None:
    """What a run checks before it uses `model_dir`, before anything is written: the family's own card (an LLM's
    answer tokens against its tokenizer, `llm.backbone.card_settings`; a classic card has no tokens) and the data
    against the card's (`store.check_trained_data`; `key` names the recipe key that allows other data). Raises
    LlmrecError, one line."""
    if model_family(card) == "llm":
        card_settings(model_dir, load_tokenizer(str(model_dir)), card)
    check_trained_data(model_dir, card, data, allow_other_data, key)


def load_recommender(model_dir: str | Path, base_model: str | None = None) -> Recommender:
    """The recommender a model directory holds, of whichever family its card names.

    `base_model`: where an adapter's original is, when not at the path its card records (hash-checked). Raises
    LlmrecError, one line, when a file is damaged, an adapter's original is missing or another model, or an LLM
    card's answer tokens are not its tokenizer's (`card_settings`).
    """
    model_dir = Path(model_dir)
    card = read_model_card(model_dir)
    if model_family(card) != "llm":
        module, index, _ = load_classic(model_dir)
        return ClassicRecommender(module, index, model_family(card), name=str(model_dir))
    tokenizer = load_tokenizer(str(model_dir))
    prompt, answer = card_settings(model_dir, tokenizer, card)
    return LlmRecommender(load_llm_module(model_dir, base_model), tokenizer, prompt, answer, card["max_length"],
                          name=model_dir.name)


def load_llm_module(model_dir: str | Path, base_model: str | None = None) -> nn.Module:
    """The torch module of an LLM model dir: a trained model, an unlearning output (a peft adapter on top of the
    original it names), a SISA ensemble or an APA ensemble (base + adapters, `ensemble.apa`).

    An adapter's original is checked by hash first (`original_model_dir`); `base_model` points at it when it
    moved. Raises LlmrecError when it is missing or is another model.
    """
    model_dir = Path(model_dir)
    if (model_dir / ENSEMBLE_FILE).is_file():
        return SisaEnsemble.load(model_dir)
    if (model_dir / APA_FILE).is_file():
        return ApaEnsemble.load(model_dir)
    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        card = read_model_card(model_dir)
        if card.get("adapter_of"):  # a trained adapter (model.lora.merge=false) on the base it names
            base = Path(base_model or card["adapter_of"])
            if not base.is_dir() or verified_hash(base) != card.get("adapter_of_sha256"):
                raise LlmrecError(f"{model_dir}: its base model {base} is missing or is not the one it was trained "
                                  "on (sha256); point at it with eval.base_model=DIR")
        elif not card.get("unlearned_from"):
            raise LlmrecError(f"{model_dir}: adapter without 'unlearned_from' in {MODEL_CARD}")
        else:
            base = original_model_dir(model_dir, card, base_model)
        # the adapter was trained on the original as loaded then (4-bit under QLoRA), so it is scored on that
        original = load_model(str(base), quant=card.get("quant"))
        try:
            return PeftModel.from_pretrained(original, model_dir).eval()
        except (OSError, ValueError, SafetensorError) as exc:
            raise LlmrecError(f"cannot load the adapter in {model_dir}: {str(exc).splitlines()[0]}") from None
    return load_model(str(model_dir))
