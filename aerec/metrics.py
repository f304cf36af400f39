"""Metrics: ranking (Recall, NDCG, HR, precision at K), rating (RMSE, MAE) and anomaly (AUROC).

The models use them (early stopping on validation NDCG@100), the protocol runners of
:mod:`aerec.evaluate` report them. Ranking metrics follow ``PROTOCOL.md`` exactly:

- ``recall@K`` = hits in the top K / min(K, number of the user's test items) (Liang et al., 2018);
- ``ndcg@K`` = DCG of the top K (binary relevance, log2 discount) / the ideal DCG of
  min(K, number of test items) hits;
- ``hr@K`` = 1 if any test item is in the top K; ``precision@K`` = hits in the top K / K.

They are averaged over users with at least one test item; a user with no recommendations
counts as zero.
"""
from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from .data.interactions import check_columns

__all__ = [
    "recall_at_k", "ndcg_at_k", "hit_rate_at_k", "precision_at_k", "rmse", "mae", "auroc",
    "metrics_from_hits", "ranking_metrics", "PROTOCOL_A_METRICS",
]

PROTOCOL_A_METRICS = ("recall@20", "recall@50", "ndcg@10", "ndcg@100", "hr@10")


def _discounts(n: int) -> np.ndarray:
    return 1.0 / np.log2(np.arange(2, n + 2))


# --- one user at a time (the definitions, readable) ---------------------------------


def _hits(ranked, relevant, k: int) -> np.ndarray:
    relevant = set(relevant)
    return np.array([item in relevant for item in list(ranked)[:k]], dtype=bool)


def recall_at_k(ranked, relevant, k: int) -> float:
    """Recall@K of one ranked list (Liang et al.: the denominator is min(K, #relevant)).

    Examples
    --------
    >>> recall_at_k(["a", "b", "c"], {"b", "z"}, k=2)
    0.5
    """
    relevant = set(relevant)
    if not relevant:
        raise ValueError("recall@K is undefined for a user with no relevant items")
    return float(_hits(ranked, relevant, k).sum() / min(k, len(relevant)))


def ndcg_at_k(ranked, relevant, k: int) -> float:
    """NDCG@K of one ranked list with binary relevance.

    Examples
    --------
    >>> round(ndcg_at_k(["a", "b"], {"b"}, k=2), 4)   # (1/log2 3) / 1
    0.6309
    """
    relevant = set(relevant)
    if not relevant:
        raise ValueError("NDCG@K is undefined for a user with no relevant items")
    hits = _hits(ranked, relevant, k)
    disc = _discounts(k)
    return float((hits * disc[: len(hits)]).sum() / disc[: min(k, len(relevant))].sum())


def hit_rate_at_k(ranked, relevant, k: int) -> float:
    """1.0 if any relevant item is in the top K, else 0.0."""
    return float(_hits(ranked, relevant, k).any())


def precision_at_k(ranked, relevant, k: int) -> float:
    """Relevant items in the top K divided by K."""
    return float(_hits(ranked, relevant, k).sum() / k)


def rmse(y_true, y_pred) -> float:
    """Root mean squared error."""
    y_true, y_pred = _paired(y_true, y_pred)
    return float(np.sqrt(np.mean((y_true - y_pred) ** 2)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error."""
    y_true, y_pred = _paired(y_true, y_pred)
    return float(np.mean(np.abs(y_true - y_pred)))


def auroc(labels, scores) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative (ties count 1/2).

    Examples
    --------
    >>> auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    0.75
    """
    from scipy.stats import rankdata

    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=float)
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in shape: {labels.shape} vs {scores.shape}")
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("AUROC needs at least one positive and one negative label")
    ranks = rankdata(scores)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def _paired(y_true, y_pred) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(y_true, dtype=float), np.asarray(y_pred, dtype=float)
    if a.shape != b.shape:
        raise ValueError(f"y_true and y_pred differ in shape: {a.shape} vs {b.shape}")
    if a.size == 0:
        raise ValueError("no values to compare")
    return a, b


# --- many users at once -------------------------------------------------------------


def metrics_from_hits(hits: np.ndarray, n_relevant: np.ndarray, metrics: Iterable[str] = PROTOCOL_A_METRICS) -> pd.DataFrame:
    """Per-user ranking metrics from a hit matrix.

    Parameters
    ----------
    hits : bool array (n_users, max_k)
        ``hits[u, j]``: whether the item at rank ``j + 1`` of user ``u`` is relevant.
    n_relevant : int array (n_users,)
        Number of relevant items of each user (all > 0).
    metrics : names such as ``"recall@20"``, ``"ndcg@100"``, ``"hr@10"``, ``"precision@10"``.
    """
    hits = np.asarray(hits, dtype=bool)
    n_relevant = np.asarray(n_relevant)
    if (n_relevant <= 0).any():
        raise ValueError("every user needs at least one relevant item")
    out = {}
    for name in metrics:
        kind, _, k = name.partition("@")
        k = int(k)
        if k > hits.shape[1]:
            raise ValueError(f"{name} needs the top {k} of each user; the hit matrix has {hits.shape[1]} columns")
        top = hits[:, :k]
        if kind == "recall":
            out[name] = top.sum(1) / np.minimum(k, n_relevant)
        elif kind == "ndcg":
            disc = _discounts(k)
            ideal = np.cumsum(disc)[np.minimum(k, n_relevant) - 1]
            out[name] = (top * disc).sum(1) / ideal
        elif kind == "hr":
            out[name] = top.any(1).astype(float)
        elif kind == "precision":
            out[name] = top.sum(1) / k
        else:
            raise ValueError(f"unknown metric {name!r}; use recall@K, ndcg@K, hr@K or precision@K")
    return pd.DataFrame(out)


def ranking_metrics(
    recommendations: pd.DataFrame,
    truth: pd.DataFrame,
    metrics: Iterable[str] = PROTOCOL_A_METRICS,
    user: str = "user",
    item: str = "item",
) -> pd.DataFrame:
    """Per-user metrics of ranked recommendations against held-out truth.

    Parameters
    ----------
    recommendations : DataFrame
        ``user, item, rank`` (rank 1 is the top), as returned by ``recommend``.
    truth : DataFrame
        ``user, item``: the relevant items. Every user here is evaluated; users without
        recommendations score zero.

    Returns
    -------
    DataFrame indexed by user, one column per metric.

    Examples
    --------
    >>> recs = pd.DataFrame({"user": [1, 1, 2, 2], "item": ["a", "b", "a", "c"], "rank": [1, 2, 1, 2]})
    >>> truth = pd.DataFrame({"user": [1, 2, 2], "item": ["b", "c", "d"]})
    >>> ranking_metrics(recs, truth, ["recall@2", "hr@1"]).round(3).to_dict("list")
    {'recall@2': [1.0, 0.5], 'hr@1': [0.0, 0.0]}
    """
    check_columns(recommendations, [user, item, "rank"], "recommendations")
    check_columns(truth, [user, item], "truth")
    metrics = list(metrics)
    max_k = max(int(m.partition("@")[2]) for m in metrics)
    truth = truth[[user, item]].drop_duplicates()
    n_relevant = truth.groupby(user).size()
    users = n_relevant.index
    hits = np.zeros((len(users), max_k), dtype=bool)
    matched = recommendations.loc[recommendations["rank"] <= max_k, [user, item, "rank"]].merge(truth, on=[user, item])
    hits[users.get_indexer(matched[user]), matched["rank"].to_numpy(dtype=np.int64) - 1] = True
    out = metrics_from_hits(hits, n_relevant.to_numpy(), metrics)
    out.index = users
    return out
