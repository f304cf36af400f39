"""Ray Data jobs: top-K recommendations of many users, and codes of many images, written as Parquet.

Each worker is an actor of a pool that loads the bundle once and then scores batch after batch
through the estimator's own array path (:meth:`~aerec.recommend.base.Recommender.top_k`,
:meth:`~aerec.recommend.base.Recommender.top_k_for_histories`, :meth:`~aerec.ImageSearch.codes`),
so a row written here is the row the in-process call returns. Ray shows the progress of the job
(its progress bars, and the dashboard on a cluster).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError, MissingColumnError
from ._ray import check_bundle, cpus_each, import_ray

__all__ = ["recommend_batch", "embed_images", "index_from_shards"]


def _parquet_columns(path) -> list[str]:
    """The column names of a Parquet file or directory of files (read from the schema only)."""
    import pyarrow.dataset as pads

    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such Parquet file or directory")
    return list(pads.dataset(str(path), format="parquet").schema.names)


class _Recommending:
    """One worker of :func:`recommend_batch`: the recommender, loaded once, answers batch after batch."""

    def __init__(self, bundle: str, k: int, user: str, item: str | None, exclude_seen: bool, via: str):
        from ..bundle import load

        self.model = load(bundle)
        self.k, self.user, self.item, self.exclude_seen, self.via = k, user, item, exclude_seen, via

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        users = batch[self.user].tolist()
        if self.item is None:
            top = self.model.top_k(users, k=self.k, exclude_seen=self.exclude_seen, via=self.via)
        else:
            top = self.model.top_k_for_histories([list(h) for h in batch[self.item]], k=self.k,
                                                 exclude_seen=self.exclude_seen, via=self.via)
        return _top_k_frame(users, top, self.k)


def _top_k_frame(users: list, top, k: int) -> pd.DataFrame:
    """The rows ``user, item, score, rank`` of a :class:`~aerec.recommend.base.TopK` (short rows end early)."""
    keep = np.arange(k)[None, :] < top.counts[:, None]
    return pd.DataFrame({
        "user": np.repeat(np.asarray(users, dtype=object), k)[keep.ravel()],
        "item": top.items[keep],
        "score": top.scores[keep].astype(np.float32),
        "rank": np.broadcast_to(np.arange(1, k + 1, dtype=np.int64), keep.shape)[keep],
    })


def recommend_batch(bundle, users, output, k: int = 100, num_workers: int = 2, histories: bool = False,
                    user: str = "user", item: str = "item", exclude_seen: bool = True, via: str = "model",
                    batch_size: int = 1024, cpus_per_worker: float | None = None) -> str:
    """Write the top-``k`` recommendations of every user of a Parquet dataset, on Ray Data.

    Parameters
    ----------
    bundle : path
        A saved recommender (``model.save(...)``), readable at the same path on every node (a shared
        file system on a cluster).
    users : path
        A Parquet file or directory of files (on a cluster: a shared or ``s3://``-style path Ray can
        read). Without ``histories``: a ``user`` column of training users, one row per user (as
        :meth:`~aerec.recommend.base.Recommender.recommend`; unknown users fail the job with
        :class:`~aerec.exceptions.UnknownIdError`). With ``histories=True``: one row per new user,
        its ``item`` column a list of item ids (the history, folded in as by
        :meth:`~aerec.recommend.base.Recommender.recommend_for_history`; unknown items are ignored).
    output : path
        The directory the Parquet files are written to (columns ``user, item, score, rank``).
    k : int
        Items per user.
    num_workers : int
        Actors in the pool; each loads the bundle once.
    histories : bool
        Read ``users`` as histories of users unseen at fit time (fold-in).
    user, item : str
        The column names in ``users``.
    exclude_seen, via
        As in :meth:`~aerec.recommend.base.Recommender.recommend`.
    batch_size : int
        Users per scored batch (memory: ``batch_size`` x items floats per worker).
    cpus_per_worker : float, optional
        CPUs Ray reserves for each actor; by default 1, or on a cluster with no more CPUs than
        workers an equal share that leaves room for Ray Data's read and write tasks.

    Returns
    -------
    str
        ``output``.

    Raises
    ------
    BundleError
        ``bundle`` is not a verified bundle of a recommender.
    MissingColumnError
        ``users`` has no ``user`` (or, with ``histories``, no ``item``) column.
    """
    path = check_bundle(bundle, "recommender")
    wanted = [user, item] if histories else [user]
    columns = _parquet_columns(users)
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise MissingColumnError(f"{users} has no column(s) {missing}; its columns are {columns}")
    ray = import_ray()
    data = ray.data.read_parquet(str(users), columns=wanted)
    ranked = data.map_batches(
        _Recommending, batch_format="pandas", batch_size=batch_size, num_cpus=cpus_each(ray, cpus_per_worker, num_workers),
        compute=ray.data.ActorPoolStrategy(size=num_workers),
        fn_constructor_kwargs={"bundle": str(path), "k": k, "user": user, "item": item if histories else None,
                               "exclude_seen": exclude_seen, "via": via})
    ranked.write_parquet(str(output))
    return str(output)


class _Embedding:
    """One worker of :func:`embed_images`: the image search model, loaded once, encodes batch after batch."""

    def __init__(self, bundle: str):
        from ..bundle import load

        self.search = load(bundle)

    def __call__(self, batch: pd.DataFrame) -> pd.DataFrame:
        from ..data.images import read_image

        shape, aspect = self.search.image_shape_, self.search.aspect
        images = np.stack([read_image(p, shape, aspect) for p in batch["path"]])
        codes = self.search.codes(images, ids=batch["id"].tolist())
        out = pd.DataFrame({"id": codes.index.to_list()})
        out["code"] = list(codes.to_numpy(dtype=np.float32))
        return out


def embed_images(bundle, images, output, num_workers: int = 2, ids=None, batch_size: int = 256,
                 cpus_per_worker: float | None = None, index: bool = True):
    """Codes of many images from a saved :class:`~aerec.ImageSearch`, on Ray Data, written as Parquet shards.

    Parameters
    ----------
    bundle : path
        A saved ``ImageSearch``, readable at the same path on every node.
    images : path or list of paths
        A folder (searched recursively for PNG/JPEG, ids its relative paths, unreadable files
        skipped with a warning, as ``ImageSearch.fit`` reads it) or a list of image files (ids the
        paths as given, or ``ids``).
    output : path
        The directory of Parquet shards, columns ``id`` and ``code`` (a list of float32).
    num_workers, batch_size, cpus_per_worker
        Actors in the pool (each loads the bundle once), images per batch, CPUs per actor (as in
        :func:`recommend_batch`).
    index : bool, default True
        Build and return one :class:`~aerec.EmbeddingIndex` over the shards (the model's metric
        and index kind), as :func:`index_from_shards`.

    Returns
    -------
    EmbeddingIndex or str
        The index over every code written, or ``output`` when ``index=False``.
    """
    from ..data.images import image_source
    from ..exceptions import BundleError

    path = check_bundle(bundle, "image search")
    meta_params = _bundle_params(path)
    if isinstance(images, (str, Path)):
        if not Path(images).is_dir():
            raise FileNotFoundError(f"{images}: no such folder")
        source = image_source(images, ids=ids)  # the folder's readable images and their ids, as fit reads them
        paths, names = [str(p) for p in source.paths], list(source.ids)
    else:
        paths = [str(p) for p in images]
        missing = [p for p in paths if not Path(p).is_file()]
        if missing:
            raise FileNotFoundError(f"{len(missing)} image file(s) do not exist: {missing[:5]}")
        names = paths if ids is None else list(ids)
        if len(names) != len(paths):
            raise DataValidationError(f"got {len(names)} ids for {len(paths)} images")
    if not paths:
        raise BundleError(f"{images}: no image to embed")
    ray = import_ray()
    data = ray.data.from_pandas(pd.DataFrame({"path": paths, "id": names}))
    data = data.repartition(max(1, -(-len(paths) // batch_size)))
    codes = data.map_batches(_Embedding, batch_format="pandas", batch_size=batch_size, num_cpus=cpus_each(ray, cpus_per_worker, num_workers),
                             compute=ray.data.ActorPoolStrategy(size=num_workers),
                             fn_constructor_kwargs={"bundle": str(path)})
    codes.write_parquet(str(output))
    if not index:
        return str(output)
    return index_from_shards(output, metric=meta_params.get("metric", "cosine"),
                             kind=meta_params.get("index_kind", "auto"), seed=meta_params.get("seed", 0))


def _bundle_params(path: Path) -> dict:
    from ..bundle import read_meta

    return read_meta(path)["params"]


def index_from_shards(shards, metric: str = "cosine", kind: str = "auto", seed: int = 0, ids: str = "id",
                      codes: str = "code"):
    """One :class:`~aerec.EmbeddingIndex` over the codes in a directory of Parquet shards.

    Parameters
    ----------
    shards : path
        What :func:`embed_images` wrote: columns ``id`` and ``code`` (a list of floats per row).
    metric, kind, seed
        As in :class:`~aerec.EmbeddingIndex`.
    ids, codes : str
        The column names.

    Returns
    -------
    EmbeddingIndex
    """
    import pyarrow.dataset as pads

    from ..index import EmbeddingIndex

    columns = _parquet_columns(shards)
    missing = [c for c in (ids, codes) if c not in columns]
    if missing:
        raise MissingColumnError(f"{shards} has no column(s) {missing}; its columns are {columns}")
    table = pads.dataset(str(shards), format="parquet").to_table(columns=[ids, codes])
    vectors = np.asarray(table.column(codes).to_pylist(), dtype=np.float32)
    return EmbeddingIndex(metric=metric, kind=kind, seed=seed).build(vectors, ids=table.column(ids).to_pylist())
