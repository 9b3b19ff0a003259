"""E2URec-style samples: each rating becomes (user profile, previous K rated items, target item, label).

Ratings are ordered by (timestamp, user, item), as the E2URec reference orders them
(`data_preprocess/ml-1m.ipynb`: `sort_values(by=["timestamp", "User ID", "Movie ID"], kind="stable")`):
a history is the user's earlier ratings in that order, and the splits cut it. Splits are a global
time split (the future is never in train). A seeded few of the train users (`data.holdout`) are held out:
their train-split samples move to the split `holdout`, which no model trains on, so they show what a forgotten
user should look like afterwards (in-distribution non-members); their valid/test samples stay. The forget set is a
set of the other training users, and `retained` is train without them. Built splits are cached on disk as HF datasets under a
fingerprint of the input bytes and the config, so a rerun loads in seconds. A cache holds the sha256 of
each of its files (checksums.json) and is verified at every load: a damaged or half-built one is rebuilt, said
in one line. Builds hold the cache's lock (`.samples-....lock` beside it, while building): a concurrent
builder of the same cache waits for it and reuses the result.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
from datasets import Dataset, DatasetDict, load_from_disk

from llmrec.config import DataConfig, ForgetConfig, SubsampleConfig
from llmrec.data.interactions import Interactions
from llmrec.errors import LlmrecError
from llmrec.io import atomic_dir, content_record, file_sha256, hold_lock

SPLITS = ("train", "valid", "test", "holdout", "forget", "retained")
METADATA = "metadata.json"  # beside the cached splits: how they were built
CHECKSUMS = "checksums.json"  # {"sha256": {file: hex}} of every file save_splits wrote: damage means a rebuild
# Bump when the samples built from the same input change, so old caches are not reused.
# 2: ties within a second ordered by (user, item) instead of file order; repeated (user, item) ratings dropped.
FORMAT_VERSION = 2


def input_fingerprint(config: DataConfig) -> str:
    """A digest of exactly what the configured source reads: the input files' bytes, or the generator settings."""
    if config.format == "synthetic":
        return _digest(dataclasses.asdict(config.synthetic))
    if not config.path:
        raise LlmrecError(f"data.path is required for data.format={config.format}")
    return _hash_inputs(Path(config.path))


def load_interactions(config: DataConfig) -> tuple[Interactions, str]:
    """Read the configured source; also return its input fingerprint."""
    from llmrec.data.readers import check_scale, read_interactions

    check_scale(config.rating_scale)  # a bad data.rating_scale is refused for every format, synthetic too
    if config.format == "synthetic":
        from llmrec.data.synthetic import generate_synthetic

        return generate_synthetic(config.synthetic), input_fingerprint(config)
    if not config.path:
        raise LlmrecError(f"data.path is required for data.format={config.format}")
    interactions = read_interactions(config.path, config.format, config.encoding,  # a bad input fails here
                                     config.rating_scale)
    return interactions, input_fingerprint(config)


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _hash_inputs(path: Path) -> str:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    h = hashlib.sha256()
    for file in files:
        h.update(file.name.encode())
        h.update(file.read_bytes())
    return h.hexdigest()[:16]


def _id_key(ids: pd.Series) -> pd.Series:
    """Ids compare as integers when every id is one (MovieLens; the reference's ids are ints), else as strings."""
    if ids.str.fullmatch(r"-?\d{1,18}").all():
        return ids.astype("int64")
    return ids


def reference_order(frame: pd.DataFrame) -> pd.DataFrame:
    """Rows (with user_id, item_id, timestamp columns) sorted by (timestamp, user, item), as the E2URec reference
    sorts ratings (data_preprocess/ml-1m.ipynb). Stable: rows equal on all three keep their input order."""
    keys = pd.DataFrame({"t": frame["timestamp"].to_numpy(), "u": _id_key(frame["user_id"]).to_numpy(),
                         "i": _id_key(frame["item_id"]).to_numpy(), "us": frame["user_id"].to_numpy(),
                         "is": frame["item_id"].to_numpy()})  # the strings break ties between '7' and '07'
    order = keys.sort_values(["t", "u", "i", "us", "is"], kind="stable").index.to_numpy()
    return frame.iloc[order].reset_index(drop=True)


def latest_ratings(ratings: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """One rating per (user, item): the latest in reference order (newest timestamp; within one second the later
    file row), so a re-rated item never sits in the history of its own sample with its answer. Returns the
    ratings in reference order and how many rows were dropped. The reference assumes no repeats (ML-1M has none)."""
    ordered = reference_order(ratings)
    latest = ordered.drop_duplicates(["user_id", "item_id"], keep="last").reset_index(drop=True)
    return latest, len(ordered) - len(latest)


def build_samples(interactions: Interactions, config: DataConfig) -> pd.DataFrame:
    """One row per rating that has at least `min_history` earlier ratings by the same user, in reference order
    (timestamp, user, item); the history is the user's previous `history_len` ratings in that order. Repeated
    (user, item) ratings keep only the latest (`latest_ratings`); `samples.attrs["repeated_ratings_dropped"]`
    counts the rows dropped."""
    ratings, dropped = latest_ratings(interactions.ratings)
    titles = interactions.items["title"].to_dict()
    rows = []
    for user_id, group in ratings.groupby("user_id", sort=False):
        items = group["item_id"].tolist()
        stars = group["rating"].tolist()
        times = group["timestamp"].tolist()
        for i in range(config.min_history, len(items)):
            start = max(0, i - config.history_len)
            rows.append((user_id, items[i], stars[i], times[i], items[start:i], stars[start:i]))
    samples = pd.DataFrame(
        rows, columns=["user_id", "item_id", "rating", "timestamp", "history_item_ids", "history_ratings"]
    )
    if samples.empty:
        raise LlmrecError(
            f"no samples: every user has fewer than data.min_history={config.min_history} earlier ratings"
        )
    samples["label"] = (samples["rating"] > config.like_threshold).astype(int)
    samples["target_title"] = samples["item_id"].map(titles.get)
    samples["history_titles"] = samples["history_item_ids"].map(lambda ids: [titles[i] for i in ids])
    profile = _profiles(interactions)
    for column in ("age", "gender", "occupation"):
        samples[column] = samples["user_id"].map(profile[column]) if profile is not None else ""
    samples = reference_order(samples)
    samples.attrs["repeated_ratings_dropped"] = dropped
    return samples


def _profiles(interactions: Interactions) -> pd.DataFrame | None:
    if interactions.users is None:
        return None
    users = interactions.users.reindex(columns=["age", "gender", "occupation"]).astype(object)
    return users.where(users.notna(), "").astype(str)


def time_split(samples: pd.DataFrame, fractions: list[float], key: str = "data.split") -> dict[str, pd.DataFrame]:
    """Global split by time: the oldest fraction trains, the newest tests. Samples are cut in reference order
    (timestamp, user, item), so ties within a second fall as in the E2URec reference. A split whose samples all
    share one second with a neighbouring split was decided by ids alone, not time: LlmrecError."""
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-6:
        raise LlmrecError(f"{key} must be three positive fractions summing to 1, got {fractions}")
    ordered = reference_order(samples)
    n_train = int(fractions[0] * len(ordered))
    n_valid = int(fractions[1] * len(ordered))
    parts = {
        "train": ordered.iloc[:n_train],
        "valid": ordered.iloc[n_train : n_train + n_valid],
        "test": ordered.iloc[n_train + n_valid :],
    }
    _require_time_separation(parts, key)
    return parts


def _require_time_separation(parts: dict[str, pd.DataFrame], key: str) -> None:
    names = list(parts)
    for i, name in enumerate(names):
        times = parts[name]["timestamp"]
        if times.empty or times.iat[0] != times.iat[-1]:
            continue
        for other in names[max(i - 1, 0) : i + 2]:
            if other != name and (parts[other]["timestamp"] == times.iat[0]).any():
                raise LlmrecError(
                    f"{key}: cannot split by time: all {len(times)} {name} samples and some {other} samples have "
                    f"the same timestamp {times.iat[0]}, so user and item ids alone would decide the split "
                    "(the log needs distinct timestamps)"
                )


def resplit_newest(splits: dict[str, pd.DataFrame], last: int, fractions: list[float]) -> dict[str, pd.DataFrame]:
    """E2URec's ML-1M protocol (data_preprocess/split_ml-1m.ipynb): the newest `last` samples of valid+test
    (`pd.concat([valid_df, test_df]).iloc[-100000:]`; all of them when fewer) split again by time with `fractions`
    (the reference cuts at int(0.6 n) and int(0.8 n); we cut at int(0.6 n) and int(0.6 n) + int(0.2 n), the same
    for its n = 100,000). The first split's train is dropped: it only lends its ratings to the histories."""
    if last < 0:
        raise LlmrecError(f"data.resplit_last must be 0 (off) or a positive count, got {last}")
    newest = pd.concat([splits["valid"], splits["test"]]).iloc[-last:]
    return time_split(newest, fractions, key="data.resplit")


def subsample(splits: dict[str, pd.DataFrame], config: SubsampleConfig) -> dict[str, pd.DataFrame]:
    """At most `config.<split>` samples of each split, drawn at random and kept in time order."""
    rng = np.random.default_rng(config.seed)
    out = {}
    for name, frame in splits.items():
        limit = getattr(config, name)
        if limit < 0:
            raise LlmrecError(f"data.subsample.{name} must be 0 (all) or a positive count, got {limit}")
        if limit and limit < len(frame):
            frame = frame.iloc[np.sort(rng.choice(len(frame), size=limit, replace=False))]
        out[name] = frame
    return out


def read_user_file(path: str | Path, train_users: list[str], what: str, holdout=frozenset()) -> list[str]:
    """Sorted unique ids from a one-per-line UTF-8 file (`readers.read_id_lines`: a byte-order mark is dropped;
    UTF-16, NUL or undecodable bytes are refused with file:line); every id must be a training user. An id in
    `holdout` (the data.holdout users, no longer in train) is refused as such: no model trains on it."""
    from llmrec.data.readers import read_id_lines

    path = Path(path)
    if not path.is_file():
        raise LlmrecError(f"{path}: no such {what} file")
    known = set(train_users)
    lines = read_id_lines(path)
    for line_no, user in enumerate(lines, start=1):
        if user.strip() in holdout:
            raise LlmrecError(f"{path}:{line_no}: user id {user.strip()!r} is a holdout user (data.holdout): no model "
                              "trains on it, so it cannot be named here")
        if user.strip() and user.strip() not in known:  # repr shows characters one cannot see
            raise LlmrecError(f"{path}:{line_no}: unknown user id {user.strip()!r} (not a training user)")
    return sorted({line.strip() for line in lines if line.strip()})


def choose_holdout_users(train: pd.DataFrame, data: DataConfig) -> list[str]:
    """The data.holdout users (sorted): the ids in the file `data.holdout` names (every one a user of `train`), or a
    fraction of `train`'s users rounded to whole users (0: none), drawn with numpy's default_rng([holdout_seed, 1])
    so the forget draw (default_rng(forget.seed)) is not correlated with it. The E2URec reference holds nobody out
    (data.holdout 0 reproduces its splits). Raises LlmrecError for a fraction
    outside [0, 1), an empty, missing or unknown-id file, or a holdout that leaves no training user."""
    train_users = sorted(train["user_id"].unique())
    if isinstance(data.holdout, str):
        chosen = read_user_file(data.holdout, train_users, "data.holdout users")
        if not chosen:
            raise LlmrecError(f"{data.holdout}: no user ids in the data.holdout file (data.holdout: 0 turns it off)")
    else:
        if not 0 <= data.holdout < 1:
            raise LlmrecError("data.holdout must be a fraction in [0, 1) of the training users or a file of user "
                              f"ids, got {data.holdout}")
        count = round(data.holdout * len(train_users))
        rng = np.random.default_rng([data.holdout_seed, 1])
        chosen = sorted(rng.choice(train_users, size=count, replace=False).tolist()) if count else []
    if len(chosen) >= len(train_users):
        raise LlmrecError(f"data.holdout: all {len(train_users)} training users would be held out; none would be "
                          "left to train on")
    return chosen


def holdout_settings(data: DataConfig) -> dict:
    """The data.holdout settings as cache keys and fingerprints see them: {} when off (0, so keys taken before the
    option existed hold), {"holdout": fraction, "holdout_seed": seed}, or for a file {"holdout": {"users_sha256":
    its bytes' sha256}} (its content, not its name; the path itself when there is no such file)."""
    if isinstance(data.holdout, str):
        path = Path(data.holdout)
        return {"holdout": {"users_sha256": hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file()
                            else str(path)}}
    return {"holdout": data.holdout, "holdout_seed": data.holdout_seed} if data.holdout else {}


def holdout_users(splits) -> set[str]:
    """The users of the split `holdout` (none in caches built before it existed)."""
    return set(splits["holdout"]["user_id"]) if "holdout" in splits else set()


def choose_forget_users(train: pd.DataFrame, config: ForgetConfig, holdout=frozenset()) -> list[str]:
    """A seeded fraction of training users, or the ids listed in `config.users` (none of them in `holdout`)."""
    train_users = sorted(train["user_id"].unique())
    if config.users:
        chosen = read_user_file(config.users, train_users, "forget-users", holdout)
        if not chosen:
            raise LlmrecError(f"{config.users}: the forget set is empty (no user ids in the file)")
    else:
        if not 0 < config.fraction < 1:
            raise LlmrecError(f"forget.fraction must be between 0 and 1 (exclusive), got {config.fraction}")
        rng = np.random.default_rng(config.seed)
        count = round(config.fraction * len(train_users))
        chosen = sorted(rng.choice(train_users, size=count, replace=False).tolist()) if count else []
        if not chosen:
            raise LlmrecError(
                f"the forget set is empty: forget.fraction={config.fraction} of {len(train_users)} users rounds to 0"
            )
    if len(chosen) == len(train_users):
        raise LlmrecError("the forget set is the whole training set: nothing would be left to remember")
    return chosen


def data_settings(data: DataConfig) -> dict:
    """The data.* settings that shape samples and splits (not data.path, whose contents `input_fingerprint` covers,
    nor data.cache_dir); an option at its "off" value is left out, so fingerprints taken before it existed hold."""
    # data.rating_scale only checks the input (a rating outside stops reading): the samples it lets by are the same
    settings = {k: v for k, v in dataclasses.asdict(data).items()
                if k not in ("cache_dir", "path", "rating_scale", "holdout", "holdout_seed")}
    settings.update(holdout_settings(data))  # a holdout file by its content; left out when off
    if data.subsample == SubsampleConfig():
        del settings["subsample"]  # keeps the fingerprints of caches built before the option existed
    if not data.resplit_last:
        del settings["resplit_last"], settings["resplit"]  # off: data.resplit is not used either
    return settings


def data_fingerprint(data: DataConfig) -> dict:
    """What a model is trained on, recorded in its card (`data`) and checked by unlearn / evaluate before they use it
    (llmrec.store.check_trained_data): {"sha256": 16 hex digits over both parts, "input": the input's
    `input_fingerprint`, "settings": `data_settings`}. Forget settings are not part of it: the same data serve
    any forget set; data.holdout is (`holdout_settings`): a model trained with another holdout saw other users. Raises LlmrecError when data.path is unset for a file format."""
    input_hash, settings = input_fingerprint(data), data_settings(data)
    return {"sha256": _digest({"v": FORMAT_VERSION, "input": input_hash, "data": settings}), "input": input_hash,
            "settings": settings}


def prepare_splits(data: DataConfig, forget: ForgetConfig) -> DatasetDict:
    """Build (or load from cache) train/valid/test/forget/retained as HF datasets."""
    interactions, input_hash = load_interactions(data)
    forget_key = dataclasses.asdict(forget)
    for key, default in (("already_forgotten", None), ("unit", "users")):
        if forget_key[key] == default:
            del forget_key[key]  # keeps the fingerprints of caches built before the option existed
    for key in ("users", "already_forgotten"):  # a user file is keyed by its content, not its name
        if forget_key.get(key):
            path = Path(forget_key[key])
            forget_key[key] = hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else str(path)
    fingerprint = _digest({"v": FORMAT_VERSION, "input": input_hash, "data": data_settings(data), "forget": forget_key})
    cache = Path(data.cache_dir).expanduser() / f"samples-{interactions.name}-{fingerprint}"
    with hold_lock(cache, wait=True, doing="building the data cache"):  # a second builder waits, then reuses it
        cached = load_verified(cache)
        return cached if cached is not None else build_splits(interactions, input_hash, data, forget, cache)


def build_splits(interactions: Interactions, input_hash: str, data: DataConfig, forget: ForgetConfig,
                 cache: Path) -> DatasetDict:
    """prepare_splits' build, saved to `cache` (`save_splits`); the caller holds the cache's lock."""
    samples = build_samples(interactions, data)
    metadata = {
        "format_version": FORMAT_VERSION,
        "source": interactions.name,
        "input_fingerprint": input_hash,
        "order": "timestamp, user_id, item_id (E2URec reference; ids as integers when all are)",
        "ratings_read": len(interactions.ratings),
        "repeated_ratings_dropped": samples.attrs["repeated_ratings_dropped"],
        "repeated_ratings_rule": "latest rating per (user, item) kept",
        "encodings": interactions.encodings,
    }
    splits = time_split(samples, data.split)
    metadata["time_split"] = {name: len(frame) for name, frame in splits.items()}
    if data.resplit_last:
        splits = resplit_newest(splits, data.resplit_last, data.resplit)
        metadata["resplit"] = {"newest_valid_test_samples": sum(len(frame) for frame in splits.values()),
                               **{name: len(frame) for name, frame in splits.items()}}
    splits = subsample(splits, data.subsample)
    holdout = set(choose_holdout_users(splits["train"], data))
    held = splits["train"]["user_id"].isin(holdout)
    splits["holdout"], splits["train"] = splits["train"][held], splits["train"][~held]
    metadata["holdout"] = {"users": len(holdout), "samples": int(held.sum()),
                           "rule": "data.holdout users' train-split samples; no model trains on them"}
    if data.holdout and not holdout:
        print(f"note: data.holdout={data.holdout} of {splits['train']['user_id'].nunique()} training users rounds "
              "to 0: no holdout users", flush=True)
    if forget.unit == "interactions":
        forgotten = choose_forget_interactions(splits["train"], forget)
        splits["forget"], splits["retained"] = splits["train"][forgotten], splits["train"][~forgotten]
        return save_splits(splits, cache, metadata)
    forget_users = set(choose_forget_users(splits["train"], forget, holdout))
    erased = set(forget_users)
    if forget.already_forgotten:
        erased |= set(read_user_file(forget.already_forgotten, sorted(splits["train"]["user_id"].unique()),
                                     "already-forgotten users", holdout))
    if erased >= set(splits["train"]["user_id"]):
        raise LlmrecError("the forget set and the users already forgotten cover the whole training set")
    splits["forget"] = splits["train"][splits["train"]["user_id"].isin(forget_users)]
    splits["retained"] = splits["train"][~splits["train"]["user_id"].isin(erased)]
    return save_splits(splits, cache, metadata)


def require_user_forgetting(forget: ForgetConfig, what: str) -> None:
    """The LLM's prompts carry each user's rating history, so one forgotten rating would live on in the user's
    later prompts: the LLM path forgets whole users only."""
    if forget.unit != "users":
        raise LlmrecError(f"{what} forgets whole users (prompts carry rating histories); forget.unit=interactions is "
                          "for the classic models")


def choose_forget_interactions(train: pd.DataFrame, config: ForgetConfig) -> np.ndarray:
    """A seeded `fraction` of the training samples, as a boolean mask over them."""
    if config.users or config.already_forgotten:
        raise LlmrecError("forget.unit=interactions draws forget.fraction of the training samples; forget.users and "
                          "forget.already_forgotten name users (use forget.unit=users)")
    if not 0 < config.fraction < 1:
        raise LlmrecError(f"forget.fraction must be between 0 and 1 (exclusive), got {config.fraction}")
    count = round(config.fraction * len(train))
    if count == 0:
        raise LlmrecError(f"the forget set is empty: forget.fraction={config.fraction} of {len(train)} samples "
                          "rounds to 0")
    mask = np.zeros(len(train), dtype=bool)
    mask[np.random.default_rng(config.seed).choice(len(train), size=count, replace=False)] = True
    return mask


def save_splits(splits: dict[str, pd.DataFrame], cache: Path, metadata: dict) -> DatasetDict:
    """The splits as HF datasets, written with their metadata (strict JSON) and CHECKSUMS to the fingerprinted
    cache dir atomically (`atomic_dir`: a temp dir of this process, swapped in under the cache's lock)."""
    dataset = DatasetDict({name: Dataset.from_pandas(df, preserve_index=False) for name, df in splits.items()
                           if not df.empty or name != "holdout"})  # datasets cannot load an empty split it saved
    with atomic_dir(cache, wait=True, doing="building the data cache") as tmp:
        dataset.save_to_disk(str(tmp))
        (tmp / METADATA).write_text(json.dumps(metadata, indent=1, allow_nan=False) + "\n")
        (tmp / CHECKSUMS).write_text(json.dumps({"sha256": content_record(tmp)}, indent=1) + "\n")
    return load_splits(cache)


def load_splits(cache: Path) -> DatasetDict:
    """Cached splits; `.metadata` holds how they were built (metadata.json: ratings read, repeats dropped, ...).
    A cache with no `holdout` split (none held out, or built before data.holdout existed) gets an empty one."""
    splits = load_from_disk(str(cache))
    if "holdout" not in splits:
        splits["holdout"] = splits["train"].select([])
        splits = DatasetDict({name: splits[name] for name in [*[s for s in SPLITS if s in splits],
                                                               *[s for s in splits if s not in SPLITS]]})
    splits.metadata = json.loads((cache / METADATA).read_text())
    return splits


def cache_damage(cache: Path) -> str | None:
    """What is wrong with a data cache dir, or None: every file save_splits wrote must still have the sha256 in
    its CHECKSUMS (files added later, such as datasets' token caches beside the splits, are not checked here)."""
    try:
        recorded = json.loads((cache / CHECKSUMS).read_text())["sha256"]
        if not isinstance(recorded, dict) or not {METADATA, "dataset_dict.json"} <= recorded.keys():
            raise TypeError
    except FileNotFoundError:
        return f"no {CHECKSUMS} (half-built, or built before llmrec checked its caches)"
    except (ValueError, OSError, KeyError, TypeError) as exc:  # JSON and UnicodeDecodeError are ValueErrors
        return f"{CHECKSUMS} is damaged ({type(exc).__name__})"
    for name, digest in sorted(recorded.items()):
        if not (cache / name).is_file():
            return f"{name} is missing"
        if file_sha256(cache / name) != digest:
            return f"{name} does not match its sha256 in {CHECKSUMS}"
    return None


def load_verified(cache: Path) -> DatasetDict | None:
    """The cached splits when the cache is intact (`cache_damage`); else None, saying in one line why the cache
    is rebuilt. Absent: None, silently."""
    if not cache.exists():
        return None
    problem = cache_damage(cache)
    if problem is None:
        try:
            return load_splits(cache)
        except Exception as exc:  # noqa: BLE001 - whatever datasets raises on a cache it cannot read: rebuild it
            problem = f"unreadable ({type(exc).__name__})"
    print(f"data cache {cache}: {problem}; rebuilding it", flush=True)
    return None


def source_summary(metadata: dict) -> str:
    """One line for `llmrec data` on what was read (and in which encoding) and dropped."""
    files = ", ".join(f"{name} {codec}" for name, codec in metadata["encodings"].items())
    return (f"source    {metadata['ratings_read']:>8} ratings read, {metadata['repeated_ratings_dropped']} repeated "
            "(user, item) ratings dropped (the latest kept)" + (f"; read {files}" if files else ""))


def training_split(splits, train_on: str, only_users: str | None = None) -> Dataset:
    """The split a model trains on, restricted to the users listed in `only_users` (a SISA shard) when given.
    Raises LlmrecError for an unknown split, the `holdout` split (no model trains on it) or a file naming a user
    that is not a training user (a holdout user among them)."""
    if train_on not in splits or train_on == "holdout":
        raise LlmrecError(f"train.train_on must be one of {[s for s in splits if s != 'holdout']}, got '{train_on}'"
                          + (" (data.holdout users are never trained on)" if train_on == "holdout" else ""))
    split = splits[train_on]
    if only_users:
        users = set(read_user_file(only_users, sorted(set(splits["train"]["user_id"])), "train.only_users",
                                   holdout_users(splits)))
        split = split.select([i for i, user in enumerate(split["user_id"]) if user in users])
        if len(split) == 0:
            raise LlmrecError(f"train.only_users: none of the users in {only_users} has samples in '{train_on}'")
    return split


def forget_samples_sha256(forget) -> str:
    """sha256 of a forget split's sorted (user_id, item_id, timestamp) triples: which samples it holds, whatever
    settings drew them (the manifest's `forgotten_samples_sha256`; `llmrec evaluate` compares against it)."""
    forgotten = sorted(zip(forget["user_id"], forget["item_id"], forget["timestamp"]))
    return hashlib.sha256(repr(forgotten).encode()).hexdigest()
