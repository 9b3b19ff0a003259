from dataclasses import replace

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
