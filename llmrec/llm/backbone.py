"""Backbones: any HF causal LM or encoder-decoder (T5) by path, hub id or preset name, or a tiny one built locally.

The tiny default (a Llama, or a T5 with `model.tiny.architecture: t5`) is saved with
`save_pretrained`, so everything downstream loads it exactly as it would load a hub model, and
nothing is downloaded. Preset names (llmrec.llm.presets) resolve to prepared local directories.
"""

from __future__ import annotations

import copy
import json
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

from llmrec.config import DataConfig, LoraSettings, PromptConfig, TinyBackboneConfig, from_dict
from llmrec.errors import ConfigError, LlmrecError
from llmrec.io import recover, write_json
from llmrec.llm.presets import resolve_backbone

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


def write_model_card(model_dir: Path, card: dict) -> None:
    write_json(Path(model_dir) / MODEL_CARD, card)  # strict JSON: an undefined metric is null


def _read_json(path: Path, what: str):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise LlmrecError(f"{path}: damaged {what}, not readable as JSON ({str(exc).splitlines()[0]})") from None


def check_model_files(model_dir: Path) -> None:
    """A cheap look at every file a model directory is loaded from: each *.json parses, and each *.safetensors
    header parses and its tensors cover the file exactly (safetensors' own check; the header only is read), so a
    truncated or overwritten file is named before anything loads it. Raises LlmrecError naming the first damaged
    file. Flipped bytes inside tensor data pass: only a hash sees those (`original_model_dir`)."""
    from safetensors import safe_open

    for path in sorted(Path(model_dir).glob("*.json")):
        if path.name != MODEL_CARD:  # read_model_card parses it
            _read_json(path, "model file")
    for path in sorted(Path(model_dir).glob("*.safetensors")):
        try:
            with safe_open(str(path), framework="pt"):
                pass
        except (OSError, SafetensorError) as exc:
            raise LlmrecError(f"{path}: damaged weights file ({str(exc).splitlines()[0]}); restore it from a "
                              "copy or train again") from None


def _recover_missing(model_dir: Path) -> None:
    """A model dir that is not there may be one whose writer was killed between atomic_dir's two renames: finish
    that swap first."""
    if not model_dir.exists():
        try:
            recover(model_dir)
        except OSError:  # e.g. a read-only parent: nothing can be repaired there
            pass


def card_family(model_dir: str | Path) -> str | None:
    """'classic' or 'llm', by whether the model card of `model_dir` has a `classic` key; None when there is no
    readable card (`llmrec unlearn` then goes by the recipe: `cli.unlearn_family`). Only the card is read: damaged
    weights are named by the path the card chooses."""
    model_dir = Path(model_dir)
    _recover_missing(model_dir)
    try:
        card = json.loads((model_dir / MODEL_CARD).read_text())
    except (OSError, ValueError):  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        return None
    return None if not isinstance(card, dict) else "classic" if "classic" in card else "llm"


def read_model_card(model_dir: Path) -> dict:
    """llmrec_model.json of a model directory, after `check_model_files`. Raises LlmrecError as one line naming
    the directory or file: it does not exist, is no llmrec model directory, or a file in it is damaged."""
    model_dir = Path(model_dir)
    path = model_dir / MODEL_CARD
    _recover_missing(model_dir)
    if not model_dir.is_dir():
        problem = "does not exist" if not model_dir.exists() else "is a file, not a directory"
        raise LlmrecError(f"{model_dir}: not an llmrec model directory: it {problem}")
    if not path.is_file():
        raise LlmrecError(f"{model_dir}: not an llmrec model directory (no {MODEL_CARD}); train one with `llmrec train`")
    card = _read_json(path, "model card")
    if not isinstance(card, dict):
        raise LlmrecError(f"{path}: damaged model card (a JSON object expected, got {type(card).__name__})")
    check_model_files(model_dir)
    return card


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


def check_trained_data(model_dir: Path, card: dict, data: DataConfig, allowed: bool, key: str) -> None:
    """The data a run is given must be the data `model_dir` was trained on: its card's `data` (recorded by
    `llmrec train`, LLM or classic, from `samples.data_fingerprint`) against the fingerprint of `data`.

    `allowed` (the recipe key `key`) turns a mismatch into a printed note. A card from before the fingerprint
    was recorded is used with a printed warning, since nothing can be checked. Raises LlmrecError naming both
    fingerprints and what differs.
    """
    from llmrec.data.samples import data_fingerprint

    recorded = card.get("data")
    if not isinstance(recorded, dict) or "sha256" not in recorded:
        print(f"warning: {model_dir}: {MODEL_CARD} records no fingerprint of the data it was trained on (made before "
              "llmrec recorded one), so the data cannot be checked to be the same")
        return
    current = data_fingerprint(data)
    if current["sha256"] == recorded["sha256"]:
        return
    flat_recorded, flat_current = _flat(recorded.get("settings", {})), _flat(current["settings"])
    differing = [f"data.{k} {flat_recorded.get(k)} there, {flat_current.get(k)} here"
                 for k in sorted(set(flat_recorded) | set(flat_current)) if flat_recorded.get(k) != flat_current.get(k)]
    if recorded.get("input") != current["input"]:
        differing.append(f"input {recorded.get('input')} there, {current['input']} here (data.path's contents or the "
                         "generator's settings)")
    message = (f"{model_dir} was trained on other data: data fingerprint {recorded['sha256']} in its {MODEL_CARD}, "
               f"{current['sha256']} for this run's data ({'; '.join(differing)})")
    if allowed:
        print(f"warning: {message}; allowed by {key}=true")
        return
    raise LlmrecError(f"{message}; give the data it was trained on, or set {key}=true")


def check_model_card(model_dir: Path, card: dict, data: DataConfig, allow_other_data: bool, key: str) -> None:
    """What a run checks before it uses `model_dir`, before anything is written: an LLM card's answer tokens against
    its tokenizer (`card_settings`) and the data against the card's (`check_trained_data`; `key` names the recipe
    key that allows other data). Raises LlmrecError."""
    if "classic" not in card:
        card_settings(model_dir, load_tokenizer(str(model_dir)), card)
    check_trained_data(model_dir, card, data, allow_other_data, key)


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for name, value in tree.items():
        flat.update(_flat(value, f"{prefix}{name}.") if isinstance(value, dict) else {f"{prefix}{name}": value})
    return flat


_VERIFIED: dict[tuple, str] = {}  # (directory, its files' names, sizes and mtimes) -> model_hash, per process


def _original_hash(path: Path) -> str:
    """`model_hash` of `path` (sha256 of every byte: reading it costs about what loading the weights does),
    computed once per process while the directory's files keep their sizes and modification times."""
    from llmrec.unlearn.run import model_hash

    files = sorted(p for p in path.rglob("*") if p.is_file())
    stats = [(str(p), p.stat()) for p in files]  # ctime too: no tool sets it back after a rewrite in place
    key = (str(path.resolve()), tuple((name, s.st_ino, s.st_size, s.st_mtime_ns, s.st_ctime_ns) for name, s in stats))
    if key not in _VERIFIED:
        _VERIFIED[key] = model_hash(path)
    return _VERIFIED[key]


def original_model_dir(model_dir: str | Path, card: dict | None = None, base_model: str | None = None,
                       override_key: str = "eval.base_model") -> Path | None:
    """The original an unlearned (or merged) model was made from, checked to be that very model.

    `base_model` (the recipe key `override_key`: eval.base_model or eval.original_dir) overrides the path the card
    records. The card's `unlearned_from_sha256` / `merged_from_sha256` (the `model_hash` `llmrec unlearn` took) must
    match the directory's hash. None for a model that names no original. Raises LlmrecError, as one line, when the
    original is missing or is another model; a card from before hashes were recorded is loaded with a
    printed warning, since nothing can be checked.
    """
    card = read_model_card(model_dir) if card is None else card
    key = next((k for k in ("unlearned_from", "merged_from") if card.get(k)), None)
    if key is None:
        if base_model:
            raise LlmrecError(f"{override_key}: {model_dir} was not unlearned from another model (its {MODEL_CARD} "
                              "names no original)")
        return None
    path = Path(base_model or card[key])
    hint = f"{override_key}=DIR" if base_model is None else f"another {override_key}"
    if not (path / MODEL_CARD).is_file():
        raise LlmrecError(f"{model_dir}: its original model {path} is missing (no {MODEL_CARD} there); point at "
                          f"it with {hint}")
    expected = card.get(f"{key}_sha256")
    if expected is None:
        print(f"warning: {model_dir}: {MODEL_CARD} records no sha256 of its original, so {path} cannot be checked "
              "to be the model it was made from (rerun llmrec unlearn to record it)")
    elif _original_hash(path) != expected:
        raise LlmrecError(f"{model_dir}: {path} is not the model it was made from (sha256 "
                          f"{_original_hash(path)[:12]}…, recorded {expected[:12]}…); point at the original with {hint}")
    return path


def load_recommender(model_dir: str | Path, base_model: str | None = None):
    """A trained model dir, an unlearning output (peft adapter) on top of the original it names, or a SISA ensemble.

    An adapter's original is checked by hash first (`original_model_dir`); `base_model` points at it when it
    moved. Raises LlmrecError when it is missing or is another model.
    """
    model_dir = Path(model_dir)
    if (model_dir / ENSEMBLE_FILE).is_file():
        from llmrec.unlearn.sisa import SisaEnsemble

        return SisaEnsemble.load(model_dir)
    if (model_dir / "adapter_config.json").is_file():
        from peft import PeftModel

        card = read_model_card(model_dir)
        if not card.get("unlearned_from"):
            raise LlmrecError(f"{model_dir}: adapter without 'unlearned_from' in {MODEL_CARD}")
        base = original_model_dir(model_dir, card, base_model)
        # the adapter was trained on the original as loaded then (4-bit under QLoRA), so it is scored on that
        original = load_model(str(base), quant=card.get("quant"))
        try:
            return PeftModel.from_pretrained(original, model_dir).eval()
        except (OSError, ValueError, SafetensorError) as exc:
            raise LlmrecError(f"cannot load the adapter in {model_dir}: {str(exc).splitlines()[0]}") from None
    return load_model(str(model_dir))


def merged_copy(peft_model):
    """The adapter folded into a copy: the live peft model keeps training or saving its adapter."""
    return copy.deepcopy(peft_model).merge_and_unload()


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total): the cost figure every training and unlearning run reports."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total
