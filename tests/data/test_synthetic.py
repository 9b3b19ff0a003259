import numpy as np

from llmrec.config import SyntheticConfig
from llmrec.data.synthetic import generate_synthetic


def test_same_seed_same_data_other_seed_other_data():
    config = SyntheticConfig(num_users=40, num_items=30, ratings_per_user=10, seed=3)
    first, second = generate_synthetic(config), generate_synthetic(config)
    assert first.ratings.equals(second.ratings) and first.items.equals(second.items)
    other = generate_synthetic(SyntheticConfig(num_users=40, num_items=30, ratings_per_user=10, seed=4))
    assert not other.ratings.equals(first.ratings)


def test_looks_like_movielens():
    data = generate_synthetic(SyntheticConfig(num_users=100, num_items=80, ratings_per_user=20))
    ratings = data.ratings
    assert set(ratings.columns) == {"user_id", "item_id", "rating", "timestamp"}
    assert set(ratings.rating.unique()) == {1.0, 2.0, 3.0, 4.0, 5.0}
    assert 0.45 < (ratings.rating > 3).mean() < 0.65
    assert set(ratings.item_id) <= set(data.items.index) and set(ratings.user_id) <= set(data.users.index)
    assert data.items.title.is_unique and data.items.title.str.match(r".+ \(\d{4}\)$").all()
    assert not ratings.duplicated(["user_id", "item_id"]).any()
    assert set(data.users.columns) == {"age", "gender", "occupation"}


def test_ratings_follow_the_latent_taste():
    """Users with high average ratings in their first half also rate high in their second half."""
    ratings = generate_synthetic(SyntheticConfig(num_users=200, num_items=100, ratings_per_user=30)).ratings
    ratings = ratings.sort_values(["user_id", "timestamp"])
    halves = ratings.groupby("user_id").rating.apply(lambda r: (r.iloc[: len(r) // 2].mean(), r.iloc[len(r) // 2 :].mean()))
    first, second = zip(*halves)
    assert np.corrcoef(first, second)[0, 1] > 0.4
