"""`IdMap`: the user's own ids <-> dense indices 0..n-1."""
from __future__ import annotations

from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from ..exceptions import DataValidationError, UnknownIdError
from ..utils import as_list

__all__ = ["IdMap"]

_ON_UNKNOWN = ("error", "skip", "mark")


class IdMap:
    """A fixed, ordered set of ids and their dense positions.

    Any hashable that pandas can hold works as an id (ints, strings, ...). Indices are
    stable: an id keeps its index for the life of the map, and :meth:`extend` only
    appends. Saved as Parquet (no pickle).

    Parameters
    ----------
    ids : array-like
        Unique, non-null ids, in index order.
    name : str, default "id"
        What the ids are (``"user"``, ``"item"``); used in error messages.

    Examples
    --------
    >>> m = IdMap.from_values(["b", "a", "b", "c"], name="item")
    >>> list(m.ids)
    ['a', 'b', 'c']
    >>> m.index_of(["c", "a"]).tolist()
    [2, 0]
    >>> m.ids_of([1]).tolist()
    ['b']
    """

    def __init__(self, ids, name: str = "id"):
        index = pd.Index(ids)
        if index.hasnans:
            raise DataValidationError(f"{name} ids contain nulls; every {name} needs an id")
        if not index.is_unique:
            dup = index[index.duplicated()].unique()[:10].tolist()
            raise DataValidationError(f"{name} ids are not unique; repeated: {dup}")
        self._index = index
        self.name = name

    @classmethod
    def from_values(cls, values: Iterable, name: str = "id") -> "IdMap":
        """The distinct values, sorted when they are mutually comparable, else in order of first appearance."""
        uniq = pd.unique(pd.Series(values))
        try:
            uniq = np.sort(uniq) if not isinstance(uniq, pd.api.extensions.ExtensionArray) else uniq[uniq.argsort()]
        except TypeError:
            pass  # mixed types: keep first appearance, which is deterministic too
        return cls(uniq, name=name)

    # --- lookups -------------------------------------------------------------------
    @property
    def ids(self) -> pd.Index:
        """The ids in index order."""
        return self._index

    def __len__(self) -> int:
        return len(self._index)

    def __contains__(self, key) -> bool:
        return key in self._index

    def __eq__(self, other) -> bool:
        return isinstance(other, IdMap) and self._index.equals(other._index)

    def __repr__(self) -> str:
        return f"IdMap(name={self.name!r}, n={len(self)})"

    def index_of(self, ids, on_unknown: str = "error") -> np.ndarray:
        """Dense indices of ``ids``.

        Parameters
        ----------
        ids : array-like
        on_unknown : {"error", "skip", "mark"}
            ``"error"`` raises :class:`~aerec.exceptions.UnknownIdError` listing them,
            ``"skip"`` leaves them out, ``"mark"`` returns -1 in their place.
        """
        if on_unknown not in _ON_UNKNOWN:
            raise ValueError(f"on_unknown must be one of {_ON_UNKNOWN}, got {on_unknown!r}")
        values = as_list(ids)
        if len(values) <= 16:  # a hash lookup each: a request's ids, without building an Index
            idx = np.fromiter((self._position(v) for v in values), dtype=np.int64, count=len(values))
        else:
            idx = self._index.get_indexer(pd.Index(values, dtype=object))
        missing = idx < 0
        if missing.any():
            if on_unknown == "error":
                unknown = pd.unique(pd.Series(np.asarray(values, dtype=object)[missing])).tolist()
                raise UnknownIdError(self.name, unknown)
            if on_unknown == "skip":
                idx = idx[~missing]
        return idx.astype(np.int64)

    def _position(self, value) -> int:
        try:
            found = self._index.get_loc(value)
        except (KeyError, TypeError, pd.errors.InvalidIndexError):
            return -1
        return int(found) if isinstance(found, (int, np.integer)) else -1

    def ids_of(self, indices) -> np.ndarray:
        """The ids at ``indices``."""
        return np.asarray(self._index[np.asarray(indices, dtype=np.int64)])

    def extend(self, new_ids) -> "IdMap":
        """A new map with ``new_ids`` appended; existing ids keep their indices."""
        new = pd.Index(as_list(new_ids))
        clash = new[new.isin(self._index)]
        if len(clash):
            raise DataValidationError(f"{self.name} ids already known: {clash[:10].tolist()}")
        return IdMap(self._index.append(new), name=self.name)

    # --- saving --------------------------------------------------------------------
    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame({self.name: self._index})

    def to_parquet(self, path) -> None:
        """Write the ids, in index order, as one Parquet column named after the map."""
        try:
            self.to_frame().to_parquet(Path(path), index=False)
        except Exception as exc:  # pyarrow refuses mixed or exotic types
            raise DataValidationError(
                f"cannot save {self.name} ids of dtype {self._index.dtype} to Parquet ({exc}); "
                f"cast them to one type (e.g. str) before fitting"
            ) from exc

    @classmethod
    def from_parquet(cls, path) -> "IdMap":
        frame = pd.read_parquet(Path(path))
        if frame.shape[1] != 1:
            raise DataValidationError(f"{path}: an id map has one column, found {list(frame.columns)}")
        name = str(frame.columns[0])
        return cls(frame.iloc[:, 0], name=name)

