"""Backbones: any HF causal LM by path or hub id, or a tiny Llama + BPE tokenizer built locally.

The tiny default is saved with `save_pretrained`, so everything downstream loads it exactly as
it would load a hub model, and nothing is downloaded.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedTokenizerFast,
)

from llmrec.config import LoraSettings, TinyBackboneConfig
from llmrec.errors import LlmrecError

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}
MODEL_CARD = "llmrec_model.json"  # answer tokens + prompt settings travel with the weights
ENSEMBLE_FILE = "sisa.json"  # marks a SISA ensemble: its shard models (relative paths) and their users


def train_tokenizer(corpus: Iterable[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style) trained on the prompt corpus; left padding for answer-at-the-end."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS.values()),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, padding_side="left", truncation_side="left", **SPECIAL_TOKENS
    )


def build_tiny_backbone(corpus: Iterable[str], config: TinyBackboneConfig, max_length: int, out_dir: Path) -> Path:
    """Train the tokenizer, initialise a small Llama with tied embeddings, save both to out_dir."""
    tokenizer = train_tokenizer(corpus, config.vocab_size)
    llama_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=max_length,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    with torch.random.fork_rng():  # seeded init without disturbing the caller's random stream
        torch.manual_seed(config.seed)
        model = LlamaForCausalLM(llama_config)
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return out_dir


def load_tokenizer(name_or_path: str):
    """Left padding and truncation: the answer position is then the last one in every row."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise LlmrecError(f"cannot load a tokenizer from '{name_or_path}': {str(exc).splitlines()[0]}") from None
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_model(name_or_path: str, dtype: torch.dtype | None = None):
    try:
        return AutoModelForCausalLM.from_pretrained(name_or_path, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise LlmrecError(f"cannot load a causal LM from '{name_or_path}': {str(exc).splitlines()[0]}") from None


def add_lora(model, settings: LoraSettings):
    """Wrap with a peft LoRA adapter; only the adapter weights stay trainable."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


@dataclass(frozen=True)
class AnswerTokens:
    yes_id: int
    no_id: int
    yes_text: str
    no_text: str


def resolve_answer_tokens(tokenizer, yes: str, no: str) -> AnswerTokens:
    """Prefer the ' Yes' spelling (what follows 'Answer:' in running text), else 'Yes'; each must be one token."""
    found = {}
    for word in (yes, no):
        for text in (" " + word, word):
            ids = tokenizer.encode(text, add_special_tokens=False)
            if len(ids) == 1:
                found[word] = (ids[0], text)
                break
        else:
            raise LlmrecError(
                f"answer word '{word}' is not a single token in this tokenizer, with or without a leading space"
            )
    if found[yes][0] == found[no][0]:
        raise LlmrecError(f"answer words '{yes}' and '{no}' map to the same token")
    return AnswerTokens(found[yes][0], found[no][0], found[yes][1], found[no][1])


def write_model_card(model_dir: Path, card: dict) -> None:
    (model_dir / MODEL_CARD).write_text(json.dumps(card, indent=2))


def read_model_card(model_dir: Path) -> dict:
    path = Path(model_dir) / MODEL_CARD
    if not path.is_file():
        raise LlmrecError(f"{model_dir}: not an llmrec model directory (no {MODEL_CARD}); train one with `llmrec train`")
    return json.loads(path.read_text())


def load_recommender(model_dir: str | Path):
    """A trained model dir, an unlearning output (peft adapter) on top of the original it names, or a SISA ensemble."""
    model_dir = Path(model_dir)
    if (model_dir / ENSEMBLE_FILE).is_file():
        from llmrec.unlearn.sisa import SisaEnsemble

        return SisaEnsemble.load(model_dir)
    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        original = read_model_card(model_dir).get("unlearned_from")
        if not original:
            raise LlmrecError(f"{model_dir}: adapter without 'unlearned_from' in {MODEL_CARD}")
        return PeftModel.from_pretrained(load_model(original), model_dir).eval()
    return load_model(str(model_dir))


def merged_copy(peft_model):
    """The adapter folded into a copy: the live peft model keeps training or saving its adapter."""
    return copy.deepcopy(peft_model).merge_and_unload()


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total): the cost figure every training and unlearning run reports."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total
