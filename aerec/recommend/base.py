"""`Recommender`: the contract every recommendation model of aerec follows, written once.

A model supplies the math on dense indices (``_fit``, ``_user_vectors``, ``_item_vectors``
and, when it has a faster way, ``_scores``); this base class owns everything that touches the
user's ids: checking the input, fold-in, exclusion of seen items, top-K, the output
DataFrames and saving.

The score of item ``i`` for user ``u`` is always ``h_u · W_i + b_i``: the user code from
:meth:`Recommender.user_codes` dotted with the item code from :meth:`Recommender.item_codes`
plus its bias. For the neural models that is the output layer's logit; that is why an
inner-product index over ``[W_i, b_i]`` queried with ``[h_u, 1]`` returns the model's own top-K.

Items added from features after training (cold start) are kept by
:class:`~aerec.recommend.catalogue.ItemCatalogue`, mixed in here. Models built on Keras derive
from :class:`~aerec.recommend.keras_base.KerasRecommender`, which supplies training and codes.

Two faces answer the same questions: DataFrames with the user's ids (:meth:`Recommender.recommend`,
:meth:`~Recommender.recommend_for_history`, :meth:`~Recommender.similar_items`) for notebooks and
batch work, and :class:`TopK` arrays (:meth:`Recommender.top_k`, :meth:`~Recommender.top_k_for_histories`,
:meth:`~Recommender.top_k_similar`) for servers, where a DataFrame per request costs more than the model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..base import BaseEstimator
from ..bundle import load_part, save_part
from ..data import IdMap, Interactions, check_columns
from ..exceptions import DataValidationError, InvalidParameterError
from ..metrics import metrics_from_hits
from ..utils import as_list, first_rows
from .catalogue import ItemCatalogue

__all__ = ["Recommender", "ValidationData", "TopK", "top_k"]

_ON_UNKNOWN = ("error", "skip", "popular")


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices and values of the ``k`` largest entries of each row, best first.

    Ties are broken by the lower index, so the order is deterministic. ``-inf`` entries are
    never returned in front of finite ones (callers drop them).
    """
    n, m = scores.shape
    k = min(k, m)
    part = _top_k_unordered(scores, k) if k < m else np.broadcast_to(np.arange(m), (n, m))
    vals = np.take_along_axis(scores, part, axis=1)
    order = np.lexsort((part, -vals), axis=1)
    idx = np.take_along_axis(part, order, axis=1)
    return idx, np.take_along_axis(vals, order, axis=1)


def _top_k_unordered(scores: np.ndarray, k: int) -> np.ndarray:
    """Column indices of each row's ``k`` largest entries, in column order; of entries tied with the
    k-th, the lower columns. A partition finds each row's k-th value, a comparison the columns
    (about 2x faster than ``argpartition``, which also needs a negated copy, on 1024 x 21,640)."""
    n, m = scores.shape
    kth = np.partition(scores, m - k, axis=1)[:, m - k][:, None]
    chosen = scores >= kth
    crowded = np.flatnonzero(np.count_nonzero(chosen, axis=1) != k)
    if crowded.size:  # more entries tie with the k-th than places are left: the lower columns
        rows, at = scores[crowded], kth[crowded]
        above, tied = rows > at, rows == at
        tied &= np.cumsum(tied, axis=1) <= k - np.count_nonzero(above, axis=1)[:, None]
        chosen[crowded] = above | tied
    flat = np.flatnonzero(chosen)
    if flat.size != n * k:  # NaN scores: no k-th value to compare with
        return np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return (flat % m).reshape(n, k)


@dataclass
class ValidationData:
    """Validation interactions on the model's item indices.

    ``inputs`` are the rows the model sees (training rows of the validation users for weak
    generalisation, their fold-in rows for strong), ``held_out`` the rows it must find;
    ``user_index`` holds the training indices of the users (weak) or None (strong).
    """

    inputs: sp.csr_matrix
    held_out: sp.csr_matrix
    user_index: np.ndarray | None

    @property
    def kind(self) -> str:
        return "weak" if self.user_index is not None else "strong"


@dataclass(frozen=True)
class TopK:
    """Top-``k`` answers as arrays, one row per query.

    Attributes
    ----------
    items : ndarray, shape (n, k)
        The item ids (the user's own), best first. Where fewer than ``k`` items were left after
        exclusions the row ends early: see ``counts``.
    scores : ndarray of float32, shape (n, k)
        The scores ``h_u · W_i + b_i``; ``-inf`` past the end of a short row.
    counts : ndarray of int, shape (n,)
        How many places of each row hold an item.
    ignored : list of lists, optional
        For :meth:`Recommender.top_k_for_histories`: the history items unknown to the model.
    """

    items: np.ndarray
    scores: np.ndarray
    counts: np.ndarray
    ignored: list | None = None

    def row(self, q: int) -> list[tuple]:
        """``[(item, score), ...]`` of query ``q``, best first."""
        n = int(self.counts[q])
        return list(zip(self.items[q, :n].tolist(), self.scores[q, :n].tolist()))


class Recommender(ItemCatalogue, BaseEstimator):
    """Base class of recommenders: ``fit`` on a DataFrame of interactions, then recommend with the user's ids.

    Learned state: ``interactions_`` (the training matrix with ``users_`` and ``items_`` maps),
    ``item_popularity_`` (training interactions per item), ``fit_seconds_``, ``history_``; with item
    features, ``content_`` (the fitted :class:`~aerec.recommend.content.ContentModel`) and
    ``added_codes_`` / ``added_biases_`` (the codes of items added from their features, which
    come after the model's own items in ``items_``).
    """

    served_as = "recommender"

    #: rows of users scored at once; bounds memory at batch_users x n_items floats
    _score_batch = 1024

    # --- to be provided by each model -------------------------------------------------
    def _fit(self, X: Interactions, valid: ValidationData | None) -> None:
        raise NotImplementedError

    def _user_vectors(self, rows: sp.csr_matrix, user_index: np.ndarray | None) -> np.ndarray:
        """``h_u`` for the given interaction rows; ``user_index`` is set for training users, None for fold-in."""
        raise NotImplementedError

    def _item_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """``(W, b)``: item codes (n_items, d) and biases (n_items,)."""
        raise NotImplementedError

    def _scores(self, rows: sp.csr_matrix, user_index: np.ndarray | None) -> np.ndarray:
        """Scores of every item for each row; ``h_u · W_i + b_i`` unless a model knows a faster way."""
        W, b = self._item_vectors()
        return self._user_vectors(rows, user_index) @ W.T + b

    def _get_state(self) -> dict[str, np.ndarray]:
        """Arrays that, with the hyperparameters and the training matrix, restore the fitted model."""
        return {}

    def _set_state(self, state: dict[str, np.ndarray]) -> None:
        pass

    # --- fitting ------------------------------------------------------------------------
    def fit(self, train, valid=None, user: str = "user", item: str = "item", rating: str | None = None,
            threshold: float | None = None, item_features=None, content=None) -> "Recommender":
        """Learn from interactions.

        Parameters
        ----------
        train : DataFrame
            One row per interaction, with the user's own ids.
        valid : DataFrame or (DataFrame, DataFrame), optional
            Held-out interactions of training users (weak generalisation), or a pair
            ``(fold_in, held_out)`` of users unseen in training (strong generalisation).
            Models that train iteratively stop early on its NDCG@100.
        user, item, rating : str
            Column names. Without ``rating`` every interaction counts 1.
        threshold : float, optional
            Keep only interactions with ``rating >= threshold``, as implicit positives.
        item_features : DataFrame, optional
            One row per item, keyed by the ``item`` column: text, categorical, multi-label, numeric
            and vector (e.g. image code) columns (see :mod:`aerec.features`). After the model, a
            content model learns to map the training items' features to their codes; rows of
            items not in ``train`` are then added as by :meth:`add_items`, so they can be
            recommended at once.
        content : ContentModel, optional
            The content model's hyperparameters (and column roles); by default
            ``ContentModel()``. Only with ``item_features``.

        Returns
        -------
        self
        """
        self._validate_params()
        if content is not None and item_features is None:
            raise InvalidParameterError("content= configures the model of item_features; pass item_features too")
        start = time.perf_counter()
        X = Interactions.from_frame(train, user=user, item=item, rating=rating, threshold=threshold, what="train")
        if rating is not None and threshold is None and (X.matrix.data < 0).any():
            negative = pd.to_numeric(train[rating], errors="coerce").to_numpy(dtype=float) < 0
            raise DataValidationError(
                f"train: column {rating!r} has {int(negative.sum())} negative value(s), first at rows "
                f"{first_rows(train.index, negative)}; a recommender reads {rating!r} as the weight of an interaction. "
                f"Pass threshold= to keep the ratings at or above it as positives, or leave rating= out")
        self.columns_ = {"user": user, "item": item, "rating": rating}
        self.interactions_ = X
        self.item_popularity_ = np.asarray((X.matrix > 0).sum(axis=0)).ravel().astype(np.float32)
        self.history_ = {}
        self.content_, self.added_codes_, self.added_biases_ = None, None, None
        self._fit(X, self._validation_data(valid) if valid is not None else None)
        self.fitted_ = True
        if item_features is not None:
            try:
                self._fit_content(item_features, content)
            except BaseException:
                self.fitted_ = False  # no half-fitted model: the content model is part of this fit
                raise
        self._index = None  # the exact index is built on first use (see index_)
        self.fit_seconds_ = time.perf_counter() - start
        return self

    @property
    def index_(self):
        """The FAISS index ``via="index"`` searches: the one :meth:`build_index` made, or an exact
        (``"flat"``) one built on first use. ``fit`` does not build it, so that a model used through
        ``via="model"`` never holds a second copy of its item codes (EASE's and ItemKNN's codes are
        as wide as the catalogue)."""
        if getattr(self, "_index", None) is None:
            self._check_fitted()
            self.build_index("flat")
        return self._index

    def build_index(self, kind: str = "flat", **params) -> "Recommender":
        """(Re)build the FAISS index over the item codes ``[W_i, b_i]`` that ``via="index"`` searches.

        ``fit`` builds an exact (``"flat"``) inner-product index, whose top-K equals the model's.
        For large catalogues pass ``kind="hnsw"``, ``"ivf"`` or ``"auto"`` (and e.g.
        ``recall_target=0.95``); the index then reports the recall it measured in
        ``index_.measured_recall_``, tuned and measured on the recommendations of up to 2,000
        training users: their codes ``[h_u, 1]`` as queries (not held-out item codes), their seen
        items excluded by the same widened search that answers ``via="index"``, against the exact
        top ``recall_at`` (10; pass e.g. ``recall_at=100`` for lists of 100) of what is left.
        """
        from ..index import EmbeddingIndex

        self._check_fitted()
        W, b = self._all_item_vectors()
        vectors = np.hstack([np.asarray(W, dtype=np.float32), np.asarray(b, dtype=np.float32)[:, None]])
        index = EmbeddingIndex(metric="ip", kind=kind, **params)
        queries = seen = None
        if kind != "flat":
            X = self.interactions_.matrix
            users = np.flatnonzero(np.diff(X.indptr) > 0)
            users = np.sort(np.random.default_rng(index.seed).choice(users, min(len(users), 2000), replace=False))
            rows = X[users]
            h = np.asarray(self._user_vectors(rows[:, :self.n_model_items_], users), dtype=np.float32)
            queries = np.hstack([h, np.ones((len(h), 1), np.float32)])
            seen = sp.csr_matrix((rows.data, rows.indices, rows.indptr), shape=(len(users), len(vectors)))
        self._index = index.build(vectors, ids=self.items_.ids, queries=queries, exclude=seen)
        return self

    @property
    def users_(self) -> IdMap:
        return self.interactions_.users

    @property
    def items_(self) -> IdMap:
        return self.interactions_.items

    def _validation_data(self, valid) -> ValidationData:
        user, item = self.columns_["user"], self.columns_["item"]
        if isinstance(valid, tuple):
            if len(valid) != 2:
                raise DataValidationError("valid must be a DataFrame or a pair (fold_in, held_out)")
            fold_in_df, held_out_df = valid
            fold_in = self._history_matrix(fold_in_df, user, item, what="valid fold-in")
            held_out = Interactions.from_frame(held_out_df, user=user, item=item, users=fold_in.users,
                                               items=self.items_, on_unknown="warn", what="valid held-out")
            return ValidationData(fold_in.matrix, held_out.matrix, None)
        held_out = Interactions.from_frame(valid, user=user, item=item, items=self.items_, on_unknown="warn",
                                           what="valid")
        user_index = self.users_.index_of(held_out.users.ids, on_unknown="mark")
        if (user_index < 0).any():
            raise DataValidationError(
                f"valid has {int((user_index < 0).sum())} user(s) not in train; for users unseen in training "
                f"pass valid=(fold_in_df, held_out_df)"
            )
        return ValidationData(self.interactions_.matrix[user_index], held_out.matrix, user_index)

    def validation_metrics(self, valid: ValidationData, metrics=("ndcg@100",)) -> dict[str, float]:
        """Mean ranking metrics on validation data (seen inputs excluded), for early stopping and tuning."""
        metrics = list(metrics)
        k = max(int(m.partition("@")[2]) for m in metrics)
        has_truth = np.diff(valid.held_out.indptr) > 0
        hits, n_rel = [], []
        for start in range(0, valid.inputs.shape[0], self._score_batch):
            stop = min(start + self._score_batch, valid.inputs.shape[0])
            rows = valid.inputs[start:stop]
            uidx = valid.user_index[start:stop] if valid.user_index is not None else None
            idx, _ = self._top_items(rows, uidx, k, exclude_seen=True, candidates=None)
            truth = valid.held_out[start:stop]
            hits.append(np.asarray(truth[np.arange(stop - start)[:, None], idx].todense()) > 0)
            n_rel.append(np.diff(truth.indptr))
        hits, n_rel = np.vstack(hits)[has_truth], np.concatenate(n_rel)[has_truth]
        return metrics_from_hits(hits, n_rel, metrics).mean().to_dict()

    #: validation users an early-stopping check scores, at most: a fixed random sample of them beyond
    _early_stopping_users = 5000
    #: the most early-stopping checks may cost as a share of the training time (see _validation_every)
    _validation_budget = 0.2

    def _validation_every(self, n_checked: int, n_train: int, trained_share: float = 1.0) -> int:
        """Epochs between early-stopping checks: a check scores ``n_checked`` users once (a forward pass
        and a top-100 over the catalogue), an epoch passes ``n_train`` users forward and backward over
        ``trained_share`` of the catalogue's output columns (1 for the full softmax; a sampled softmax
        scores only the items a batch touches and its negatives), so a check costs about
        ``n_checked / (n_train * trained_share)`` epochs at most; checks are spaced so that this stays
        within ``_validation_budget`` of training (a count, not a clock: the same data give the same
        checks). Large data: every epoch (5,000 checked users of 136,000); data of MovieLens-100K's
        size, where as many users are checked as trained: every 5th epoch."""
        share = min(max(float(trained_share), 1e-3), 1.0)
        return max(1, int(np.ceil(n_checked / (self._validation_budget * max(n_train, 1) * share) - 1e-9)))

    def _early_stopping_sample(self, valid: ValidationData) -> ValidationData:
        """``valid`` itself, or a fixed sample of ``_early_stopping_users`` of its users (drawn with the
        seed): checked every epoch or few, validation must cost a fraction of training (the standard error of
        a mean over 5,000 users is the per-user spread / 70)."""
        n = valid.inputs.shape[0]
        if n <= self._early_stopping_users:
            return valid
        seed = getattr(self, "seed", None)
        keep = np.sort(np.random.default_rng(0 if seed is None else seed).choice(n, self._early_stopping_users,
                                                                                 replace=False))
        return ValidationData(valid.inputs[keep], valid.held_out[keep],
                              None if valid.user_index is None else valid.user_index[keep])

    # --- recommending -------------------------------------------------------------------
    def _check_k(self, k, n_candidates: int) -> int:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InvalidParameterError(f"k must be a positive integer, got {k!r}")
        if k > n_candidates:
            raise InvalidParameterError(f"k={k} is larger than the {n_candidates} candidate item(s)")
        return int(k)

    def _candidate_mask(self, items) -> np.ndarray | None:
        if items is None:
            return None
        mask = np.zeros(len(self.items_), dtype=bool)
        mask[self.items_.index_of(items)] = True
        return mask

    def _masked_scores(self, rows, user_index, exclude_seen: bool, candidates: np.ndarray | None) -> np.ndarray:
        model_rows, known, cold = self._split_rows(rows)
        if known.all():
            scores = np.asarray(self._all_scores(model_rows, user_index), dtype=np.float32)
        else:
            scores = np.empty((rows.shape[0], len(self.items_)), dtype=np.float32)
            if known.any():
                scores[known] = self._all_scores(model_rows[known], user_index[known] if user_index is not None else None)
            if cold.any():  # only added items: scored from their codes (see _cold_queries)
                q = self._cold_queries(rows[cold])
                W, b = self._all_item_vectors()
                scores[cold] = q[:, :-1] @ np.asarray(W, np.float32).T + q[:, -1:] * np.asarray(b, np.float32)
            empty = ~known & ~cold
            if empty.any():  # nothing known of these users: fall back to popularity
                scores[empty] = self.item_popularity_
        if candidates is not None:
            scores[:, ~candidates] = -np.inf
        if exclude_seen:
            r, c = rows.nonzero()
            scores[r, c] = -np.inf
        return scores

    def _top_items(self, rows, user_index, k: int, exclude_seen: bool, candidates,
                   via: str = "model") -> tuple[np.ndarray, np.ndarray]:
        """Item indices and scores of the top ``k`` per row (one batch); ``-inf`` marks missing places.

        ``via="index"`` searches the FAISS index with ``[h_u, 1]`` (``[q, 0]`` for rows of added items
        only, see :meth:`_cold_queries`); rows with no known item and candidate sets are always ranked
        by the model (popularity and an exact subset ranking).
        """
        model_rows, known, cold = self._split_rows(rows)
        empty = ~known & ~cold
        if via == "model" or candidates is not None or empty.all():
            return top_k(self._masked_scores(rows, user_index, exclude_seen, candidates), k)
        idx = np.zeros((rows.shape[0], k), dtype=np.int64)
        vals = np.full((rows.shape[0], k), -np.inf, dtype=np.float32)
        if empty.any():
            idx[empty], vals[empty] = top_k(self._masked_scores(rows[empty], None, exclude_seen, None), k)
        full = np.flatnonzero(~empty)
        queries = np.zeros((len(full), 0), dtype=np.float32)
        with_code = known[full]
        if with_code.any():
            chosen = full[with_code]
            every = len(chosen) == rows.shape[0]  # the usual case: no fancy indexing (it dominates one request)
            h = np.asarray(self._user_vectors(model_rows if every else model_rows[chosen],
                                              user_index if every or user_index is None else user_index[chosen]),
                           dtype=np.float32)
            queries = np.zeros((len(full), h.shape[1] + 1), dtype=np.float32)
            queries[with_code] = np.hstack([h, np.ones((len(h), 1), dtype=np.float32)])
        if (~with_code).any():
            q = self._cold_queries(rows[full[~with_code]])
            if queries.shape[1] == 0:
                queries = np.zeros((len(full), q.shape[1]), dtype=np.float32)
            queries[~with_code] = q
        if exclude_seen:  # index positions are item indices
            exclude = rows if len(full) == rows.shape[0] else rows[full]
        else:
            exclude = None
        pos, score = self.index_.search_positions(queries, k, exclude=exclude)
        found = pos >= 0
        idx[full] = np.where(found, pos, 0)
        vals[full] = np.where(found, score, -np.inf)
        return idx, vals

    def _rank(self, rows, user_index, user_ids, k, exclude_seen, candidates, via: str = "model") -> pd.DataFrame:
        parts = []
        for start in range(0, rows.shape[0], self._score_batch):
            stop = min(start + self._score_batch, rows.shape[0])
            uidx = user_index[start:stop] if user_index is not None else None
            idx, vals = self._top_items(rows[start:stop], uidx, k, exclude_seen, candidates, via)
            keep = np.isfinite(vals)
            parts.append(pd.DataFrame({
                "user": np.repeat(user_ids[start:stop], k)[keep.ravel()],
                "item": self.items_.ids_of(idx[keep]),
                "score": vals[keep].astype(np.float32),
                "rank": np.broadcast_to(np.arange(1, k + 1, dtype=np.int64), idx.shape)[keep],
            }))
        return _frame(parts, ["user", "item", "score", "rank"])

    # --- arrays: the fast path of servers ----------------------------------------------------
    def _top_k(self, rows, user_index, k: int, exclude_seen: bool, via: str, ignored=None) -> TopK:
        if rows.shape[0] <= self._score_batch:
            idx, vals = self._top_items(rows, user_index, k, exclude_seen, None, via)
        else:  # batches bound the dense scores at _score_batch x n_items
            parts = [self._top_items(rows[start:start + self._score_batch],
                                     None if user_index is None else user_index[start:start + self._score_batch],
                                     k, exclude_seen, None, via)
                     for start in range(0, rows.shape[0], self._score_batch)]
            idx, vals = np.vstack([p[0] for p in parts]), np.vstack([p[1] for p in parts])
        counts = np.isfinite(vals).sum(axis=1)
        return TopK(self.items_.ids_of(idx.ravel()).reshape(idx.shape), vals.astype(np.float32, copy=False),
                    counts, ignored)

    def top_k(self, users, k: int = 10, exclude_seen: bool = True, via: str = "model") -> TopK:
        """Top-``k`` items of users seen at fit time, as arrays (what :meth:`recommend` returns, without the DataFrame).

        Raises :class:`~aerec.exceptions.UnknownIdError` naming unknown users.

        Examples
        --------
        >>> import pandas as pd, aerec
        >>> model = aerec.EASE(l2=1.0).fit(pd.DataFrame({"user": [1, 1, 2], "item": ["a", "b", "a"]}))
        >>> top = model.top_k([2], k=1)
        >>> top.items.tolist(), top.counts.tolist()
        ([['b']], [1])
        """
        self._check_fitted()
        _check_via(via)
        k = self._check_k(k, len(self.items_))
        index = self.users_.index_of(as_list(users))
        X = self.interactions_.matrix
        rows = X[index[0]:index[0] + 1] if len(index) == 1 else X[index]  # a slice is cheaper than fancy indexing
        return self._top_k(rows, index, k, exclude_seen, via)

    def top_k_for_histories(self, histories, k: int = 10, exclude_seen: bool = True, via: str = "model") -> TopK:
        """Top-``k`` items for new users from their histories (fold-in), as arrays.

        Parameters
        ----------
        histories : list of lists of item ids
            One history per new user; items unknown to the model are ignored and reported in
            ``TopK.ignored`` (a history left empty gets the most popular items).
        """
        self._check_fitted()
        _check_via(via)
        k = self._check_k(k, len(self.items_))
        indptr, cols, ignored = [0], [], []
        for history in histories:
            values = as_list(history)
            index = self.items_.index_of(values, on_unknown="mark") if values else np.zeros(0, np.int64)
            ignored.append([v for v, j in zip(values, index) if j < 0])
            known = np.unique(index[index >= 0])
            cols.append(known)
            indptr.append(indptr[-1] + len(known))
        cols = np.concatenate(cols) if cols else np.zeros(0, np.int64)
        rows = sp.csr_matrix((np.ones(len(cols), np.float32), cols, np.asarray(indptr)),
                             shape=(len(indptr) - 1, len(self.items_)))
        return self._top_k(rows, None, k, exclude_seen, via, ignored)

    def top_k_similar(self, items, k: int = 10, via: str = "index") -> TopK:
        """The ``k`` items most similar to each given item, as arrays (what :meth:`similar_items` returns)."""
        self._check_fitted()
        _check_via(via)
        k = self._check_k(k, len(self.items_) - 1)
        index = self.items_.index_of(as_list(items))
        rows = sp.csr_matrix((np.ones(len(index), np.float32), index, np.arange(len(index) + 1)),
                             shape=(len(index), len(self.items_)))
        return self._top_k(rows, None, k, True, via)

    # --- DataFrames ----------------------------------------------------------------------------
    def recommend(self, users, k: int = 10, exclude_seen: bool = True, items=None, via: str = "model",
                  on_unknown: str = "error") -> pd.DataFrame:
        """Top-``k`` items for users seen at fit time.

        Parameters
        ----------
        users : id or list of ids
            The user's own ids.
        k : int
            How many items per user. Fewer come back only when fewer than ``k`` candidates are left
            after exclusion.
        exclude_seen : bool, default True
            Leave out the items each user interacted with in training.
        items : list of item ids, optional
            Rank only these candidates.
        via : {"model", "index"}
            Score every item with the model, or search the FAISS index over item codes (exact by
            default, so the same top-K; see :meth:`build_index`). Candidate sets (``items=``) are
            always ranked by the model.
        on_unknown : {"error", "skip", "popular"}
            Unknown users raise :class:`~aerec.exceptions.UnknownIdError` (listing them), are left
            out, or get the most popular items.

        Returns
        -------
        DataFrame with columns ``user, item, score, rank`` (rank 1 is best), users in the order given.
        """
        self._check_fitted()
        if on_unknown not in _ON_UNKNOWN:
            raise InvalidParameterError(f"on_unknown must be one of {_ON_UNKNOWN}, got {on_unknown!r}")
        _check_via(via)
        candidates = self._candidate_mask(items)
        k = self._check_k(k, len(self.items_) if candidates is None else int(candidates.sum()))
        user_ids = pd.unique(pd.Series(as_list(users), dtype=object))
        index = self.users_.index_of(user_ids, on_unknown="error" if on_unknown == "error" else "mark")
        known = index >= 0
        out = self._rank(self.interactions_.matrix[index[known]], index[known], self.users_.ids_of(index[known]),
                         k, exclude_seen, candidates, via)
        if on_unknown == "popular" and not known.all():
            empty = sp.csr_matrix((int((~known).sum()), len(self.items_)), dtype=np.float32)
            popular = self._rank(empty, None, user_ids[~known], k, False, candidates)
            # an empty frame would turn the ids and ranks into floats in concat
            out = pd.concat([out, popular], ignore_index=True) if len(out) else popular
            order = {u: n for n, u in enumerate(user_ids)}
            out = out.sort_values(["user", "rank"], key=lambda s: s.map(order) if s.name == "user" else s,
                                  kind="stable").reset_index(drop=True)
        return out

    def recommend_all(self, path, k: int = 100, users=None, exclude_seen: bool = True, via: str = "model",
                      progress: bool = True):
        """Write the top-``k`` items of every training user (or of ``users``) to a Parquet file, in batches.

        The DataFrame of all users' lists can be larger than memory (100 items for each of 10⁶ users
        is 10⁸ rows): each batch of users is scored and written as a row group of its own, so memory
        stays that of one batch. The file is written under a temporary name beside ``path`` and
        renamed when complete: an interrupted run leaves no partial file at ``path``.

        Parameters
        ----------
        path : str or Path
            The Parquet file to write (replaced if it exists).
        k, exclude_seen, via
            As in :meth:`recommend`.
        users : list of ids, optional
            Training users to write, in this order; by default all of them, in training order.
        progress : bool, default True
            Show a progress bar (tqdm) over the users.

        Returns
        -------
        int
            The number of rows written (columns ``user, item, score, rank``, as :meth:`recommend`).
        """
        import os
        import tempfile
        from pathlib import Path

        import pyarrow as pa
        import pyarrow.parquet as pq
        from tqdm.auto import tqdm

        self._check_fitted()
        _check_via(via)
        k = self._check_k(k, len(self.items_))
        path = Path(path)
        if path.is_dir():
            raise DataValidationError(f"{path} is a directory; give the path of the Parquet file to write")
        index = (np.arange(len(self.users_)) if users is None
                 else self.users_.index_of(pd.unique(pd.Series(as_list(users), dtype=object))))
        X = self.interactions_.matrix
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.writing-{os.getpid()}-")
        os.close(fd)
        written, writer = 0, None
        try:
            with tqdm(total=len(index), unit="user", desc="recommend_all", disable=not progress) as bar:
                for start in range(0, len(index), self._score_batch):
                    chunk = index[start:start + self._score_batch]
                    frame = self._rank(X[chunk], chunk, self.users_.ids_of(chunk), k, exclude_seen, None, via)
                    table = pa.Table.from_pandas(frame, preserve_index=False)
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema)
                    writer.write_table(table.cast(writer.schema))
                    written += len(frame)
                    bar.update(len(chunk))
            if writer is None:  # no users: an empty file with the columns
                pq.write_table(pa.Table.from_pandas(_frame([], ["user", "item", "score", "rank"]), preserve_index=False), tmp)
            else:
                writer.close()
            os.replace(tmp, path)
        except BaseException:
            if writer is not None:
                writer.close()
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return written

    def _history_matrix(self, history, user: str, item: str, what: str = "history") -> Interactions:
        check_columns(history, [user, item], what)
        if len(history) == 0:
            raise DataValidationError(f"{what} is empty: give at least one (user, item) row")
        rating = self.columns_.get("rating")
        rating = rating if rating is not None and rating in history.columns else None
        return Interactions.from_frame(history, user=user, item=item, rating=rating, items=self.items_,
                                       on_unknown="warn", what=what)

    def recommend_for_history(self, history: pd.DataFrame, k: int = 10, user: str | None = None,
                              item: str | None = None, exclude_seen: bool = True, items=None,
                              via: str = "model") -> pd.DataFrame:
        """Top-``k`` items for users unseen at fit time, from their interactions (fold-in; nothing is retrained).

        Parameters
        ----------
        history : DataFrame
            The new users' interactions, with the columns named as at fit time (or ``user=``/``item=``).
            Items unseen at fit time are ignored with a warning that counts them; a user left with
            no known item gets the most popular items. Items added with :meth:`add_items` are
            excluded from the list but do not shape the user's code (the model was not trained on
            them), unless they are all the user has: then the user is ranked like the added
            items' similar items.
        k, exclude_seen, items, via
            As in :meth:`recommend`; ``exclude_seen`` leaves out the history's own items.

        Returns
        -------
        DataFrame with columns ``user, item, score, rank``.
        """
        self._check_fitted()
        _check_via(via)
        user, item = user or self.columns_["user"], item or self.columns_["item"]
        candidates = self._candidate_mask(items)
        k = self._check_k(k, len(self.items_) if candidates is None else int(candidates.sum()))
        H = self._history_matrix(history, user, item)
        out = self._rank(H.matrix, None, np.asarray(H.users.ids), k, exclude_seen, candidates, via)
        return out.rename(columns={"user": user, "item": item}) if (user, item) != ("user", "item") else out

    def similar_items(self, items, k: int = 10, via: str = "index") -> pd.DataFrame:
        """The ``k`` items most similar to each given item (the item itself excluded).

        Item j is similar to item i as much as it is recommended to a user whose whole history is
        i: the score is ``h(e_i) · W_j + b_j``, answered by default from the same FAISS index as
        ``recommend(..., via="index")``; ``via="model"`` scores every item with the model. For an
        item added with :meth:`add_items` (which the model cannot read as a history) the score
        is ``W_i · W_j``, the inner product of the item codes.

        Returns
        -------
        DataFrame with columns ``item, similar_item, score, rank``.
        """
        self._check_fitted()
        _check_via(via)
        k = self._check_k(k, len(self.items_) - 1)
        item_ids = pd.unique(pd.Series(as_list(items), dtype=object))
        index = self.items_.index_of(item_ids)
        rows = sp.csr_matrix((np.ones(len(index), np.float32), index, np.arange(len(index) + 1)),
                             shape=(len(index), len(self.items_)))
        out = self._rank(rows, None, self.items_.ids_of(index), k, True, None, via)
        return out.rename(columns={"user": "item", "item": "similar_item"})

    # --- codes -------------------------------------------------------------------------
    def user_codes(self, users) -> pd.DataFrame:
        """``h_u`` of training users, indexed by user id (columns ``c0..c{d-1}``)."""
        self._check_fitted()
        user_ids = pd.unique(pd.Series(as_list(users), dtype=object))
        index = self.users_.index_of(user_ids)
        codes = self._user_vectors(self.interactions_.matrix[index][:, :self.n_model_items_], index)
        return pd.DataFrame(codes, index=pd.Index(self.users_.ids_of(index), name="user"),
                            columns=[f"c{j}" for j in range(codes.shape[1])])

    def item_codes(self) -> pd.DataFrame:
        """``W_i`` of every item (columns ``c0..c{d-1}``) and its bias ``b_i`` (column ``bias``), indexed by item id."""
        self._check_fitted()
        W, b = self._all_item_vectors()
        frame = pd.DataFrame(W, index=pd.Index(self.items_.ids, name="item"),
                             columns=[f"c{j}" for j in range(W.shape[1])])
        frame["bias"] = b
        return frame

    # --- saving --------------------------------------------------------------------------
    def _save_to(self, directory) -> dict:
        self.interactions_.save(directory)
        state = self._get_state()
        if state:
            np.savez(directory / "state.npz", **state)
        meta = {"columns": self.columns_, "history": self.history_, "fit_seconds": self.fit_seconds_,
                "index": None if self._index is None else save_part(self._index, directory, "index")}
        if getattr(self, "added_codes_", None) is not None:
            np.savez(directory / "added_items.npz", codes=self.added_codes_, biases=self.added_biases_)
        if getattr(self, "content_", None) is not None:
            meta["content"] = save_part(self.content_, directory, "content")
        return meta

    @classmethod
    def _load_from(cls, directory, meta: dict) -> "Recommender":
        model = cls(**meta["params"])
        model.interactions_ = Interactions.load(directory)
        model.item_popularity_ = np.asarray((model.interactions_.matrix > 0).sum(axis=0)).ravel().astype(np.float32)
        model.content_, model.added_codes_, model.added_biases_ = None, None, None
        if (directory / "added_items.npz").is_file():
            with np.load(directory / "added_items.npz", allow_pickle=False) as z:
                model.added_codes_, model.added_biases_ = z["codes"], z["biases"]
        if "content" in meta:
            model.content_ = load_part(directory, meta["content"])
        model.columns_, model.history_, model.fit_seconds_ = meta["columns"], meta["history"], meta["fit_seconds"]
        if (directory / "state.npz").is_file():
            with np.load(directory / "state.npz", allow_pickle=False) as z:
                model._set_state({k: z[k] for k in z.files})
        model.fitted_ = True
        model._index = load_part(directory, meta["index"]) if meta.get("index") else None
        return model


def _check_via(via) -> None:
    if via not in ("model", "index"):
        raise InvalidParameterError(f"via must be 'model' or 'index', got {via!r}")


def _frame(parts: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    if not parts:
        return pd.DataFrame({c: [] for c in columns})
    return pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
