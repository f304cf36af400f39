"""Metrics and the runners of the shared benchmark protocols.

Ranking metrics follow ``PROTOCOL.md`` exactly:

- ``recall@K`` = hits in the top K / min(K, number of the user's test items) (Liang et al., 2018);
- ``ndcg@K`` = DCG of the top K (binary relevance, log2 discount) / the ideal DCG of
  min(K, number of test items) hits;
- ``hr@K`` = 1 if any test item is in the top K; ``precision@K`` = hits in the top K / K.

They are averaged over users with at least one test item; a user with no recommendations
counts as zero.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import pandas as pd

from .data.interactions import check_columns
from .exceptions import DataValidationError

__all__ = [
    "recall_at_k", "ndcg_at_k", "hit_rate_at_k", "precision_at_k", "rmse", "mae", "auroc",
    "metrics_from_hits", "ranking_metrics", "PROTOCOL_A_METRICS",
    "protocol_dir", "load_protocol_a", "evaluate_weak", "evaluate_strong", "run_protocol_a", "summarize", "tune",
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


# --- protocol A -------------------------------------------------------------------------


def protocol_dir(root=None) -> Path:
    """The shared benchmarks directory: ``root``, else ``$AEREC_BENCHMARKS_DIR``, else
    ``benchmarks/`` beside ``$AEREC_DATA_HOME``."""
    candidates = []
    if root is not None:
        candidates.append(Path(root))
    if os.environ.get("AEREC_BENCHMARKS_DIR"):
        candidates.append(Path(os.environ["AEREC_BENCHMARKS_DIR"]))
    if os.environ.get("AEREC_DATA_HOME"):
        candidates.append(Path(os.environ["AEREC_DATA_HOME"]).parent / "benchmarks")
    for path in candidates:
        if (path / "ml100k-implicit").is_dir():
            return path.resolve()
    raise FileNotFoundError(
        f"the fixed protocol split files were not found (looked in {[str(c) for c in candidates]}); "
        f"pass root= or set AEREC_BENCHMARKS_DIR to the directory holding ml100k-implicit/"
    )


def load_protocol_a(kind: str, seed: int, root=None) -> dict[str, pd.DataFrame]:
    """Read the fixed split files of protocol A1 (``kind="weak"``) or A2 (``kind="strong"``)."""
    if kind not in ("weak", "strong"):
        raise ValueError(f"kind must be 'weak' (A1) or 'strong' (A2), got {kind!r}")
    directory = protocol_dir(root) / "ml100k-implicit" / kind / f"seed{seed}"
    names = ("train", "valid", "test") if kind == "weak" else (
        "train", "valid_fold_in", "valid_held_out", "test_fold_in", "test_held_out")
    out = {}
    for name in names:
        path = directory / f"{name}.tsv"
        if not path.is_file():
            raise FileNotFoundError(f"{path}: split file missing")
        out[name] = pd.read_csv(path, sep="\t")
        check_columns(out[name], ["user", "item"], str(path))
    return out


def _rank_excluding(recommend: Callable[[int], pd.DataFrame], extra: pd.DataFrame | None, k: int) -> pd.DataFrame:
    """Top-k after removing extra (user, item) pairs, by asking for k + (most extras of any user) and filtering."""
    if extra is None or extra.empty:
        return recommend(k)
    fetch = k + int(extra.groupby("user").size().max())
    recs = recommend(fetch)
    recs = recs.merge(extra[["user", "item"]].assign(_extra=True), on=["user", "item"], how="left")
    recs = recs[recs["_extra"].isna()].drop(columns="_extra")
    recs["rank"] = recs.groupby("user").cumcount() + 1
    return recs[recs["rank"] <= k].reset_index(drop=True)


def evaluate_weak(model, held_out: pd.DataFrame, exclude: pd.DataFrame | None = None,
                  metrics: Iterable[str] = PROTOCOL_A_METRICS) -> pd.DataFrame:
    """Per-user metrics for training users: rank every item, drop seen ones (and ``exclude``), compare with ``held_out``."""
    metrics = list(metrics)
    k = max(int(m.partition("@")[2]) for m in metrics)
    users = held_out["user"].unique()
    recs = _rank_excluding(lambda kk: model.recommend(users, k=kk), exclude, k)
    return ranking_metrics(recs, held_out, metrics)


def evaluate_strong(model, fold_in: pd.DataFrame, held_out: pd.DataFrame,
                    metrics: Iterable[str] = PROTOCOL_A_METRICS) -> pd.DataFrame:
    """Per-user metrics for users unseen in training: fold in their ``fold_in`` rows, compare with ``held_out``."""
    metrics = list(metrics)
    k = max(int(m.partition("@")[2]) for m in metrics)
    recs = model.recommend_for_history(fold_in, k=k)
    return ranking_metrics(recs, held_out, metrics)


def run_protocol_a(make_model: Callable[[], object], kind: str = "weak", seeds: Iterable[int] = range(5),
                   root=None, metrics: Iterable[str] = PROTOCOL_A_METRICS, use_valid: bool = True) -> pd.DataFrame:
    """Fit a fresh model per seed on protocol A1/A2 and return one row of mean test metrics per seed.

    ``make_model(seed)`` returns an unfitted estimator. Validation data is passed to ``fit``
    (for early stopping) when ``use_valid``; in A1 the validation items are excluded from the
    test ranking as the protocol says.
    """
    import time

    rows = []
    for seed in seeds:
        split = load_protocol_a(kind, seed, root)
        model = make_model(seed)
        start = time.perf_counter()
        if kind == "weak":
            model.fit(split["train"], valid=split["valid"] if use_valid else None)
            fit_seconds = time.perf_counter() - start
            per_user = evaluate_weak(model, split["test"], exclude=split["valid"], metrics=metrics)
        else:
            valid = (split["valid_fold_in"], split["valid_held_out"]) if use_valid else None
            model.fit(split["train"], valid=valid)
            fit_seconds = time.perf_counter() - start
            per_user = evaluate_strong(model, split["test_fold_in"], split["test_held_out"], metrics=metrics)
        rows.append({"seed": seed, **per_user.mean().to_dict(), "users": len(per_user), "fit_seconds": fit_seconds})
    return pd.DataFrame(rows)


def summarize(results: pd.DataFrame, metrics: Iterable[str] = PROTOCOL_A_METRICS, digits: int = 4) -> pd.Series:
    """``mean ± std`` over seeds for each metric (std with ddof=1, as over a sample of seeds)."""
    missing = [m for m in metrics if m not in results.columns]
    if missing:
        raise DataValidationError(f"results have no column(s) {missing}")
    return pd.Series({m: f"{results[m].mean():.{digits}f} ± {results[m].std(ddof=1):.{digits}f}" for m in metrics})


def tune(estimator, grid: dict, train: pd.DataFrame, valid, metric: str = "ndcg@100", **fit_kwargs):
    """Grid search on validation data: fit a clone per combination of ``grid`` and keep the best ``metric``.

    Parameters
    ----------
    estimator : Recommender
        The unfitted template; its other parameters stay as they are.
    grid : dict of parameter name -> list of values
    train : DataFrame
    valid : DataFrame or (DataFrame, DataFrame)
        Held-out interactions of training users (weak), or ``(fold_in, held_out)`` of unseen users (strong).
        It is also passed to ``fit`` for early stopping.

    Returns
    -------
    best_params : dict
    results : DataFrame, one row per combination with its validation metric, best first.

    Examples
    --------
    >>> import aerec
    >>> split = aerec.evaluate.load_protocol_a("weak", 0)
    >>> best, table = aerec.tune(aerec.EASE(), {"l2": [100.0, 300.0]}, split["train"], split["valid"])
    >>> sorted(best)
    ['l2']
    """
    import itertools

    from .base import clone

    names = list(grid)
    rows = []
    for values in itertools.product(*(grid[n] for n in names)):
        params = dict(zip(names, values))
        model = clone(estimator).set_params(**params).fit(train, valid=valid, **fit_kwargs)
        if isinstance(valid, tuple):
            score = evaluate_strong(model, valid[0], valid[1], [metric])[metric].mean()
        else:
            score = evaluate_weak(model, valid, metrics=[metric])[metric].mean()
        rows.append({**params, metric: score})
    results = pd.DataFrame(rows).sort_values(metric, ascending=False, kind="stable").reset_index(drop=True)
    return {n: results.loc[0, n] for n in names}, results
