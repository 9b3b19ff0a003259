"""A deterministic MovieLens-like log, so the demo and fast tests need no files.

Ratings come from a latent model a small LM can learn from the prompt alone:
user bias (visible as the stars in their history) + item quality (carried by the words of
the title, as "Cursed" or "Odyssey" would be for real audiences) + taste for genres (titles
use genre-specific words) + noise.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from llmrec.config import SyntheticConfig
from llmrec.data.interactions import Interactions

GENRE_WORDS = {
    "Action": (["Iron", "Rogue", "Final", "Steel", "Burning"], ["Strike", "Fury", "Mission", "Vengeance", "Siege"]),
    "Comedy": (["Crazy", "Lucky", "Silly", "Big", "Funny"], ["Weekend", "Wedding", "Roommates", "Neighbors", "Road Trip"]),
    "Drama": (["Quiet", "Broken", "Distant", "Long", "Honest"], ["Letters", "Summer", "Promise", "Inheritance", "Silence"]),
    "Horror": (["Haunted", "Bloody", "Cursed", "Dark", "Hollow"], ["Cellar", "Ritual", "Asylum", "Whispers", "Curse"]),
    "Romance": (["Sweet", "Paris", "Endless", "Tender", "Secret"], ["Love", "Kiss", "Valentine", "Heart", "Affair"]),
    "Sci-Fi": (["Quantum", "Galactic", "Orbital", "Cyber", "Stellar"], ["Odyssey", "Colony", "Android", "Nebula", "Protocol"]),
    "Thriller": (["Silent", "Deadly", "Hidden", "Cold", "Twisted"], ["Witness", "Conspiracy", "Alibi", "Pursuit", "Motive"]),
    "Animation": (["Little", "Magic", "Brave", "Happy", "Tiny"], ["Dragon", "Penguin", "Kingdom", "Robot", "Forest"]),
    "Documentary": (["True", "Inside", "Wild", "Hidden", "Real"], ["Story", "Planet", "Chronicles", "Journey", "Truth"]),
    "Western": (["Dusty", "Lone", "Outlaw", "Golden", "Red"], ["Canyon", "Ranger", "Frontier", "Saloon", "Rider"]),
    "Musical": (["Singing", "Golden", "Broadway", "Dancing", "Starlit"], ["Melody", "Serenade", "Rhythm", "Encore", "Ballad"]),
    "War": (["Last", "Bitter", "Northern", "Fallen", "Iron"], ["Battalion", "Front", "Beachhead", "Trenches", "Convoy"]),
}
GENRES = list(GENRE_WORDS)
OCCUPATIONS = [
    "student", "engineer", "programmer", "educator", "writer", "artist", "doctor", "lawyer",
    "librarian", "technician", "marketing", "retired", "scientist", "homemaker", "administrator",
]
# Share of 1..5 star ratings in MovieLens-100K, so labels (rating > 3) are ~55% positive.
STAR_SHARES = np.array([0.061, 0.114, 0.271, 0.342, 0.212])
START_TIME = 852_076_800  # 1997-01-01, as in MovieLens-100K
SPAN_SECONDS = 2 * 365 * 24 * 3600


def _items(rng: np.random.Generator, num_items: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    genre_matrix = np.zeros((num_items, len(GENRES)))
    words = sorted({w for pair in GENRE_WORDS.values() for part in pair for w in part})
    word_quality = dict(zip(words, rng.normal(0.0, 0.6, len(words))))
    titles, genre_names, quality = [], [], []
    seen: dict[str, int] = {}
    for i in range(num_items):
        primary = rng.integers(len(GENRES))
        extra = rng.choice(len(GENRES), size=rng.integers(0, 2), replace=False)
        chosen = sorted({int(primary), *map(int, extra)})
        genre_matrix[i, chosen] = 1.0 / len(chosen)
        adjectives, nouns = GENRE_WORDS[GENRES[primary]]
        adjective, noun = adjectives[rng.integers(len(adjectives))], nouns[rng.integers(len(nouns))]
        quality.append(word_quality[adjective] + word_quality[noun] + rng.normal(0.0, 0.3))
        base = f"{adjective} {noun}"
        seen[base] = seen.get(base, 0) + 1
        name = base if seen[base] == 1 else f"{base} {_roman(seen[base])}"
        titles.append(f"{name} ({rng.integers(1950, 1998)})")
        genre_names.append("|".join(GENRES[g] for g in chosen))
    items = pd.DataFrame(
        {"title": titles, "genres": genre_names},
        index=pd.Index([str(i + 1) for i in range(num_items)], name="item_id"),
    )
    return items, genre_matrix, np.array(quality)


def _roman(n: int) -> str:
    return ["", "I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"][n] if n <= 10 else str(n)


def generate_synthetic(config: SyntheticConfig = SyntheticConfig()) -> Interactions:
    """Same config, same data: everything is drawn from one seeded generator."""
    rng = np.random.default_rng(config.seed)
    items, genre_matrix, quality = _items(rng, config.num_items)

    n_users = config.num_users
    ages = rng.integers(18, 66, n_users)
    genders = rng.choice(["M", "F"], n_users)
    occupations = rng.choice(OCCUPATIONS, n_users)
    taste = rng.normal(0.0, 1.0, (n_users, len(GENRES)))
    bias = rng.normal(0.0, 0.8, n_users)
    users = pd.DataFrame(
        {"age": ages, "gender": genders, "occupation": occupations},
        index=pd.Index([str(u + 1) for u in range(n_users)], name="user_id"),
    )

    popularity = 1.0 / np.arange(1, config.num_items + 1) ** 0.8
    popularity = rng.permutation(popularity / popularity.sum())
    rows = []
    for u in range(n_users):
        count = int(rng.integers(config.ratings_per_user // 2, config.ratings_per_user * 3 // 2 + 1))
        count = min(count, config.num_items)
        chosen = rng.choice(config.num_items, size=count, replace=False, p=popularity)
        start = rng.uniform(0, 0.6) * SPAN_SECONDS
        length = rng.uniform(0.2, 0.4) * SPAN_SECONDS
        times = np.sort(rng.uniform(start, start + length, count)).astype(np.int64) + START_TIME
        score = bias[u] + quality[chosen] + 0.9 * genre_matrix[chosen] @ taste[u] + rng.normal(0, 0.4, count)
        rows.append(pd.DataFrame({"user_id": str(u + 1), "item": chosen, "score": score, "timestamp": times}))
    ratings = pd.concat(rows, ignore_index=True)

    cuts = np.quantile(ratings["score"], np.cumsum(STAR_SHARES)[:-1])
    ratings["rating"] = (np.searchsorted(cuts, ratings["score"]) + 1).astype(float)
    ratings["item_id"] = (ratings["item"] + 1).astype(str)
    ratings = ratings[["user_id", "item_id", "rating", "timestamp"]]
    return Interactions(ratings=ratings, items=items, users=users, name=f"synthetic-{config.seed}")
