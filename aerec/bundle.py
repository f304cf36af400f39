"""Bundles: one directory per saved estimator, written atomically and verified on load.

Layout: ``meta.json`` (format, class, parameters, versions, training history, the SHA-256 of
every other file) beside the estimator's own files (Parquet id maps, ``.npz`` arrays saved
without pickle, ``model.keras`` for Keras models, ``index.faiss``). ``save`` writes into a
temporary directory beside the target and renames it into place, so an interrupted save leaves
the previous bundle as it was.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

from .base import registered
from .datasets import sha256_of
from .exceptions import BundleError

__all__ = ["save", "load", "FORMAT", "FORMAT_VERSION"]

FORMAT = "aerec-bundle"
FORMAT_VERSION = 1


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {}
    for pkg in ("aerec", "numpy", "pandas", "scipy", "pyarrow", "keras", "tensorflow", "faiss-cpu"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


def save(estimator, path) -> Path:
    """Write ``estimator`` to the bundle directory ``path`` (replacing a bundle already there)."""
    target = Path(path)
    if target.exists() and not (target / "meta.json").is_file() and (target.is_file() or any(target.iterdir())):
        raise BundleError(f"{target} exists and is not an aerec bundle; refusing to overwrite it")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.saving-{os.getpid()}-"))
    try:
        extra = estimator._save_to(tmp)
        files = {p.name: sha256_of(p) for p in sorted(tmp.iterdir()) if p.is_file()}
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "class": type(estimator).__name__,
            "params": estimator.get_params(),
            "versions": _versions(),
            "files": files,
            **extra,
        }
        (tmp / "meta.json").write_text(json.dumps(meta, indent=2, default=_json_default))
        if target.exists():
            old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-"))
            old.rmdir()
            target.rename(old)
            tmp.rename(target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            tmp.rename(target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _remove_abandoned(target: Path) -> None:
    """Delete temporary directories left beside ``target`` by saves whose process died (killed mid-save)."""
    for leftover in target.parent.glob(f".{target.name}.saving-*"):
        pid = leftover.name[len(f".{target.name}.saving-"):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _json_default(value):
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def read_meta(path) -> dict:
    """The verified ``meta.json`` of a bundle: every file it lists is present with its checksum."""
    root = Path(path)
    meta_path = root / "meta.json"
    if not meta_path.is_file():
        raise BundleError(f"{root} is not an aerec bundle: it has no meta.json")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path} is not valid JSON ({exc}); the bundle is corrupt") from exc
    if meta.get("format") != FORMAT:
        raise BundleError(f"{meta_path}: not an aerec bundle (format {meta.get('format')!r})")
    if meta.get("format_version", 0) > FORMAT_VERSION:
        raise BundleError(f"{root} was written by a newer aerec (bundle format {meta['format_version']}); upgrade aerec")
    for name, digest in meta.get("files", {}).items():
        file = root / name
        if not file.is_file():
            raise BundleError(f"{file} is missing; the bundle is incomplete")
        if sha256_of(file) != digest:
            raise BundleError(f"{file} does not match the checksum in meta.json; the bundle is truncated or was modified")
    return meta


def _check_versions(saved: dict, path) -> None:
    """Warn when a library that reads the bundle's files differs in major.minor from the one that wrote them."""
    import warnings

    from .exceptions import BundleVersionWarning

    now = _versions()
    differ = [f"{pkg} {saved[pkg]} -> {now[pkg]}" for pkg in ("keras", "tensorflow", "faiss-cpu", "numpy")
              if pkg in saved and pkg in now and saved[pkg].split(".")[:2] != now[pkg].split(".")[:2]]
    if differ:
        warnings.warn(f"{path} was saved with other library versions ({'; '.join(differ)}); "
                      f"check its outputs before serving it", BundleVersionWarning, stacklevel=3)


def load(path):
    """Load the estimator saved in the bundle directory ``path``, whichever class it is.

    Examples
    --------
    >>> import pandas as pd, tempfile, aerec
    >>> df = pd.DataFrame({"user": [1, 1, 2], "item": ["a", "b", "a"]})
    >>> model = aerec.EASE(l2=1.0).fit(df)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     model.save(d + "/bundle")
    ...     same = aerec.load(d + "/bundle")
    >>> same.recommend([2], k=1).equals(model.recommend([2], k=1))
    True
    """
    meta = read_meta(path)
    _check_versions(meta.get("versions", {}), path)
    try:
        cls = registered(meta["class"])
    except KeyError as exc:
        raise BundleError(f"{path}: {exc.args[0]}") from None
    return cls._load_from(Path(path), meta)
