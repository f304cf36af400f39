"""Lazy import of Ray, and the checks every job makes on the driver before it starts workers."""
from __future__ import annotations

from pathlib import Path

from ..exceptions import BundleError

EXTRA = 'pip install "aerec[ray]"'


def import_ray():
    """``ray``, started (or joined) if this process has not done it; ImportError naming the extra."""
    try:
        import ray
    except ImportError as exc:
        raise ImportError(f"aerec.distributed needs Ray: {EXTRA}") from exc
    if not ray.is_initialized():
        ray.init()  # joins RAY_ADDRESS's cluster when set, otherwise starts a local one
    return ray


def check_bundle(bundle, served_as) -> Path:
    """The absolute path of ``bundle``, after checking (on the driver, before any worker starts) that it
    is a verified aerec bundle of an estimator whose ``served_as`` is ``served_as`` (a kind, or a list of kinds)."""
    from ..base import registered
    from ..bundle import read_meta

    path = Path(bundle).expanduser().resolve()
    meta = read_meta(path)
    try:
        cls = registered(meta["class"])
    except KeyError as exc:
        raise BundleError(f"{path}: {exc.args[0]}") from None
    kinds = [served_as] if isinstance(served_as, str) else list(served_as)
    if getattr(cls, "served_as", None) not in kinds:
        raise BundleError(f"{path} holds a {meta['class']}, not a bundle of kind {' or '.join(map(repr, kinds))}")
    return path


def cpus_each(ray, cpus, workers: int) -> float:
    """CPUs to reserve per actor: ``cpus``, or 1 where the cluster has a CPU more than the actors need,
    else an equal share of what is left after one whole CPU for Ray Data's read and write tasks (all-CPU
    actors would starve them: the job would wait forever on a small machine)."""
    if cpus is not None:
        return float(cpus)
    total = float(ray.cluster_resources().get("CPU", 1))
    return 1.0 if total >= workers + 1 else max(total - 1, 0.1) / workers  # Ray Data's tasks take 1 CPU each
