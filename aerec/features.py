"""Item features as a DataFrame keyed by the user's item ids: column roles, checks, arrays for Keras.

A feature table has one row per item, an id column (``item`` by default) and feature columns
of five roles:

- ``text``: free text (a title, a description), tokenised inside the content model;
- ``categorical``: one value per item (a studio, a language);
- ``multilabel``: several values per item, as a list-like cell or one string joined by
  ``separator`` (``"Action|Comedy"``), e.g. genres;
- ``numeric``: a number (ints, floats, bools, datetimes, which count as fractional years);
- ``vector``: a fixed-length numeric vector per cell, e.g. image codes from
  :meth:`aerec.ImageSearch.codes`.

Roles are inferred from the data (:func:`infer_feature_columns`) and can be set by name.
Nothing here is learned: the vocabularies, document frequencies and means live in the Keras
content model (:mod:`aerec.models.content`), which takes the raw arrays of
:func:`feature_arrays`, so a saved model reads raw feature values.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from .data.interactions import check_columns
from .exceptions import DataValidationError, MissingColumnError
from .utils import shown

__all__ = ["ROLES", "FeatureColumns", "infer_feature_columns", "feature_arrays", "check_feature_ids"]

ROLES = ("text", "categorical", "multilabel", "numeric", "vector")

#: a string column is multi-label when at least this share of its values contain the separator
_MULTILABEL_SHARE = 0.05
#: a string column is text (not categorical) when its values have more words than this on average,
#: or more than one word and more than ``_TEXT_DISTINCT`` of its values distinct
_TEXT_WORDS = 2.0
_TEXT_DISTINCT = 0.5


@dataclass(frozen=True)
class FeatureColumns:
    """The id column and the feature columns of each role, in the order the model reads them.

    ``vector_dims`` gives the length of each ``vector`` column.
    """

    item: str = "item"
    text: tuple = ()
    categorical: tuple = ()
    multilabel: tuple = ()
    numeric: tuple = ()
    vector: tuple = ()
    vector_dims: tuple = ()
    separator: str = "|"
    datetime: tuple = field(default=())  # numeric columns that were datetimes at fit time

    @property
    def features(self) -> list:
        """Every feature column, role by role."""
        return [c for role in ROLES for c in getattr(self, role)]

    def role_of(self, column) -> str:
        return next(role for role in ROLES if column in getattr(self, role))

    def to_json(self) -> dict:
        return json.loads(json.dumps(asdict(self), default=_json_default))

    @classmethod
    def from_json(cls, config: dict) -> "FeatureColumns":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in config.items()})


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _is_listlike(value) -> bool:
    return isinstance(value, (list, tuple, set, frozenset, np.ndarray, pd.Series))


def _infer_role(series: pd.Series, separator: str, what: str) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or pd.api.types.is_datetime64_any_dtype(dtype):
        return "numeric"
    if isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "numeric"
    if not (pd.api.types.is_string_dtype(dtype) or dtype == object):
        raise DataValidationError(
            f"{what}: column {series.name!r} has dtype {dtype}, which item features do not support; use text, "
            f"categorical, multi-label (lists or {separator!r}-joined strings), numeric, datetime or vector columns")
    values = series.dropna()
    if values.empty:
        raise DataValidationError(f"{what}: column {series.name!r} has no values; drop it or name its role")
    listlike = values.map(_is_listlike).to_numpy(dtype=bool)
    if listlike.all():
        flat = [v for cell in values for v in cell]
        numeric = bool(flat) and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                                     for v in flat)
        return "vector" if numeric else "multilabel"
    strings = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    if not strings.all():
        example = values[~strings].iloc[0]
        raise DataValidationError(
            f"{what}: column {series.name!r} mixes strings with {type(example).__name__} values (e.g. {example!r}); "
            f"give it one type or name its role")
    values = values.astype(str)
    if values.str.contains(separator, regex=False).mean() >= _MULTILABEL_SHARE:
        return "multilabel"
    words = values.str.split().str.len().mean()
    if words > _TEXT_WORDS or (words > 1 and values.nunique() > _TEXT_DISTINCT * len(values)):
        return "text"
    return "categorical"


def infer_feature_columns(df: pd.DataFrame, item: str = "item", text=None, categorical=None, multilabel=None,
                          numeric=None, vector=None, separator: str = "|",
                          what: str = "item_features") -> FeatureColumns:
    """Decide the role of every feature column: the names given per role, the others inferred.

    Inference: bools, numbers and datetimes are ``numeric``; a category dtype is ``categorical``;
    cells that are lists of numbers are a ``vector``, lists of strings ``multilabel``; among
    string columns, those where at least 5% of the values contain ``separator`` are
    ``multilabel``, those with more than two words per value on average (or more than one and
    more than half of their values distinct) are ``text``, the others ``categorical``.

    Parameters
    ----------
    df : DataFrame
        One row per item: the id column and the feature columns.
    item : str
        The id column.
    text, categorical, multilabel, numeric, vector : list of str, optional
        Columns whose role is given rather than inferred.
    separator : str, default "|"
        What joins the labels of a multi-label string cell.

    Returns
    -------
    FeatureColumns

    Examples
    --------
    >>> df = pd.DataFrame({"item": [1, 2], "title": ["Toy Story (1995)", "Heat (1995)"],
    ...                    "genres": ["Animation|Comedy", "Action"], "year": [1995, 1995]})
    >>> cols = infer_feature_columns(df)
    >>> cols.text, cols.multilabel, cols.numeric
    (('title',), ('genres',), ('year',))
    """
    check_columns(df, [item], what)
    given = {role: list(_as_names(value, role)) for role, value in
             zip(ROLES, (text, categorical, multilabel, numeric, vector))}
    named = [c for names in given.values() for c in names]
    missing = [c for c in named if c not in df.columns]
    if missing:
        raise MissingColumnError(f"{what} has no column(s) {missing}; its columns are {list(df.columns)}")
    twice = sorted({c for c in named if named.count(c) > 1}, key=str)
    if twice:
        roles = {c: [r for r, names in given.items() if c in names] for c in twice}
        raise DataValidationError(f"{what}: column(s) given more than one role: {roles}")
    if item in named:
        raise DataValidationError(f"{what}: {item!r} is the item id column and cannot be a feature")
    roles = {c: r for r, names in given.items() for c in names}
    for column in df.columns:
        if column != item and column not in roles:
            roles[column] = _infer_role(df[column], separator, what)
    if not roles:
        raise DataValidationError(f"{what} has no feature columns besides the id column {item!r}")
    by_role = {r: tuple(c for c in df.columns if roles.get(c) == r) for r in ROLES}
    dims = tuple(_vector_dim(df[c], what) for c in by_role["vector"])
    dates = tuple(c for c in by_role["numeric"] if pd.api.types.is_datetime64_any_dtype(df[c].dtype))
    return FeatureColumns(item=item, **by_role, vector_dims=dims, separator=separator, datetime=dates)


def _as_names(value, role: str) -> list:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise TypeError(f"{role}= must be a column name or a list of column names, got {value!r}") from None


def _vector_dim(series: pd.Series, what: str) -> int:
    lengths = series.dropna().map(len)
    if lengths.empty:
        raise DataValidationError(f"{what}: vector column {series.name!r} has no values")
    if lengths.nunique() != 1:
        raise DataValidationError(
            f"{what}: vector column {series.name!r} has cells of different lengths {sorted(lengths.unique())[:5]}; "
            f"every cell must have the same length")
    return int(lengths.iloc[0])


def check_feature_ids(df: pd.DataFrame, item: str, what: str = "item_features") -> np.ndarray:
    """The item ids of a feature table, after checking there is no null and no id given twice."""
    check_columns(df, [item], what)
    ids = df[item]
    if ids.isna().any():
        rows = df.index[ids.isna().to_numpy()][:5].tolist()
        raise DataValidationError(f"{what}: column {item!r} has {int(ids.isna().sum())} null item id(s), "
                                  f"first at rows {rows}")
    dup = ids[ids.duplicated()]
    if len(dup):
        raise DataValidationError(f"{what}: item id(s) given more than once: [{shown(pd.unique(dup))}]; "
                                  f"give one feature row per item")
    return ids.to_numpy()


def feature_arrays(df: pd.DataFrame, columns: FeatureColumns, what: str = "item_features") -> tuple[np.ndarray, dict]:
    """The item ids and the raw arrays the content model reads, after checking the table.

    Returns
    -------
    ids : array
    arrays : dict
        ``"text:<column>"``: str (n,) with ``""`` where missing; ``"categorical:<column>"``: str
        (n, 1); ``"multilabel:<column>"``: str (n, m) padded with ``""``; ``"numeric"``: float32
        (n, q) with NaN where missing (datetimes as fractional years); ``"vector:<column>"``:
        float32 (n, dim) with NaN rows where missing.
    """
    if not isinstance(df, pd.DataFrame):
        raise DataValidationError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in [columns.item, *columns.features] if c not in df.columns]
    if missing:
        raise MissingColumnError(f"{what} has no column(s) {missing}, which the content model reads; "
                                 f"its columns are {list(df.columns)}")
    ids = check_feature_ids(df, columns.item, what)
    arrays = {}
    for c in columns.text:
        arrays[f"text:{c}"] = _strings(df[c], what)
    for c in columns.categorical:
        arrays[f"categorical:{c}"] = _strings(df[c], what)[:, None]
    for c in columns.multilabel:
        arrays[f"multilabel:{c}"] = _labels(df[c], columns.separator, what)
    if columns.numeric:
        arrays["numeric"] = np.column_stack([_numbers(df[c], c in columns.datetime, what) for c in columns.numeric])
    for c, dim in zip(columns.vector, columns.vector_dims):
        arrays[f"vector:{c}"] = _vectors(df[c], dim, what)
    return ids, arrays


def _strings(series: pd.Series, what: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(series.dtype) or pd.api.types.is_bool_dtype(series.dtype):
        return np.asarray(["" if pd.isna(v) else str(v) for v in series], dtype=object).astype(str)
    bad = series.map(_is_listlike).to_numpy(dtype=bool)
    if bad.any():
        raise DataValidationError(f"{what}: column {series.name!r} holds list-like cells (first at row "
                                  f"{series.index[bad][0]!r}); a text or categorical column holds one value per cell")
    return np.asarray(["" if pd.isna(v) else str(v) for v in series], dtype=object).astype(str)


def _labels(series: pd.Series, separator: str, what: str) -> np.ndarray:
    cells = []
    for v in series:
        if _is_listlike(v):
            labels = [str(x) for x in v if not (isinstance(x, float) and np.isnan(x))]
        elif v is None or (not isinstance(v, str) and pd.isna(v)):
            labels = []
        else:
            labels = [s.strip() for s in str(v).split(separator)]
        cells.append([label for label in labels if label])
    width = max([len(c) for c in cells] + [1])
    out = np.full((len(cells), width), "", dtype=object)
    for r, labels in enumerate(cells):
        out[r, :len(labels)] = labels
    return out.astype(str)


def _numbers(series: pd.Series, datetime: bool, what: str) -> np.ndarray:
    if datetime or pd.api.types.is_datetime64_any_dtype(series.dtype):
        try:
            when = pd.to_datetime(series, errors="raise")
        except (ValueError, TypeError) as exc:
            raise DataValidationError(f"{what}: column {series.name!r} was datetimes at fit time and cannot be "
                                      f"read as datetimes now ({exc})") from None
        # fractional years: a scale on which a linear head can weigh age
        years = when.dt.year + (when.dt.day_of_year - 1) / 365.25
        return years.to_numpy(dtype=np.float32, na_value=np.nan)
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype(float).to_numpy(dtype=np.float32)
    values = pd.to_numeric(series, errors="coerce")
    bad = values.isna() & series.notna()
    if bad.any():
        rows = series.index[bad.to_numpy()][:5].tolist()
        raise DataValidationError(f"{what}: numeric column {series.name!r} has {int(bad.sum())} value(s) that are "
                                  f"not numbers, first at rows {rows} (e.g. {series[bad].iloc[0]!r})")
    out = values.to_numpy(dtype=np.float64, na_value=np.nan)
    if np.isinf(out).any():
        rows = series.index[np.isinf(out)][:5].tolist()
        raise DataValidationError(f"{what}: numeric column {series.name!r} has infinite values at rows {rows}")
    return out.astype(np.float32)


def _vectors(series: pd.Series, dim: int, what: str) -> np.ndarray:
    out = np.full((len(series), dim), np.nan, dtype=np.float32)
    for r, (label, cell) in enumerate(series.items()):
        if cell is None or (not _is_listlike(cell) and pd.isna(cell)):
            continue
        try:
            values = np.asarray(cell, dtype=np.float32).ravel()
        except (TypeError, ValueError):
            raise DataValidationError(f"{what}: vector column {series.name!r} has a non-numeric cell at row "
                                      f"{label!r}") from None
        if values.shape != (dim,):
            raise DataValidationError(f"{what}: vector column {series.name!r} has a cell of length {values.size} "
                                      f"at row {label!r}; the model reads vectors of length {dim}")
        if not np.isfinite(values).all():
            raise DataValidationError(f"{what}: vector column {series.name!r} has non-finite values at row {label!r}")
        out[r] = values
    return out
