"""`EmbeddingIndex`: nearest-neighbour search over codes with FAISS, keyed by the user's ids.

FAISS stores the vectors at dense positions ``0..n-1``; an :class:`~aerec.data.IdMap` maps the
positions to the user's ids, so ids of any type pandas can hold go in and come out, and dense
positions never cross the public API.

Scores: larger is always better and rank 1 is the best match.

- ``metric="ip"``: the inner product ``q · x``;
- ``metric="cosine"``: the cosine similarity (vectors and queries are normalised to unit length,
  then compared by inner product);
- ``metric="l2"``: the *negative* squared Euclidean distance ``-||q - x||²``.

Approximate indexes (IVF, HNSW) are tuned at :meth:`EmbeddingIndex.build` time: ``nprobe`` or
``efSearch`` is raised until recall@``recall_at`` (10 by default) against exact search reaches ``recall_target``, measured
with a held-out sample of the vectors as queries (they are added to the index after tuning: a
vector already in an HNSW graph is found more easily than a new query, which would overstate the
recall), or with a sample of the real queries and the positions each will exclude (a recommender's
user codes and seen items): then the recall is that of the lists those queries get.
"""
from __future__ import annotations

import math
import numbers
import re
import time
import warnings
from pathlib import Path

import faiss
import numpy as np
import pandas as pd

from .base import BaseEstimator, register
from .data import IdMap
from .exceptions import (AerecWarning, BundleError, CatalogueTooLargeError, DataValidationError,
                         InvalidParameterError, NotFittedError, UnknownIdError)
from .params import Interval, Options
from .utils import as_list, available_memory, shown

__all__ = ["EmbeddingIndex"]

_METRICS = ("ip", "l2", "cosine")
_KINDS = ("auto", "flat", "ivf", "hnsw")
_INDEX_FILE = "index.faiss"
_IDS_FILE = "ids.parquet"


@register
class EmbeddingIndex(BaseEstimator):
    """A FAISS index over vectors, searched and answered with the user's own ids.

    Parameters
    ----------
    metric : {"ip", "l2", "cosine"}, default "ip"
        How vectors are compared. Scores are always "larger is better": the inner product,
        the cosine similarity, or the negative squared L2 distance.
    kind : {"auto", "flat", "ivf", "hnsw"} or str, default "auto"
        ``"flat"`` is exact search. ``"ivf"`` is ``IVF{nlist},Flat`` with
        ``nlist = min(4 sqrt(n), n / 39)``; ``"hnsw"`` is ``HNSW32``. ``"auto"`` picks flat
        below 10,000 vectors or 640,000 numbers (``n x d``: e.g. popularity's one-number codes), HNSW while it fits in ``max_memory``, then IVF-Flat, then IVF-PQ;
        a structure that cannot reach ``recall_target`` on the tuning queries falls back to the next (see ``tried_``).
        Any other string is passed to :func:`faiss.index_factory` (e.g. ``"IVF1024,PQ16"``).
    recall_target : float or None, default 0.95
        Approximate indexes raise ``nprobe`` / ``efSearch`` until recall@``recall_at`` against exact search,
        on up to 2,000 held-out vectors as queries, reaches this less two standard errors of the
        estimate (so new queries reach it too). ``None`` keeps FAISS's defaults (the recall is
        still measured).
    recall_at : int, default 10
        The list length the recall is measured at: the ``k`` the index will mostly be asked for.
        A graph or an inverted file tuned for the top 10 can hold much less of a top 100
        (measured: 0.77 of it for an HNSW tuned to 0.95 at 10 on MovieLens-100K's item codes).
    seed : int, default 0
        Seeds the k-means training sample and centroids and the tuning sample; the same seed on
        the same data and machine builds the same index.
    max_memory : int or None, default None
        Bytes the index may take, for ``kind="auto"``; ``None`` means half the memory available.

    Attributes
    ----------
    index_ : faiss.Index
        The FAISS index; it stores positions ``0..n-1``.
    ids_ : IdMap
        FAISS position -> the user's id. Positions follow the order of the ids given to
        :meth:`build`, then those given to each :meth:`add`.
    dim_ : int
        Dimension of the vectors.
    factory_ : str
        The FAISS factory string that was built (what ``kind`` resolved to).
    search_params_ : dict
        The tuned search parameter, ``{"nprobe": p}`` or ``{"efSearch": ef}``; empty for flat.
    measured_recall_ : float
        Recall@10 against exact search of the held-out sample at the chosen search parameter,
        measured at build time (1.0 for exact indexes). :meth:`add` does not re-measure it.
    tried_ : dict
        Factory -> recall measured, for each structure built: with ``kind="auto"``, one that misses
        ``recall_target`` even at its widest search (``efSearch`` 4,096, ``nprobe`` = ``nlist``) gives way
        to the next, HNSW to IVF-Flat to exact search, so the recall promised is the recall delivered.
        An HNSW graph with a fallback gives way as soon as the target is out of its reach: when even
        twice the larger of its last two gains per doubling of ``efSearch``, over the doublings left,
        would not reach it (its recall where it stopped is recorded). An inverted file searched over
        all its lists is exact, so it is widened until it reaches the target.
    build_seconds_ : float

    Examples
    --------
    >>> import numpy as np
    >>> vectors = np.array([[1, 0], [0.5, 0.5], [0, 1]], dtype="float32")
    >>> index = EmbeddingIndex(metric="ip", kind="flat").build(vectors, ids=["a", "b", "c"])
    >>> index.search(vectors[:1], k=2)
       query id  score  rank
    0      0  a    1.0     1
    1      0  b    0.5     2
    >>> index.search_ids(["a"], k=1)
      query id  score  rank
    0     a  b    0.5     1
    """

    #: below this many vectors ``kind="auto"`` searches exactly
    _flat_below = 10_000
    #: HNSW graph degree (``HNSW{M}``)
    _hnsw_m = 32
    #: vectors held out as queries when tuning and measuring recall (at most a fifth of them)
    _tune_queries = 2000
    #: largest efSearch tried when tuning HNSW
    _max_ef_search = 4096
    #: an HNSW graph with a fallback is given up when its recall plus this many times the larger of its
    #: last two gains per doubling of efSearch, times the doublings left, stays under the target (a
    #: graph's recall grows ever slower with the search's width; the margin covers a late spurt)
    _give_up_margin = 2.0

    _parameter_constraints = {
        "metric": [Options(*_METRICS)],
        "recall_target": [Interval("real", 0, 1, closed="right"), None],
        "recall_at": [Interval("int", 1, None)],
        "seed": [Interval("int", None, None)],
        "max_memory": [Interval("int", 1, None), None],
    }

    def __init__(self, metric: str = "ip", kind: str = "auto", recall_target: float | None = 0.95,
                 recall_at: int = 10, seed: int = 0, max_memory: int | None = None):
        self.metric = metric
        self.kind = kind
        self.recall_target = recall_target
        self.recall_at = recall_at
        self.seed = seed
        self.max_memory = max_memory

    # --- building --------------------------------------------------------------------------
    def build(self, vectors, ids=None, queries=None, exclude=None) -> "EmbeddingIndex":
        """Index ``vectors`` under ``ids``, replacing anything indexed before.

        Parameters
        ----------
        vectors : array-like or DataFrame, shape (n, d)
            Numeric, finite. For ``metric="cosine"`` no row may be all zeros.
        ids : array-like of length n, optional
            Unique, non-null ids, one per row. Defaults to the DataFrame's index, or to
            ``0..n-1`` for an array.
        queries : array-like, shape (m, d), optional
            A sample of the queries the index will answer, to tune and measure an approximate
            index with (at most 2,000 are used). Give it when queries are not like the indexed
            vectors, e.g. user codes searched against item codes by inner product; by default a
            held-out sample of ``vectors`` plays the queries.
        exclude : scipy.sparse matrix of shape (m, n), optional
            With ``queries``: row ``q`` marks the positions query ``q`` will exclude when it is
            answered (a user's seen items), as in :meth:`search_positions`. The recall is then
            tuned and measured on the lists the queries really get: the exact top ``recall_at`` of what is
            left after the exclusions, found by the same widened search that answers them.

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> index = EmbeddingIndex(kind="flat").build(np.ones((3, 4)), ids=[10, 20, 30])
        >>> len(index), index.is_exact
        (3, True)
        """
        self._validate_params()
        start = time.perf_counter()
        X = _as_matrix(vectors, "vectors", allow_1d=False)
        ids = _check_ids(_default_ids(vectors, ids, start=0, n=len(X)), len(X))
        X = self._prepare(X, "vectors", vectors)
        n, d = X.shape
        Q = None
        if queries is not None:
            Q = self._prepare(_as_matrix(queries, "queries", allow_1d=False), "queries", queries)
            if Q.shape[1] != d:
                raise DataValidationError(f"queries have {Q.shape[1]} columns but the vectors have {d}")
            if exclude is not None and (not hasattr(exclude, "tocsr") or exclude.shape != (len(Q), n)):
                raise DataValidationError(f"exclude must be a sparse matrix of shape ({len(Q)}, {n}), one row per "
                                          f"query and one column per vector; got {getattr(exclude, 'shape', type(exclude).__name__)}")
            if len(Q) > self._tune_queries:
                chosen = np.sort(np.random.default_rng(self.seed).choice(len(Q), self._tune_queries, replace=False))
                Q = Q[chosen]
                exclude = exclude.tocsr()[chosen] if exclude is not None else None
        # "auto" keeps its promise: a structure that misses the recall target on these queries even at
        # its widest search (HNSW over inner products with skewed norms can) gives way to the next one
        candidates = self._candidates(n, d)
        self.tried_ = {}
        for i, factory in enumerate(candidates):
            last = i == len(candidates) - 1
            index, self.search_params_, self.measured_recall_, hit = self._build_one(factory, X, Q, exclude, warn=last)
            self.tried_[factory] = self.measured_recall_
            if hit or last:
                break
            del index
        self.factory_ = factory
        ivf = faiss.try_extract_index_ivf(index)
        if ivf is not None:
            ivf.make_direct_map()  # so that search_ids can read indexed vectors back
        self.index_, self.ids_, self.dim_ = index, IdMap(ids, name="id"), d
        self.build_seconds_ = time.perf_counter() - start
        self.fitted_ = True
        return self

    def add(self, vectors, ids=None) -> "EmbeddingIndex":
        """Append vectors under new ids; existing ids keep their vectors.

        The index is not retrained or re-tuned: IVF centroids stay those learned by
        :meth:`build`, and ``measured_recall_`` still describes the index as built.

        Parameters
        ----------
        vectors : array-like or DataFrame, shape (m, d)
        ids : array-like of length m, optional
            New ids; none may already be in the index. Defaults to the DataFrame's index, or
            to ``ntotal..ntotal+m-1`` for an array.

        Returns
        -------
        self

        Examples
        --------
        >>> import numpy as np
        >>> index = EmbeddingIndex(kind="flat").build(np.eye(2), ids=["a", "b"])
        >>> index.add([[0.0, 2.0]], ids=["c"]).search([[0.0, 1.0]], k=1)["id"].tolist()
        ['c']
        """
        self._check_built()
        X = _as_matrix(vectors, "vectors", allow_1d=False)
        ids = _check_ids(_default_ids(vectors, ids, start=self.ntotal, n=len(X)), len(X))
        clash = ids[ids.isin(self.ids_.ids)]
        if len(clash):
            raise DataValidationError(f"{len(clash)} id(s) are already in the index: {clash[:10].tolist()}; "
                                      "ids must be new to add() them")
        X = self._prepare(X, "vectors", vectors)
        id_map = self.ids_.extend(ids)  # before touching FAISS, so a failure leaves the index as it was
        self.index_.add(X)
        self.ids_ = id_map
        return self

    # --- searching ---------------------------------------------------------------------------
    def search(self, queries, k: int = 10, exclude=None, query_ids=None) -> pd.DataFrame:
        """The ``k`` best matches of each query.

        Parameters
        ----------
        queries : array-like or DataFrame, shape (n, d) or (d,)
        k : int, default 10
            At most the number of indexed vectors.
        exclude : sequence, optional
            One entry per query: the ids that query must not return (e.g. a user's seen items),
            as an iterable or None. Ids not in the index are ignored. A query still gets ``k``
            results whenever ``k`` vectors are left after its exclusions; otherwise it gets all
            that are left.
        query_ids : array-like, optional
            What the ``query`` column holds for each query. Defaults to the DataFrame's index,
            or to the query's position ``0..n-1`` for an array.

        Returns
        -------
        DataFrame
            Columns ``query, id, score, rank``, best first per query; ``rank`` starts at 1.

        Examples
        --------
        >>> import numpy as np
        >>> index = EmbeddingIndex(metric="l2", kind="flat").build(np.eye(3), ids=["a", "b", "c"])
        >>> index.search([[1.0, 0.5, 0.0]], k=2, exclude=[["a"]])[["id", "score", "rank"]]
          id  score  rank
        0  b  -1.25     1
        1  c  -2.25     2
        """
        self._check_built()
        Q = _as_matrix(queries, "queries", allow_1d=True)
        Q = self._prepare(Q, "queries", queries)
        k = self._check_k(k)
        n = len(Q)
        if query_ids is None:
            labels = queries.index if isinstance(queries, pd.DataFrame) else pd.RangeIndex(n)
        else:
            labels = pd.Index(as_list(query_ids))
            if len(labels) != n:
                raise DataValidationError(f"got {len(labels)} query_ids for {n} queries; give one id per query")
        excluded = self._excluded_positions(exclude, n)
        rows, positions, scores = self._search_positions(Q, k, excluded)
        return self._frame(labels, rows, positions, scores)

    def search_positions(self, queries, k: int = 10, exclude=None) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` best positions of each query, as arrays: the fast path under :meth:`search`.

        Positions follow the order of the ids given to :meth:`build` and :meth:`add`
        (``ids_.ids[p]`` is the id at position ``p``).

        Parameters
        ----------
        queries : array-like, shape (n, d)
        k : int
        exclude : scipy.sparse matrix of shape (n, ntotal), optional
            Row ``q`` marks (by its stored entries) the positions query ``q`` must not return.

        Returns
        -------
        positions : ndarray of int64, shape (n, k)
            Best first; -1 past the end where fewer than ``k`` positions were left.
        scores : ndarray of float32, shape (n, k)
            Larger is better; ``-inf`` where the position is -1.

        Examples
        --------
        >>> import numpy as np, scipy.sparse as sp
        >>> vectors = np.array([[1, 0], [0.5, 0.5], [0, 1]], dtype="float32")
        >>> index = EmbeddingIndex(kind="flat").build(vectors, ids=["a", "b", "c"])
        >>> positions, scores = index.search_positions(vectors[:1], k=2, exclude=sp.csr_matrix([[1, 0, 0]]))
        >>> positions.tolist(), scores.tolist()
        ([[1, 2]], [[0.5, 0.0]])
        """
        self._check_built()
        Q = self._prepare(_as_matrix(queries, "queries", allow_1d=False), "queries", queries)
        k = self._check_k(k)
        n = len(Q)
        empty = np.zeros(0, dtype=np.int64)
        excluded = (empty, empty)
        if exclude is not None:
            if not hasattr(exclude, "tocoo") or exclude.shape != (n, self.ntotal):
                raise DataValidationError(f"exclude must be a sparse matrix of shape ({n}, {self.ntotal}), one row "
                                          f"per query and one column per position; got {getattr(exclude, 'shape', type(exclude).__name__)}")
            if n == 1 and exclude.format == "csr":  # a request's one query: skip the general loop when it can
                found = self._search_one(Q, k, np.asarray(exclude.indices, dtype=np.int64))
                if found is not None:
                    return found
            coo = exclude.tocoo()
            excluded = (coo.row.astype(np.int64), coo.col.astype(np.int64))
        rows, found, scores = self._search_positions(Q, k, excluded)
        positions = np.full((n, k), -1, dtype=np.int64)
        values = np.full((n, k), -np.inf, dtype=np.float32)
        slot = np.arange(len(rows)) - np.searchsorted(rows, rows)  # rank within each query
        positions[rows, slot] = found
        values[rows, slot] = scores
        return positions, values

    def search_ids(self, ids, k: int = 10, exclude_self: bool = True, exclude=None) -> pd.DataFrame:
        """Search with vectors already in the index, named by their ids ("more like these").

        Parameters
        ----------
        ids : id or array-like of ids
            Ids in the index; unknown ones raise :class:`~aerec.exceptions.UnknownIdError`.
        k : int, default 10
        exclude_self : bool, default True
            Leave each id out of its own results.
        exclude : sequence, optional
            As in :meth:`search`, one entry per id.

        Returns
        -------
        DataFrame
            Columns ``query, id, score, rank``; ``query`` holds the given ids.

        Notes
        -----
        The query vectors are read back from the index, so for compressed indexes (PQ) they
        are the compressed approximations.

        Examples
        --------
        >>> import numpy as np
        >>> index = EmbeddingIndex(metric="l2", kind="flat").build([[0.0], [1.0], [3.0]], ids=["a", "b", "c"])
        >>> index.search_ids(["a", "c"], k=1)[["query", "id"]]
          query id
        0     a  b
        1     c  b
        """
        self._check_built()
        wanted = pd.Index(as_list(ids))
        positions = self.ids_.index_of(wanted, on_unknown="mark")
        if (positions < 0).any():
            unknown = pd.unique(pd.Series(np.asarray(wanted, dtype=object)[positions < 0])).tolist()
            raise UnknownIdError("indexed", unknown, hint="search_ids takes ids that build() or add() indexed")
        k = self._check_k(k)
        Q = np.ascontiguousarray(self.index_.reconstruct_batch(positions), dtype=np.float32)
        rows_ex, pos_ex = self._excluded_positions(exclude, len(wanted))
        if exclude_self:
            rows_ex = np.concatenate([rows_ex, np.arange(len(wanted), dtype=np.int64)])
            pos_ex = np.concatenate([pos_ex, positions])
        rows, found, scores = self._search_positions(Q, k, (rows_ex, pos_ex))
        return self._frame(wanted, rows, found, scores)

    # --- state -------------------------------------------------------------------------------
    @property
    def is_exact(self) -> bool:
        """Whether search is exact by construction (a flat index)."""
        self._check_built()
        return isinstance(faiss.downcast_index(self.index_), faiss.IndexFlat)

    @property
    def ntotal(self) -> int:
        """Number of indexed vectors (0 before :meth:`build`)."""
        return int(self.index_.ntotal) if self.is_fitted else 0

    def __len__(self) -> int:
        return self.ntotal

    # --- saving ------------------------------------------------------------------------------
    @classmethod
    def load(cls, path) -> "EmbeddingIndex":
        """The index saved by :meth:`save` in the directory ``path`` (checksums verified).

        ``save`` writes ``index.faiss`` (FAISS's own format), ``ids.parquet`` and ``meta.json``
        (parameters, measured recall, checksums), without pickle.

        Examples
        --------
        >>> import numpy as np, tempfile
        >>> index = EmbeddingIndex(kind="flat").build(np.eye(2), ids=["a", "b"])
        >>> with tempfile.TemporaryDirectory() as d:
        ...     index.save(d + "/index")
        ...     same = EmbeddingIndex.load(d + "/index")
        >>> same.search(np.eye(2), k=1).equals(index.search(np.eye(2), k=1))
        True
        """
        from .bundle import read_meta

        meta = read_meta(path)
        if meta.get("class") != cls.__name__:
            raise BundleError(f"{path} holds a {meta.get('class')}, not an {cls.__name__}; use aerec.load to read it")
        return cls._load_from(Path(path), meta)

    def _save_to(self, directory) -> dict:
        directory = Path(directory)
        faiss.write_index(self.index_, str(directory / _INDEX_FILE))
        self.ids_.to_parquet(directory / _IDS_FILE)
        return {"index": {"factory": self.factory_, "dim": self.dim_, "ntotal": self.ntotal,
                          "search_params": self.search_params_, "measured_recall": self.measured_recall_,
                          "recall_at": self.recall_at, "build_seconds": self.build_seconds_,
                          "tried": self.tried_}}

    @classmethod
    def _load_from(cls, directory, meta: dict) -> "EmbeddingIndex":
        directory = Path(directory)
        info = meta.get("index")
        if not isinstance(info, dict):
            raise BundleError(f"{directory / 'meta.json'} has no 'index' section; it was not written by EmbeddingIndex.save")
        obj = cls(**meta["params"])
        try:
            index = faiss.read_index(str(directory / _INDEX_FILE))
        except RuntimeError as exc:
            raise BundleError(f"{directory / _INDEX_FILE} is not a readable FAISS index: {_faiss_reason(exc)}") from None
        ids = IdMap.from_parquet(directory / _IDS_FILE)
        if index.ntotal != len(ids) or index.d != info["dim"]:
            raise BundleError(f"{directory}: the FAISS index holds {index.ntotal} vectors of dimension {index.d}, "
                              f"but there are {len(ids)} ids and meta.json says dimension {info['dim']}")
        obj.index_, obj.ids_, obj.dim_, obj.factory_ = index, ids, int(info["dim"]), info["factory"]
        obj.search_params_ = dict(info["search_params"])
        obj.measured_recall_ = float(info["measured_recall"])
        obj.build_seconds_ = float(info["build_seconds"])
        obj.tried_ = {str(k): float(v) for k, v in info.get("tried", {obj.factory_: obj.measured_recall_}).items()}
        _apply_search_params(index, obj.search_params_)
        obj.fitted_ = True
        return obj

    # --- internals ---------------------------------------------------------------------------
    def _check_param_relations(self) -> None:
        if not isinstance(self.kind, str) or not self.kind:
            raise InvalidParameterError(f"kind must be one of {_KINDS} or a FAISS factory string, got {self.kind!r}")
        if "IDMap" in self.kind:
            raise InvalidParameterError(f"kind={self.kind!r}: EmbeddingIndex maps ids itself; drop IDMap from the "
                                        f"factory string")

    def _check_built(self) -> None:
        if not self.is_fitted:
            raise NotFittedError(f"this {type(self).__name__} is empty: call build(vectors, ids) first")

    def _check_k(self, k) -> int:
        if not isinstance(k, numbers.Integral) or isinstance(k, bool) or k < 1:
            raise DataValidationError(f"k must be a positive int, got {k!r}")
        if k > self.ntotal:
            raise DataValidationError(f"k={k} is larger than the index, which holds {self.ntotal} vectors")
        return int(k)

    def _faiss_metric(self) -> int:
        return faiss.METRIC_L2 if self.metric == "l2" else faiss.METRIC_INNER_PRODUCT

    def _prepare(self, X: np.ndarray, what: str, original) -> np.ndarray:
        """Check the dimension against the index and normalise for cosine."""
        if self.is_fitted and X.shape[1] != self.dim_:
            raise DataValidationError(f"{what} have dimension {X.shape[1]}, but the index holds vectors of "
                                      f"dimension {self.dim_} (expected {self.dim_}, got {X.shape[1]})")
        if self.metric == "cosine":
            norms = np.linalg.norm(X, axis=1)
            zero = np.flatnonzero(norms == 0)
            if len(zero):
                raise DataValidationError(f"{what} have {len(zero)} all-zero row(s), which have no cosine: "
                                          f"{_row_names(original, zero)}")
            X = X / norms[:, None].astype(np.float32)
        return np.ascontiguousarray(X, dtype=np.float32)

    def _build_one(self, factory: str, X: np.ndarray, Q, exclude, warn: bool):
        """Build, train, fill and tune one ``factory`` index: ``(index, search params, recall, target met)``."""
        n, d = X.shape
        index = _make_index(factory, d, self._faiss_metric(), self.seed, self.kind)
        if not index.is_trained:
            try:
                index.train(_training_sample(index, X, self.seed))
            except RuntimeError as exc:
                raise DataValidationError(f"cannot train a {factory!r} index on {n} vectors: {_faiss_reason(exc)}") from None
        if isinstance(faiss.downcast_index(index), faiss.IndexFlat) or n < 2:
            index.add(X)
            return index, {}, 1.0, True
        if Q is not None:
            index.add(X)
            return (index, *self._tune(index, X, Q, exclude, warn=warn, factory=factory))
        # Tune with a held-out sample as queries: vectors already in a graph are found more
        # easily than new ones, so tuning on indexed vectors would overstate the recall. The
        # tuning runs on a copy without the sample; the index itself then gets every vector in
        # the order given, so that positions follow the ids (an HNSW graph is built twice).
        held = np.random.default_rng(self.seed).choice(n, size=min(self._tune_queries, max(1, n // 5)), replace=False)
        held = np.sort(held)
        rest = np.setdiff1d(np.arange(n), held, assume_unique=True)
        trial = faiss.clone_index(index)
        trial.add(X[rest])
        params, recall, hit = self._tune(trial, X[rest], X[held], warn=warn, factory=factory)
        del trial
        if hit or warn:  # else it is given up for the next structure: no need to fill it
            index.add(X)
            _apply_search_params(index, params)
        return index, params, recall, hit

    def _memory_budget(self) -> int:
        """Bytes an index may take: ``max_memory``, or half the memory available now."""
        return self.max_memory if self.max_memory is not None else available_memory() // 2

    def _candidates(self, n: int, d: int) -> list[str]:
        """The factory ``kind`` resolves to, then for ``"auto"`` the structures to fall back to, in order."""
        first = self._choose_factory(n, d)
        if self.kind != "auto" or self.recall_target is None:
            return [first]
        budget = self._memory_budget()
        chain = [first]
        if first.startswith("HNSW"):
            chain.append(f"IVF{_n_lists(n)},Flat")  # fits: it needs less than the graph did
        if chain[-1].endswith(",Flat") and n * 4 * d <= budget:
            chain.append("Flat")
        return chain

    def _choose_factory(self, n: int, d: int) -> str:
        kind = self.kind
        if kind == "flat":
            return "Flat"
        if kind == "hnsw":
            return f"HNSW{self._hnsw_m}"
        if kind == "ivf":
            return f"IVF{_n_lists(n)},Flat"
        if kind != "auto":
            return kind
        budget = self._memory_budget()
        if n < self._flat_below or n * d < self._flat_below * 64:
            return "Flat"  # an exhaustive scan this small costs a query well under a millisecond
        # bytes per vector: HNSW keeps the vector and ~2M level-0 links (+ upper levels);
        # IVF keeps the code, an 8-byte id in its list and an 8-byte direct-map entry
        if n * (4 * d + 8.5 * self._hnsw_m + 16) <= budget:
            return f"HNSW{self._hnsw_m}"
        if n * (4 * d + 16) <= budget:
            return f"IVF{_n_lists(n)},Flat"
        for m in sorted((m for m in range(1, d + 1) if d % m == 0 and m <= max(1, d // 2)), reverse=True):
            if n * (m + 16) <= budget:
                return f"IVF{_n_lists(n)},PQ{m}"
        raise CatalogueTooLargeError(f"{n} vectors of dimension {d} do not fit in max_memory={budget} bytes "
                                     f"even as IVF-PQ ({n * 17} bytes at least); raise max_memory or shard the vectors")

    def _tune(self, index: faiss.Index, base: np.ndarray, queries: np.ndarray, exclude=None, *, warn: bool = True,
              factory: str = "") -> tuple[dict, float, bool]:
        """Pick ``nprobe`` / ``efSearch`` for ``index`` (holding ``base``): ``(params, recall, target met)``.

        The smallest value is taken whose recall@``recall_at`` on ``queries``, against exact search over
        ``base``, minus two standard errors still reaches ``recall_target``: the lower end of a
        ~95% interval, so that the recall of new queries does not fall below the target as often
        as it lands above it. With ``exclude`` (sparse, a row per query) both lists leave those
        positions out, and the approximate one is found by the widened search of
        :meth:`search_positions`: the recall the answers get, not that of the bare index.
        """
        at = min(self.recall_at, len(base))
        excluded = None
        if exclude is not None:
            coo = exclude.tocoo()
            excluded = (coo.row.astype(np.int64), coo.col.astype(np.int64))
            at = max(1, min(at, len(base) - int(np.diff(exclude.tocsr().indptr).max(initial=0))))
        exact = faiss.IndexFlat(base.shape[1], self._faiss_metric())
        exact.add(base)
        truth = self._found(exact, queries, at, excluded)
        del exact

        def recall(params: dict) -> tuple[float, float]:
            _apply_search_params(index, params)
            per_query = _recall_per_query(self._found(index, queries, at, excluded), truth)
            return float(per_query.mean()), float(per_query.std() / np.sqrt(len(per_query)))

        ivf, hnsw = faiss.try_extract_index_ivf(index), _find_hnsw(index)
        if ivf is not None:
            name, lo, hi = "nprobe", 1, int(ivf.nlist)
        elif hnsw is not None:
            name, lo, hi = "efSearch", 16, max(16, min(self._max_ef_search, len(base)))
        else:  # another structure (e.g. flat PQ): nothing to tune, report what it reaches
            reached = recall({})[0]
            return {}, reached, self.recall_target is None or reached >= self.recall_target
        if self.recall_target is None:
            current = int(ivf.nprobe) if ivf is not None else int(hnsw.hnsw.efSearch)
            return {name: current}, recall({name: current})[0], True

        def meets(value: int) -> bool:
            mean, error = measured[value] = recall({name: value})
            return mean - 2 * error >= self.recall_target

        def out_of_reach(value: int) -> bool:
            """For a graph with a fallback (``warn`` False), whether wider searches cannot be expected to
            reach the target (an inverted file's widest search is exact: never out of reach)."""
            tried = sorted(measured)
            if warn or name != "efSearch" or len(tried) < 3:
                return False
            gain = max(measured[b][0] - measured[a][0] for a, b in zip(tried[-3:], tried[-2:]))
            doublings_left = np.log2(hi / value)
            return measured[value][0] + self._give_up_margin * max(gain, 0.0) * doublings_left < self.recall_target

        # double until the target is met (or out of reach), then bisect between the last miss and the first hit
        measured: dict[int, tuple[float, float]] = {}
        value = lo
        hit = meets(value)
        while not hit and value < hi and not out_of_reach(value):
            value = min(2 * value, hi)
            hit = meets(value)
        if not hit:  # given up: bisecting would only search widths that miss too
            if warn:
                warnings.warn(f"{factory} reaches recall@{at} {measured[value][0]:.3f} < recall_target "
                              f"{self.recall_target} even with {name}={value}; use "
                              f"{'a higher-recall factory or ' if name == 'nprobe' else ''}kind='flat' for higher recall",
                              AerecWarning, stacklevel=3)
        elif value > lo:
            low, high = max(v for v in measured if v < value), value  # the last miss, the first hit
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (low, mid) if meets(mid) else (mid, high)
            value = high
        _apply_search_params(index, {name: value})
        return {name: value}, measured[value][0], hit

    def _found(self, index: faiss.Index, queries: np.ndarray, k: int, excluded) -> np.ndarray:
        """The top-``k`` positions of each query in ``index`` (-1 past a short list), as searches answer them."""
        if excluded is None:
            return index.search(queries, k)[1]
        rows, positions, _ = self._search_positions(queries, k, excluded, index)
        found = np.full((len(queries), k), -1, dtype=np.int64)
        found[rows, np.arange(len(rows)) - np.searchsorted(rows, rows)] = positions
        return found

    def _excluded_positions(self, exclude, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``(row, position)`` pairs to leave out of the results; unknown ids are ignored."""
        empty = np.zeros(0, dtype=np.int64)
        if exclude is None:
            return empty, empty
        if isinstance(exclude, (str, bytes)) or not hasattr(exclude, "__len__"):
            raise DataValidationError(f"exclude must hold one list of ids per query, got {type(exclude).__name__}")
        if len(exclude) != n:
            raise DataValidationError(f"exclude has {len(exclude)} entries for {n} queries; give one list of ids "
                                      "(or None) per query")
        rows, values = [], []
        for row, entry in enumerate(exclude):
            if entry is None:
                continue
            entry = as_list(entry)
            rows.extend([row] * len(entry))
            values.extend(entry)
        if not values:
            return empty, empty
        positions = self.ids_.index_of(pd.Index(values, dtype=object), on_unknown="mark")
        keep = positions >= 0
        return np.asarray(rows, dtype=np.int64)[keep], positions[keep]

    def _search_positions(self, Q: np.ndarray, k: int, excluded,
                          index: faiss.Index | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Top-``k`` positions per query row, leaving ``excluded`` out and over-fetching until
        ``k`` are found or no more are available. Returns flat ``(row, position, score)``.
        ``index`` is the built one unless given (tuning searches a trial index the same way)."""
        index = self.index_ if index is None else index
        n, ntotal = len(Q), int(index.ntotal)
        excl_rows, excl_pos = excluded
        excl_keys = np.unique(excl_rows * ntotal + excl_pos)  # one key per (query, position), repeats dropped
        fetch = np.minimum(k + np.bincount(excl_keys // ntotal, minlength=n), ntotal)
        exhaustive = np.zeros(n, dtype=bool)
        found_pos = np.full((n, k), -1, dtype=np.int64)
        found_score = np.zeros((n, k), dtype=np.float32)
        pending = np.arange(n)
        while len(pending):
            size = np.where(fetch[pending] == k, k, np.minimum(_next_pow2(fetch[pending]), ntotal))
            still = []
            for s, ex in sorted(set(zip(size.tolist(), exhaustive[pending].tolist()))):
                rows = pending[(size == s) & (exhaustive[pending] == ex)]
                D, I = _faiss_search(index, Q[rows], s, ex)
                valid = I >= 0
                if len(excl_keys):
                    valid &= ~np.isin(rows[:, None] * ntotal + I, excl_keys)
                n_valid = valid.sum(axis=1)
                padded = (I < 0).any(axis=1)  # the index gave fewer than s candidates at this setting
                done = (n_valid >= k) | ((s >= ntotal) & (~padded | ex))
                if done.any():
                    order = np.argsort(~valid[done], axis=1, kind="stable")[:, :k]
                    got_valid = np.take_along_axis(valid[done], order, axis=1)
                    found_pos[rows[done]] = np.where(got_valid, np.take_along_axis(I[done], order, axis=1), -1)
                    found_score[rows[done]] = np.take_along_axis(D[done], order, axis=1)
                retry = rows[~done]
                go_exhaustive = padded[~done] & ~exhaustive[retry]
                exhaustive[retry[go_exhaustive]] = True
                grow = retry[~go_exhaustive]
                fetch[grow] = np.minimum(2 * size[np.searchsorted(pending, grow)], ntotal)
                still.append(retry)
            pending = np.sort(np.concatenate(still)) if still else np.zeros(0, dtype=np.int64)
        keep = found_pos >= 0
        rows = np.broadcast_to(np.arange(n)[:, None], (n, k))[keep]
        scores = found_score[keep]
        if self.metric == "l2":
            scores = -scores  # FAISS returns squared distances; larger score = better
        return rows, found_pos[keep], scores

    def _search_one(self, Q: np.ndarray, k: int, excluded: np.ndarray):
        """One query's top ``k`` leaving ``excluded`` positions out, with one FAISS search as deep as the first
        of the general path (so an approximate index answers a query alone as in a batch); None when that
        search did not give ``k`` results (an approximate index's short list): the caller then takes the
        general path, which widens the search."""
        fetch = k if not len(excluded) else min(int(_next_pow2(np.array([k + len(excluded)]))[0]), self.ntotal)
        D, I = _faiss_search(self.index_, Q, fetch, False)
        keep = I[0] >= 0
        if len(excluded):  # a CSR row's positions: unique
            out = np.zeros(self.ntotal, dtype=bool)
            out[excluded] = True
            keep &= ~out[np.maximum(I[0], 0)]
        if keep.sum() < min(k, self.ntotal - len(excluded)):
            return None
        positions = np.full((1, k), -1, dtype=np.int64)
        scores = np.full((1, k), -np.inf, dtype=np.float32)
        got = I[0][keep][:k]
        positions[0, :len(got)] = got
        scores[0, :len(got)] = -D[0][keep][:k] if self.metric == "l2" else D[0][keep][:k]
        return positions, scores

    def _frame(self, labels: pd.Index, rows, positions, scores) -> pd.DataFrame:
        rank = np.ones(len(rows), dtype=np.int64)
        if len(rows):
            starts = np.r_[0, np.flatnonzero(np.diff(rows)) + 1]
            rank = np.arange(len(rows)) - np.repeat(starts, np.diff(np.r_[starts, len(rows)])) + 1
        return pd.DataFrame({
            "query": labels.take(rows),
            "id": self.ids_.ids.take(positions),
            "score": np.asarray(scores, dtype=np.float32),
            "rank": rank.astype(np.int64),
        })


# --- helpers -----------------------------------------------------------------------------------
def _as_matrix(values, what: str, allow_1d: bool) -> np.ndarray:
    """A float32 (n, d) array of finite values, or an error naming what is wrong."""
    if isinstance(values, pd.DataFrame):
        bad = [c for c in values.columns if not pd.api.types.is_numeric_dtype(values[c])]
        if bad:
            raise DataValidationError(f"{what} must be numeric; non-numeric column(s): {bad[:10]}")
        X = values.to_numpy(dtype=np.float32)
    else:
        try:
            X = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise DataValidationError(f"{what} must be a numeric 2-D array (n, d): {exc}") from None
    if X.ndim == 1 and allow_1d:
        X = X[None, :]
    if X.ndim != 2:
        raise DataValidationError(f"{what} must be a 2-D array (n, d), got shape {X.shape}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataValidationError(f"{what} are empty (shape {X.shape}); there is nothing to index or search")
    finite = np.isfinite(X).all(axis=1)
    if not finite.all():
        bad_rows = np.flatnonzero(~finite)
        raise DataValidationError(f"{what} contain NaN or inf (after conversion to float32) in {len(bad_rows)} "
                                  f"row(s): {_row_names(values, bad_rows)}")
    return np.ascontiguousarray(X)


def _row_names(original, rows: np.ndarray) -> str:
    """The first offending rows, by DataFrame label when there is one."""
    labels = original.index[rows[:10]].tolist() if isinstance(original, pd.DataFrame) else rows[:10].tolist()
    return f"[{shown(labels, total=len(rows))}]"


def _default_ids(vectors, ids, start: int, n: int):
    if ids is not None:
        return ids
    if isinstance(vectors, pd.DataFrame):
        return vectors.index
    return pd.RangeIndex(start, start + n)


def _check_ids(ids, n: int) -> pd.Index:
    try:
        index = pd.Index(as_list(ids)) if not isinstance(ids, pd.Index) else ids
    except TypeError as exc:
        raise DataValidationError(f"ids must be a 1-D sequence with one id per vector: {exc}") from None
    if len(index) != n:
        raise DataValidationError(f"got {len(index)} ids for {n} vectors; give exactly one id per vector")
    nulls = np.flatnonzero(np.asarray(pd.isna(index)))
    if len(nulls):
        raise DataValidationError(f"ids contain nulls at row(s) {nulls[:10].tolist()}; every vector needs an id")
    if not index.is_unique:
        repeated = index[index.duplicated()].unique()
        raise DataValidationError(f"ids are not unique; {len(repeated)} repeated: {repeated[:10].tolist()}")
    return index


def _n_lists(n: int) -> int:
    """IVF list count: 4 sqrt(n), with at least 39 training vectors per list (FAISS's minimum)."""
    return max(1, min(int(4 * math.sqrt(n)), n // 39))


def _next_pow2(values: np.ndarray) -> np.ndarray:
    return np.left_shift(1, np.ceil(np.log2(np.maximum(values, 1))).astype(np.int64))


def _faiss_reason(exc: Exception) -> str:
    """FAISS's message without the C++ location in front of it."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
    match = re.search(r"\.(?:cpp|h):\d+: (.*)", text)
    text = match.group(1) if match else text
    return re.sub(r"^Error: '.*?' failed: ", "", text)


def _make_index(factory: str, d: int, metric: int, seed: int, kind) -> faiss.Index:
    try:
        index = faiss.index_factory(d, factory, metric)
    except RuntimeError as exc:
        raise DataValidationError(f"kind={kind!r} is neither one of {_KINDS} nor a FAISS factory string FAISS "
                                  f"accepts: {_faiss_reason(exc)}") from None
    ivf = faiss.try_extract_index_ivf(index)
    if ivf is not None:
        ivf = faiss.downcast_index(ivf)
        ivf.cp.seed = int(seed)
        if isinstance(ivf, faiss.IndexIVFPQ):
            ivf.pq.cp.seed = int(seed)
            # polysemous codes only serve Hamming-filtered search, which is not used here,
            # and training them takes ten times as long as the PQ itself
            ivf.do_polysemous_training = False
    return index


def _training_sample(index: faiss.Index, X: np.ndarray, seed: int) -> np.ndarray:
    """Vectors to train on: 64 per IVF list (FAISS warns under 39), at least 65,536, at most all."""
    ivf = faiss.try_extract_index_ivf(index)
    size = max(64 * int(ivf.nlist) if ivf is not None else 0, 65_536)
    if len(X) <= size:
        return X
    rows = np.sort(np.random.default_rng(seed).choice(len(X), size=size, replace=False))
    return X[rows]


def _find_hnsw(index: faiss.Index):
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexPreTransform):
        return _find_hnsw(index.index)
    return index if isinstance(index, faiss.IndexHNSW) else None


def _apply_search_params(index: faiss.Index, params: dict) -> None:
    if "nprobe" in params:
        faiss.extract_index_ivf(index).nprobe = int(params["nprobe"])
    if "efSearch" in params:
        _find_hnsw(index).hnsw.efSearch = int(params["efSearch"])


def _faiss_search(index: faiss.Index, Q: np.ndarray, k: int, exhaustive: bool):
    if not exhaustive:
        return index.search(Q, k)
    params, nested = _exhaustive_params(index, k)  # ``nested`` must outlive the search
    result = index.search(Q, k, params=params) if params is not None else index.search(Q, k)
    del nested
    return result


def _exhaustive_params(index: faiss.Index, k: int):
    """Search parameters under which IVF visits every list and HNSW keeps at least ``k`` candidates.

    Returns ``(params, objects)``: FAISS holds raw pointers to nested parameters, so the caller
    keeps ``objects`` alive as long as ``params``.
    """
    index = faiss.downcast_index(index)
    if isinstance(index, faiss.IndexIVF):
        return faiss.SearchParametersIVF(nprobe=int(index.nlist)), []
    if isinstance(index, faiss.IndexHNSW):
        return faiss.SearchParametersHNSW(efSearch=max(int(index.hnsw.efSearch), k)), []
    if isinstance(index, faiss.IndexPreTransform):
        inner, objects = _exhaustive_params(index.index, k)
        if inner is None:
            return None, []
        return faiss.SearchParametersPreTransform(index_params=inner), [inner, *objects]
    return None, []


def _recall_per_query(found: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """The share of each row of ``truth`` that the same row of ``found`` contains."""
    hits = ((found[:, :, None] == truth[:, None, :]) & (found[:, :, None] >= 0)).any(axis=2).sum(axis=1)
    return hits / truth.shape[1]
