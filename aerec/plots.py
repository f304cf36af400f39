"""Matplotlib figures: training curves, reconstructions, query results, maps of codes, attention over a history.

Needs the ``plots`` extra (matplotlib); every function returns the ``Figure``.
"""
from __future__ import annotations

import numpy as np

__all__ = ["training_curves", "reconstructions", "query_results", "code_map", "attention"]


def _plt():
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("plots need matplotlib: pip install 'aerec[plots]'") from exc
    return plt


def _show(ax, image) -> None:
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    ax.imshow(image, cmap="gray" if image.ndim == 2 else None, vmin=0, vmax=1 if image.dtype != np.uint8 else 255)
    ax.set_xticks([])
    ax.set_yticks([])


def training_curves(history: dict, title: str = "training", metrics=None, best_epoch: int | None = None):
    """One panel per metric of a Keras-style history (``{"loss": [...], "val_loss": [...], ...}``),
    training and validation curves together.

    ``metrics`` picks the panels (e.g. ``["loss", "ndcg@100"]``; default: every per-epoch entry);
    ``best_epoch`` (0-based, e.g. a recommender's ``best_epoch_``) marks the epoch whose weights were kept.
    """
    plt = _plt()
    n_epochs = max((len(v) for v in history.values() if isinstance(v, (list, tuple))), default=0)
    per_epoch = [k for k, v in history.items() if isinstance(v, (list, tuple)) and n_epochs and len(v) == n_epochs]
    bases = list(dict.fromkeys(m.replace("val_", "", 1) for m in per_epoch)) if metrics is None else list(metrics)
    fig, axes = plt.subplots(1, max(1, len(bases)), figsize=(min(15, 5 * max(1, len(bases))), 3.2), squeeze=False)
    for ax, base in zip(axes[0], bases):
        names = [n for n in (base, f"val_{base}") if n in history]
        if not names:
            raise KeyError(f"{base!r} is not in the history; it has {sorted(history)}")
        for name in names:
            ax.plot(np.arange(1, len(history[name]) + 1), history[name], label=name)
        if best_epoch is not None:
            ax.axvline(best_epoch + 1, color="grey", linestyle=":", label="kept")
        ax.set_xlabel("epoch")
        ax.set_title(base)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def reconstructions(images, reconstructed, n: int = 8):
    """Inputs (top row) above their reconstructions (bottom row)."""
    plt = _plt()
    n = min(n, len(images))
    fig, axes = plt.subplots(2, n, figsize=(1.3 * n, 2.8), squeeze=False)
    for j in range(n):
        _show(axes[0, j], images[j])
        _show(axes[1, j], reconstructed[j])
    axes[0, 0].set_ylabel("input")
    axes[1, 0].set_ylabel("output")
    fig.tight_layout()
    return fig


def query_results(query_images, results, lookup, n_queries: int = 4, labels=None):
    """Each query image followed by its top-k results.

    Parameters
    ----------
    query_images : array of the queries (position ``i`` is query ``i`` of ``results``)
    results : DataFrame ``query, id, score, rank`` from ``search``
    lookup : callable id -> image
    labels : callable id -> label, optional (shown above each result; queries' labels are not known)
    """
    plt = _plt()
    queries = list(dict.fromkeys(results["query"]))[:n_queries]
    k = int(results["rank"].max())
    fig, axes = plt.subplots(len(queries), k + 1, figsize=(1.2 * (k + 1), 1.3 * len(queries)), squeeze=False)
    for row, q in enumerate(queries):
        _show(axes[row, 0], query_images[q])
        axes[row, 0].set_title("query", fontsize=8)
        for col, hit in enumerate(results[results["query"] == q].itertuples(), start=1):
            _show(axes[row, col], lookup(hit.id))
            caption = f"{hit.score:.2f}" + (f" [{labels(hit.id)}]" if labels else "")
            axes[row, col].set_title(caption, fontsize=7)
    fig.tight_layout()
    return fig


def code_map(codes, labels=None, title: str = "codes (first two principal components)"):
    """A 2-D map of codes: their first two principal components, coloured by label when given."""
    plt = _plt()
    X = np.asarray(codes, dtype=np.float64)
    X = X - X.mean(axis=0)
    _, _, vt = np.linalg.svd(X, full_matrices=False)
    xy = X @ vt[:2].T
    fig, ax = plt.subplots(figsize=(5.5, 5))
    if labels is None:
        ax.scatter(xy[:, 0], xy[:, 1], s=3, alpha=0.6)
    else:
        labels = np.asarray(labels)
        for value in np.unique(labels):
            mask = labels == value
            ax.scatter(xy[mask, 0], xy[mask, 1], s=3, alpha=0.6, label=str(value))
        ax.legend(markerscale=4, fontsize=7, loc="best")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def attention(frame, labels=None, title: str = "attention of the next-item prediction over the history"):
    """A heat map of :meth:`aerec.SequentialDAE.attention`'s frame: one row per block and head, one column per
    history item (oldest left). ``labels`` maps item ids to the text shown under the columns (e.g. titles)."""
    plt = _plt()
    heads = [c for c in frame.columns if c.startswith("block ")]
    weights = frame[heads].to_numpy().T
    names = [str(labels.get(i, i)) if labels is not None else str(i) for i in frame["item"]]
    fig, ax = plt.subplots(figsize=(min(16, 1.5 + 0.45 * len(names)), 1.2 + 0.45 * len(heads)))
    shown = ax.imshow(weights, aspect="auto", cmap="viridis", vmin=0)
    ax.set_yticks(range(len(heads)), heads)
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_xlabel("history, oldest first")
    fig.colorbar(shown, ax=ax, label="weight")
    ax.set_title(title)
    fig.tight_layout()
    return fig
