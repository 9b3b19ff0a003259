"""Render samples as E2URec "simple" prompts: profile, rated history with stars, target, yes/no question."""

from __future__ import annotations

from llmrec.config import PromptConfig
from llmrec.errors import ConfigError

GENDER_WORDS = {"M": "man", "F": "woman"}


def _stars(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def render_prompt(sample: dict, config: PromptConfig) -> str:
    """The text the model reads; it ends right where the answer token goes."""
    has_profile = bool(config.profile) and any(str(sample.get(k, "")) for k in ("age", "gender", "occupation"))
    try:
        profile = (
            config.profile.format(
                gender=GENDER_WORDS.get(str(sample["gender"]), str(sample["gender"]) or "person"),
                age=sample["age"],
                occupation=sample["occupation"],
            )
            if has_profile
            else ""
        )
        history = config.history_separator.join(
            config.history_item.format(title=title, stars=_stars(stars))
            for title, stars in zip(sample["history_titles"], sample["history_ratings"])
        )
        return config.template.format(profile=profile, history=history, target=sample["target_title"]).strip()
    except (KeyError, IndexError) as exc:
        raise ConfigError(f"prompt template uses an unknown field {exc} (see `llmrec train --help-config`)") from None
