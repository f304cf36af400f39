"""Ids that arrive as text (the command line, JSON) turned into ids of the fitted kind: one function for both."""
from __future__ import annotations

import re

import numpy as np
import pandas as pd

__all__ = ["coerce_ids"]

_INTEGER = re.compile(r"^[+-]?\d+$")


def coerce_ids(values, ids) -> list:
    """``values`` as ids of the same type as the fitted ``ids`` (an :class:`~aerec.data.IdMap` or an index).

    A command line gives every id as a string and JSON gives numbers or strings; the fitted ids may be
    integers or strings. Only an unambiguous conversion is made: ``"42"`` becomes ``42`` where the fitted
    ids are integers (and ``42.0`` too), ``42`` becomes ``"42"`` where they are strings; ``"007"`` stays
    ``"007"`` where the ids are strings, since a string id made of digits is still a string. Anything
    else is left as given (and is then unknown, named in the error).

    Examples
    --------
    >>> coerce_ids(["42", "x", 7.0], pd.Index([7, 42]))
    [42, 'x', 7]
    >>> coerce_ids(["007", 42], pd.Index(["007", "42"]))
    ['007', '42']
    """
    index = ids.ids if hasattr(ids, "ids") and not isinstance(ids, pd.Index) else pd.Index(ids)
    if index.dtype.kind in "iu":
        return [_to_int(v) for v in values]
    if index.dtype.kind == "f":
        return [_to_float(v) for v in values]
    if pd.api.types.infer_dtype(index, skipna=True) == "string":
        return [str(v) if isinstance(v, (int, np.integer)) and not isinstance(v, bool) else v for v in values]
    return list(values)


def _to_int(value):
    if isinstance(value, str) and _INTEGER.match(value.strip()):
        return int(value.strip())
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return int(value)
    return value


def _to_float(value):
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
