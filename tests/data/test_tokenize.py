from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from datasets import Dataset, load_from_disk
from transformers import AutoTokenizer

from llmrec.config import PromptConfig
from llmrec.data.tokenize import tokenize
from llmrec.llm.backbone import train_tokenizer

ROWS = {"user_id": ["1", "2"], "item_id": ["10", "11"], "label": [1, 0], "target_title": ["Heat (1995)", "Fargo (1996)"],
        "history_titles": [["Babe (1995)"], ["Casino (1995)"]], "history_ratings": [[5], [2]],
        "age": [20, 30], "gender": ["M", "F"], "occupation": ["student", "writer"]}


def on_disk(tmp_path) -> Dataset:
    Dataset.from_dict(ROWS).save_to_disk(tmp_path / "split")
    return load_from_disk(str(tmp_path / "split"))


def test_token_ids_are_cached_by_what_decides_them_not_by_the_tokenizer_folder(tmp_path):
    tokenizer = train_tokenizer(["Heat Fargo Babe Casino stars user watched"] * 5, vocab_size=300)
    for folder in ("a", "b"):
        tokenizer.save_pretrained(tmp_path / folder)
    dataset = on_disk(tmp_path)
    first = tokenize(dataset, AutoTokenizer.from_pretrained(tmp_path / "a"), PromptConfig(), 64)
    again = tokenize(dataset, AutoTokenizer.from_pretrained(tmp_path / "b"), PromptConfig(), 64)
    assert again.cache_files == first.cache_files and again["input_ids"] == first["input_ids"]

    other_prompt = tokenize(dataset, AutoTokenizer.from_pretrained(tmp_path / "a"),
                            replace(PromptConfig(), history_separator=" | "), 64)
    shorter = tokenize(dataset, AutoTokenizer.from_pretrained(tmp_path / "a"), PromptConfig(), 8)
    assert len({first.cache_files[0]["filename"], other_prompt.cache_files[0]["filename"],
                shorter.cache_files[0]["filename"]}) == 3
    assert max(shorter["length"]) == 8 < max(first["length"])


def _change_a_token_id(cache: Path, ids: list[list[int]]) -> None:
    """The first prompt's first token id + 1, in place: the file still loads, one prompt silently changes."""
    data = cache.read_bytes()
    dtype = "<i8" if cache_dtype(cache) == "int64" else "<i4"
    row = np.array(ids[0], dtype=dtype).tobytes()
    at = data.index(row)
    changed = np.array([ids[0][0] + 1], dtype=dtype).tobytes()
    cache.write_bytes(data[:at] + changed + data[at + len(changed):])


def cache_dtype(cache: Path) -> str:
    return str(Dataset.from_file(str(cache)).features["input_ids"].feature.dtype)


def _truncate(cache: Path, ids: list[list[int]]) -> None:
    cache.write_bytes(cache.read_bytes()[: cache.stat().st_size // 2])


@pytest.mark.parametrize("damage", [_change_a_token_id, _truncate])
def test_a_damaged_token_cache_is_rebuilt_and_said_so(tmp_path, capsys, damage):
    tokenizer = train_tokenizer(["Heat Fargo Babe Casino stars user watched"] * 5, vocab_size=300)
    dataset = on_disk(tmp_path)
    first = tokenize(dataset, tokenizer, PromptConfig(), 64)
    ids = [list(map(int, row)) for row in first["input_ids"]]  # copies: a Column reads the mmapped file
    cache = Path(first.cache_files[0]["filename"])
    damage(cache, ids)
    capsys.readouterr()

    again = tokenize(dataset, tokenizer, PromptConfig(), 64)
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 1 and said[0].startswith(f"token cache {cache}: ") and "rebuilding it" in said[0], said
    assert list(again["input_ids"]) == ids
    assert list(tokenize(dataset, tokenizer, PromptConfig(), 64)["input_ids"]) == ids  # rebuilt: trusted again, silently
    assert capsys.readouterr().out == ""
