"""`TableAutoencoder`: an autoencoder over the rows of a table with holes — imputed cells, row codes,
anomaly scores.

The Keras network it trains lives in :mod:`aerec.models.table` and knows nothing of DataFrames;
the kinds of autoencoder are listed once, in :mod:`aerec.models.table_kinds`.
"""
from __future__ import annotations

import json
import time
import warnings

import numpy as np
import pandas as pd

from .base import BaseEstimator, register
from .exceptions import AerecWarning, DataValidationError, InvalidParameterError, MissingColumnError, UnknownIdsWarning
from .models.keras_utils import inference_copy, set_seed
from .models.table_kinds import KINDS, TABLE_KINDS
from .params import Boolean, Interval, Options, Widths

__all__ = ["TableAutoencoder"]

_MISSING = ""  # how a missing categorical cell reaches the model


def _column_kind(df: pd.DataFrame, column, what: str) -> str:
    """``"numeric"`` or ``"categorical"``; a clear error naming the column for anything else."""
    series = df[column]
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype) or isinstance(dtype, pd.CategoricalDtype):
        return "categorical"
    if pd.api.types.is_numeric_dtype(dtype) and not pd.api.types.is_complex_dtype(dtype):
        return "numeric"
    if pd.api.types.is_string_dtype(dtype) or dtype == object:
        values = series.dropna()
        odd = ~values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
        if odd.any():
            example = values[odd].iloc[0]
            raise DataValidationError(
                f"{what}: column {column!r} holds values that are not strings (e.g. {example!r} of type "
                f"{type(example).__name__}); TableAutoencoder takes numeric, bool, string and category columns. "
                f"Convert it (pd.to_numeric or .astype(str)) or drop it")
        return "categorical"
    raise DataValidationError(
        f"{what}: column {column!r} has dtype {dtype}, which TableAutoencoder does not support; it takes numeric, "
        f"bool, string and category columns. Convert the column (e.g. a date to numbers) or drop it")


def _json_value(value):
    return value.item() if isinstance(value, np.generic) else value


@register
class TableAutoencoder(BaseEstimator):
    """An autoencoder over the rows of a table with numeric and categorical columns and missing cells.

    It fills missing cells (:meth:`impute`), gives each row a code (:meth:`transform`) and scores
    rows by how badly it reconstructs them (:meth:`anomaly_score`). Preprocessing lives inside
    the saved Keras model (a ``Normalization`` layer for numeric columns, one ``StringLookup``
    per categorical column), and the loss counts observed cells only (see
    :mod:`aerec.models.table`). A share of the observed cells is kept out of training on purpose
    (``validation``), and training stops when the error on those cells stops falling.

    Columns may be numeric (int, float, nullable ``Int64``/``Float64``), bool, string/object (of
    strings) or category; anything else, a column with no observed cell, or a table whose
    columns differ from the fitted ones raises a
    :class:`~aerec.exceptions.DataValidationError` naming the column.

    Parameters
    ----------
    kind : {"undercomplete", "sparse", "contractive", "denoising", "variational"}, default "denoising"
        What regularises the code: its width only; a sparsity penalty (``sparsity``,
        ``sparsity_target``, ``sparsity_penalty``); the squared Frobenius norm of the encoder's
        Jacobian (``contraction``); hiding input cells in training (``corruption``); a Gaussian
        code with a KL term (``beta``).
    hidden_dim : int or tuple of int, default 128
        Widths of the encoder's hidden layers (the decoder mirrors them).
    code_dim : int, optional
        Width of the code; by default half the number of columns, between 2 and 16.
    activation : {"tanh", "sigmoid", "relu", "elu", "linear"}, default "tanh"
    corruption : float, default 0.25
        ``"denoising"``: the probability of hiding each observed input cell in a training step.
    visible_weight : float, default 0.1
        ``"denoising"``: weight of the loss on the observed cells left visible in a training step
        (the cells hidden in that step have weight 1). 0 trains on exactly the imputation task:
        predict the cells you cannot see. 1 is the classic denoising loss on every observed cell.
    sparsity : float, default 1.0
        ``"sparse"``: weight of the sparsity penalty.
    sparsity_target : float, default 0.05
        ``"sparse"`` with ``sparsity_penalty="kl"``: the target mean activation of each code unit.
    sparsity_penalty : {"kl", "l1"}, default "kl"
        KL divergence of sigmoid code units' mean activation to the target, or L1 norm of a ReLU code.
    contraction : float, default 0.1
        ``"contractive"``: weight of the squared Frobenius norm of the encoder's Jacobian.
    beta : float, default 1.0
        ``"variational"``: weight of the KL term.
    dropout : float, default 0.0
        Dropout rate after each hidden layer in training.
    members : int, default 1
        Number of independent autoencoders trained side by side in the same steps (one set of
        weights with a leading ``members`` axis). Imputations and anomaly scores use the members'
        average; :meth:`transform` gives the first member's code. 5 members lowered the imputation
        error on Protocol F's development split (``benchmarks/results/protocol_f_dev.md``).
    linear_skip : bool, optional
        ``"denoising"`` only: a linear map from the visible cells (and which cells are visible) to the
        output, beside the code, so that linear relations between columns need not pass through it.
        By default on for the denoising kind (it lowered the error on all three tables of Protocol F's
        development split) and off for the others.
    standardize : bool, default True
        Scale each numeric column by the mean and standard deviation of its observed cells (inside
        the model); False uses the values as given, for columns on one common scale such as pixels.
    learning_rate : float, default 3e-3
        Adam's learning rate.
    batch_size : int, default 64
    epochs : int, default 500
        Most passes over the rows.
    patience : int, default 50
        Epochs without a lower validation error before training stops (the best weights are kept).
        The first 10 epochs (or ``patience`` if fewer) are not judged; when ``epochs`` ends
        training before any epoch was judged, the last weights are kept.
    validation : {"cells", "rows"}, default "cells"
        What early stopping watches. ``"cells"``: a share ``validation_fraction`` of the observed
        cells of every row is hidden from training, and the error is measured on those cells.
        ``"rows"``: a share of the rows is held out; a fifth of their observed cells are hidden
        from the model's input and the error is measured on those cells.
    validation_fraction : float, default 0.1
        Share of cells or rows held out for early stopping (0: train ``epochs`` epochs on everything).
    seed : int, default 0
    verbose : int, default 0

    Attributes
    ----------
    columns_ : list
        The fitted columns, in order.
    schema_ : dict
        Per column: ``kind`` (numeric | categorical), ``dtype`` and, for categorical columns, the categories.
    network_ : aerec.models.table.TableNetwork
    history_ : dict
        Epoch logs of training.

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> df = pd.DataFrame({"x": [1.0, 2.0, np.nan, 4.0] * 10, "colour": ["red", "blue", "red", None] * 10})
    >>> model = TableAutoencoder(kind="denoising", hidden_dim=8, epochs=5, seed=0).fit(df)
    >>> filled = model.impute(df)
    >>> int(filled.isna().sum().sum()), filled.dtypes.equals(df.dtypes)
    (0, True)
    >>> model.transform(df).shape, model.anomaly_score(df).index.equals(df.index)
    ((40, 2), True)
    """

    _parameter_constraints = {
        "kind": [Options(*KINDS)],
        "hidden_dim": [Widths(1)],
        "code_dim": [Interval("int", 1, None), None],
        "activation": [Options("tanh", "sigmoid", "relu", "elu", "linear")],
        "corruption": [Interval("real", 0, 1, closed="left")],
        "visible_weight": [Interval("real", 0, 1)],
        "sparsity": [Interval("real", 0, None)],
        "sparsity_target": [Interval("real", 0, 1, closed="neither")],
        "sparsity_penalty": [Options("kl", "l1")],
        "contraction": [Interval("real", 0, None)],
        "beta": [Interval("real", 0, None)],
        "dropout": [Interval("real", 0, 1, closed="left")],
        "members": [Interval("int", 1, None)],
        "linear_skip": [Boolean(), None],
        "standardize": [Boolean()],
        "learning_rate": [Interval("real", 0, None, closed="neither")],
        "batch_size": [Interval("int", 1, None)],
        "epochs": [Interval("int", 1, None)],
        "patience": [Interval("int", 1, None)],
        "validation": [Options("cells", "rows")],
        "validation_fraction": [Interval("real", 0, 1, closed="left")],
        "seed": [Interval("int", 0, None), None],
        "verbose": [Options(0, 1, 2, False, True)],
    }

    def __init__(self, kind: str = "denoising", hidden_dim=128, code_dim: int | None = None, activation: str = "tanh",
                 corruption: float = 0.25, visible_weight: float = 0.1, sparsity: float = 1.0,
                 sparsity_target: float = 0.05, sparsity_penalty: str = "kl", contraction: float = 0.1,
                 beta: float = 1.0, dropout: float = 0.0, members: int = 1, linear_skip: bool | None = None,
                 standardize: bool = True, learning_rate: float = 3e-3, batch_size: int = 64, epochs: int = 500,
                 patience: int = 50, validation: str = "cells", validation_fraction: float = 0.1, seed: int = 0,
                 verbose: int = 0):
        self.kind = kind
        self.hidden_dim = hidden_dim
        self.code_dim = code_dim
        self.activation = activation
        self.corruption = corruption
        self.sparsity = sparsity
        self.sparsity_target = sparsity_target
        self.sparsity_penalty = sparsity_penalty
        self.contraction = contraction
        self.beta = beta
        self.visible_weight = visible_weight
        self.dropout = dropout
        self.members = members
        self.linear_skip = linear_skip
        self.standardize = standardize
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.validation = validation
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.verbose = verbose

    # --- checks -----------------------------------------------------------------------
    def _check_param_relations(self) -> None:
        if self.linear_skip and not TABLE_KINDS[self.kind].corrupts_input:
            raise InvalidParameterError(f"linear_skip is for the denoising kind (got kind={self.kind!r}): any other kind "
                                        f"would learn to copy its input through it")

    def _hidden(self) -> tuple[int, ...]:
        h = self.hidden_dim
        return (int(h),) if isinstance(h, (int, np.integer)) else tuple(int(v) for v in h)

    def _check_table(self, df, what: str) -> pd.DataFrame:
        """The table's columns in fitted order, after checking they are the fitted ones with the same kinds."""
        if not isinstance(df, pd.DataFrame):
            raise DataValidationError(f"{what} must be a pandas DataFrame, got {type(df).__name__}")
        missing = [c for c in self.columns_ if c not in df.columns]
        if missing:
            raise MissingColumnError(f"{what} has no column(s) {missing}, which the model was fitted with; "
                                     f"fitted columns: {self.columns_}")
        extra = [c for c in df.columns if c not in set(self.columns_)]
        if extra:
            raise DataValidationError(f"{what} has column(s) {extra} that the model was not fitted with; "
                                      f"fitted columns: {self.columns_}. Drop them or refit")
        for column in self.columns_:
            kind = _column_kind(df, column, what)
            if kind != self.schema_[column]["kind"]:
                raise DataValidationError(
                    f"{what}: column {column!r} is {kind} (dtype {df[column].dtype}) but was "
                    f"{self.schema_[column]['kind']} (dtype {self.schema_[column]['dtype']}) at fit time")
        return df[self.columns_]

    # --- arrays for the network ---------------------------------------------------------
    def _arrays(self, df: pd.DataFrame, what: str) -> dict:
        numeric = [c for c in self.columns_ if self.schema_[c]["kind"] == "numeric"]
        categorical = [c for c in self.columns_ if self.schema_[c]["kind"] == "categorical"]
        arrays = {}
        if numeric:
            arrays["numeric"] = np.column_stack(
                [pd.to_numeric(df[c]).to_numpy(dtype=np.float32, na_value=np.nan) for c in numeric])
        if categorical:
            cols, unseen = [], {}
            for c in categorical:
                known = self._category_strings[c]
                missing = df[c].isna().to_numpy()
                strings = np.where(missing, _MISSING, df[c].astype(object).map(str).to_numpy(dtype=object))
                new = ~missing & ~pd.Index(strings).isin(known)
                if new.any():
                    unseen[c] = int(new.sum())
                cols.append(strings)
            if unseen:
                warnings.warn(f"{what}: cells with categories unseen at fit time are read as missing: {unseen} "
                              f"(column: number of cells)", UnknownIdsWarning, stacklevel=3)
            arrays["categorical"] = np.column_stack(cols).astype(str)
        return arrays

    @property
    def _category_strings(self) -> dict:
        return {c: [str(v) for v in s["categories"]] for c, s in self.schema_.items() if s["kind"] == "categorical"}

    def _batches(self, arrays: dict, size: int = 4096):
        n = len(next(iter(arrays.values())))
        for start in range(0, n, size):
            yield {k: v[start:start + size] for k, v in arrays.items()}

    # --- fitting ------------------------------------------------------------------------
    def fit(self, df: pd.DataFrame) -> "TableAutoencoder":
        """Learn from a table with holes (NaN / None / NA are missing cells).

        Returns
        -------
        self
        """
        import keras
        import tensorflow as tf

        from .models.table import TableNetwork

        self._validate_params()
        if not isinstance(df, pd.DataFrame):
            raise DataValidationError(f"table must be a pandas DataFrame, got {type(df).__name__}")
        if df.shape[1] == 0 or df.shape[0] < 2:
            raise DataValidationError(f"table has shape {df.shape}: it needs at least two rows and one column")
        if not df.columns.is_unique:
            raise DataValidationError(f"table has repeated column names: {df.columns[df.columns.duplicated()].tolist()}")
        start = time.perf_counter()
        schema = {}
        for column in df.columns:
            kind = _column_kind(df, column, "table")
            observed = df[column].dropna()
            if observed.empty:
                raise DataValidationError(f"table: column {column!r} is entirely missing; there is nothing to learn "
                                          f"about it. Drop it or give it some values")
            entry = {"kind": kind, "dtype": str(df[column].dtype)}
            if kind == "categorical":
                firsts = pd.Series(observed.to_numpy(dtype=object)).groupby(observed.astype(object).map(str).to_numpy(),
                                                                            sort=True).first()
                entry["categories"] = [_json_value(v) for v in firsts.to_numpy(dtype=object)]
            else:
                values = pd.to_numeric(observed).to_numpy(dtype=np.float64)
                if not np.isfinite(values).all():
                    raise DataValidationError(f"table: column {column!r} holds infinite values")
                variance = float(values.var())
                if not self.standardize:  # values used as given (e.g. pixels already in [0, 1])
                    entry.update(mean=0.0, variance=1.0)
                else:  # a constant column is standardised by 1 instead of 0
                    entry.update(mean=float(values.mean()), variance=variance if variance > 1e-12 else 1.0)
            schema[column] = entry
        self.columns_ = list(df.columns)
        self.schema_ = schema
        numeric = [c for c in self.columns_ if schema[c]["kind"] == "numeric"]
        categorical = [c for c in self.columns_ if schema[c]["kind"] == "categorical"]
        code_dim = int(self.code_dim) if self.code_dim is not None else max(2, min(16, len(self.columns_) // 2))

        set_seed(self.seed)
        network = TableNetwork(
            numeric_mean=[schema[c]["mean"] for c in numeric], numeric_variance=[schema[c]["variance"] for c in numeric],
            vocabularies=[[str(v) for v in schema[c]["categories"]] for c in categorical], kind=self.kind,
            hidden=self._hidden(), code_dim=code_dim, activation=self.activation, corruption=float(self.corruption),
            sparsity=float(self.sparsity), sparsity_target=float(self.sparsity_target),
            sparsity_penalty=self.sparsity_penalty, contraction=float(self.contraction), beta=float(self.beta),
            visible_weight=float(self.visible_weight), dropout=float(self.dropout), members=int(self.members),
            linear_skip=TABLE_KINDS[self.kind].corrupts_input if self.linear_skip is None else bool(self.linear_skip),
            seed=None if self.seed is None else int(self.seed), name="table_autoencoder")

        arrays = self._arrays(df, "table")
        n = len(df)
        # a stream of its own: a caller who hides cells with default_rng(seed) must not get the same draws
        rng = np.random.default_rng(None if self.seed is None else [int(self.seed), 0x7AB1E])
        if self.validation == "cells":  # every row trains; a share of the observed cells is kept out to validate
            train_rows = np.arange(n)
            train_arrays = self._hide_cells(arrays, rng, self.validation_fraction) if self.validation_fraction else arrays
            n_valid = _observed_cells(arrays) - _observed_cells(train_arrays)
            if self.validation_fraction and not n_valid:
                warnings.warn(f"TableAutoencoder: the table has too few observed cells ({_observed_cells(arrays)}) to "
                              f"hold out a share of {self.validation_fraction}; training {self.epochs} epochs "
                              f"without early stopping", AerecWarning, stacklevel=2)
                train_arrays = arrays
        else:
            n_valid = int(round(self.validation_fraction * n))
            order = rng.permutation(n)
            valid_rows, train_rows = np.sort(order[:n_valid]), np.sort(order[n_valid:])
            train_arrays = {k: v[train_rows] for k, v in arrays.items()}
        batch = min(int(self.batch_size), len(train_rows))
        train_ds = tf.data.Dataset.from_tensor_slices(train_arrays)
        train_ds = train_ds.shuffle(len(train_rows), seed=int(self.seed or 0)).batch(batch).prefetch(2)
        valid_ds, callbacks = None, []
        if n_valid:
            if self.validation == "cells":
                valid_ds = tf.data.Dataset.from_tensor_slices((train_arrays, arrays)).batch(4096)
            else:
                target = {k: v[valid_rows] for k, v in arrays.items()}
                valid_ds = tf.data.Dataset.from_tensor_slices((self._hide_cells(target, rng), target)).batch(4096)
            # judged from epoch 10 on: a first epoch that predicts the mean can hold out cells well and then stay
            # the best for a while as the network learns to reconstruct (seen with the variational kind)
            callbacks.append(keras.callbacks.EarlyStopping(
                monitor="val_reconstruction", mode="min", patience=int(self.patience), restore_best_weights=True,
                start_from_epoch=min(10, int(self.patience))))
        network({k: v[:1] for k, v in arrays.items()})  # build eagerly: the lookup tables must not live in a graph
        network.compile(optimizer=keras.optimizers.Adam(float(self.learning_rate)))
        logs = network.fit(train_ds, validation_data=valid_ds, epochs=int(self.epochs), callbacks=callbacks,
                           shuffle=False, verbose=self.verbose).history
        self.history_ = {k: [float(v) for v in values] for k, values in logs.items()}
        self.network_ = inference_copy(network, {k: v[:1] for k, v in arrays.items()})
        self.fit_seconds_ = time.perf_counter() - start
        self.fitted_ = True
        return self

    @staticmethod
    def _hide_cells(arrays: dict, rng, share: float = 0.2) -> dict:
        """A copy of the arrays with ``share`` of their observed cells made missing (the cells to impute)."""
        out = {}
        if "numeric" in arrays:
            values = arrays["numeric"].copy()
            values[rng.random(values.shape) < share] = np.nan
            out["numeric"] = values
        if "categorical" in arrays:
            values = arrays["categorical"].copy()
            values[rng.random(values.shape) < share] = _MISSING
            out["categorical"] = values
        return out

    # --- using it ------------------------------------------------------------------------
    def impute(self, df: pd.DataFrame) -> pd.DataFrame:
        """Fill the missing cells of ``df``; observed cells, the index and the dtypes stay as they are.

        Nullable integer columns get rounded values; categorical columns get the most likely category.

        Returns
        -------
        DataFrame
        """
        self._check_fitted()
        table = self._check_table(df, "table")
        arrays = self._arrays(table, "table")
        numeric_cols = [c for c in self.columns_ if self.schema_[c]["kind"] == "numeric"]
        categorical_cols = [c for c in self.columns_ if self.schema_[c]["kind"] == "categorical"]
        numeric_parts, category_parts = [], []
        for chunk in self._batches(arrays):
            numeric, categories = self.network_.reconstruct(chunk)
            if numeric is not None:
                numeric_parts.append(np.asarray(numeric))
            if categories is not None:
                category_parts.append(np.asarray(categories))
        out = df.copy()
        for j, column in enumerate(numeric_cols):
            holes = df[column].isna().to_numpy()
            if holes.any():
                values = np.concatenate(numeric_parts)[holes, j].astype(np.float64)
                out[column] = _filled(df[column], holes, values, integer=pd.api.types.is_integer_dtype(df[column].dtype))
        for j, column in enumerate(categorical_cols):
            holes = df[column].isna().to_numpy()
            if holes.any():
                categories = np.asarray(self.schema_[column]["categories"], dtype=object)
                values = categories[np.concatenate(category_parts)[holes, j]]
                out[column] = _filled(df[column], holes, values, integer=False)
        return out

    def transform(self, df: pd.DataFrame) -> pd.DataFrame:
        """The code of each row (the mean code for the variational kind), columns ``c0..c{d-1}``, with ``df``'s index.

        With ``members > 1`` each member has its own code space; this is the first member's code."""
        self._check_fitted()
        arrays = self._arrays(self._check_table(df, "table"), "table")
        codes = np.concatenate([np.asarray(self.network_.encode(chunk)) for chunk in self._batches(arrays)])
        return pd.DataFrame(codes, index=df.index, columns=[f"c{j}" for j in range(codes.shape[1])])

    def anomaly_score(self, df: pd.DataFrame) -> pd.Series:
        """Reconstruction error of each row: the mean loss over its observed cells (0.5 x squared error in
        standard deviations for a numeric cell, cross-entropy for a categorical one). Higher is more unusual.

        The denoising kind with ``visible_weight < 1`` was trained to predict cells it cannot see, so its
        cells are scored that way too: each cell is predicted from the rest of its row with it hidden
        (``ceil(1 / corruption)`` passes over the table, see :meth:`TableNetwork.row_scores
        <aerec.models.table.TableNetwork.row_scores>`).

        A row with no observed cell gets NaN, and a :class:`~aerec.exceptions.DroppedRowsWarning` counts them.
        """
        from .exceptions import DroppedRowsWarning

        self._check_fitted()
        arrays = self._arrays(self._check_table(df, "table"), "table")
        scores = np.concatenate([np.asarray(self.network_.row_scores(chunk)) for chunk in self._batches(arrays)])
        empty = np.isnan(scores)
        if empty.any():
            warnings.warn(f"anomaly_score: {int(empty.sum())} row(s) have no observed cell and score NaN",
                          DroppedRowsWarning, stacklevel=2)
        return pd.Series(scores.astype(np.float64), index=df.index, name="anomaly_score")

    # --- saving -------------------------------------------------------------------------
    def _save_to(self, directory) -> dict:
        self.network_.save(directory / "table_autoencoder.keras")
        (directory / "schema.json").write_text(json.dumps({"columns": self.columns_, "schema": self.schema_}))
        return {"history": self.history_, "fit_seconds": self.fit_seconds_}

    @classmethod
    def _load_from(cls, directory, meta: dict) -> "TableAutoencoder":
        import keras

        from .models import table as _registers_the_model  # noqa: F401

        model = cls(**meta["params"])
        saved = json.loads((directory / "schema.json").read_text())
        model.columns_ = saved["columns"]
        model.schema_ = saved["schema"]
        model.network_ = keras.saving.load_model(directory / "table_autoencoder.keras", compile=False)
        model.history_ = meta["history"]
        model.fit_seconds_ = meta["fit_seconds"]
        model.fitted_ = True
        return model


def _observed_cells(arrays: dict) -> int:
    """Number of observed cells in the network's input arrays."""
    count = 0
    if "numeric" in arrays:
        count += int(np.isfinite(arrays["numeric"]).sum())
    if "categorical" in arrays:
        count += int((arrays["categorical"] != _MISSING).sum())
    return count


def _filled(column: pd.Series, holes: np.ndarray, values: np.ndarray, integer: bool) -> pd.Series:
    """``column`` with ``values`` put into its ``holes``, keeping its dtype."""
    dtype = column.dtype
    if integer:
        values = np.round(values).astype(np.int64)
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        values = values.astype(dtype)  # e.g. float32 stays float32
    out = column.copy()
    if isinstance(dtype, pd.CategoricalDtype):
        new = [v for v in pd.unique(pd.Series(values, dtype=object)) if v not in set(dtype.categories)]
        if new:
            out = out.cat.add_categories(new)
    out[holes] = values
    return out
