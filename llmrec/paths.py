"""Outputs never land on what a run reads: the check every verb that writes makes before it writes anything.

`llmrec unlearn` (LLM or classic) replaces its whole `output_dir` (a temp dir renamed into place, the old
one deleted), so an output_dir that is, contains or lies inside the original model would delete or rewrite the
only copy of it; `train` and `evaluate` write named files and folders into theirs, which must not fall on or
inside a model they read either. Paths are compared resolved (symlinks followed, `~` expanded) and, where
they exist, by device and inode too, so a second name for a folder (a bind mount, another case on a
case-insensitive file system) is the same folder. A SISA ensemble's shard models live outside its folder:
each one counts as an original (`model_paths`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from llmrec.errors import LlmrecError

ENSEMBLE_FILE = "sisa.json"  # llmrec.store.ENSEMBLE_FILE (not imported: this module stays light)


def _resolved(path) -> Path:
    return Path(path).expanduser().resolve()


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def relation(output, original) -> str | None:
    """How path `output` stands to path `original`: 'is', 'contains', 'lies inside', or None when apart."""
    out, orig = _resolved(output), _resolved(original)
    if out == orig or _same(out, orig):
        return "is"
    if any(parent == out or _same(parent, out) for parent in orig.parents):
        return "contains"
    if any(parent == orig or _same(parent, orig) for parent in out.parents):
        return "lies inside"
    return None


def model_paths(model_dir, label: str = "the original model") -> list[tuple[str, Path]]:
    """(label, folder) of everything a model consists of: its folder and, for a SISA ensemble, each shard model
    its sisa.json points to (relative to the ensemble folder). Raises LlmrecError when sisa.json is unreadable."""
    model_dir = Path(model_dir)
    found = [(label, model_dir)]
    spec_file = model_dir / ENSEMBLE_FILE
    if spec_file.is_file():
        try:
            shards = [shard["model"] for shard in json.loads(spec_file.read_text())["shards"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise LlmrecError(f"{spec_file}: unreadable SISA ensemble file ({type(exc).__name__})") from None
        found += [(f"shard {k} of {label}", model_dir / shard) for k, shard in enumerate(shards)]
    return found


def models_read(*labelled: tuple[str, object]) -> list[tuple[str, Path]]:
    """`model_paths` of every (label, model folder) given; unset (None or '') ones are skipped."""
    return [found for label, folder in labelled if folder for found in model_paths(folder, label)]


# Files that mark a folder as an earlier llmrec output, which a rerun may replace as a whole.
OUTPUT_MARKERS = ("unlearning_manifest.json", "llmrec_model.json")


def refuse_overlap(output, originals: Iterable[tuple[str, object]], what: str = "output_dir",
                   writes: Iterable[str] | None = None, inputs: Iterable[tuple[str, object]] = ()) -> None:
    """Raise LlmrecError (one line) when what a run writes would touch what it reads. Call it before writing.

    output: the run's output folder. writes: the names the run writes inside it (files and folders it replaces),
    or None when it replaces the whole folder. originals: (label, path) of the models it reads; nothing
    written may be one, contain one or lie inside one. inputs: (label, path) of other files or folders it reads
    (data, user lists, recipes, the data cache); nothing written may be or contain one (they would be deleted),
    while writing inside an input folder is allowed. A whole-folder output that exists and holds files but no
    `OUTPUT_MARKERS` (someone else's folder) is refused too: replacing it would delete them. `what` names the
    setting in the message, e.g. "output_dir".
    """
    output = Path(output)
    originals = [(label, path) for label, path in originals if path]
    inputs = [(label, path) for label, path in inputs if path]
    verbs = {"is": "replace", "contains": "delete", "lies inside": "change"}
    if writes is None:
        for label, path, refused in [*((*o, verbs) for o in originals), *((*i, ("is", "contains")) for i in inputs)]:
            if (how := relation(output, path)) in refused:
                raise LlmrecError(f"{what}={output} {how} {label} {path}: the run would {verbs[how]} it; "
                                  f"choose another {what}")
        strangers = sorted(p.name for p in output.iterdir()) if output.is_dir() else []
        if strangers and not any((output / marker).is_file() for marker in OUTPUT_MARKERS):
            raise LlmrecError(f"{what}={output} holds files that are no llmrec output ({', '.join(strangers[:3])}"
                              f"{', …' if len(strangers) > 3 else ''}): the run would replace the whole folder; "
                              f"choose another {what} or empty it")
        return
    for label, path in originals:
        if (how := relation(output, path)) in ("is", "lies inside"):
            raise LlmrecError(f"{what}={output} {how} {label} {path}: the run would write into it; "
                              f"choose another {what}")
    for name in writes:
        for label, path in [*originals, *inputs]:
            if (how := relation(output / name, path)) in ("is", "contains"):
                raise LlmrecError(f"{what}={output}: the run would {verbs[how]} {label} {path} (it writes "
                                  f"{output / name}); choose another {what}")


def recipe_inputs(recipe) -> list[tuple[str, object]]:
    """(setting, path) of the data and user files a recipe names: what its run reads besides models."""
    found = [("data.path", recipe.data.path if recipe.data.format != "synthetic" else None),
             ("forget.users", recipe.forget.users), ("forget.already_forgotten", recipe.forget.already_forgotten),
             ("data.cache_dir", Path(recipe.data.cache_dir).expanduser())]
    only_users = getattr(getattr(recipe, "train", None), "only_users", None)
    return [*found, ("train.only_users", only_users)]
