"""`Popularity`: the baseline every recommender must beat."""
from __future__ import annotations

import numpy as np

from ..base import register
from ..params import Interval
from .base import Recommender

__all__ = ["Popularity"]


@register
class Popularity(Recommender):
    """Recommends the items with the most training interactions (the same list for everyone, minus what each user has).

    The user code is the constant 1 and the item code the item's interaction count, so
    ``score = h_u · W_i + b_i`` holds as for every aerec recommender.

    Parameters
    ----------
    seed : int, default 0
        Accepted for a uniform interface; counting is deterministic.
    """

    _parameter_constraints = {"seed": [Interval("int", 0, None)]}

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _fit(self, X, valid) -> None:
        pass  # item_popularity_ is all it needs, and the base class has counted it

    def _user_vectors(self, rows, user_index) -> np.ndarray:
        return np.ones((rows.shape[0], 1), dtype=np.float32)

    def _item_vectors(self):
        counts = self.item_popularity_[:self.n_model_items_]  # items added from features come after
        return counts[:, None], np.zeros_like(counts)
