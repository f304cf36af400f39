"""Bundles: one directory per saved estimator, written atomically and verified on load.

Layout: ``meta.json`` (format, class, parameters, library versions, training history, and the
SHA-256 of every other file, by its path inside the bundle) beside the estimator's own files
(Parquet id maps, ``.npz`` arrays saved without pickle, ``.keras`` models, FAISS indexes). A nested
part (the FAISS index of a recommender, its content model) lives in a subdirectory written by
:func:`save_part` and read by :func:`load_part`.

What is guaranteed
------------------
- ``save`` writes into a temporary directory beside the target and only then puts it in place;
  on Linux the old and the new bundle are swapped in one ``renameat2(RENAME_EXCHANGE)`` call, so
  at every instant the path holds either the complete old bundle or the complete new one. Where
  that call is not available (other systems, some file systems) the old bundle is first renamed
  aside and the new one renamed in: a crash between the two renames leaves no bundle at the path
  but the old one intact beside it, as ``.NAME.old-PID-*``. Leftovers of killed saves are removed
  by the next save to the same path.
- ``save`` replaces only a directory that is an aerec bundle by its own ``meta.json``; any other
  existing file or non-empty directory is refused, naming it.
- ``load`` reads only files that ``meta.json`` lists, inside the bundle, with their checksums.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import re
import shutil
import tempfile
from pathlib import Path, PurePosixPath

from .base import registered
from .exceptions import AerecError, BundleError
from .utils import sha256_of

__all__ = ["save", "load", "read_meta", "save_part", "load_part", "library_versions", "FORMAT", "FORMAT_VERSION"]

FORMAT = "aerec-bundle"
#: 2: nested parts in subdirectories, file paths relative to the bundle, tuples kept in parameters
FORMAT_VERSION = 2
_META = "meta.json"


def library_versions() -> dict[str, str]:
    """Versions of aerec and of the libraries that write and read its bundles."""
    import importlib.metadata as md

    out = {}
    for pkg in ("aerec", "numpy", "pandas", "scipy", "pyarrow", "keras", "tensorflow", "faiss-cpu"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            pass
    return out


# --- JSON with tuples --------------------------------------------------------------------------
def encode(value):
    """A JSON-ready copy of ``value`` that keeps tuples apart from lists (``{"__tuple__": [...]}``),
    turns NumPy scalars and arrays into Python numbers and lists, paths into strings, and an
    estimator given as a hyperparameter into its class and hyperparameters (``{"__estimator__":
    name, "params": ...}``; what it learned is saved as a part by its owner, if it needs it)."""
    import numpy as np

    from .base import BaseEstimator

    if isinstance(value, BaseEstimator):
        return {"__estimator__": type(value).__name__, "params": encode(value.get_params())}
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple):
        return {"__tuple__": [encode(v) for v in value]}
    if isinstance(value, list):
        return [encode(v) for v in value]
    if isinstance(value, dict):
        return {str(k): encode(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return encode(value.tolist())
    return value


def decode(value):
    """The inverse of :func:`encode`."""
    if isinstance(value, dict):
        if set(value) == {"__tuple__"}:
            return tuple(decode(v) for v in value["__tuple__"])
        if set(value) == {"__estimator__", "params"}:
            return registered(value["__estimator__"])(**decode(value["params"]))
        return {k: decode(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode(v) for v in value]
    return value


# --- saving --------------------------------------------------------------------------------------
def _is_bundle(path: Path) -> bool:
    """Whether ``path`` is a directory that aerec wrote: its meta.json says so."""
    try:
        meta = json.loads((path / _META).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == FORMAT


def save_part(part, directory: Path, name: str) -> dict:
    """Save a nested estimator ``part`` into ``directory / name``; returns its entry for the parent's meta."""
    sub = Path(directory) / name
    sub.mkdir()
    extra = part._save_to(sub)
    return {"class": type(part).__name__, "dir": name, "params": encode(part.get_params()), **encode(extra)}


def load_part(directory: Path, entry: dict):
    """Read back a part saved by :func:`save_part` (``entry`` is what it returned, from the verified meta)."""
    try:
        cls = registered(entry["class"])
        sub = _inside(Path(directory), entry["dir"])
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{directory}: a nested part is described badly in meta.json ({exc})") from None
    return cls._load_from(sub, {**entry, "params": decode(entry.get("params", {}))})


def save(estimator, path) -> Path:
    """Write ``estimator`` to the bundle directory ``path``, replacing a bundle already there.

    Raises
    ------
    BundleError
        ``path`` exists and is not an aerec bundle (a file, or a directory with other content).
    """
    target = Path(path).expanduser().resolve()  # "." names the working directory: rename its full path
    if target.exists() and not (target.is_dir() and (not any(target.iterdir()) or _is_bundle(target))):
        raise BundleError(f"{target} exists and is not an aerec bundle; refusing to overwrite it "
                          f"(give a new path, or remove it yourself)")
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned(target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.saving-{os.getpid()}-"))
    try:
        os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; a bundle is as readable as any other directory
        extra = estimator._save_to(tmp)
        files = {p.relative_to(tmp).as_posix(): sha256_of(p) for p in sorted(tmp.rglob("*")) if p.is_file()}
        meta = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "class": type(estimator).__name__,
            "params": encode(estimator.get_params()),
            "versions": library_versions(),
            "files": files,
            **encode(extra),
        }
        with open(tmp / _META, "w") as fh:
            json.dump(meta, fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        here = _working_directory()
        _put_in_place(tmp, target)
        if here is not None and here == target:
            os.chdir(target)  # the old directory the process stood in is gone: stand in the new one, same path
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _working_directory() -> Path | None:
    try:
        return Path(os.getcwd())
    except OSError:
        return None


def _put_in_place(new: Path, target: Path) -> None:
    if not target.exists():
        new.rename(target)
        return
    if _exchange(new, target):  # new now holds the old bundle
        shutil.rmtree(new, ignore_errors=True)
        return
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.old-{os.getpid()}-"))
    old.rmdir()
    target.rename(old)
    new.rename(target)
    shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux ``renameat2`` with ``RENAME_EXCHANGE``); False where unsupported."""
    if not hasattr(os, "uname") or os.uname().sysname != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    result = renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return result == 0


def _remove_abandoned(target: Path) -> None:
    """Delete the temporary directories left beside ``target`` by saves whose process died."""
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.(saving|old)-(\d+)-")
    for leftover in target.parent.glob(f".{target.name}.*-*"):
        found = pattern.match(leftover.name)
        if found and leftover.is_dir() and not _alive(int(found.group(2))):
            shutil.rmtree(leftover, ignore_errors=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # this process is not saving to this path now: a leftover of an earlier save in it
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# --- loading -------------------------------------------------------------------------------------
def _inside(root: Path, name: str) -> Path:
    """``root / name`` for a relative path that stays inside ``root``; BundleError otherwise."""
    pure = PurePosixPath(name)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts or "\\" in name:
        raise BundleError(f"{root / _META} lists {name!r}, a path outside the bundle; refusing to read it")
    path = root.joinpath(*pure.parts)
    if os.path.commonpath([path.resolve(), root.resolve()]) != str(root.resolve()):
        raise BundleError(f"{root / _META} lists {name!r}, which leads outside the bundle; refusing to read it")
    return path


def read_meta(path) -> dict:
    """The verified ``meta.json`` of a bundle: every file it lists is inside the bundle and has its
    checksum, and the bundle holds no file it does not list."""
    root = Path(path)
    meta_path = root / _META
    if not meta_path.is_file():
        raise BundleError(f"{root} is not an aerec bundle: it has no meta.json")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BundleError(f"{meta_path} is not valid JSON ({exc}); the bundle is corrupt") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise BundleError(f"{meta_path}: not an aerec bundle (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    version = meta.get("format_version", 0)
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise BundleError(f"{root} was written by a newer aerec (bundle format {version}); upgrade aerec")
    if version < FORMAT_VERSION:
        raise BundleError(f"{root} was written by aerec 0.1 (bundle format {version}), whose parameter names and "
                          f"layout have changed; refit the model and save it again")
    files = meta.get("files")
    if not isinstance(files, dict):
        raise BundleError(f"{meta_path} has no 'files' listing; the bundle is corrupt")
    for name, digest in files.items():
        file = _inside(root, name)
        if not file.is_file():
            raise BundleError(f"{file} is missing; the bundle is incomplete")
        if sha256_of(file) != digest:
            raise BundleError(f"{file} does not match the checksum in meta.json; the bundle is truncated or was modified")
    unlisted = sorted(p.relative_to(root).as_posix() for p in root.rglob("*")
                      if p.is_file() and p != meta_path and p.relative_to(root).as_posix() not in files)
    if unlisted:
        raise BundleError(f"{root} holds file(s) that meta.json does not list: {unlisted[:5]}; the bundle was "
                          f"modified after it was saved")
    meta["params"] = decode(meta.get("params", {}))
    return meta


def _check_versions(saved: dict, path) -> None:
    """Warn when a library that reads the bundle's files differs in major.minor from the one that wrote them."""
    import warnings

    from .exceptions import BundleVersionWarning

    now = library_versions()
    differ = [f"{pkg} {saved[pkg]} -> {now[pkg]}" for pkg in ("keras", "tensorflow", "faiss-cpu", "numpy")
              if pkg in saved and pkg in now and saved[pkg].split(".")[:2] != now[pkg].split(".")[:2]]
    if differ:
        warnings.warn(f"{path} was saved with other library versions ({'; '.join(differ)}); "
                      f"check its outputs before serving it", BundleVersionWarning, stacklevel=3)


def load(path):
    """Load the estimator saved in the bundle directory ``path``, whichever class it is.

    Raises
    ------
    BundleError
        The bundle is missing, incomplete, modified or unreadable (naming the file at fault).

    Examples
    --------
    >>> import pandas as pd, tempfile, aerec
    >>> df = pd.DataFrame({"user": [1, 1, 2], "item": ["a", "b", "a"]})
    >>> model = aerec.EASE(l2=1.0).fit(df)
    >>> with tempfile.TemporaryDirectory() as d:
    ...     _ = model.save(d + "/bundle")
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
    try:
        return cls._load_from(Path(path), meta)
    except AerecError:
        raise
    except Exception as exc:  # a file that passed its checksum but does not read (its listing was rewritten)
        culprit = _unreadable_file(Path(path), meta.get("files", {}))
        where = f"{culprit[0]} cannot be read ({culprit[1]})" if culprit else f"it cannot be read ({type(exc).__name__}: {exc})"
        raise BundleError(f"{path}: {where}; the bundle is corrupt: save the model again") from exc


def _unreadable_file(root: Path, files: dict) -> tuple[Path, str] | None:
    """The first listed file that its reader refuses, and why (to name it after a failed load)."""
    import zipfile

    import numpy as np

    for name in files:
        file = root / name
        try:
            if file.suffix == ".npz":
                with np.load(file, allow_pickle=False) as z:
                    for key in z.files:
                        z[key]
            elif file.suffix == ".parquet":
                import pyarrow.parquet as pq

                pq.read_table(file)
            elif file.suffix == ".keras":
                with zipfile.ZipFile(file) as z:
                    bad = z.testzip()
                    if bad is not None:
                        raise zipfile.BadZipFile(f"member {bad} is damaged")
            elif file.suffix == ".faiss":
                import faiss

                faiss.read_index(str(file))
            elif file.suffix == ".json":
                json.loads(file.read_text())
        except Exception as exc:  # noqa: BLE001 - the reason is reported
            return file, f"{type(exc).__name__}: {exc}"
    return None
