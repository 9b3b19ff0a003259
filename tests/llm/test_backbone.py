import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from llmrec.config import TinyBackboneConfig
from llmrec.errors import LlmrecError
from llmrec.llm.backbone import (
    build_tiny_backbone,
    load_tokenizer,
    resolve_answer_tokens,
    train_tokenizer,
)

CORPUS = [f"The user rated Movie {i} ({i % 5 + 1} stars). Will the user like it?\nAnswer: {'Yes' if i % 2 else 'No'}"
          for i in range(200)]


def test_tiny_backbone_reloads_like_any_hf_model(tmp_path):
    out = build_tiny_backbone(iter(CORPUS), TinyBackboneConfig(hidden_size=32, intermediate_size=64, vocab_size=400),
                              max_length=128, out_dir=tmp_path / "tiny")
    model = AutoModelForCausalLM.from_pretrained(out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert model.config.model_type == "llama" and model.config.tie_word_embeddings
    assert model.config.vocab_size == len(tokenizer) <= 400
    assert tokenizer.padding_side == "left"
    ids = tokenizer("Will the user like it?", return_tensors="pt")
    assert model(**ids).logits.shape[-1] == len(tokenizer)
    assert not list(tmp_path.glob("*.tmp"))


def test_same_seed_same_initial_weights(tmp_path):
    config = TinyBackboneConfig(hidden_size=32, intermediate_size=64, vocab_size=400)
    a = build_tiny_backbone(iter(CORPUS), config, 128, tmp_path / "a")
    b = build_tiny_backbone(iter(CORPUS), config, 128, tmp_path / "b")
    wa, wb = AutoModelForCausalLM.from_pretrained(a).state_dict(), AutoModelForCausalLM.from_pretrained(b).state_dict()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_answer_tokens_prefer_leading_space():
    tokenizer = train_tokenizer(CORPUS, 400)
    answer = resolve_answer_tokens(tokenizer, "Yes", "No")
    assert answer.yes_text == " Yes" and answer.no_text == " No"
    assert tokenizer.encode(" Yes", add_special_tokens=False) == [answer.yes_id]
    assert answer.yes_id != answer.no_id


def test_answer_tokens_without_space_and_errors():
    tokenizer = train_tokenizer(["Yes No " * 50 + "zebra"], 300)
    spaced = tokenizer.encode(" Yes", add_special_tokens=False)
    answer = resolve_answer_tokens(tokenizer, "Yes", "No")
    assert (answer.yes_text == " Yes") == (len(spaced) == 1)
    with pytest.raises(LlmrecError, match="'Maybe' is not a single token"):
        resolve_answer_tokens(tokenizer, "Maybe", "No")
    with pytest.raises(LlmrecError, match="same token"):
        resolve_answer_tokens(tokenizer, "Yes", "Yes")


def test_chat_prompts_open_the_assistant_turn_and_answer_without_a_space(tmp_path):
    from llmrec.config import PromptConfig
    from llmrec.data.tokenize import as_chat, tokenize

    tokenizer = train_tokenizer(CORPUS + ["<|user|>\n<|assistant|>\nYes No"] * 20, 400)
    tokenizer.chat_template = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
                               "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")
    assert as_chat("Will they like Heat?", tokenizer) == "<|user|>\nWill they like Heat?\n<|assistant|>\n"
    answer = resolve_answer_tokens(tokenizer, "Yes", "No", chat=True)
    assert answer.yes_text == "Yes" and answer.no_text == "No"  # the turn starts on a new line: no leading space

    sample = {"user_id": "1", "item_id": "2", "label": 1, "age": "", "gender": "", "occupation": "",
              "history_titles": ["Alien (1979)"], "history_ratings": [4.0], "target_title": "Heat (1995)"}
    from datasets import Dataset

    encoded = tokenize(Dataset.from_list([sample]), tokenizer, PromptConfig(chat_template=True), 256)
    assert tokenizer.decode(encoded[0]["input_ids"]).endswith("<|assistant|>\n")
    tokenizer.chat_template = None
    with pytest.raises(LlmrecError, match="has no chat template"):
        tokenize(Dataset.from_list([sample]), tokenizer, PromptConfig(chat_template=True), 256)


def test_unloadable_model_is_a_clear_error(tmp_path):
    with pytest.raises(LlmrecError, match="cannot load a tokenizer"):
        load_tokenizer(str(tmp_path / "missing"))


def test_a_cards_answer_tokens_must_be_its_tokenizers(tmp_path):
    """What resolve_answer_tokens wrote passes (plain and chat prompts); swapped or foreign ids are refused."""
    import re
    from dataclasses import asdict

    from llmrec.config import PromptConfig
    from llmrec.llm.backbone import card_settings

    tokenizer = train_tokenizer(CORPUS, 400)
    for chat in (False, True):
        answer = resolve_answer_tokens(tokenizer, "Yes", "No", chat=chat)
        card = {"answer": asdict(answer), "prompt": asdict(PromptConfig(chat_template=chat))}
        assert card_settings(tmp_path, tokenizer, card) == (PromptConfig(chat_template=chat), answer)
    swapped = {**card, "answer": {**card["answer"], "yes_id": answer.no_id, "no_id": answer.yes_id}}
    wrong = re.escape(f"answer.yes_id is {answer.no_id}, but {answer.yes_text!r} is token [{answer.yes_id}]")
    with pytest.raises(LlmrecError, match=wrong):
        card_settings(tmp_path, tokenizer, swapped)
    with pytest.raises(LlmrecError, match="damaged model card"):
        card_settings(tmp_path, tokenizer, {**card, "answer": {**card["answer"], "yes_id": "7"}})
    with pytest.raises(LlmrecError, match="classic model"):
        card_settings(tmp_path, tokenizer, {"classic": {"kind": "mf"}})
