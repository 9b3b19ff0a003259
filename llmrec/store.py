"""What both model families share about a model directory: its card, its hashes, its parameter counts.

A model directory (an LLM's `save_pretrained` folder, an MF / LightGCN's weights, an unlearning output, a shard
ensemble) carries `llmrec_model.json`: how it was trained, on what data, and which original it was made from,
by path and sha256. Everything here reads or writes only that and file bytes, so the families, ensembles,
evaluation and the unlearning runs take it without importing each other.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from safetensors import SafetensorError, safe_open

from llmrec.config import DataConfig
from llmrec.data.samples import data_fingerprint
from llmrec.errors import LlmrecError
from llmrec.io import recover, write_json

MODEL_CARD = "llmrec_model.json"  # answer tokens + prompt settings travel with the weights
ENSEMBLE_FILE = "sisa.json"  # marks a SISA ensemble: its shard models (relative paths) and their users
APA_FILE = "apa.json"  # marks an APA ensemble: its base and adapters (inside the dir), users and centroids


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


def model_family(card: dict) -> str:
    """'llm', 'mf' or 'lightgcn': the family a model card describes (a classic shard ensemble: its shards').
    Raises LlmrecError, one line, for a classic section without a kind."""
    spec = card.get("classic")
    try:
        while spec is not None and spec["kind"] == "ensemble":
            spec = spec["shards"][0]
        return "llm" if spec is None else str(spec["kind"])
    except (KeyError, IndexError, TypeError):
        raise LlmrecError(f"damaged model card ({MODEL_CARD}): its classic section names no model kind") from None


def card_family(model_dir: str | Path) -> str | None:
    """`model_family` of the model card of `model_dir`; None when there is no readable card (`llmrec unlearn` then
    goes by the recipe: `cli.unlearn_family`). Only the card is read: damaged weights are named by the path the
    card chooses."""
    model_dir = Path(model_dir)
    _recover_missing(model_dir)
    try:
        card = json.loads((model_dir / MODEL_CARD).read_text())
        return model_family(card) if isinstance(card, dict) else None
    except (OSError, ValueError, LlmrecError):  # JSONDecodeError, UnicodeDecodeError are ValueErrors; a damaged card
        return None


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


def check_trained_data(model_dir: Path, card: dict, data: DataConfig, allowed: bool, key: str) -> None:
    """The data a run is given must be the data `model_dir` was trained on: its card's `data` (recorded by
    `llmrec train`, LLM or classic, from `samples.data_fingerprint`) against the fingerprint of `data`.

    `allowed` (the recipe key `key`) turns a mismatch into a printed note. A card from before the fingerprint
    was recorded is used with a printed warning, since nothing can be checked. Raises LlmrecError naming both
    fingerprints and what differs.
    """
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


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for name, value in tree.items():
        flat.update(_flat(value, f"{prefix}{name}.") if isinstance(value, dict) else {f"{prefix}{name}": value})
    return flat


_VERIFIED: dict[tuple, str] = {}  # (directory, its files' names, sizes and mtimes) -> model_hash, per process


def verified_hash(path: Path) -> str:
    """`model_hash` of `path` (sha256 of every byte: reading it costs about what loading the weights does),
    computed once per process while the directory's files keep their sizes and modification times."""
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
    elif verified_hash(path) != expected:
        raise LlmrecError(f"{model_dir}: {path} is not the model it was made from (sha256 "
                          f"{verified_hash(path)[:12]}…, recorded {expected[:12]}…); point at the original with {hint}")
    return path


def parameter_counts(model) -> tuple[int, int]:
    """(trainable, total): the cost figure every training and unlearning run reports."""
    total = sum(p.numel() for p in model.parameters())
    return sum(p.numel() for p in model.parameters() if p.requires_grad), total


def directory_hash(folder: Path, exclude: tuple[str, ...] = ()) -> str:
    """sha256 over every file's name and bytes (files named in `exclude` left out): proves the original was left
    untouched.

    Files are read in 16 MiB chunks (the digest is that of the whole bytes), so a multi-GB weight file is
    never held in memory at once.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.name not in exclude):
        digest.update(str(path.relative_to(folder)).encode())
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 24):
                digest.update(chunk)
    return digest.hexdigest()


def model_hash(model_dir: Path) -> str:
    """directory_hash of the original; a SISA ensemble also covers the shard models it points to."""
    if not (Path(model_dir) / ENSEMBLE_FILE).is_file():
        return directory_hash(model_dir)
    parts = [directory_hash(model_dir), *(directory_hash(shard) for shard in shard_model_dirs(model_dir))]
    return hashlib.sha256("".join(parts).encode()).hexdigest()


def original_card(model_dir: Path, original_hash: str, key: str = "unlearned_from") -> dict:
    """The card entries naming the original: its absolute path (so any working directory finds it) and its
    `model_hash`, which `original_model_dir` checks before the original is used again."""
    return {key: str(Path(model_dir).absolute()), f"{key}_sha256": original_hash}


def confirm_unchanged(model_dir: Path, original_hash: str, output: Path) -> None:
    """After the final rename: the original still has the hash the new output's manifest and card record.

    Raises LlmrecError (one line) otherwise; the output is left as it is for inspection (its card's hash no
    longer matches the original, so evaluate refuses to load an adapter on it)."""
    now = model_hash(model_dir)
    if now != original_hash:
        raise LlmrecError(f"{model_dir} changed while {output} was put in place (sha256 {original_hash[:12]}… "
                          f"before, {now[:12]}… after): {output} does not describe it; restore the original and "
                          "unlearn again")


def shard_model_dirs(model_dir: Path) -> list[Path]:
    """The shard models an ensemble directory points to (they live outside it)."""
    spec = json.loads((Path(model_dir) / ENSEMBLE_FILE).read_text())
    return [(Path(model_dir) / shard["model"]).resolve() for shard in spec["shards"]]
