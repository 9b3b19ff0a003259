"""Recipes: YAML -> typed dataclasses, with `key=value` overrides and unknown keys rejected.

Every field carries `metadata={"help": ...}` so `llmrec <verb> --help-config` can list it.
"""

from __future__ import annotations

import dataclasses
import math
import re
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from llmrec.errors import ConfigError


class _YamlLoader(yaml.SafeLoader):
    """YAML with only true/false as booleans, so `mixed_precision: no` stays the string 'no'."""


_BOOL_TAG = "tag:yaml.org,2002:bool"
_YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, regex) for tag, regex in resolvers if tag != _BOOL_TAG]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_YamlLoader.add_implicit_resolver(_BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF"))


def parse_yaml(text: str):
    return yaml.load(text, Loader=_YamlLoader)  # noqa: S506 - a SafeLoader subclass


MixedPrecision = Literal["auto", "no", "bf16", "fp16"]
THREADS_HELP = ("CPU threads torch computes with (torch.set_num_threads, set before any work); 0: auto = "
                "OMP_NUM_THREADS when set, else the cores this process may run on (os.sched_getaffinity, capped by "
                "a cgroup CPU quota) shared among the processes of this machine")
Quantization = Literal["none", "4bit"]
QUANT_HELP = ("none | 4bit: load the frozen original in NF4 for unlearning (QLoRA; E2URec and finetune=lora "
              "baselines; needs bitsandbytes>=0.47)")


def option(default: Any = dataclasses.MISSING, help: str = "", *, gt: float | None = None,  # noqa: A002
           ge: float | None = None, lt: float | None = None, le: float | None = None, **kwargs) -> Any:
    """A dataclass field with help text; mutable defaults become factories.

    gt / ge / lt / le bound a number (every item of a list of numbers; None passes): `from_dict`, and so
    `load_recipe`, refuses a value outside them with ConfigError before any work starts, and `describe`
    (--help-config) shows them.
    """
    bounds = {name: limit for name, limit in (("gt", gt), ("ge", ge), ("lt", lt), ("le", le)) if limit is not None}
    if bounds:
        kwargs.setdefault("metadata", {})["bounds"] = bounds
    if isinstance(default, (list, dict)) or dataclasses.is_dataclass(default):
        value = default
        kwargs["default_factory"] = lambda: (
            type(value)(value) if not dataclasses.is_dataclass(value) else dataclasses.replace(value)
        )
    elif default is not dataclasses.MISSING:
        kwargs["default"] = default
    return field(metadata={"help": help, **kwargs.pop("metadata", {})}, **kwargs)


def bounds_text(bounds: dict) -> str:
    """{'ge': 0, 'le': 1} -> 'between 0 and 1'; {'gt': 0} -> 'greater than 0'; {'ge': 1} -> 'at least 1'."""
    if bounds.keys() == {"ge", "le"}:
        return f"between {bounds['ge']:g} and {bounds['le']:g}"
    if bounds == {"ge": 0}:
        return "0 or more"
    words = {"gt": "greater than", "ge": "at least", "lt": "less than", "le": "at most"}
    return " and ".join(f"{words[name]} {bounds[name]:g}" for name in words if name in bounds)


_COMPARE = {"gt": float.__gt__, "ge": float.__ge__, "lt": float.__lt__, "le": float.__le__}


def check_bounds(value: Any, bounds: dict, key: str) -> None:
    """ConfigError naming `key` unless `value` (each item of a list; None passes) lies within `bounds`."""
    if value is None or not bounds:
        return
    if isinstance(value, list):
        for i, item in enumerate(value):
            check_bounds(item, bounds, f"{key}[{i}]")
        return
    if not all(_COMPARE[name](float(value), float(limit)) for name, limit in bounds.items()):
        raise ConfigError(f"{key} must be {bounds_text(bounds)}, got {value!r}")


@dataclass
class SyntheticConfig:
    num_users: int = option(500, "users in the generated log", ge=1)
    num_items: int = option(200, "items (movies) in the generated catalogue", ge=1)
    ratings_per_user: int = option(40, "mean ratings per user (each user gets 0.5x to 1.5x this)", ge=1)
    seed: int = option(0, "generator seed; same seed, same data", ge=0)


@dataclass
class SubsampleConfig:
    train: int = option(0, "keep at most this many train samples, drawn at random (0: all)", ge=0)
    valid: int = option(0, "keep at most this many valid samples (0: all)", ge=0)
    test: int = option(0, "keep at most this many test samples (0: all)", ge=0)
    seed: int = option(0, "seed of the draw", ge=0)


@dataclass
class DataConfig:
    format: Literal["synthetic", "auto", "ml-100k", "ml-1m", "csv"] = option(
        "synthetic", "synthetic | auto | ml-100k | ml-1m | csv"
    )
    path: str | None = option(None, "folder or file of the input data (not used by 'synthetic')")
    encoding: str = option(
        "auto", "text encoding of the input files: auto = per file, UTF-8 when the bytes are valid UTF-8, else "
        "Latin-1 (as GroupLens ships u.item and movies.dat) | a Python codec name (utf-8, latin-1, cp1252, ...) "
        "forced on every file"
    )
    rating_scale: list[float] = option(
        [], "[lowest, highest] rating the input may hold: one outside stops reading with file:line | [] = the "
        "source's own scale (ml-100k, ml-1m: whole stars 1 to 5; csv: any number)"
    )
    synthetic: SyntheticConfig = option(SyntheticConfig(), "settings of the embedded generator")
    like_threshold: float = option(3.0, "label is 1 when rating > like_threshold")
    history_len: int = option(10, "K: previous ratings shown in each prompt", ge=1)
    min_history: int = option(5, "samples with fewer previous ratings are dropped", ge=1)
    split: list[float] = option([0.6, 0.2, 0.2], "train/valid/test fractions of a global time-ordered split",
                                 gt=0, lt=1)
    resplit_last: int = option(
        0, "0: off | N: after data.split, keep only the newest N samples of valid+test (all when fewer) and split "
        "them again by time with data.resplit; the first train split is dropped (E2URec's ML-1M protocol: "
        "split [0.8, 0.1, 0.1], resplit_last 100000, resplit [0.6, 0.2, 0.2])", ge=0
    )
    resplit: list[float] = option(
        [0.6, 0.2, 0.2], "train/valid/test fractions of the second time split (used only when resplit_last > 0)",
        gt=0, lt=1
    )
    cache_dir: str = option("~/.cache/llmrec", "where built datasets are cached, keyed by fingerprint")
    subsample: SubsampleConfig = option(
        SubsampleConfig(), "smaller splits after the time split, for large backbones on small machines; the forget "
        "set is then drawn from the subsampled train users"
    )
    holdout: float | str = option(
        0.05, "in-distribution non-members: users whose train-split samples no model trains on (original, retrain, "
        "SISA / RecEraser shards, classic models), moved from train to the split 'holdout' (their valid/test samples "
        "stay); the forget set is drawn from the other train users | a fraction in [0, 1) of the train users, seeded "
        "by data.holdout_seed; 0: off | a file of train-user ids, one per line"
    )
    holdout_seed: int = option(0, "seed of the data.holdout draw (a stream of its own: the same number as "
                               "forget.seed draws unrelated users)", ge=0)


@dataclass
class ForgetConfig:
    fraction: float = option(0.2, "fraction of training users to forget (ignored when users is set)", gt=0, lt=1)
    users: str | None = option(None, "file of user ids to forget, one per line")
    seed: int = option(0, "seed for choosing the forget users (or interactions)", ge=0)
    unit: Literal["users", "interactions"] = option(
        "users", "users: forget every training sample of the chosen users | interactions: forget `fraction` of the "
        "training samples themselves (IFRU's setting; classic models only)")
    already_forgotten: str | None = option(
        None, "file of user ids erased by earlier requests: kept out of the retained split (sequential requests)"
    )


@dataclass
class PromptConfig:
    template: str = option(
        "{profile} The user watched these movies in order and rated them (1 to 5 stars): {history}. "
        "Based on these ratings, will the user like the movie {target}? Answer Yes or No.\nAnswer:",
        "prompt with fields {profile}, {history}, {target}",
    )
    profile: str = option(
        "The user is a {age}-year-old {gender}, occupation: {occupation}.",
        "profile sentence with fields {gender} {age} {occupation}; '' when the data has no profiles",
    )
    history_item: str = option("{title} ({stars} stars)", "one history entry, fields {title} {stars}")
    history_separator: str = option("; ", "between history entries")
    chat_template: bool = option(
        False, "wrap the prompt as the user turn of the tokenizer's chat template (instruct models); the answer "
        "then opens the assistant turn"
    )
    yes: str = option("Yes", "positive answer word")
    no: str = option("No", "negative answer word")


@dataclass
class LoraSettings:
    r: int = option(16, "LoRA rank", ge=1)
    alpha: int = option(32, "LoRA alpha (the update is scaled by alpha / r)", ge=1)
    dropout: float = option(0.05, "LoRA dropout", ge=0, lt=1)
    target_modules: list[str] | None = option(None, "module names; None picks peft's default for the architecture")
    merge: bool = option(True, "fold the trained adapter into model/ (a plain HF model); false: model/ holds the peft "
                         "adapter alone, as each adapter of an APA ensemble (train.partition=apa) does")


@dataclass
class TinyBackboneConfig:
    architecture: Literal["llama", "t5"] = option("llama", "llama (decoder-only) | t5 (encoder-decoder, as E2URec)")
    hidden_size: int = option(64, "width of the tiny Llama", ge=1)
    num_layers: int = option(2, "decoder layers", ge=1)
    num_heads: int = option(4, "attention heads", ge=1)
    intermediate_size: int = option(256, "MLP width", ge=1)
    vocab_size: int = option(8000, "size of the byte-level BPE trained on the train prompts", ge=1)
    seed: int = option(0, "weight-init seed", ge=0)


@dataclass
class ModelConfig:
    family: Literal["llm"] = option(
        "llm", "llm: this recipe's model family; `llmrec train` reads a recipe whose model.family is mf | lightgcn "
        "as a classic one (llmrec.classic.train)"
    )
    name_or_path: str = option("tiny", "'tiny' builds a local Llama + tokenizer; else a local path or hub id")
    tiny: TinyBackboneConfig = option(TinyBackboneConfig(), "shape of the tiny default backbone")
    finetune: Literal["full", "lora"] = option("full", "full | lora")
    lora: LoraSettings = option(LoraSettings(), "adapter shape when finetune=lora")
    max_length: int = option(512, "prompts longer than this are cut from the left (history first)", ge=1)


@dataclass
class ApaSettings:
    grouping: Literal["kmeans", "random"] = option(
        "kmeans", "kmeans: balanced k-means on each user's mean base-model representation, semantically close users "
        "in one shard (APA's partition) | random: seeded uniform (SISA's)")
    aggregation: Literal["adaptive", "merge", "mean"] = option(
        "adaptive", "adaptive: per-sample weights softmax(cos(h, shard centroid) / temperature) on the adapters' "
        "weight updates (APA's sample-adaptive aggregation) | merge: the adapters' mean weight update (peft "
        "add_weighted_adapter, cat) | mean: mean of each adapter's P(yes), one forward per adapter")
    temperature: float = option(0.05, "softmax temperature of the adaptive weights (cosine similarities are in "
                                "[-1, 1])", gt=0)
    kmeans_iterations: int = option(10, "rounds of balanced k-means (grouping=kmeans)", ge=1)
    learning_rate: float | None = option(None, "the adapters' peak learning rate (LoRA usually wants more than full "
                                         "fine-tuning) | null: train.learning_rate", gt=0)
    base_epochs: int = option(2, "model.name_or_path=tiny: causal-LM epochs of the base on the user-free catalogue "
                              "corpus (0: a random init)", ge=0)
    base_learning_rate: float = option(2e-3, "AdamW learning rate of that pretraining", gt=0)
    base_prompts_per_item: int = option(4, "catalogue-corpus prompts per item (each a random history and answer)",
                                        ge=1)


@dataclass
class TrainConfig:
    epochs: int = option(1, "passes over the training split", ge=1)
    max_steps: int = option(0, "stop after this many optimizer steps (0: no limit)", ge=0)
    batch_size: int = option(32, "samples per device per micro-batch", ge=1)
    gradient_accumulation_steps: int = option(1, "micro-batches per optimizer step", ge=1)
    learning_rate: float = option(2e-3, "peak AdamW learning rate", gt=0)
    weight_decay: float = option(0.0, "AdamW weight decay", ge=0)
    max_grad_norm: float = option(0.0, "clip the gradient norm to this before each step (0: no clipping; HF "
                                  "Trainer uses 1.0)", ge=0)
    warmup_ratio: float = option(0.05, "fraction of steps with linear warm-up, then linear decay", ge=0, le=1)
    mixed_precision: MixedPrecision = option("auto", "auto | no | bf16 | fp16; auto = bf16 where the device supports it")
    train_on: str = option("train", "split to train on: train | retained | forget")
    only_users: str | None = option(None, "file of user ids: train only on their samples of train_on (a SISA shard)")
    shards: int = option(1, "more than 1 trains that many user-disjoint shards (train.partition says of what); "
                        "model/ is their ensemble", ge=1)
    partition: Literal["sisa", "apa"] = option(
        "sisa", "with train.shards > 1: sisa (a whole model per shard, mean P(yes); Bourtoule et al. 2021) | apa "
        "(one frozen base, a LoRA adapter per shard, aggregated in weight space; Hu et al. 2024, llmrec.ensemble.apa)")
    apa: ApaSettings = option(ApaSettings(), "the adapter ensemble when train.partition=apa")
    checkpoint_every: int = option(200, "optimizer steps between resumable checkpoints (0: epoch ends only)",
                                   ge=0)
    resume: bool = option(True, "continue from output_dir/checkpoints/last when it exists")
    eval_before: bool = option(False, "score valid before the first step too (a pretrained backbone's zero-shot AUC)")
    seed: int = option(42, "shuffling and dropout seed", ge=0)


@dataclass
class EvalConfig:
    batch_size: int = option(64, "samples per device when scoring", ge=1)
    splits: list[str] = option(["test", "valid", "forget"], "splits to report")
    model_dir: str | None = option(None, "model to evaluate; default output_dir/model")
    reference_dir: str | None = option(None, "model retrained without the forget set; enables forgetting metrics")
    original_dir: str | None = option(None, "original model for gap closure; default: the one an adapter names")
    floor_reference_dir: str | None = option(
        None, "a second retrain (another seed): its distance to the reference is the noise floor of every distance"
    )
    forgetting: bool = option(False, "require forgetting metrics (an error when reference_dir is not set)")
    base_model: str | None = option(
        None, "the original an unlearned model (adapter) was made from, when it is no longer at the absolute path "
        "its card records; checked against the card's sha256 like the recorded one"
    )
    forget_from_manifest: bool = option(
        True, "when the model dir holds unlearning_manifest.json, evaluate on the forget set it records (false: on "
        "the recipe's forget.*); either way the set must be the one the model forgot (same samples hash)"
    )
    allow_other_data: bool = option(
        False, "evaluate although the data differ from those each model was trained on (the data fingerprint in "
        "its llmrec_model.json); false: such a run stops, naming both fingerprints"
    )


@dataclass
class AuditConfig:
    """The membership-inference audit's settings (`llmrec audit`; on `unlearn` / `evaluate` it runs only when
    audit.reference or audit.shadow is set). See llmrec.eval.audit_run."""

    reference: str | list[str] | None = option(
        None, "reference model dir(s) that trained on no forget and no holdout user (checked by card), calibrating "
        "the attack per sample; a list for several | none: a shadow (llmrec audit always trains or reuses one then; "
        "unlearn / evaluate only with audit.shadow=true)"
    )
    shadow: bool = option(
        False, "unlearn / evaluate: run the audit, with a shadow reference trained once (the original's recipe on a "
        "random audit.shadow_fraction of the retained users: about that fraction of a retrain's cost) and reused "
        "by fingerprint; off by default for that cost (llmrec audit needs no flag)"
    )
    shadow_dir: str | None = option(
        None, "where the shadow is trained and kept | none: output_dir/shadow (audit, evaluate); for unlearn, whose "
        "output_dir is replaced on every run, the folder beside it named <output_dir>-shadow"
    )
    shadow_fraction: float = option(0.5, "fraction of the retained users (not forget, not holdout) the shadow "
                                    "trains on", gt=0, le=1)
    shadow_seed: int = option(0, "seed of the draw of the shadow's users", ge=0)
    original: str | None = option(
        None, "the audited model's original | none: the one its card names (unlearned_from), checked by sha256; a "
        "model that names none is audited as its own original"
    )
    retrain: str | None = option(None, "a model retrained without the forget users: the verdict's reference AUC "
                                 "and the audit's sanity check (its AUC should be near 0.5)")
    attack: Literal["lira_offline", "calibrated_loss", "loss"] = option(
        "lira_offline", "lira_offline (Carlini et al. 2022) | calibrated_loss (Watson et al. 2022) | loss (Yeom et "
        "al. 2018, uncalibrated: no reference needed, reported for comparison)"
    )
    level: Literal["user", "sample"] = option("user", "the level of the headline verdict: user | sample")
    aggregate: Literal["mean", "max"] = option("mean", "a user's score: mean | max of their samples' scores")
    tolerance: float = option(0.05, "forgotten when |AUC_unlearned - AUC_ref| <= this (MUSE's PrivLeak band)",
                              ge=0, lt=0.5)
    min_power: float = option(0.05, "inconclusive when AUC_original - 0.5 is below this", ge=0, lt=0.5)
    batch_size: int = option(64, "samples per device when scoring", ge=1)
    allow_other_data: bool = option(
        False, "audit although the data differ from those a model was trained on (its card's data fingerprint); "
        "false: such a run stops, naming both fingerprints"
    )


@dataclass
class Recipe:
    output_dir: str = option("runs/default", "where models, metrics and the resolved config are written")
    data: DataConfig = option(DataConfig(), "input data and sample construction")
    forget: ForgetConfig = option(ForgetConfig(), "which training users form the forget set")
    prompt: PromptConfig = option(PromptConfig(), "prompt template")
    model: ModelConfig = option(ModelConfig(), "backbone")
    train: TrainConfig = option(TrainConfig(), "instruction tuning")
    eval: EvalConfig = option(EvalConfig(), "evaluation")
    threads: int = option(0, THREADS_HELP, ge=0)


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _coerce(value: Any, tp: Any, key: str, notes: list[str] | None = None) -> Any:
    """Check (and gently convert) one value against its annotation; `notes` as in `from_dict`."""
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: expected one of {' | '.join(map(str, choices))}, got {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, key, notes)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{key}: null is not allowed")
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping of {tp.__name__} keys, got {value!r}")
        return from_dict(tp, value, prefix=f"{key}.", notes=notes)
    if origin is list:
        (item_tp,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        return [_coerce(v, item_tp, f"{key}[{i}]", notes) for i, v in enumerate(value)]
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if tp is float and isinstance(value, str):  # YAML 1.1 reads 3e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            raise ConfigError(f"{key}: expected float, got {value!r}") from None
    if tp is float and isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}: expected a finite number, got {value!r}")
    if tp is str and isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if tp in (int, float, bool, str) and (type(value) is not tp):
        raise ConfigError(f"{key}: expected {_type_name(tp)}, got {value!r}")
    return value


def section_default(cls: type, name: str, base: Any = None) -> Any:
    """The dataclass instance a section `name` of `cls` starts from (`base`'s, else the field's default), or None
    when the field holds no dataclass."""
    if base is not None:
        value = getattr(base, name)
        return value if dataclasses.is_dataclass(value) else None
    spec = next(f for f in dataclasses.fields(cls) if f.name == name)
    value = spec.default_factory() if spec.default_factory is not dataclasses.MISSING else spec.default
    return value if dataclasses.is_dataclass(value) and not isinstance(value, type) else None


def renamed_keys(values: dict, renamed: dict[str, str], prefix: str = "") -> tuple[dict, list[str]]:
    """`values` with each old spelling of a renamed key (`renamed`: {old: new}; new may name a key one section down,
    "lora.r") moved to the new one, and one warning line per old spelling used. Raises ConfigError, one line, when both are given with different values."""
    values, notes = dict(values), []
    for old, new in renamed.items():
        if old not in values:
            continue
        value = values.pop(old)
        section, _, key = new.rpartition(".")  # a new name may sit one section down ("lora.r")
        into = values
        if section:
            into = values[section] = dict(values.get(section) or {})
        if key in into and into[key] != value:
            raise ConfigError(f"{prefix}{old} ({value!r}) and {prefix}{new} ({into[key]!r}) differ (the recipe file may "
                              f"give one, an override the other): {prefix}{old} is the old name of {prefix}{new}; give "
                              f"only {prefix}{new}")
        into[key] = value
        notes.append(f"{prefix}{old} is deprecated and will be removed in a later release; write {prefix}{new} "
                     "instead (same values)")
    return values, notes


def from_dict(cls: type, values: dict, prefix: str = "", notes: list[str] | None = None, base: Any = None) -> Any:
    """Build dataclass `cls` from a mapping, rejecting keys it does not declare.

    A key left out keeps its default: the class's, or for a section the recipe's own default instance of it
    (`base`), so one method config can carry other defaults in another recipe (a classic model's learning rate).
    A class's RENAMED_KEYS ({old: new}) are still read under their old names (`renamed_keys`); the warning line
    for each is appended to `notes` when given (`load_recipe` prints them; a model card's recorded recipe, which
    the user did not write, is read silently)."""
    if getattr(cls, "RENAMED_KEYS", None) and isinstance(values, dict):
        values, said = renamed_keys(values, cls.RENAMED_KEYS, prefix)
        if notes is not None:
            notes += said
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in values:
        if key not in names:
            raise ConfigError(
                f"unknown recipe key '{prefix}{key}' (known under '{prefix or 'top level'}': {', '.join(sorted(names))})"
            )
    kwargs = {}
    for name in sorted(names & values.keys()):
        default = section_default(cls, name, base)
        if default is not None and isinstance(values[name], dict) and type(default) is hints[name]:
            kwargs[name] = from_dict(type(default), values[name], f"{prefix}{name}.", notes, default)
        else:
            kwargs[name] = _coerce(values[name], hints[name], f"{prefix}{name}", notes)
    for f in dataclasses.fields(cls):
        if f.name in kwargs:
            check_bounds(kwargs[f.name], f.metadata.get("bounds"), f"{prefix}{f.name}")
    return dataclasses.replace(base, **kwargs) if base is not None else cls(**kwargs)


def apply_override(tree: dict, assignment: str) -> None:
    """Set `a.b.c=value` in a nested dict; the value is parsed as YAML (so 3, true, [1,2] work)."""
    if "=" not in assignment:
        raise ConfigError(f"override '{assignment}' is not of the form key=value")
    dotted, raw = assignment.split("=", 1)
    keys = dotted.strip().split(".")
    node = tree
    for key in keys[:-1]:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override '{dotted}': '{key}' is not a section")
    node[keys[-1]] = parse_yaml(raw) if raw.strip() else None


def recipe_tree(path: str | Path | None, overrides: list[str] = ()) -> dict:
    """The mapping a recipe YAML (none when path is None) and its overrides make, not yet checked against a recipe
    class. Raises ConfigError, one line, for a missing or malformed file or override."""
    tree: dict = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"{path}: no such recipe file")
        try:
            tree = parse_yaml(path.read_text()) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML ({exc.__class__.__name__})") from None
        if not isinstance(tree, dict):
            raise ConfigError(f"{path}: a recipe must be a mapping of keys, not {type(tree).__name__}")
    for assignment in overrides:
        apply_override(tree, assignment)
    return tree


def load_recipe(path: str | Path | None, overrides: list[str] = (), cls: type = Recipe) -> Any:
    """Read a recipe YAML (or start from defaults when path is None) and apply overrides. A renamed key given by
    its old name still loads, with one warning line on stderr (`from_dict`)."""
    notes: list[str] = []
    recipe = from_dict(cls, recipe_tree(path, overrides), notes=notes)
    for note in notes:
        print(f"warning: {note}", file=sys.stderr)
    return recipe


def to_dict(recipe: Any) -> dict:
    return dataclasses.asdict(recipe)


def to_yaml(recipe: Any) -> str:
    return yaml.safe_dump(to_dict(recipe), sort_keys=False, allow_unicode=True)


def describe(cls: type = Recipe, prefix: str = "", defaults: Any = None) -> list[tuple[str, str, str]]:
    """(key, default, help) for every leaf field, for `--help-config`; a section shows the recipe's own default
    instance (`defaults`), e.g. a classic recipe's learning rate for a method written for every family."""
    rows = []
    defaults = cls() if defaults is None else defaults
    for f in dataclasses.fields(cls):
        value = getattr(defaults, f.name)
        if dataclasses.is_dataclass(value):
            rows += describe(type(value), f"{prefix}{f.name}.", value)
        else:
            bounds = f.metadata.get("bounds")
            limits = f" [{bounds_text(bounds)}]" if bounds else ""
            rows.append((f"{prefix}{f.name}", repr(value), f.metadata.get("help", "") + limits))
    return rows
