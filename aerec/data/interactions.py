"""`Interactions`: a checked sparse user x item matrix with the user's ids on both axes."""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import scipy.sparse as sp

from ..exceptions import (
    DataValidationError,
    DuplicatesMergedWarning,
    MissingColumnError,
    UnknownIdError,
    UnknownIdsWarning,
)
from ..utils import first_rows
from .idmap import IdMap

__all__ = ["Interactions", "check_columns"]

_DUPLICATES = ("last", "first", "sum", "max", "mean")


def check_columns(df, columns, what: str = "data") -> None:
    """Raise :class:`MissingColumnError` naming every column of ``columns`` absent from ``df``."""
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise MissingColumnError(
            f"{what} has no column(s) {missing}; its columns are {list(df.columns)}. "
            f"Name yours with the user=/item=/rating= arguments"
        )



def _check_one_id_type(column: pd.Series, name: str, what: str) -> None:
    """Refuse an id column mixing numbers and strings: ``196`` and ``"196"`` would be two users."""
    kind = pd.api.types.infer_dtype(column, skipna=True)
    if kind not in ("mixed-integer", "mixed-integer-float", "mixed"):
        return
    by_type = {}
    for value in column.dropna().head(100_000):
        by_type.setdefault(type(value).__name__, value)
    examples = ", ".join(f"{v!r} ({t})" for t, v in list(by_type.items())[:4])
    raise DataValidationError(
        f"{what}: column {name!r} mixes id types ({examples}); the same id written two ways would count as two. "
        f"Make the column one type, e.g. df[{name!r}] = df[{name!r}].astype(str)")


def _coded(column: pd.Series, fixed: IdMap | None, name: str) -> tuple[IdMap, np.ndarray]:
    """The id map (``fixed``, or one built from the column's distinct values, sorted when they compare) and
    each row's index in it (-1 for ids a fixed map does not hold)."""
    if fixed is not None:
        return fixed, fixed.index_of(column.to_numpy(), on_unknown="mark")
    try:
        codes, uniques = pd.factorize(column, sort=True)
    except TypeError:  # mixed types that do not compare: first appearance, as IdMap.from_values
        codes, uniques = pd.factorize(column)
    # the distinct ids as the column's to_numpy() gives them (Python objects for strings): only these converted;
    # 32-bit codes while they fit (half the memory of a row's index at 10^8 rows)
    return IdMap(np.asarray(uniques), name=name), codes.astype(np.int32 if len(uniques) < 2**31 else np.int64)


@dataclass(frozen=True)
class Interactions:
    """A user x item matrix in CSR form with the maps between ids and indices.

    Build it with :meth:`from_frame`; ``matrix[u, i]`` is the value of user ``users.ids[u]``
    on item ``items.ids[i]`` (1.0 for implicit data, the rating otherwise).

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": ["ann", "bob", "ann"], "item": [10, 10, 20]})
    >>> X = Interactions.from_frame(df)
    >>> X.shape, X.nnz
    ((2, 2), 3)
    >>> X.matrix.toarray().tolist()
    [[1.0, 1.0], [1.0, 0.0]]
    """

    matrix: sp.csr_matrix
    users: IdMap
    items: IdMap

    @classmethod
    def from_frame(
        cls,
        df: pd.DataFrame,
        user: str = "user",
        item: str = "item",
        rating: str | None = None,
        threshold: float | None = None,
        users: IdMap | None = None,
        items: IdMap | None = None,
        on_unknown: str = "error",
        duplicates: str = "last",
        what: str = "interactions",
    ) -> "Interactions":
        """Check a DataFrame of interactions and build the sparse matrix.

        Parameters
        ----------
        df : DataFrame
            One row per interaction.
        user, item : str
            Names of the id columns.
        rating : str, optional
            Name of a numeric value column; without it every interaction counts 1.
        threshold : float, optional
            Keep only rows with ``rating >= threshold`` (then stored as 1.0, implicit).
        users, items : IdMap, optional
            Fixed maps to use (e.g. the fitted model's items); by default built from the data.
        on_unknown : {"error", "warn"}
            With fixed maps: what to do with ids not in them. ``"warn"`` drops those rows
            with an :class:`~aerec.exceptions.UnknownIdsWarning` that counts them.
        duplicates : {"last", "first", "sum", "max", "mean"}
            How repeated (user, item) pairs are merged; a
            :class:`~aerec.exceptions.DuplicatesMergedWarning` says how many there were.
        what : str
            How error messages name this data.
        """
        if duplicates not in _DUPLICATES:
            raise ValueError(f"duplicates must be one of {_DUPLICATES}, got {duplicates!r}")
        if on_unknown not in ("error", "warn"):
            raise ValueError(f"on_unknown must be 'error' or 'warn', got {on_unknown!r}")
        if threshold is not None and rating is None:
            raise ValueError("threshold needs a rating column: pass rating=<column name>")
        cols = [user, item] + ([rating] if rating is not None else [])
        check_columns(df, cols, what)
        if len(df) == 0:
            raise DataValidationError(f"{what} is empty: there is nothing to learn from")
        for col in (user, item):
            nulls = df[col].isna().to_numpy()
            if nulls.any():
                raise DataValidationError(
                    f"{what}: column {col!r} has {int(nulls.sum())} null id(s), first at rows {first_rows(df.index, nulls)}"
                )
        for col, fixed in ((user, users), (item, items)):
            if fixed is None:
                _check_one_id_type(df[col], col, what)
        if rating is not None:
            values = pd.to_numeric(df[rating], errors="coerce")
            bad = (values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))).to_numpy()
            if bad.any():
                raise DataValidationError(
                    f"{what}: column {rating!r} must be numeric and finite; {int(bad.sum())} row(s) are not, "
                    f"first at rows {first_rows(df.index, bad)} (values {df.loc[bad, rating].head(5).tolist()})"
                )
            values = values.to_numpy(dtype=np.float32)
        else:
            values = np.ones(len(df), dtype=np.float32)
        u_col, i_col = df[user], df[item]
        if threshold is not None:
            keep = values >= threshold
            u_col, i_col, values = u_col[keep], i_col[keep], np.ones(int(keep.sum()), dtype=np.float32)
            if not len(values):
                raise DataValidationError(f"{what}: no row has {rating!r} >= {threshold}")

        # without fixed maps the ids are coded from the columns as they are (Arrow strings stay Arrow):
        # a NumPy array of Python strings costs ~60 bytes an id, over 1 GB for two columns of 10M rows
        coded_here = users is None or items is None  # a map built from the data (fit), not a fixed one (serving)
        users, u_idx = _coded(u_col, users, "user")
        items, i_idx = _coded(i_col, items, "item")
        known = (u_idx >= 0) & (i_idx >= 0)
        if not known.all():
            n_u, n_i = int((u_idx < 0).sum()), int((i_idx < 0).sum())
            if on_unknown == "error":
                if n_u:
                    raise UnknownIdError("user", pd.unique(u_col[u_idx < 0]).tolist(), f"in {what}")
                raise UnknownIdError("item", pd.unique(i_col[i_idx < 0]).tolist(), f"in {what}")
            warnings.warn(
                f"{what}: ignored {int((~known).sum())} of {len(known)} row(s) whose ids were not seen "
                f"at fit time ({n_u} with an unknown user, {n_i} with an unknown item)",
                UnknownIdsWarning,
                stacklevel=2,
            )
            u_idx, i_idx, values = u_idx[known], i_idx[known], values[known]

        matrix = _merge_duplicates(u_idx, i_idx, values, (len(users), len(items)), duplicates, what)
        if coded_here:  # coding Arrow strings allocates in Arrow's pool, which keeps what is freed (0.2 GB
            pa.default_memory_pool().release_unused()  # after coding 10M rows, held through training): give it back
        return cls(matrix, users, items)

    # --- views ---------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        return self.matrix.shape

    @property
    def nnz(self) -> int:
        return int(self.matrix.nnz)

    @property
    def n_users(self) -> int:
        return self.matrix.shape[0]

    @property
    def n_items(self) -> int:
        return self.matrix.shape[1]

    def rows(self, user_ids) -> sp.csr_matrix:
        """The rows of the given users (unknown ids raise :class:`UnknownIdError`)."""
        return self.matrix[self.users.index_of(user_ids)]

    def to_frame(self, user: str = "user", item: str = "item", value: str = "value") -> pd.DataFrame:
        """The non-zero entries as a DataFrame with the user's ids."""
        coo = self.matrix.tocoo()
        return pd.DataFrame(
            {user: self.users.ids_of(coo.row), item: self.items.ids_of(coo.col), value: coo.data}
        )

    def save(self, directory, name: str = "interactions") -> None:
        """Write ``{name}.npz`` (the CSR arrays, no pickle) and the two id maps as Parquet into ``directory``."""
        from pathlib import Path

        directory = Path(directory)
        X = self.matrix
        np.savez(directory / f"{name}.npz", data=X.data, indices=X.indices, indptr=X.indptr, shape=np.asarray(X.shape))
        self.users.to_parquet(directory / "users.parquet")
        self.items.to_parquet(directory / "items.parquet")

    @classmethod
    def load(cls, directory, name: str = "interactions") -> "Interactions":
        """Read back what :meth:`save` wrote."""
        from pathlib import Path

        directory = Path(directory)
        with np.load(directory / f"{name}.npz", allow_pickle=False) as z:
            matrix = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        return cls(matrix, IdMap.from_parquet(directory / "users.parquet"), IdMap.from_parquet(directory / "items.parquet"))

    def __repr__(self) -> str:
        return f"Interactions(n_users={self.n_users}, n_items={self.n_items}, nnz={self.nnz})"


def _merge_duplicates(u_idx, i_idx, values, shape, how: str, what: str) -> sp.csr_matrix:
    # Without a repeated pair (the common case) the matrix comes straight from the coordinates: scipy's
    # counting sort by row, in place on 32-bit indices (at 10M rows ~0.2 GB beside the codes, where the
    # sort by a 64-bit key below takes ~0.7 GB). It sums repeats, so fewer entries than rows means some.
    matrix = sp.csr_matrix((values, (u_idx, i_idx)), shape=shape, dtype=np.float32)
    if matrix.nnz == len(values):
        matrix.sort_indices()
        return matrix
    del matrix
    key = u_idx.astype(np.int64) * shape[1] + i_idx
    uniq, inverse, counts = np.unique(key, return_inverse=True, return_counts=True)
    n_dup = int(len(key) - len(uniq))
    if n_dup:
        warnings.warn(
            f"{what}: merged {n_dup} duplicated (user, item) row(s) into {int((counts > 1).sum())} "
            f"entries (duplicates={how!r})",
            DuplicatesMergedWarning,
            stacklevel=3,
        )
        order = np.arange(len(key))
        if how in ("last", "first"):
            if how == "last":
                pick = np.zeros(len(uniq), dtype=np.int64)
                np.maximum.at(pick, inverse, order)
            else:
                pick = np.full(len(uniq), len(key), dtype=np.int64)
                np.minimum.at(pick, inverse, order)
            merged = values[pick]
        else:
            frame = pd.DataFrame({"k": inverse, "v": values})
            merged = frame.groupby("k")["v"].agg(how).to_numpy(dtype=np.float32)
        values = merged.astype(np.float32)
    else:
        values = values[np.argsort(key, kind="stable")]
    rows, cols = np.divmod(uniq, shape[1])
    return sp.csr_matrix((values, (rows, cols)), shape=shape, dtype=np.float32)
