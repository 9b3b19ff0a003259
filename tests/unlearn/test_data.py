import pytest

from llmrec.config import PromptConfig, load_recipe
from llmrec.data.samples import prepare_splits
from llmrec.llm.backbone import AnswerTokens
from llmrec.unlearn.data import UnlearningData, batch_schedule, bucketed_schedule
from llmrec.unlearn.stopping import steps_for
from tests.conftest import SMALL_OVERRIDES


def test_a_schedule_sees_every_row_once_per_pass():
    schedule = batch_schedule(rows=10, batch_size=4, steps=5, seed=0)
    flat = [row for batch in schedule for row in batch]
    assert [len(batch) for batch in schedule] == [4] * 5
    assert sorted(flat[:10]) == list(range(10)) and sorted(flat[10:20]) == list(range(10))
    assert batch_schedule(10, 4, 5, seed=0) == schedule != batch_schedule(10, 4, 5, seed=1)
    assert batch_schedule(0, 4, steps=0, seed=0) == []  # a phase turned off (joint_epochs: 0)


def test_a_bucketed_schedule_pads_less_and_still_sees_every_row_once_per_pass():
    lengths = [(7 * i) % 50 + 10 for i in range(64)]
    bucketed = bucketed_schedule(lengths, batch_size=4, steps=32, seed=0, window=4)
    plain = batch_schedule(64, 4, 32, seed=0)
    flat = [row for batch in bucketed for row in batch]
    assert sorted(flat) == sorted(list(range(64)) * 2) and all(len(batch) == 4 for batch in bucketed)

    def padding(schedule):
        return sum(max(lengths[r] for r in batch) * len(batch) - sum(lengths[r] for r in batch) for batch in schedule)

    assert padding(bucketed) < padding(plain) / 3
    assert bucketed_schedule(lengths, 4, 32, seed=0, window=4) == bucketed != bucketed_schedule(lengths, 4, 32, 1, 4)
    starts = [lengths[batch[0]] for batch in bucketed[:8]]
    assert starts != sorted(starts)  # batch order is shuffled, not short-to-long
    assert bucketed_schedule(lengths, 4, steps=0, seed=0) == []


@pytest.mark.parametrize("epochs, expected", [(1.0, 3), (0.5, 2), (0.01, 1), (0, 0), (2, 5)])
def test_steps_for_counts_passes_over_the_rows(epochs, expected):
    assert steps_for(epochs, rows=10, batch_size=4) == expected


class CharTokenizer:
    """Just enough tokenizer for tokenize() and the collator: one id per character."""

    padding_side, pad_token_id = "left", 0

    def __call__(self, texts, **kwargs):
        return {"input_ids": [[ord(c) % 90 + 1 for c in text[:kwargs.get("max_length", 64)]] for text in texts]}

    def pad(self, features, return_tensors):
        import torch

        ids = features["input_ids"]
        width = max(len(i) for i in ids)
        return {"input_ids": torch.tensor([[0] * (width - len(i)) + i for i in ids]),
                "attention_mask": torch.tensor([[0] * (width - len(i)) + [1] * len(i) for i in ids])}


def test_only_the_retained_samples_a_method_uses_are_drawn(tmp_path):
    recipe = load_recipe(None, [f"data.cache_dir={tmp_path}", *SMALL_OVERRIDES])
    splits = prepare_splits(recipe.data, recipe.forget)
    data = UnlearningData(splits, CharTokenizer(), PromptConfig(), 64, AnswerTokens(1, 2, "Yes", "No"), seed=0)
    assert len(data.forget) == len(splits["forget"]) and data.forget["row"] == list(range(len(data.forget)))

    sample = data.retained_sample(7)
    assert len(sample) == 7 and sample["row"] == list(range(7))
    pool = set(zip(splits["retained"]["user_id"], splits["retained"]["item_id"]))
    assert set(zip(sample["user_id"], sample["item_id"])) <= pool
    assert data.retained_sample(7)["item_id"] == sample["item_id"]  # seeded
    assert len(data.retained_sample(10**6)) == len(splits["retained"])

    batch = next(iter(data.batches(sample, batch_size=3, steps=1)))
    assert batch["input_ids"].shape[0] == 3 and set(batch["row"].tolist()) <= set(range(7))


def test_the_holdout_users_samples_are_drawn_seeded_and_tokenized_on_demand(tmp_path):
    recipe = load_recipe(None, [f"data.cache_dir={tmp_path}", *SMALL_OVERRIDES, "data.holdout=0.1"])
    splits = prepare_splits(recipe.data, recipe.forget)
    data = UnlearningData(splits, CharTokenizer(), PromptConfig(), 64, AnswerTokens(1, 2, "Yes", "No"), seed=0)
    assert data.holdout_users == sorted(set(splits["holdout"]["user_id"])) and len(data.holdout_users) >= 2
    sample = data.holdout_sample(5, seed=0)
    assert len(sample) == 5 and sample["row"] == list(range(5)) and "input_ids" in sample.column_names
    assert set(sample["user_id"]) <= set(data.holdout_users)
    assert data.holdout_sample(5, seed=0)["item_id"] == sample["item_id"]
    assert data.holdout_sample(5, seed=1)["item_id"] != sample["item_id"]
    assert len(data.holdout_sample(10**6, seed=0)) == len(splits["holdout"])
    assert len(data.retained_sample(0)) == 0  # a run whose budget leaves no joint phase (was: a missing-cache error)

    no_holdout = dict(splits)
    del no_holdout["holdout"]  # a cache from before data.holdout
    data = UnlearningData(no_holdout, CharTokenizer(), PromptConfig(), 64, AnswerTokens(1, 2, "Yes", "No"), seed=0)
    assert data.holdout_users == [] and len(data.holdout_sample(5, seed=0)) == 0
