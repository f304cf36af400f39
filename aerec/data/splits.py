"""Splits of interaction data: weak (per-user holdout) and strong (held-out users).

These reproduce, row for row, the fixed split files of the shared benchmark protocol
(``make_splits.py``): ``weak_split(positives, seed=s)`` is protocol A1 seed ``s`` and
``strong_split(positives, seed=100 + s)`` is protocol A2 seed ``s``. The tests check this
against the files, so the quickstart can rebuild a protocol split where the files are absent.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .interactions import check_columns

__all__ = ["implicit_positives", "weak_split", "strong_split"]


def implicit_positives(
    ratings: pd.DataFrame, threshold: float = 4, min_positives: int = 5, user: str = "user", item: str = "item", rating: str = "rating"
) -> pd.DataFrame:
    """Rows with ``rating >= threshold`` of users with at least ``min_positives`` of them, sorted by user and item."""
    check_columns(ratings, [user, item, rating], "ratings")
    pos = ratings[ratings[rating] >= threshold]
    counts = pos.groupby(user).size()
    pos = pos[pos[user].isin(counts[counts >= min_positives].index)]
    return pos.sort_values([user, item]).reset_index(drop=True)


def _per_user_split(frame: pd.DataFrame, fracs, rng, user: str, item: str) -> list[pd.DataFrame]:
    parts: list[list[pd.DataFrame]] = [[] for _ in fracs]
    for _, group in frame.groupby(user, sort=True):
        order = rng.permutation(len(group))
        n = len(group)
        sizes = [max(1, int(round(f * n))) for f in fracs[1:]]
        bounds = np.cumsum([n - sum(sizes)] + sizes)
        start = 0
        for k, end in enumerate(bounds):
            parts[k].append(group.iloc[order[start:end]])
            start = end
    return [pd.concat(p).sort_values([user, item]) for p in parts]


def weak_split(
    df: pd.DataFrame, fracs=(0.7, 0.1, 0.2), seed: int = 0, user: str = "user", item: str = "item"
) -> list[pd.DataFrame]:
    """Split every user's rows into parts of the given fractions (at least one row each after the first).

    Returns one DataFrame per fraction, e.g. ``train, valid, test``.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1] * 10, "item": range(10)})
    >>> [len(p) for p in weak_split(df, seed=0)]
    [7, 1, 2]
    """
    check_columns(df, [user, item], "interactions")
    frame = df.sort_values([user, item]).reset_index(drop=True)
    return _per_user_split(frame, list(fracs), np.random.default_rng(seed), user, item)


def strong_split(
    df: pd.DataFrame, heldout_users: float = 0.1, fold_in: float = 0.8, seed: int = 100, user: str = "user", item: str = "item"
) -> dict[str, pd.DataFrame]:
    """Split users into training, validation and test users (Liang et al., 2018).

    Validation and test users' rows are split per user into ``fold_in`` and held-out parts.
    Returns a dict with keys ``train``, ``valid_fold_in``, ``valid_held_out``,
    ``test_fold_in``, ``test_held_out``.
    """
    check_columns(df, [user, item], "interactions")
    frame = df.sort_values([user, item]).reset_index(drop=True)
    rng = np.random.default_rng(seed)
    users = rng.permutation(frame[user].unique())
    n_ho = int(round(heldout_users * len(users)))
    groups = {"valid": users[len(users) - 2 * n_ho: len(users) - n_ho], "test": users[len(users) - n_ho:]}
    out = {"train": frame[frame[user].isin(users[: len(users) - 2 * n_ho])]}
    for name, members in groups.items():
        part_in, part_out = _per_user_split(frame[frame[user].isin(members)], [fold_in, 1 - fold_in], rng, user, item)
        out[f"{name}_fold_in"], out[f"{name}_held_out"] = part_in, part_out
    return out
