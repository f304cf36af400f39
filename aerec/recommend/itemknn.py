"""`ItemKNN`: the cosine item-neighbourhood model, the baseline every recommender should be held against."""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from ..base import register
from ..exceptions import CatalogueTooLargeError
from ..params import Boolean, Interval
from ..utils import available_memory
from .base import Recommender

__all__ = ["ItemKNN", "cosine_neighbours"]


def cosine_neighbours(X: sp.csr_matrix, neighbours: int, shrink: float, block: int = 4096,
                      progress: bool = False) -> sp.csr_matrix:
    """``S`` (items x items, sparse): for each target item j, its ``neighbours`` most similar items i.

    ``S[i, j] = x_i · x_j / (|x_i| |x_j| + shrink)`` over the columns ``x_i`` of ``X`` (users x
    items), the diagonal left out. The co-occurrences are counted as a sparse product, ``block``
    target items at a time (memory is bounded by the pairs of a block that co-occur, never by
    ``n_items²``), and only each target's top ``neighbours`` are kept (ties at the cut go to the
    lower item index).
    """
    from tqdm.auto import tqdm

    X = sp.csr_matrix(X, dtype=np.float32)
    n_items = X.shape[1]
    k = int(min(neighbours, max(n_items - 1, 0)))
    norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=0)).ravel()).astype(np.float32)
    Xt, Xc = X.T.tocsr(), X.tocsc()
    parts = []
    starts = range(0, n_items, block)
    for start in tqdm(starts, desc="item-kNN", unit="block", disable=not progress or len(starts) < 2):
        stop = min(start + block, n_items)
        co = (Xt @ Xc[:, start:stop]).tocoo()  # the pairs that co-occur: (item i, target j - start)
        i, j = co.row, co.col + start
        sims = co.data / (norms[i] * norms[j] + np.float32(shrink) + np.float32(1e-12))
        keep = (i != j) & (sims > 0)  # an item is not its own neighbour
        i, j, sims = i[keep], j[keep], sims[keep]
        # per target, by decreasing similarity, ties by item index; keep the first k of each target
        order = np.lexsort((i, -sims, j))
        j_sorted = j[order]
        first = np.searchsorted(j_sorted, j_sorted, side="left")
        top = order[np.arange(len(order)) - first < k]
        parts.append((sims[top], i[top], j[top]))
    if not parts or k == 0:
        return sp.csr_matrix((n_items, n_items), dtype=np.float32)
    vals, rows, cols = (np.concatenate(p) for p in zip(*parts))
    return sp.csr_matrix((vals, (rows, cols)), shape=(n_items, n_items), dtype=np.float32)


@register
class ItemKNN(Recommender):
    """Item-based nearest neighbours with cosine similarity (Sarwar et al., 2001; Deshpande & Karypis, 2004).

    The score of item j for a user is the sum of j's similarities to the items of the user's
    history, over j's ``neighbours`` most similar items only:
    ``score(u, j) = Σ_i x_ui · S[i, j]`` with ``S[i, j] = x_i · x_j / (|x_i| |x_j| + shrink)``
    (``x_i``: item i's column of the training matrix). The baseline users know from implicit's
    ``CosineRecommender`` and RecBole's ``ItemKNN``, here behind the recommender contract: no user
    parameters, so fold-in of a new history is exact.

    The user code is the interaction row ``x_u`` and item j's code is the column ``S[:, j]``
    (bias 0), so ``score = h_u · W_j + b_j`` holds as for every aerec recommender; these codes are
    as wide as the catalogue, so :meth:`build_index` and :meth:`item_codes` hold a dense
    ``n_items x n_items`` matrix and are refused with
    :class:`~aerec.exceptions.CatalogueTooLargeError` where it would not fit in memory
    (recommendations with ``via="model"`` use the sparse ``S`` and need no such matrix).

    Parameters
    ----------
    neighbours : int, default 100
        Neighbours kept per item (RecBole's ``k``, implicit's ``K``).
    shrink : float, default 10.0
        Added to the denominator: pairs that co-occur with few users count less.
    binary : bool, default True
        Read every interaction as 1 (ratings or counts ignored), as the implicit-feedback
        benchmarks do; False uses the values of the training matrix.
    seed : int, default 0
        Accepted for a uniform interface; the fit is deterministic.
    progress : bool, default False
        Show a progress bar over the blocks of items while counting co-occurrences.

    Attributes
    ----------
    similarity_ : scipy.sparse.csr_matrix
        ``S`` (items x items), at most ``neighbours`` entries per column.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1, 1, 2, 2, 3], "item": ["a", "b", "a", "c", "b"]})
    >>> model = ItemKNN(neighbours=2, shrink=0.0).fit(df)
    >>> model.recommend([3], k=1)["item"].tolist()
    ['a']
    """

    _parameter_constraints = {
        "neighbours": [Interval("int", 1, None)],
        "shrink": [Interval("real", 0, None)],
        "binary": [Boolean()],
        "seed": [Interval("int", 0, None)],
        "progress": [Boolean()],
    }

    def __init__(self, neighbours: int = 100, shrink: float = 10.0, binary: bool = True, seed: int = 0,
                 progress: bool = False):
        self.neighbours = neighbours
        self.shrink = shrink
        self.binary = binary
        self.seed = seed
        self.progress = progress

    def _rows(self, rows: sp.csr_matrix) -> sp.csr_matrix:
        if not self.binary:
            return rows
        rows = sp.csr_matrix(rows, dtype=np.float32, copy=True)
        rows.data[:] = 1.0
        return rows

    def _fit(self, X, valid) -> None:
        self.similarity_ = cosine_neighbours(self._rows(X.matrix), int(self.neighbours), float(self.shrink),
                                             progress=bool(self.progress))

    def _user_vectors(self, rows: sp.csr_matrix, user_index) -> np.ndarray:
        return self._rows(rows).toarray()

    def _item_vectors(self):
        n = self.similarity_.shape[0]
        need, budget = 4 * n * n, available_memory() // 2
        if need > budget:
            raise CatalogueTooLargeError(
                f"ItemKNN's item codes are the {n:,} x {n:,} similarity columns made dense ({need / 2**30:.1f} GiB), "
                f"more than half the memory available ({budget / 2**30:.1f} GiB): recommend with via='model', "
                "which reads the sparse similarities")
        return self.similarity_.T.toarray(), np.zeros(n, dtype=np.float32)

    def _scores(self, rows: sp.csr_matrix, user_index) -> np.ndarray:
        return np.asarray((self._rows(rows) @ self.similarity_).toarray(), dtype=np.float32)

    def _get_state(self):
        S = self.similarity_
        return {"data": S.data, "indices": S.indices, "indptr": S.indptr, "shape": np.asarray(S.shape, np.int64)}

    def _set_state(self, state):
        shape = tuple(int(v) for v in state["shape"])
        self.similarity_ = sp.csr_matrix((state["data"], state["indices"], state["indptr"]), shape=shape)
