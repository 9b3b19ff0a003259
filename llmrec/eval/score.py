"""Scoring saved models on named splits, and which forget set an unlearned model claims: what `evaluate` and the
membership audit (`audit_run`) both need, so neither imports the other for it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

from accelerate import Accelerator

from llmrec.config import ForgetConfig, from_dict, to_dict
from llmrec.errors import ConfigError, LlmrecError
from llmrec.io import write_text
from llmrec.recommender import load_recommender


MANIFEST = "unlearning_manifest.json"


def score_model(model_dir: Path, names: list[str], splits, batch_size: int, accelerator: Accelerator,
                base_model: str | None = None) -> dict:
    """{split: (labels, P(yes))} for one saved model of either family (`recommender.load_recommender`, which
    says what it raises)."""
    return load_recommender(model_dir, base_model).score(names, splits, batch_size, accelerator)


def _describe_forget(forget: dict) -> str:
    """The settings that drew a forget set, as the recipe keys a user would type."""
    keys = (["users"] if forget.get("users") else ["fraction", "seed"]) + [
        key for key in ("unit", "already_forgotten") if forget.get(key) not in (None, "users")]
    return ", ".join(f"forget.{key}={forget.get(key)}" for key in keys)


def manifest_forget(model_dir: Path, forget: ForgetConfig, from_manifest: bool, cache_dir: str,
                    hint: str = "evaluate with eval.forget_from_manifest=false") -> tuple[ForgetConfig, dict | None]:
    """The forget settings to use for `model_dir` and its unlearning manifest (None when it has none).

    With `from_manifest` (eval.forget_from_manifest, the default; always for `llmrec audit`) the settings are the
    ones the unlearning run recorded, so the forget set is the one the model forgot; else `forget` (the recipe's).
    Raises LlmrecError, ending with `hint`, when the manifest cannot be read.
    """
    path = model_dir / MANIFEST
    if not path.is_file():
        return forget, None
    try:
        manifest = json.loads(path.read_text())
        recorded = manifest["recipe"]["forget"]
        chosen = from_dict(ForgetConfig, recorded, "forget.") if from_manifest else forget
        if from_manifest and chosen.users:  # the ids it forgot, not a file that may have moved
            chosen = replace(chosen, users=str(user_file(manifest["forgotten_user_ids"], cache_dir)))
    except (ValueError, KeyError, TypeError, ConfigError) as exc:
        raise LlmrecError(f"{path}: cannot take the forget set from it ({exc}); {hint}") from None
    if chosen != forget:
        print(f"forget set: the one {model_dir} forgot ({_describe_forget(recorded)}, from its {MANIFEST}), not "
              f"the recipe's ({_describe_forget(to_dict(forget))})")
    return chosen, manifest


def user_file(user_ids: list[str], cache_dir: str, folder: str = "forget-users") -> Path:
    """A one-id-per-line file of `user_ids` in `folder` under the data cache, named by its content (written once)."""
    text = "".join(f"{user}\n" for user in user_ids)
    path = Path(cache_dir).expanduser() / folder / f"{hashlib.sha256(text.encode()).hexdigest()[:16]}.txt"
    if not path.is_file():
        write_text(path, text)
    return path


def check_forget_set(model_dir: Path, manifest: dict, forget_split, forget: ForgetConfig, from_manifest: bool) -> None:
    """Forgetting is measured on what the model forgot: the evaluated forget samples must hash to the manifest's
    `forgotten_samples_sha256`. Raises LlmrecError naming both sets otherwise."""
    from llmrec.data.samples import forget_samples_sha256

    evaluated, forgot = forget_samples_sha256(forget_split), manifest.get("forgotten_samples_sha256")
    if forgot is None or evaluated == forgot:
        return
    counts = manifest.get("counts", {})
    hint = ("the data differ from the unlearning run's: evaluate with the data.* settings in its config.yaml"
            if from_manifest else "evaluate with eval.forget_from_manifest=true, or the forget.* settings (and the "
            "contents of the user files) it records")
    raise LlmrecError(
        f"{model_dir}: the forget set to evaluate ({_describe_forget(to_dict(forget))}: {len(forget_split)} samples "
        f"of {len(set(forget_split['user_id']))} users, sha256 {evaluated[:12]}…) is not the one this model forgot "
        f"({_describe_forget(manifest['recipe']['forget'])}: {counts.get('forget_samples')} samples of "
        f"{counts.get('forget_users')} users, sha256 {forgot[:12]}…, in its {MANIFEST}); {hint}"
    )
