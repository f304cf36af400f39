"""Small helpers shared across the package."""
from __future__ import annotations

import hashlib
import os

__all__ = ["as_list", "available_memory", "sha256_of", "shown", "first_rows"]


def as_list(values) -> list:
    """A list of ``values``; a lone id (a string, a number, ...) becomes a one-element list."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        return [values]
    return list(values)


def available_memory() -> int:
    """Bytes of memory available to new allocations (``MemAvailable``, else physical memory)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 2**30


def sha256_of(path) -> str:
    """The SHA-256 of a file, as hex (read in 1 MiB blocks)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def shown(values, n: int = 10, total: int | None = None) -> str:
    """``values`` for a message: the first ``n`` as reprs, then "and M more".

    Examples
    --------
    >>> shown(["a", "b", "c"], n=2)
    "'a', 'b' and 1 more"
    >>> shown([1, 2, 3, 4], n=2, total=10)
    '1, 2 and 8 more'
    """
    values = list(values)
    total = len(values) if total is None else int(total)
    head = ", ".join(repr(v.item() if hasattr(v, "item") and not isinstance(v, (str, bytes)) else v)
                     for v in values[:n])
    more = total - min(n, len(values))
    return head + (f" and {more} more" if more > 0 else "")


def first_rows(index, mask, n: int = 5) -> str:
    """The labels of the first ``n`` rows where ``mask`` is set, and how many more, for messages naming rows."""
    import numpy as np

    mask = np.asarray(mask, dtype=bool)
    rows = [r.item() if hasattr(r, "item") else r for r in index[mask][:n]]
    more = int(mask.sum()) - len(rows)
    return f"{rows}" + (f" and {more} more" if more > 0 else "")
