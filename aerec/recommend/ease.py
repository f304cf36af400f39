"""`EASE`: the closed-form linear autoencoder behind the recommender contract."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..base import register
from ..models.ease import ease_weights
from ..params import Interval
from .base import Recommender

__all__ = ["EASE"]


@register
class EASE(Recommender):
    """Embarrassingly Shallow Autoencoder (Steck, 2019): ``score(u) = x_u · B`` with a closed-form ``B``.

    The user code is the user's interaction row ``x_u`` and the item code of item j is column
    ``B[:, j]`` (bias 0), so ``score = h_u · W_j + b_j`` holds as for every aerec recommender.
    Similar items of i are the items j with the largest ``B[i, j]``: what a user who has only i
    is recommended (as for every recommender).

    Parameters
    ----------
    l2 : float, default 500.0
        L2 regularisation λ; tune it on validation data (larger catalogues want larger λ).
    max_memory : int, optional
        Bytes the dense item x item solve may use; by default 80% of the memory available at
        fit time. A larger catalogue is refused with :class:`~aerec.exceptions.CatalogueTooLargeError`.
    seed : int, default 0
        Accepted for a uniform interface; the closed-form fit is deterministic.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": ["a", "b", "a", "c", "b"]})
    >>> model = EASE(l2=1.0).fit(df)
    >>> model.recommend([3], k=2)["item"].tolist()
    ['a', 'c']
    """

    def __init__(self, l2: float = 500.0, max_memory: int | None = None, seed: int = 0):
        self.l2 = l2
        self.max_memory = max_memory
        self.seed = seed

    _parameter_constraints = {
        "l2": [Interval("real", 0, None, closed="neither")],
        "max_memory": [Interval("int", 1, None), None],
        "seed": [Interval("int", 0, None)],
    }

    def _fit(self, X, valid) -> None:
        self.B_ = ease_weights(X.matrix, float(self.l2), self.max_memory)

    def _user_vectors(self, rows: sp.csr_matrix, user_index) -> np.ndarray:
        return rows.toarray()

    def _item_vectors(self):
        return self.B_.T, np.zeros(self.B_.shape[0], dtype=np.float32)

    def _scores(self, rows: sp.csr_matrix, user_index) -> np.ndarray:
        return np.asarray(rows @ self.B_)

    def _get_state(self):
        return {"B": self.B_}

    def _set_state(self, state):
        self.B_ = np.ascontiguousarray(state["B"])
