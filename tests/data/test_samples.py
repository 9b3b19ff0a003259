import hashlib
import re
import time
from pathlib import Path

import pandas as pd
import pytest

from llmrec.config import DataConfig, ForgetConfig, load_recipe
from llmrec.data.interactions import Interactions
from llmrec.data.synthetic import generate_synthetic
from llmrec.data.samples import (
    build_samples,
    choose_forget_users,
    choose_holdout_users,
    data_fingerprint,
    prepare_splits,
    reference_order,
    time_split,
    training_split,
)
from llmrec.errors import LlmrecError
from tests.conftest import SMALL_OVERRIDES
from tests.data.holdout_checks import sample_ids


def tiny_log() -> Interactions:
    """Two users; user 'a' rates items 1..8 at t=0..7, user 'b' items 8..1 at t=10..17."""
    rows = [("a", str(i), float(1 + i % 5), i - 1) for i in range(1, 9)]
    rows += [("b", str(9 - i), float(5 - i % 5), 10 + i - 1) for i in range(1, 9)]
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    items = pd.DataFrame({"title": [f"Movie {i}" for i in range(1, 9)], "genres": ""},
                         index=pd.Index([str(i) for i in range(1, 9)], name="item_id"))
    users = pd.DataFrame({"age": [30, 40], "gender": ["F", "M"], "occupation": ["writer", "doctor"]},
                         index=pd.Index(["a", "b"], name="user_id"))
    return Interactions(ratings.sample(frac=1, random_state=0), items, users, "tiny")


def test_history_is_the_previous_k_ratings_in_time_order():
    samples = build_samples(tiny_log(), DataConfig(history_len=3, min_history=2))
    a = samples[samples.user_id == "a"].sort_values("timestamp")
    assert len(a) == 6  # items 3..8: the first two ratings only serve as history
    first = a.iloc[0]
    assert first.item_id == "3" and list(first.history_item_ids) == ["1", "2"]
    last = a.iloc[-1]
    assert last.item_id == "8" and list(last.history_item_ids) == ["5", "6", "7"]
    assert list(last.history_ratings) == [1.0, 2.0, 3.0]
    assert list(last.history_titles) == ["Movie 5", "Movie 6", "Movie 7"]
    assert last.target_title == "Movie 8" and last.gender == "F" and last.occupation == "writer"


def test_label_is_rating_above_threshold():
    samples = build_samples(tiny_log(), DataConfig(min_history=1, like_threshold=3.0))
    assert (samples.label == (samples.rating > 3)).all()
    strict = build_samples(tiny_log(), DataConfig(min_history=1, like_threshold=4.0))
    assert (strict.label == (strict.rating > 4)).all() and strict.label.sum() < samples.label.sum()


def test_too_little_history_everywhere_is_an_error():
    with pytest.raises(LlmrecError, match="min_history=20"):
        build_samples(tiny_log(), DataConfig(min_history=20))


def test_time_split_never_puts_the_future_in_train():
    samples = build_samples(tiny_log(), DataConfig(min_history=1))
    splits = time_split(samples, [0.5, 0.25, 0.25])
    assert [len(splits[s]) for s in ("train", "valid", "test")] == [7, 3, 4]
    assert splits["train"].timestamp.max() <= splits["valid"].timestamp.min()
    assert splits["valid"].timestamp.max() <= splits["test"].timestamp.min()


def _log(rows: list[tuple[str, str, float, int]]) -> Interactions:
    """A log of (user, item, stars, timestamp) rows in file order; items titled 'Movie <id>', no profiles."""
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    ids = sorted(set(ratings.item_id))
    items = pd.DataFrame({"title": [f"Movie {i}" for i in ids], "genres": ""}, index=pd.Index(ids, name="item_id"))
    return Interactions(ratings, items, None, "log")


def test_same_second_ratings_are_ordered_by_user_then_item_as_the_reference():
    # user 9 rates items 30, 4, 10 in one second, file order 30, 4, 10; the reference (E2URec
    # data_preprocess/ml-1m.ipynb) sorts by (timestamp, User ID, Movie ID) with integer ids: 4, 10, 30
    rows = [("9", "1", 4.0, 100), ("9", "30", 5.0, 200), ("9", "4", 2.0, 200), ("9", "10", 3.0, 200),
            ("9", "2", 1.0, 300), ("10", "1", 4.0, 200), ("10", "2", 4.0, 200), ("10", "3", 4.0, 350),
            ("10", "4", 4.0, 400)]
    samples = build_samples(_log(rows), DataConfig(history_len=5, min_history=1))
    nine = samples[samples.user_id == "9"]
    assert list(nine.item_id) == ["4", "10", "30", "2"]
    assert list(nine.iloc[-1].history_item_ids) == ["1", "4", "10", "30"]
    assert list(nine.iloc[-1].history_ratings) == [4.0, 2.0, 3.0, 5.0]
    # globally, same-second samples of users 9 and 10 go user 9 first (9 < 10 as integers, not as strings)
    assert list(zip(samples.user_id, samples.item_id)) == [("9", "4"), ("9", "10"), ("9", "30"), ("10", "2"),
                                                           ("9", "2"), ("10", "3"), ("10", "4")]
    splits = time_split(samples, [0.6, 0.15, 0.25])
    assert [list(splits[s].item_id) for s in ("train", "valid", "test")] == [["4", "10", "30", "2"], ["2"], ["3", "4"]]


def test_ids_that_are_not_all_integers_are_ordered_as_strings():
    rows = [("u", "b", 4.0, 1), ("u", "a9", 2.0, 2), ("u", "a10", 5.0, 2), ("u", "c", 3.0, 3)]
    samples = build_samples(_log(rows), DataConfig(min_history=1))
    assert list(samples.item_id) == ["a10", "a9", "c"]


def test_a_time_split_that_only_ids_could_decide_is_refused():
    rows = [(str(u), str(i), 4.0, 1000) for u in range(1, 5) for i in range(1, 7)]
    samples = build_samples(_log(rows), DataConfig(min_history=1))
    with pytest.raises(LlmrecError, match="data.split: cannot split by time: all 4 train samples and some valid "
                                          "samples have the same timestamp 1000"):
        time_split(samples, [0.2, 0.4, 0.4])
    # two seconds are not enough for three splits: valid and test both lie in the second one
    rows = [(u, i, s, 2000 if u in "34" else t) for u, i, s, t in rows]
    with pytest.raises(LlmrecError, match="all 5 valid samples and some test samples have the same timestamp 2000"):
        time_split(build_samples(_log(rows), DataConfig(min_history=1)), [0.5, 0.25, 0.25])


def test_llmrec_data_refuses_a_log_without_distinct_timestamps(tmp_path, capsys):
    from llmrec.cli import main

    log = tmp_path / "ratings.csv"
    log.write_text("user_id,item_id,rating,timestamp\n" + "".join(f"{u},{i},4,0\n" for u in range(4) for i in range(8)))
    code = main(["data", "data.format=csv", f"data.path={log}", f"data.cache_dir={tmp_path / 'cache'}"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cannot split by time" in err[0]
    assert not (tmp_path / "cache").exists()


def repeated_ratings_csv(path) -> str:
    """4 users rate items 1..8, then re-rate items 2, 4, 6 later with other stars; user 1's rating of item 7 is also
    a second, identical row (other stars in the same second are refused: readers' same-second check): 45 rows,
    13 repeats."""
    rows = [(u, i, 1 + (u + i) % 5, 1000 * i + u) for u in range(1, 5) for i in range(1, 9)]
    rows += [(u, i, 1 + (u + i + 2) % 5, 10_000 + 100 * i + u) for u in range(1, 5) for i in (2, 4, 6)]
    rows += [(1, 7, 2, 7001)]
    rows[6] = (1, 7, 2, 7001)
    path.write_text("user_id,item_id,rating,timestamp\n" + "".join(f"{u},{i},{r},{t}\n" for u, i, r, t in rows))
    return str(path)


def test_repeated_ratings_keep_the_latest_so_no_target_sits_in_its_own_history(tmp_path, capsys):
    from llmrec.cli import main

    log = repeated_ratings_csv(tmp_path / "ratings.csv")
    data = DataConfig(format="csv", path=log, min_history=2, history_len=10, cache_dir=str(tmp_path / "cache"))
    splits = prepare_splits(data, ForgetConfig(fraction=0.25))
    samples = pd.concat([splits[s].to_pandas() for s in ("train", "valid", "test")])
    leaks = [t for t, h in zip(samples.item_id, samples.history_item_ids) if t in list(h)]
    assert leaks == [] and len(samples) == 4 * (8 - 2)  # 8 distinct items per user, the first 2 only as history
    assert splits.metadata["repeated_ratings_dropped"] == 13 and splits.metadata["ratings_read"] == 45
    kept = {(u, i): r for u, i, r in zip(samples.user_id, samples.item_id, samples.rating)}
    assert kept[("3", "4")] == 1 + (3 + 4 + 2) % 5  # the re-rating, not the first one
    assert kept[("1", "7")] == 2  # one rating given twice
    assert main(["data", "data.format=csv", f"data.path={log}", f"data.cache_dir={tmp_path / 'cache'}",
                 "data.min_history=2", "forget.fraction=0.25"]) == 0
    assert len(list((tmp_path / "cache").iterdir())) == 1  # it printed the cached splits' metadata
    assert "45 ratings read, 13 repeated (user, item) ratings dropped (the latest kept)" in capsys.readouterr().out


def test_u_item_in_latin1_or_utf8_gives_identical_prompts(tmp_path):
    from llmrec.config import PromptConfig
    from llmrec.data.prompts import render_prompt
    from tests.data.test_readers import U_USER, item_line, ml100k

    titles = ["Misérables, Les (1995)", "Café au lait (1993)", "Heat (1995)", "Amélie (2001)", "Fargo (1996)",
              "Señorita (1990)"]
    item = "".join(item_line(i, title, {"Drama"}) for i, title in enumerate(titles, start=1))
    data = "".join(f"{u}\t{i}\t{1 + (u * i) % 5}\t{100 * i + u}\n" for u in (1, 2) for i in range(1, 7))
    prompts, metadata = {}, {}
    for codec in ("latin-1", "utf-8"):
        folder = ml100k(tmp_path / codec, data=data, item=item, user=U_USER)
        (folder / "u.item").write_bytes(item.encode(codec))
        config = DataConfig(format="ml-100k", path=str(folder), min_history=2, cache_dir=str(tmp_path / "cache"))
        splits = prepare_splits(config, ForgetConfig(fraction=0.5))
        prompts[codec] = [render_prompt(row, PromptConfig()) for name in ("train", "valid", "test")
                          for row in splits[name]]
        metadata[codec] = splits.metadata["encodings"]["u.item"]
    assert prompts["latin-1"] == prompts["utf-8"] and len(prompts["utf-8"]) == 8
    assert any("Misérables" in prompt for prompt in prompts["utf-8"])
    assert metadata == {"latin-1": "latin-1", "utf-8": "utf-8"}
    forced = DataConfig(format="ml-100k", path=str(tmp_path / "utf-8"), min_history=2, encoding="latin-1",
                        cache_dir=str(tmp_path / "cache"))
    splits = prepare_splits(forced, ForgetConfig(fraction=0.5))  # the override is part of the fingerprint
    assert len(list((tmp_path / "cache").iterdir())) == 3
    assert splits.metadata["encodings"]["u.item"] == "latin-1"
    assert any("MisÃ©rables" in render_prompt(row, PromptConfig()) for row in splits["train"])


@pytest.mark.parametrize("fractions", [[0.5, 0.5], [0.6, 0.3, 0.3], [1.0, 0.0, 0.0]])
def test_bad_split_fractions(fractions):
    with pytest.raises(LlmrecError, match="data.split"):
        time_split(build_samples(tiny_log(), DataConfig(min_history=1)), fractions)


def _train(users: int) -> pd.DataFrame:
    return pd.DataFrame({"user_id": [str(u) for u in range(users) for _ in range(3)]})


def test_forget_fraction_is_seeded():
    train = _train(50)
    first = choose_forget_users(train, ForgetConfig(fraction=0.2, seed=1))
    assert len(first) == 10 and first == choose_forget_users(train, ForgetConfig(fraction=0.2, seed=1))
    assert first != choose_forget_users(train, ForgetConfig(fraction=0.2, seed=2))


def test_forget_users_from_file(tmp_path):
    path = tmp_path / "forget.txt"
    path.write_text("3\n7\n\n3\n")
    assert choose_forget_users(_train(10), ForgetConfig(users=str(path))) == ["3", "7"]


@pytest.mark.parametrize(
    "content, message",
    [
        ("3\n99\n", r"forget.txt:2: unknown user id '99'"),
        ("\n\n", "the forget set is empty"),
        ("".join(f"{u}\n" for u in range(10)), "the forget set is the whole training set"),
    ],
)
def test_bad_forget_files(tmp_path, content, message):
    path = tmp_path / "forget.txt"
    path.write_text(content)
    with pytest.raises(LlmrecError, match=message):
        choose_forget_users(_train(10), ForgetConfig(users=str(path)))


def test_missing_forget_file_and_bad_fractions(tmp_path):
    with pytest.raises(LlmrecError, match="no such forget-users file"):
        choose_forget_users(_train(10), ForgetConfig(users=str(tmp_path / "none.txt")))
    with pytest.raises(LlmrecError, match="rounds to 0"):
        choose_forget_users(_train(10), ForgetConfig(fraction=0.01))
    with pytest.raises(LlmrecError, match="between 0 and 1"):
        choose_forget_users(_train(10), ForgetConfig(fraction=1.0))


def test_prepare_splits_partitions_train_and_caches(tmp_path, recipe_factory):
    recipe = recipe_factory()
    splits = prepare_splits(recipe.data, recipe.forget)
    train, forget, retained = (splits[s].to_pandas() for s in ("train", "forget", "retained"))
    assert len(forget) + len(retained) == len(train)
    assert set(forget.user_id).isdisjoint(retained.user_id)
    assert len(set(forget.user_id)) == round(0.2 * train.user_id.nunique())
    cached = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(cached) == 1 and cached[0].startswith("samples-synthetic-0-")

    again = prepare_splits(recipe.data, recipe.forget)  # loaded from the cache, same content
    assert again["forget"].to_pandas().equals(forget)
    other = recipe_factory("forget.seed=5")
    prepare_splits(other.data, other.forget)
    assert len(list((tmp_path / "cache").iterdir())) == 2  # a different config, a different fingerprint


def test_subsample_keeps_at_most_n_samples_per_split_in_time_order_and_draws_forget_users_from_them(recipe_factory):
    full_recipe = recipe_factory()
    full = prepare_splits(full_recipe.data, full_recipe.forget)
    recipe = recipe_factory("data.subsample.train=200", "data.subsample.valid=50", "data.subsample.test=100000")
    small = prepare_splits(recipe.data, recipe.forget)
    trained = len(small["train"]) + len(small["holdout"])  # the holdout users are drawn from the 200 train samples
    assert (trained, len(small["valid"]), len(small["test"])) == (200, 50, len(full["test"]))
    assert len(small["holdout"]) and set(small["holdout"]["user_id"]).isdisjoint(small["train"]["user_id"])
    for name in ("train", "valid"):
        parts = [name, "holdout"] if name == "train" else [name]
        frame = reference_order(pd.concat([small[part].to_pandas() for part in parts]))
        whole = pd.concat([full[part].to_pandas() for part in parts])
        assert frame["timestamp"].is_monotonic_increasing  # still a time split
        keys = set(zip(whole.user_id, whole.item_id, whole.timestamp))
        assert set(zip(frame.user_id, frame.item_id, frame.timestamp)) <= keys  # drawn from the split, not rebuilt
    assert set(small["forget"]["user_id"]) <= set(small["train"]["user_id"])
    assert len(small["forget"]) + len(small["retained"]) == len(small["train"])
    again = recipe_factory("data.subsample.train=200", "data.subsample.valid=50", "data.subsample.seed=1")
    assert prepare_splits(again.data, again.forget)["train"]["item_id"] != small["train"]["item_id"]
    with pytest.raises(LlmrecError, match="data.subsample.train must be 0"):
        bad = recipe_factory("data.subsample.train=-1")
        prepare_splits(bad.data, bad.forget)


def test_users_forgotten_by_earlier_requests_stay_out_of_the_retained_split(tmp_path, recipe_factory):
    recipe = recipe_factory()
    train_users = sorted(set(prepare_splits(recipe.data, recipe.forget)["train"]["user_id"]))
    (tmp_path / "now.txt").write_text(f"{train_users[0]}\n")
    (tmp_path / "before.txt").write_text(f"{train_users[1]}\n{train_users[2]}\n")
    now = recipe_factory(f"forget.users={tmp_path / 'now.txt'}", f"forget.already_forgotten={tmp_path / 'before.txt'}")
    splits = prepare_splits(now.data, now.forget)
    assert set(splits["forget"]["user_id"]) == {train_users[0]}
    assert set(splits["retained"]["user_id"]) == set(train_users[3:])
    (tmp_path / "before.txt").write_text("nobody\n")
    with pytest.raises(LlmrecError, match="before.txt:1: unknown user id 'nobody'"):
        prepare_splits(now.data, now.forget)
    (tmp_path / "before.txt").write_text("\n".join(train_users[1:]) + "\n")
    with pytest.raises(LlmrecError, match="cover the whole training set"):
        prepare_splits(now.data, now.forget)


def test_interaction_level_forgetting_draws_samples_not_users(tmp_path, recipe_factory):
    recipe = recipe_factory("forget.unit=interactions", "forget.fraction=0.02")
    splits = prepare_splits(recipe.data, recipe.forget)
    train, forget, retained = (splits[s].to_pandas() for s in ("train", "forget", "retained"))
    assert len(forget) == round(0.02 * len(train)) and len(forget) + len(retained) == len(train)
    keys = {tuple(row) for row in forget[["user_id", "item_id", "timestamp"]].itertuples(index=False)}
    assert keys.isdisjoint(tuple(row) for row in retained[["user_id", "item_id", "timestamp"]].itertuples(index=False))
    assert set(forget.user_id) & set(retained.user_id)  # a user keeps the ratings that were not forgotten
    users = recipe_factory("forget.fraction=0.02")
    assert len(list((tmp_path / "cache").iterdir())) == 1
    prepare_splits(users.data, users.forget)
    assert len(list((tmp_path / "cache").iterdir())) == 2  # the unit is part of the fingerprint
    with pytest.raises(LlmrecError, match="forget.users and forget.already_forgotten name users"):
        named = recipe_factory("forget.unit=interactions", f"forget.users={tmp_path / 'x.txt'}")
        prepare_splits(named.data, named.forget)


def test_the_e2urec_ml1m_protocol_resplits_the_newest_valid_and_test_samples(tmp_path, recipe_factory):
    # E2URec data_preprocess: 80/10/10 time split, then the last 100,000 samples of valid+test split
    # 60/20/20, 20% of those train users forgotten (recipes/bench/ml1m-e2urec.yaml); here the last 100
    # of this small synthetic log's
    from llmrec.bench.run import BenchRecipe
    from llmrec.config import load_recipe
    from tests.conftest import REPO

    shipped = load_recipe(REPO / "recipes/bench/ml1m-e2urec.yaml", cls=BenchRecipe)
    assert (shipped.data.split, shipped.data.resplit_last, shipped.data.resplit, shipped.forget.fraction) == (
        [0.8, 0.1, 0.1], 100_000, [0.6, 0.2, 0.2], 0.2)
    protocol = [f"data.split={shipped.data.split}", f"data.resplit={shipped.data.resplit}",
                f"forget.fraction={shipped.forget.fraction}"]
    whole = recipe_factory(*protocol)
    samples = time_split(build_samples(generate_synthetic(whole.data.synthetic), whole.data), whole.data.split)
    newest = pd.concat([samples["valid"], samples["test"]])
    assert len(newest) > 100
    splits = prepare_splits((recipe := recipe_factory(*protocol, "data.resplit_last=100")).data, recipe.forget)
    assert [len(splits["train"]) + len(splits["holdout"]), len(splits["valid"]), len(splits["test"])] == [60, 20, 20]
    trained = reference_order(pd.concat([splits["train"].to_pandas(), splits["holdout"].to_pandas()]))
    keys = list(zip(trained.user_id, trained.item_id)) + [
        (u, i) for name in ("valid", "test") for u, i in zip(splits[name]["user_id"], splits[name]["item_id"])]
    assert keys == list(zip(newest.user_id, newest.item_id))[-100:]
    train_users = set(splits["train"]["user_id"])
    assert len(set(splits["forget"]["user_id"])) == round(0.2 * len(train_users))
    assert len(splits["forget"]) + len(splits["retained"]) == len(splits["train"])
    assert splits.metadata["resplit"] == {"newest_valid_test_samples": 100, "train": 60, "valid": 20, "test": 20}
    fewer = recipe_factory(*protocol, "data.resplit_last=100000")  # all of valid+test when there are fewer
    splits = prepare_splits(fewer.data, fewer.forget)
    n = len(newest)
    assert [len(splits["train"]) + len(splits["holdout"]), len(splits["valid"]), len(splits["test"])] == [
        int(0.6 * n), int(0.2 * n), n - int(0.6 * n) - int(0.2 * n)]
    assert splits.metadata["time_split"] == {name: len(frame) for name, frame in samples.items()}
    with pytest.raises(LlmrecError, match="data.resplit_last must be 0"):
        bad = recipe_factory(*protocol, "data.resplit_last=-5")
        prepare_splits(bad.data, bad.forget)
    with pytest.raises(LlmrecError, match=r"data.resplit must be three positive fractions"):
        bad = recipe_factory(*protocol, "data.resplit_last=100", "data.resplit=[0.5, 0.5]")
        prepare_splits(bad.data, bad.forget)


def test_the_resplit_option_off_keeps_the_fingerprint(tmp_path, recipe_factory):
    default = recipe_factory()
    prepare_splits(default.data, default.forget)
    unused = recipe_factory("data.resplit=[0.5, 0.25, 0.25]")  # ignored while resplit_last is 0
    prepare_splits(unused.data, unused.forget)
    assert len(list((tmp_path / "cache").iterdir())) == 1


# In-distribution non-members (issue 19, item 1): data.holdout users' train-split samples are never trained on.

def test_holdout_users_leave_train_forget_and_retained_and_keep_their_valid_and_test_samples(recipe_factory):
    off = prepare_splits((nobody := recipe_factory("data.holdout=0")).data, nobody.forget)
    assert len(off["holdout"]) == 0 and "holdout" not in data_fingerprint(nobody.data)["settings"]
    recipe = recipe_factory()  # the default: 5% of the train users
    splits = prepare_splits(recipe.data, recipe.forget)
    users, before = set(splits["holdout"]["user_id"]), set(off["train"]["user_id"])
    assert users <= before and len(users) == round(0.05 * len(before)) > 0
    # their train-split samples, and nobody else's, moved from train to holdout
    assert sample_ids(splits["holdout"]) == {s for s in sample_ids(off["train"]) if s[0] in users}
    assert sample_ids(splits["train"]) == sample_ids(off["train"]) - sample_ids(splits["holdout"])
    assert users.isdisjoint(splits["forget"]["user_id"]) and users.isdisjoint(splits["retained"]["user_id"])
    assert len(splits["forget"]) + len(splits["retained"]) == len(splits["train"])
    assert len(set(splits["forget"]["user_id"])) == round(0.2 * len(before - users))  # drawn from the others
    for name in ("valid", "test"):  # later samples stay as they were: test data for every model
        assert splits[name].to_pandas().equals(off[name].to_pandas())
    assert users & set(splits["test"]["user_id"])
    assert splits.metadata["holdout"]["users"] == len(users)
    assert splits.metadata["holdout"]["samples"] == len(splits["holdout"])


def test_the_holdout_draw_is_seeded_and_drawn_apart_from_the_forget_draw():
    train = _train(100)
    first = choose_holdout_users(train, DataConfig(holdout=0.1))
    assert len(first) == 10 and first == choose_holdout_users(train, DataConfig(holdout=0.1))
    assert first != choose_holdout_users(train, DataConfig(holdout=0.1, holdout_seed=1))
    assert first != choose_forget_users(train, ForgetConfig(fraction=0.1, seed=0))  # the same seed, its own stream
    assert choose_holdout_users(train, DataConfig(holdout=0)) == []
    for fraction in (-0.1, 1.0):
        with pytest.raises(LlmrecError, match=r"data.holdout must be a fraction in \[0, 1\)"):
            choose_holdout_users(train, DataConfig(holdout=fraction))
    with pytest.raises(LlmrecError, match="all 10 training users would be held out"):
        choose_holdout_users(_train(10), DataConfig(holdout=0.99))


def test_the_holdout_settings_key_the_data_cache_and_the_data_fingerprint(tmp_path, recipe_factory):
    settings = [[], ["data.holdout=0"], ["data.holdout=0.1"], ["data.holdout_seed=1"]]
    assert len({data_fingerprint(recipe_factory(*s).data)["sha256"] for s in settings}) == 4
    for s in settings[:2]:
        prepare_splits((recipe := recipe_factory(*s)).data, recipe.forget)
    assert len(list((tmp_path / "cache").iterdir())) == 2
    # off, the seed draws nothing: the settings, and so fingerprints taken before data.holdout existed, hold
    unused = data_fingerprint(recipe_factory("data.holdout=0", "data.holdout_seed=3").data)
    assert unused == data_fingerprint(recipe_factory("data.holdout=0").data)
    assert not {"holdout", "holdout_seed"} & unused["settings"].keys()
    file = tmp_path / "holdout.txt"  # a file counts by its content, not its name
    file.write_text("1\n")
    first = data_fingerprint(recipe_factory(f"data.holdout={file}").data)
    file.write_text("2\n")
    assert data_fingerprint(recipe_factory(f"data.holdout={file}").data)["sha256"] != first["sha256"]
    assert first["settings"]["holdout"] == {"users_sha256": hashlib.sha256(b"1\n").hexdigest()}


def test_holdout_users_from_a_file_and_bad_files(tmp_path, recipe_factory):
    off = prepare_splits((nobody := recipe_factory("data.holdout=0")).data, nobody.forget)
    train_users = sorted(set(off["train"]["user_id"]))
    file = tmp_path / "holdout.txt"
    file.write_text(f"{train_users[0]}\n\n{train_users[1]}\n")
    splits = prepare_splits((recipe := recipe_factory(f"data.holdout={file}")).data, recipe.forget)
    assert set(splits["holdout"]["user_id"]) == set(train_users[:2])
    assert sample_ids(splits["holdout"]) == {s for s in sample_ids(off["train"]) if s[0] in train_users[:2]}
    for content, message in [("nobody\n", "holdout.txt:1: unknown user id 'nobody' (not a training user)"),
                             ("\n", "no user ids in the data.holdout file")]:
        file.write_text(content)
        with pytest.raises(LlmrecError, match=re.escape(message)):
            prepare_splits(recipe.data, recipe.forget)
    with pytest.raises(LlmrecError, match="no such data.holdout users file"):
        choose_holdout_users(_train(10), DataConfig(holdout=str(tmp_path / "none.txt")))
    file.write_text("10\n")  # a user, but not of this train split
    with pytest.raises(LlmrecError, match="holdout.txt:1: unknown user id '10' .not a training user."):
        choose_holdout_users(_train(10), DataConfig(holdout=str(file)))


def test_naming_a_holdout_user_to_forget_or_train_on_is_one_line_exit_2(tmp_path, recipe_factory, capsys):
    from llmrec.cli import main

    recipe = recipe_factory()
    splits = prepare_splits(recipe.data, recipe.forget)
    held, trained = sorted(set(splits["holdout"]["user_id"]))[0], sorted(set(splits["train"]["user_id"]))[0]
    named = tmp_path / "named.txt"
    named.write_text(f"{trained}\n{held}\n")
    data = [o for o in SMALL_OVERRIDES if o.startswith("data.")] + [f"data.cache_dir={tmp_path / 'cache'}"]
    capsys.readouterr()  # the build's progress bars
    for key in ("forget.users", "forget.already_forgotten"):
        assert main(["data", *data, f"{key}={named}"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"named.txt:2: user id '{held}' is a holdout user (data.holdout)" in err[0]
    with pytest.raises(LlmrecError, match="is a holdout user"):
        training_split(splits, "train", str(named))
    with pytest.raises(LlmrecError, match="got 'holdout' .data.holdout users are never trained on."):
        training_split(splits, "holdout")


def test_llmrec_data_prints_the_holdout_counts(tmp_path, capsys):
    from llmrec.cli import main

    data = [o for o in SMALL_OVERRIDES if o.startswith("data.")] + [f"data.cache_dir={tmp_path / 'cache'}"]
    assert main(["data", *data]) == 0
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("holdout"))
    splits = prepare_splits(*(lambda r: (r.data, r.forget))(load_recipe(None, data)))
    assert line.split()[1:5] == [str(len(splits["holdout"])), "samples", str(len(set(splits["holdout"]["user_id"]))),
                                 "users"]


@pytest.mark.slow
def test_ml100k_split_sizes(tmp_path):
    from tests.conftest import ML100K

    if not (ML100K / "u.data").is_file():
        pytest.skip("../shared/data/ml-100k is not present")
    data = DataConfig(format="ml-100k", path=str(ML100K), cache_dir=str(tmp_path))
    splits = prepare_splits(data, ForgetConfig())
    assert [len(splits["train"]) + len(splits["holdout"]), len(splits["valid"]), len(splits["test"])] == [
        57171, 19057, 19057]
    assert len(splits["forget"]) + len(splits["retained"]) == len(splits["train"])


# The data cache: verified at every load, rebuilt when damaged, built once by concurrent runs (issue 18, 5 and 7).

def _flip_a_title(cache: Path, frames: dict) -> None:
    """One letter of a title in the train split's arrow file: the file still loads, a row silently changes."""
    (arrow,) = (cache / "train").glob("data-*.arrow")
    data = arrow.read_bytes()
    title = frames["train"]["target_title"][0].encode()
    at = data.index(title)
    arrow.write_bytes(data[:at] + bytes([title[0] ^ 0x20]) + data[at + 1:])


def _delete_an_arrow_file(cache: Path, frames: dict) -> None:  # a half-built cache
    next((cache / "forget").glob("data-*.arrow")).unlink()


def _truncate_metadata(cache: Path, frames: dict) -> None:
    (cache / "metadata.json").write_text('{"format_version": 2, "sour')


@pytest.mark.parametrize("damage", [_flip_a_title, _delete_an_arrow_file, _truncate_metadata])
def test_a_damaged_data_cache_is_rebuilt_and_said_so(recipe_factory, tmp_path, capsys, damage):
    recipe = recipe_factory()
    built = prepare_splits(recipe.data, recipe.forget)
    frames = {name: built[name].to_dict() for name in built}  # copies: pandas would view the mmapped file
    (cache,) = (tmp_path / "cache").iterdir()
    damage(cache, frames)
    capsys.readouterr()

    again = prepare_splits(recipe.data, recipe.forget)
    said = capsys.readouterr().out.splitlines()
    assert len(said) == 1 and said[0].startswith(f"data cache {cache}: ") and "rebuilding it" in said[0], said
    for name, frame in frames.items():
        assert again[name].to_dict() == frame, name  # the right rows, not the damaged ones
    assert again.metadata == built.metadata
    prepare_splits(recipe.data, recipe.forget)  # the rebuilt cache is trusted again, without a word
    assert capsys.readouterr().out == ""
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [cache.name]


CONCURRENT_BUILDER = """
import pathlib, sys, time
import llmrec.data.samples as samples
from llmrec.config import load_recipe

log, start = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
real_build = samples.build_samples
def counted(*args, **kwargs):
    with open(log, "a") as handle:
        handle.write("built\\n")
    return real_build(*args, **kwargs)
samples.build_samples = counted
recipe = load_recipe(None, sys.argv[4:])
start.with_name(f"ready-{sys.argv[3]}").touch()
while not start.exists():
    time.sleep(0.01)
splits = samples.prepare_splits(recipe.data, recipe.forget)
print({name: len(split) for name, split in splits.items()})
"""


def test_concurrent_builders_of_one_data_cache_build_it_once_and_all_succeed(tmp_path):
    from tests.conftest import SMALL_OVERRIDES
    from tests.test_io import python, wait_for

    builds, start, cache = tmp_path / "builds.log", tmp_path / "start", tmp_path / "cache"
    data = [o for o in SMALL_OVERRIDES if o.startswith("data.")]
    runs = [python(CONCURRENT_BUILDER, builds, start, k, f"data.cache_dir={cache}", *data, wait=False)
            for k in range(4)]
    for k, run in enumerate(runs):
        wait_for(tmp_path / f"ready-{k}", run)
    start.touch()  # all four ask for the cache at once
    results = [run.communicate(timeout=120) for run in runs]
    assert [run.returncode for run in runs] == [0] * 4, [err[-2000:] for _, err in results]
    assert len({out.splitlines()[-1] for out, _ in results}) == 1  # the same splits for all
    assert builds.read_text().splitlines() == ["built"]  # one built it; the others waited and reused it
    assert len(list(cache.iterdir())) == 1  # no temp dir, lock or half-built cache left
    said = [line for out, _ in results for line in out.splitlines()[:-1]]
    assert all(line.startswith("waiting for pid ") and "building the data cache" in line for line in said), said
