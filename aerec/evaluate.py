"""Runners of the shared benchmark protocols (``../shared/benchmarks``) and validation tuning: they
drive estimators and report :mod:`aerec.metrics`."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterable

import pandas as pd

from .data.interactions import check_columns
from .exceptions import DataValidationError
from .metrics import PROTOCOL_A_METRICS, ranking_metrics

__all__ = ["protocol_dir", "load_protocol_a", "evaluate_weak", "evaluate_strong", "run_protocol_a", "summarize", "tune"]


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
