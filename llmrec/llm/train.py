"""Instruction tuning under accelerate, readable top to bottom.

`llmrec train RECIPE` and `accelerate launch -m llmrec train RECIPE` both end up in `train()`.
Outputs in `output_dir`: `model/` (best epoch by valid AUC, or by valid log-loss when the valid split has
one class; `save_pretrained` + tokenizer + llmrec_model.json, whose `recipe` is the resolved recipe that
trained it, written in the same atomic step), `config.yaml` (a copy of that recipe, written right after each
`model/` is put in place, so a killed or refused run leaves it describing the `model/` beside it),
`checkpoints/last/` (resumable state and the settings it belongs to), `train_metrics.json`. An output_dir
whose outputs would fall on, around or inside the backbone it starts from is refused before anything is
written (`llmrec.paths`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from accelerate import Accelerator
from accelerate.utils import DataLoaderConfiguration, id_tensor_storage, set_seed
from transformers import get_linear_schedule_with_warmup

from llmrec.config import Recipe, from_dict, load_recipe, parse_yaml, to_dict, to_yaml
from llmrec.data.prompts import render_prompt
from llmrec.data.samples import (
    data_fingerprint,
    input_fingerprint,
    prepare_splits,
    require_user_forgetting,
    training_split,
)
from llmrec.data.tokenize import AnswerCollator, tokenize
from llmrec.errors import ConfigError, LlmrecError
from llmrec.llm.scoring import make_loader, score_split
from llmrec.eval.metrics import utility_metrics
from llmrec.io import atomic_dir, content_record, finite_or_none, hold_lock, recover, write_json, write_text
from llmrec.llm.accel import make_accelerator, process_state, threads_note
from llmrec.llm.backbone import (
    add_lora,
    build_tiny_backbone,
    load_model,
    load_tokenizer,
    merged_copy,
    resolve_answer_tokens,
)
from llmrec.store import (
    MODEL_CARD,
    directory_hash,
    original_card,
    parameter_counts,
    read_model_card,
    write_model_card,
)
from llmrec.llm.scoring import answer_logits, answer_loss
from llmrec.paths import recipe_inputs, refuse_overlap
from llmrec.progress import progress


BACKBONE_STAMP = "llmrec_build.json"


def backbone_path(recipe: Recipe, train_split, accelerator: Accelerator) -> str:
    """The HF model to start from. 'tiny' is built from the train prompts (a deterministic tokenizer and a
    seeded init) into output_dir/backbone and rebuilt only when its inputs changed, so a resumed checkpoint
    always finds the tokenizer it was trained with, even after a train.resume=false run rebuilt it."""
    if recipe.model.name_or_path != "tiny":
        return recipe.model.name_or_path
    target = Path(recipe.output_dir) / "backbone"
    if accelerator.is_main_process:
        labels = train_split["label"]
        corpus = [
            render_prompt(row, recipe.prompt) + (" " + recipe.prompt.yes if label else " " + recipe.prompt.no)
            for row, label in zip(train_split, labels)
        ]
        digest = hashlib.sha256(json.dumps([asdict(recipe.model.tiny), recipe.model.max_length]).encode())
        for text in corpus:
            digest.update(b"\0" + text.encode())
        stamp = {"inputs": digest.hexdigest()}
        stamp_file = target / BACKBONE_STAMP
        if not (stamp_file.is_file() and json.loads(stamp_file.read_text()) == stamp):
            build_tiny_backbone(corpus, recipe.model.tiny, recipe.model.max_length, target)
            write_json(stamp_file, stamp)
    accelerator.wait_for_everyone()
    return str(target)


# Settings that cannot change the trained weights or the epoch kept; every other key must match to resume.
# eval.* configures `llmrec evaluate`, except eval.batch_size, which scores valid during training.
NOT_RUN_SETTINGS = ("output_dir", "data.cache_dir", "train.resume", "train.checkpoint_every", "train.eval_before",
                    "threads")
USER_FILES = ("forget.users", "forget.already_forgotten", "train.only_users")


def flat_settings(tree: dict, prefix: str = "") -> dict:
    """{'train': {'epochs': 1}} -> {'train.epochs': 1}."""
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(flat_settings(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def shaping(key: str) -> bool:
    return key not in NOT_RUN_SETTINGS and (not key.startswith("eval.") or key == "eval.batch_size")


def run_settings(recipe: Recipe) -> dict:
    """Every setting that shapes the run, as dotted keys, plus digests of the files those settings name
    (the data, user lists): the same path with other contents is another run."""
    flat = flat_settings(to_dict(recipe))
    settings = {key: value for key, value in flat.items() if shaping(key)}
    settings["data.path (contents)"] = input_fingerprint(recipe.data)
    for key in USER_FILES:
        if flat[key]:
            path = Path(flat[key])
            settings[f"{key} (contents)"] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None
    return settings


def check_resumable(recipe: Recipe, last: Path) -> None:
    """A checkpoint only continues the run that wrote it: every setting in `run_settings` must match.

    Compares with last/settings.json (older checkpoints: the shaping keys of output_dir/config.yaml). A key
    the checkpoint lacks (an option added since) matches its default. Raises LlmrecError naming every
    differing key, with the train.resume=false hint.
    """
    if (last / SETTINGS_FILE).is_file():
        try:
            saved = json.loads((last / SETTINGS_FILE).read_text())
        except (ValueError, OSError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise LlmrecError(f"{last / SETTINGS_FILE}: unreadable ({type(exc).__name__}), so the checkpoint cannot "
                              "be checked against this run; add train.resume=false to start over") from None
    elif (config := last.parent.parent / "config.yaml").is_file():
        saved = {key: value for key, value in flat_settings(parse_yaml(config.read_text())).items() if shaping(key)}
    else:
        raise LlmrecError(f"{last} has no record of the settings it was trained with (no {SETTINGS_FILE}, no "
                          f"{config}); add train.resume=false to start over")
    current, defaults = run_settings(recipe), flat_settings(to_dict(Recipe()))
    differ = []
    for key, value in current.items():
        if key in saved:
            before = saved[key]
        elif key.endswith("(contents)"):
            continue  # a checkpoint from before llmrec recorded file contents
        else:
            before = defaults.get(key, "<unset>")
        if before != value:
            differ.append(f"{key} ({_short(before)} in the checkpoint, now {_short(value)})")
    if differ:
        raise LlmrecError(
            f"{last} is a checkpoint of a run with other settings: {'; '.join(differ)}; rerun with the "
            "checkpoint's settings to resume it, or add train.resume=false to start over"
        )


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


@dataclass
class TrainerState:
    """What a resumed run needs beyond model/optimizer tensors."""

    epoch: int = 0
    batches_done_in_epoch: int = 0
    global_step: int = 0
    best_epoch: int = 0  # the epoch in model/ (0: none yet)
    best_valid_auc: float | None = None  # its valid AUC (None: undefined, the valid split has one class)
    best_valid_log_loss: float | None = None
    valid_before_training: dict | None = None
    history: list = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> TrainerState:
        """Older checkpoints wrote -Infinity for "no best yet": read as None."""
        return cls(**finite_or_none(json.loads(path.read_text())))


SETTINGS_FILE = "settings.json"
CONTENTS_FILE = "contents.json"
START_OVER = "add train.resume=false to start over"


def save_checkpoint(accelerator: Accelerator, state: TrainerState, checkpoints: Path, settings: dict) -> None:
    """checkpoints/last, replaced atomically: accelerate's state, trainer_state.json, the run's settings and
    contents.json, the sha256 of each of those files (`verify_checkpoint` checks them before a resume)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        with atomic_dir(checkpoints / "last") as tmp:
            hook = accelerator.register_save_state_pre_hook(drop_tied_copies)
            try:
                accelerator.save_state(str(tmp), safe_serialization=True)
            finally:
                hook.remove()
            write_json(tmp / "trainer_state.json", asdict(state))
            write_json(tmp / SETTINGS_FILE, settings)
            write_json(tmp / CONTENTS_FILE, {"sha256": content_record(tmp, exclude=(CONTENTS_FILE,))})
    accelerator.wait_for_everyone()


def drop_tied_copies(models, weights: list[dict], output_dir) -> None:
    """accelerate's save_state pre-hook: one name per shared tensor in the state dicts it is about to save (a
    tied lm_head.weight is the input embedding), the first, as safetensors needs. accelerate drops the very same
    names itself, but then logs `Removed shared tensor {'lm_head.weight'} while saving` at every checkpoint; the
    file is the same either way, and loading the checkpoint ties the weights again."""
    for state in weights:
        seen = set()
        for name in [name for name, value in state.items() if isinstance(value, torch.Tensor)]:
            storage = id_tensor_storage(state[name])
            if storage in seen:
                del state[name]
            seen.add(storage)


def verify_checkpoint(last: Path) -> None:
    """A checkpoint is resumed only when every file in it has the sha256 contents.json recorded when it was
    written: flipped bytes in the weights or optimizer state, an edited trainer_state.json (global_step), a file
    missing or added. Raises LlmrecError naming the files, with the train.resume=false hint; a checkpoint with
    no contents.json (written before llmrec hashed checkpoints) cannot be verified and is refused the same way."""
    record_file = last / CONTENTS_FILE
    if not record_file.is_file():
        raise LlmrecError(f"{last} has no {CONTENTS_FILE} (the sha256 of its files, written with every checkpoint "
                          f"since llmrec checks them), so it cannot be verified; {START_OVER}")
    try:
        recorded = json.loads(record_file.read_text())["sha256"]
        if not (isinstance(recorded, dict) and all(isinstance(v, str) for v in recorded.values())):
            raise TypeError
    except (ValueError, OSError, KeyError, TypeError) as exc:  # JSON and UnicodeDecodeError are ValueErrors
        raise LlmrecError(f"{record_file}: unreadable ({type(exc).__name__}), so the checkpoint cannot be "
                          f"verified; {START_OVER}") from None
    actual = content_record(last, exclude=(CONTENTS_FILE,))
    damaged = [f"{name} ({'missing' if name not in actual else 'added' if name not in recorded else 'changed'})"
               for name in sorted(recorded.keys() | actual.keys()) if recorded.get(name) != actual.get(name)]
    if damaged:
        raise LlmrecError(f"{last} is damaged: {', '.join(damaged)} since the checkpoint was written (sha256 "
                          f"against its {CONTENTS_FILE}); {START_OVER}")


def one_class_note(labels) -> str | None:
    """Why valid AUC cannot pick the epoch, or None when both classes are present."""
    counts = Counter(int(label) for label in labels)
    if len(counts) == 2:
        return None
    return (f"the valid split has one class ({counts[1]} positive, {counts[0]} negative samples), so its AUC is "
            "undefined: the epoch with the lowest valid log-loss is kept")


def improves(metrics: dict, state: TrainerState, by_log_loss: bool) -> bool:
    """Does this epoch beat the one in model/? Higher valid AUC, or lower log-loss for a one-class valid split."""
    if by_log_loss:
        return state.best_valid_log_loss is None or metrics["log_loss"] < state.best_valid_log_loss
    return state.best_valid_auc is None or metrics["auc"] > state.best_valid_auc


def save_model(accelerator: Accelerator, model, tokenizer, card: dict, target: Path, merge: bool = True) -> None:
    """Best model as a plain HF model dir (LoRA merged in), so later stages load it like any checkpoint; with
    `merge` false a LoRA model is saved as its peft adapter alone (adapter_config.json + adapter_model.safetensors)."""
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        unwrapped = accelerator.unwrap_model(model)
        if hasattr(unwrapped, "merge_and_unload") and merge:
            unwrapped = merged_copy(unwrapped)
        with atomic_dir(target) as tmp:
            unwrapped.save_pretrained(tmp, safe_serialization=True)
            tokenizer.save_pretrained(tmp)
            write_model_card(tmp, card)
    accelerator.wait_for_everyone()


def describe(metrics: dict) -> str:
    auc = "undefined (one class)" if math.isnan(metrics["auc"]) else f"{metrics['auc']:.4f}"
    return f"valid auc {auc} acc {metrics['accuracy']:.4f} log-loss {metrics['log_loss']:.4f}"


def selected_by(one_class: str | None) -> str:
    return "valid log-loss (one-class valid split)" if one_class else "valid auc"


def check_outputs(recipe: Recipe) -> None:
    """Nothing `train` writes may be, contain or lie in the backbone it starts from (a local folder, e.g. another
    run's model/), or be or contain a data or user file it reads. Raises LlmrecError, before anything is written."""
    name = recipe.model.name_or_path
    backbone = [("the backbone model.name_or_path", name)] if name != "tiny" and Path(name).is_dir() else []
    writes = ["config.yaml", "model", "checkpoints", "train_metrics.json", *(["backbone"] if name == "tiny" else []),
              *(["shards"] if recipe.train.shards > 1 else []),
              *(["base"] if recipe.train.shards > 1 and recipe.train.partition == "apa" else [])]
    refuse_overlap(recipe.output_dir, backbone, writes=writes, inputs=recipe_inputs(recipe))


def train(recipe: Recipe, body: Callable[[Recipe], dict] | None = None) -> dict:
    """Train `recipe` into its output_dir, which the main process holds locked for the run (`hold_lock`:
    another run into it is refused, naming its pid); first, a swap of model/ or checkpoints/last that a killed
    run left half done is finished or rolled back (`recover`), so a resume never misses its checkpoint.

    `body` is what runs under the lock: one model (the default), or a shard ensemble (`llmrec.ensemble.llm.train`
    passes its own, so this module never imports the ensembles built from it). Raises ConfigError for
    train.shards > 1 without one."""
    check_outputs(recipe)
    output_dir, main = Path(recipe.output_dir), process_state().is_main_process
    with hold_lock(output_dir) if main else contextlib.nullcontext():
        if main:
            recover(output_dir / "checkpoints" / "last")
            recover(output_dir / "model")
        return (body or _train)(recipe)


def _train(recipe: Recipe) -> dict:
    if recipe.train.shards > 1:
        raise ConfigError("train.shards > 1 trains an ensemble of shard models: use llmrec.ensemble.llm.train")
    output_dir = Path(recipe.output_dir)
    cfg = recipe.train
    accelerator = make_accelerator(
        cfg.mixed_precision,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(cfg.seed)
    accelerator.print(f"resolved config:\n{to_yaml(recipe)}")

    # Data: samples are cached by fingerprint; the main process builds them first. Bad input stops
    # here, before anything is written to output_dir.
    if cfg.train_on != "train":
        require_user_forgetting(recipe.forget, "an LLM trained on the retained or forget split")
    with accelerator.main_process_first():
        splits = prepare_splits(recipe.data, recipe.forget)
    train_split = training_split(splits, cfg.train_on, cfg.only_users)
    checkpoints = output_dir / "checkpoints"
    last = checkpoints / "last"
    has_checkpoint = last.is_dir()  # one without trainer_state.json is damaged: verify_checkpoint says so
    resuming = cfg.resume and has_checkpoint
    if resuming:
        verify_checkpoint(last)  # before anything is written
        check_resumable(recipe, last)
    elif has_checkpoint:
        accelerator.print(f"train.resume=false: starting over; the checkpoint in {last} is replaced when this run "
                          "writes its first one")
    settings = run_settings(recipe)
    one_class = one_class_note(splits["valid"]["label"])
    if one_class:
        accelerator.print(one_class)
    start_from = backbone_path(recipe, splits["train"], accelerator)
    tokenizer = load_tokenizer(start_from)
    answer = resolve_answer_tokens(tokenizer, recipe.prompt.yes, recipe.prompt.no, chat=recipe.prompt.chat_template)
    with accelerator.main_process_first():
        train_set = tokenize(train_split, tokenizer, recipe.prompt, recipe.model.max_length)
        valid_set = tokenize(splits["valid"], tokenizer, recipe.prompt, recipe.model.max_length)
    lengths = train_set["length"]
    accelerator.print(
        "samples: " + ", ".join(f"{name}={len(ds)}" for name, ds in splits.items())
        + f" | prompt tokens: mean {sum(lengths) / len(lengths):.1f}, max {max(lengths)}"
        + f" | mixed precision: {accelerator.mixed_precision} | processes: {accelerator.num_processes}"
        + f" | {threads_note()}"
    )

    # Model: full fine-tuning, or a LoRA adapter that is merged into the saved model.
    model = load_model(start_from)
    if recipe.model.finetune == "lora":
        model = add_lora(model, recipe.model.lora)
    trainable, total = parameter_counts(model)
    accelerator.print(f"parameters: {total:,} total, {trainable:,} trainable ({100 * trainable / total:.2f}%)")

    collator = AnswerCollator(tokenizer)
    set_seed(cfg.seed)  # the shuffling order must not depend on whether the backbone was just built
    train_loader = make_loader(train_set, collator, cfg.batch_size, shuffle=True)
    valid_loader = make_loader(valid_set, collator, recipe.eval.batch_size, shuffle=False)
    steps_per_epoch = math.ceil(len(train_loader) / cfg.gradient_accumulation_steps)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=cfg.learning_rate, weight_decay=cfg.weight_decay
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, int(cfg.warmup_ratio * total_steps), total_steps)
    model, optimizer, train_loader, valid_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, valid_loader, scheduler
    )

    # Resume: tensors from accelerate's state, counters from trainer_state.json.
    state = TrainerState()
    if resuming:
        accelerator.load_state(str(last))
        state = TrainerState.load(last / "trainer_state.json")
        accelerator.print(f"resumed from {last}: epoch {state.epoch}, step {state.global_step}")

    card = {
        "answer": asdict(answer),
        "prompt": asdict(recipe.prompt),
        "max_length": recipe.model.max_length,
        "base_model": recipe.model.name_or_path,
        "trained_on": cfg.train_on,
        "recipe": to_dict(recipe),  # what retrain and SISA retrain with (config.yaml beside model/ may be newer)
        "data": data_fingerprint(recipe.data),  # unlearn / evaluate refuse other data (store.check_trained_data)
    }
    keep_adapter = recipe.model.finetune == "lora" and not recipe.model.lora.merge
    if keep_adapter:  # model/ is an adapter: name the base it needs, by path and hash (load_llm_module checks both)
        card.update(original_card(Path(start_from), directory_hash(Path(start_from)), key="adapter_of"))
    started = time.perf_counter()
    if cfg.eval_before and not resuming:  # what the backbone knows with no tuning (a resumed model is tuned)
        with torch.random.fork_rng():  # iterating a loader draws from the global generator: training must not see it
            before = utility_metrics(*score_split(model, valid_loader, accelerator, answer, desc="valid (before)"))
        state.valid_before_training = before
        accelerator.print(f"before training: {describe(before)}")
    for epoch in range(state.epoch, cfg.epochs):
        if state.global_step >= total_steps and state.batches_done_in_epoch == 0:
            break  # a checkpoint taken at the last step mid-epoch still needs that epoch's validation below
        model.train()
        train_loader.set_epoch(epoch)
        loader = accelerator.skip_first_batches(train_loader, state.batches_done_in_epoch)
        if state.global_step >= total_steps:
            loader = []
        bar = progress(
            loader,
            total=len(train_loader),
            initial=state.batches_done_in_epoch,
            desc=f"epoch {epoch + 1}/{cfg.epochs}",
            disable=not accelerator.is_local_main_process,
        )
        seen_samples, seen_tokens, tick = 0, 0, time.perf_counter()
        for batch in bar:
            with accelerator.accumulate(model):
                logits = answer_logits(model, batch["input_ids"], batch["attention_mask"])
                loss = answer_loss(logits, batch["labels"], answer.yes_id, answer.no_id)
                accelerator.backward(loss)
                if cfg.max_grad_norm and accelerator.sync_gradients:
                    accelerator.clip_grad_norm_(model.parameters(), cfg.max_grad_norm)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad()
            state.batches_done_in_epoch += 1
            seen_samples += len(batch["labels"]) * accelerator.num_processes
            seen_tokens += int(batch["attention_mask"].sum()) * accelerator.num_processes
            if not accelerator.sync_gradients:
                continue
            state.global_step += 1
            elapsed = time.perf_counter() - tick
            bar.set_postfix(loss=f"{loss.item():.4f}", samples_s=f"{seen_samples / elapsed:.0f}",
                            tokens_s=f"{seen_tokens / elapsed:.0f}")
            if cfg.checkpoint_every and state.global_step % cfg.checkpoint_every == 0:
                save_checkpoint(accelerator, state, checkpoints, settings)
            if state.global_step >= total_steps:
                break
        bar.close()
        train_seconds = time.perf_counter() - tick

        labels, probs = score_split(model, valid_loader, accelerator, answer, desc="valid")
        metrics = utility_metrics(labels, probs)
        state.history.append({
            "epoch": epoch + 1, "step": state.global_step, "valid": metrics,
            "train_seconds": train_seconds, "valid_seconds": time.perf_counter() - tick - train_seconds,
            "samples_per_second": seen_samples / train_seconds if seen_samples else 0.0,
            "tokens_per_second": seen_tokens / train_seconds if seen_samples else 0.0,
        })
        improved = improves(metrics, state, by_log_loss=one_class is not None)
        accelerator.print(f"epoch {epoch + 1}: {describe(metrics)}" + (" (best so far, saved)" if improved else ""))
        if improved:
            state.best_epoch, state.best_valid_log_loss = epoch + 1, metrics["log_loss"]
            state.best_valid_auc = None if one_class else metrics["auc"]
            save_model(accelerator, model, tokenizer,
                       {**card, "epoch": epoch + 1, "valid": metrics, "selected_by": selected_by(one_class)},
                       output_dir / "model", merge=not keep_adapter)
            if accelerator.is_main_process:
                write_text(output_dir / "config.yaml", to_yaml(recipe))  # describes the model/ just put in place
        state.epoch, state.batches_done_in_epoch = epoch + 1, 0
        save_checkpoint(accelerator, state, checkpoints, settings)

    if not (output_dir / "model" / MODEL_CARD).is_file():
        raise LlmrecError(f"{last} holds a finished run but {output_dir / 'model'} is missing; "
                          "add train.resume=false to train again")
    summary = {
        "best_valid_auc": state.best_valid_auc,
        "best_valid_log_loss": state.best_valid_log_loss,
        "best_epoch": state.best_epoch,
        "selected_by": selected_by(one_class),
        "valid_before_training": state.valid_before_training,
        "epochs": state.history,
        "train_seconds_this_run": time.perf_counter() - started,
        "parameters": total,
        "trainable_parameters": trainable,
        "model_dir": str(output_dir / "model"),
        "threads": torch.get_num_threads(),
    }
    if accelerator.is_main_process:
        write_json(output_dir / "train_metrics.json", summary)
    accelerator.end_training()
    return summary


def training_recipe(model_dir: Path, explicit: str | None = None) -> Recipe:
    """The recipe `model_dir` was trained with: `explicit` (a YAML file) when given, else the `recipe` its
    model card records, else the `config.yaml` beside it (with a printed note: a later run in that folder may
    have rewritten it). A card recipe recorded before data.holdout existed trained on every train user, so it is
    read with data.holdout 0, not today's default. Raises LlmrecError when there is none or it no longer loads."""
    if explicit:
        if not Path(explicit).is_file():
            raise LlmrecError(f"{explicit}: no training recipe to retrain with; set retrain.recipe to the recipe "
                              "the original was trained with")
        return load_recipe(explicit, [], cls=Recipe)
    card = read_model_card(model_dir)
    if "recipe" in card:
        try:
            recorded = card["recipe"]
            if isinstance(recorded, dict) and isinstance(recorded.get("data"), dict) and \
                    "holdout" not in recorded["data"]:
                recorded = {**recorded, "data": {**recorded["data"], "holdout": 0}}  # trained before holdout existed
            return from_dict(Recipe, recorded)
        except ConfigError as exc:
            raise LlmrecError(f"{Path(model_dir) / MODEL_CARD}: its training recipe no longer loads ({exc}); set "
                              "retrain.recipe to the recipe the original was trained with") from None
    fallback = Path(model_dir).parent / "config.yaml"
    if not fallback.is_file():
        raise LlmrecError(f"{fallback}: no training recipe to retrain with ({Path(model_dir) / MODEL_CARD} records "
                          "none); set retrain.recipe to the recipe the original was trained with")
    print(f"note: {Path(model_dir) / MODEL_CARD} records no training recipe (trained before llmrec recorded it): "
          f"using {fallback}, which a later run in that folder may have rewritten; set retrain.recipe to be sure")
    return load_recipe(str(fallback), [], cls=Recipe)
