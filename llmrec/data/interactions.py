"""The one in-memory shape every reader (and the synthetic generator) produces."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class Interactions:
    """Ratings plus item and user side information, ids as strings so any log format fits.

    ratings: columns user_id (str), item_id (str), rating (float), timestamp (int64)
    items:   indexed by item_id (str); columns title (str), genres (str, '|'-joined, may be '')
    users:   indexed by user_id (str); columns age (int), gender ('M'/'F'), occupation (str);
             None when the source has no user profiles.
    encodings: the codec each file was decoded with, by file name ({} for generated data).
    """

    ratings: pd.DataFrame
    items: pd.DataFrame
    users: pd.DataFrame | None
    name: str
    encodings: dict[str, str] = field(default_factory=dict)
