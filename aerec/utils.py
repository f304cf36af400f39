"""Small helpers shared across the package."""
from __future__ import annotations

import os

__all__ = ["as_list", "available_memory"]


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
