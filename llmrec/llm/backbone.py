"""Backbones: any HF causal LM or encoder-decoder (T5) by path, hub id or preset name, or a tiny one built locally.

The tiny default (a Llama, or a T5 with `model.tiny.architecture: t5`) is saved with
`save_pretrained`, so everything downstream loads it exactly as it would load a hub model, and
nothing is downloaded. Preset names (llmrec.llm.presets) resolve to prepared local directories.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    LlamaConfig,
    LlamaForCausalLM,
    PretrainedConfig,
    PreTrainedTokenizerFast,
    T5Config,
    T5ForConditionalGeneration,
)

from llmrec.config import LoraSettings, PromptConfig, TinyBackboneConfig, from_dict
from llmrec.errors import ConfigError, LlmrecError
from llmrec.llm.presets import resolve_backbone
from llmrec.store import MODEL_CARD, check_model_files, read_model_card

SPECIAL_TOKENS = {"pad_token": "<pad>", "bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>"}


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


def tiny_model(config: TinyBackboneConfig, tokenizer, max_length: int):
    """A small Llama with tied embeddings, or a small T5 (E2URec's own backbone family) of the same width."""
    special = dict(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    if config.architecture == "t5":
        t5_config = T5Config(
            vocab_size=len(tokenizer),
            d_model=config.hidden_size,
            d_kv=config.hidden_size // config.num_heads,
            d_ff=config.intermediate_size,
            num_layers=config.num_layers,
            num_heads=config.num_heads,
            decoder_start_token_id=tokenizer.pad_token_id,
            **special,
        )
        return T5ForConditionalGeneration(t5_config)
    llama_config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size,
        num_hidden_layers=config.num_layers,
        num_attention_heads=config.num_heads,
        num_key_value_heads=config.num_heads,
        max_position_embeddings=max_length,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        **special,
    )
    return LlamaForCausalLM(llama_config)


def build_tiny_backbone(corpus: Iterable[str], config: TinyBackboneConfig, max_length: int, out_dir: Path) -> Path:
    """Train the tokenizer, initialise the tiny model with a fixed seed, save both to out_dir (atomically: a failed
    or interrupted save leaves no temp dir and the previous out_dir as it was)."""
    from llmrec.io import atomic_dir

    tokenizer = train_tokenizer(corpus, config.vocab_size)
    with torch.random.fork_rng():  # seeded init without disturbing the caller's random stream
        torch.manual_seed(config.seed)
        model = tiny_model(config, tokenizer, max_length)
    with atomic_dir(out_dir) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
    return out_dir


def load_tokenizer(name_or_path: str):
    """Left padding and truncation: the answer position is then the last one in every row."""
    name_or_path = resolve_backbone(name_or_path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(name_or_path)
    except (OSError, ValueError) as exc:
        raise LlmrecError(f"cannot load a tokenizer from '{name_or_path}': {str(exc).splitlines()[0]}") from None
    tokenizer.padding_side = "left"
    tokenizer.truncation_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def model_class(config):
    """The Auto class for a config: encoder-decoders (T5) score at the first decoder position, the rest are causal."""
    return AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM


def model_config(model):
    """The HF config behind any wrapper: the model's own (peft forwards .config), else the first submodule's that
    has one (DDP's .module, a SISA ensemble's shards, torch.compile's original). None for a module without any."""
    for module in model.modules():
        config = getattr(module, "config", None)
        if isinstance(config, PretrainedConfig):
            return config
    return None


def is_encoder_decoder(model) -> bool:
    return bool(getattr(model_config(model), "is_encoder_decoder", False))


def quantization_config(quant: str | None):
    """`quant: 4bit` is QLoRA's NF4 storage (double-quantised constants): linear weights take about a quarter of
    bf16. They compute in bf16 where that is fast (as QLoRA does), else fp32; the other modules stay in fp32."""
    if quant in (None, "none"):
        return None
    if quant != "4bit":
        raise LlmrecError(f"model quantization must be none or 4bit, got '{quant}'")
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise LlmrecError("quant: 4bit needs bitsandbytes>=0.47: pip install 'llmrec[quant]'") from None
    from transformers import BitsAndBytesConfig

    from llmrec.llm.accel import resolve_mixed_precision

    compute_dtype = torch.bfloat16 if resolve_mixed_precision("auto") == "bf16" else torch.float32
    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=compute_dtype,
                              bnb_4bit_use_double_quant=True)


def load_model(name_or_path: str, dtype: torch.dtype | None = None, quant: str | None = None):
    """A whole HF model by path, hub id or preset name. A local directory's JSON and safetensors files are checked
    first (`check_model_files`). Raises LlmrecError, one line naming the file where one is damaged, when the model
    cannot be loaded or the directory holds an adapter, not a whole model."""
    name_or_path = resolve_backbone(name_or_path)
    local = Path(name_or_path)
    if local.is_dir():
        if (local / "adapter_config.json").is_file() and not (local / "config.json").is_file():
            raise LlmrecError(f"{local} holds an adapter (an unlearning output), not a whole model: use its original "
                              "or a merged copy (unlearn with merge=true writes one to merged/)")
        check_model_files(local)
    try:
        config = AutoConfig.from_pretrained(name_or_path)
        kwargs = {"dtype": dtype, "quantization_config": quantization_config(quant)}
        if kwargs["quantization_config"] is not None and torch.cuda.is_available():
            kwargs["device_map"] = {"": torch.cuda.current_device()}  # 4-bit weights are placed at load time
        model = model_class(config).from_pretrained(name_or_path, **kwargs)
    except (OSError, ValueError, SafetensorError) as exc:
        raise LlmrecError(f"cannot load a model from '{name_or_path}': {str(exc).splitlines()[0]}") from None
    for module in model.modules():
        # bitsandbytes repacks 4-bit weights for its CPU inference kernel on the first eval-mode forward, and that
        # kernel has no backward: adapters trained after a teacher pass would silently get no gradient.
        if getattr(module, "support_avx512bf16_for_cpu", False):
            module.support_avx512bf16_for_cpu = False
    return model


def add_lora(model, settings: LoraSettings):
    """Wrap with a peft LoRA adapter; only the adapter weights stay trainable (T5: peft's default q, v)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=settings.r,
        lora_alpha=settings.alpha,
        lora_dropout=settings.dropout,
        target_modules=settings.target_modules,
        task_type="SEQ_2_SEQ_LM" if is_encoder_decoder(model) else "CAUSAL_LM",
    )
    return get_peft_model(model, config)


@dataclass(frozen=True)
class AnswerTokens:
    yes_id: int
    no_id: int
    yes_text: str
    no_text: str


def resolve_answer_tokens(tokenizer, yes: str, no: str, chat: bool = False) -> AnswerTokens:
    """Prefer ' Yes' (what follows 'Answer:' in running text), else 'Yes'; each must be one token.

    In a chat template the answer opens the assistant turn, after a newline: there 'Yes' comes first.
    """
    found = {}
    for word in (yes, no):
        for text in ((word, " " + word) if chat else (" " + word, word)):
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


def card_settings(model_dir: Path, tokenizer, card: dict | None = None) -> tuple[PromptConfig, AnswerTokens]:
    """The prompt and answer tokens a model was trained with, from its card, checked against its tokenizer.

    Each answer id must be the single token its text encodes to, and each text the prompt's answer word (with or
    without a leading space): swapped or edited ids would invert every score and let unlearning train on inverted
    answers. Raises LlmrecError naming the card and the mismatch.
    """
    card = read_model_card(model_dir) if card is None else card
    path = Path(model_dir) / MODEL_CARD
    if "classic" in card:
        raise LlmrecError(f"{model_dir} holds a classic model (MF / LightGCN): it has no prompt or answer tokens; "
                          "`llmrec unlearn` and `llmrec evaluate` read it as one")
    try:
        prompt = from_dict(PromptConfig, card["prompt"], "prompt.")
        answer = AnswerTokens(**card["answer"])
        if not (isinstance(answer.yes_id, int) and isinstance(answer.no_id, int)):
            raise TypeError("answer ids must be integers")
        if not (isinstance(answer.yes_text, str) and isinstance(answer.no_text, str)):
            raise TypeError("answer texts must be strings")
    except (KeyError, TypeError, ConfigError) as exc:
        raise LlmrecError(f"{path}: damaged model card ({type(exc).__name__}: {exc})") from None
    for side, word in (("yes", prompt.yes), ("no", prompt.no)):
        token, text = getattr(answer, f"{side}_id"), getattr(answer, f"{side}_text")
        if text.strip() != word:
            raise LlmrecError(f"{path}: answer.{side}_text {text!r} is not the prompt's {side} word {word!r}; the "
                              "card is damaged")
        encoded = tokenizer.encode(text, add_special_tokens=False)
        if encoded != [token]:
            raise LlmrecError(f"{path}: answer.{side}_id is {token}, but {text!r} is token {encoded} in "
                              f"{model_dir}'s tokenizer; the card is damaged or belongs to another model")
    return prompt, answer


def merged_copy(peft_model):
    """The adapter folded into a copy: the live peft model keeps training or saving its adapter."""
    return copy.deepcopy(peft_model).merge_and_unload()


