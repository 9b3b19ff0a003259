import pytest

from llmrec.config import PromptConfig
from llmrec.data.prompts import render_prompt
from llmrec.errors import ConfigError

SAMPLE = {"age": "31", "gender": "F", "occupation": "writer", "target_title": "Heat (1995)",
          "history_titles": ["Alien (1979)", "Fargo (1996)"], "history_ratings": [5.0, 2.0]}


def test_default_prompt_has_profile_stars_target_and_ends_at_the_answer():
    text = render_prompt(SAMPLE, PromptConfig())
    assert text.startswith("The user is a 31-year-old woman, occupation: writer.")
    assert "Alien (1979) (5 stars); Fargo (1996) (2 stars)" in text
    assert "Heat (1995)" in text and text.endswith("Answer:")


def test_no_profile_when_the_data_has_none():
    text = render_prompt({**SAMPLE, "age": "", "gender": "", "occupation": ""}, PromptConfig())
    assert text.startswith("The user watched")


def test_custom_template_and_half_stars():
    config = PromptConfig(template="{history} -> {target}?", history_item="{title}:{stars}", history_separator=",")
    assert render_prompt({**SAMPLE, "history_ratings": [4.5, 3.0]}, config) == "Alien (1979):4.5,Fargo (1996):3 -> Heat (1995)?"


def test_unknown_template_field_is_named():
    with pytest.raises(ConfigError, match="unknown field 'rating'"):
        render_prompt(SAMPLE, PromptConfig(template="{rating}"))
