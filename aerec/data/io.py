"""Reading the user's tables from disk: CSV, TSV and Parquet."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..exceptions import DataValidationError

__all__ = ["read_table"]


def read_table(path, sep: str | None = None) -> pd.DataFrame:
    """Read a ``.csv``, ``.tsv`` / ``.tab`` or ``.parquet`` file into a DataFrame.

    A text column holding values with leading zeros (ids such as ``007``) is read as strings, so
    ``"007"`` and ``"7"`` stay two ids; other columns get pandas' usual types.

    Parameters
    ----------
    path : str or pathlib.Path
        The file; its suffix says how to read it.
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
        engine = "python" if sep is None else "c"
        # ids written with leading zeros ("007") are text: read those columns as strings, not as numbers
        sample = pd.read_csv(path, sep=sep, engine=engine, dtype=str, nrows=100_000)
        text = [c for c in sample.columns if sample[c].str.match(r"^[+-]?0\d").fillna(False).any()]
        return pd.read_csv(path, sep=sep, engine=engine, dtype={c: str for c in text} or None)
    except (ValueError, OSError, pd.errors.ParserError) as exc:
        raise DataValidationError(f"{path}: cannot read it as a {'Parquet' if suffix in ('.parquet', '.pq') else 'text'} table ({exc})") from exc
