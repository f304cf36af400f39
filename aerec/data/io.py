"""Reading the user's tables from disk: CSV, TSV and Parquet."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..exceptions import DataValidationError

__all__ = ["read_table"]


def read_table(path, sep: str | None = None) -> pd.DataFrame:
    """Read a ``.csv``, ``.tsv`` / ``.tab`` or ``.parquet`` file into a DataFrame.

    Parameters
    ----------
    path : path
    sep : str, optional
        Field separator for text files; by default ``","`` for ``.csv`` and a tab for ``.tsv``,
        else sniffed.

    Raises
    ------
    FileNotFoundError
        Naming the path.
    DataValidationError
        When the file cannot be parsed, naming it and the parser's reason.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            return pd.read_parquet(path)
        if sep is None:
            sep = {".csv": ",", ".tsv": "\t", ".tab": "\t"}.get(suffix)
        return pd.read_csv(path, sep=sep, engine="python" if sep is None else "c")
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataValidationError(f"{path}: cannot read it as a {'Parquet' if suffix in ('.parquet', '.pq') else 'text'} table ({exc})") from exc
