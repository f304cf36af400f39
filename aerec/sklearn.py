"""scikit-learn estimators over :class:`~aerec.TableAutoencoder`: an imputer and an outlier detector.

``from aerec.sklearn import AutoencoderImputer, AutoencoderOutlierDetector`` gives two thin
estimators that sit in a :class:`~sklearn.pipeline.Pipeline` or a
:class:`~sklearn.compose.ColumnTransformer`, are tuned with
:class:`~sklearn.model_selection.GridSearchCV` and pass scikit-learn's estimator checks. This module
imports scikit-learn (``pip install aerec[sklearn]``); ``import aerec`` does not import it.

Why two estimators over one network
-----------------------------------
:class:`~aerec.TableAutoencoder` does three things with one trained network: ``impute`` (the filled
table), ``transform`` (row codes) and ``anomaly_score``. scikit-learn gives each method name one
meaning per estimator: an imputer's ``transform`` returns the filled table, and an outlier
detector's ``predict`` and ``fit_predict`` return labels (+1 inlier, -1 outlier). One estimator
with all three roles would have to pick one meaning of ``transform`` and would be a transformer and
an outlier detector at once, which scikit-learn's tags, checks and meta-estimators do not expect.
So :class:`AutoencoderImputer` is a transformer whose ``transform`` imputes, and
:class:`AutoencoderOutlierDetector` is an outlier detector with ``score_samples`` /
``decision_function`` / ``predict``. Both train a :class:`~aerec.TableAutoencoder` on the table as
given and keep it in ``model_``; for row codes, use ``model_.transform`` or the
:class:`~aerec.TableAutoencoder` itself.

Input
-----
A DataFrame (numeric, bool, string and category columns; NaN / None / NA are missing cells) goes to
the network as it is, and the imputer gives a DataFrame back with the same index and dtypes. Any
other array-like is read as a numeric array (NaN missing; infinite values raise ``ValueError``), and
the imputer gives a float64 array back.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

try:
    from sklearn.base import BaseEstimator, OneToOneFeatureMixin, OutlierMixin, TransformerMixin
    from sklearn.utils.validation import check_is_fitted, validate_data
except ImportError as error:  # absent, or older than 1.6 (no validate_data)
    raise ImportError("aerec.sklearn needs scikit-learn 1.6 or later: pip install 'aerec[sklearn]'") from error

from .exceptions import DataValidationError
from .params import Interval, Options, check_params
from .table import TableAutoencoder
from .utils import first_rows

__all__ = ["AutoencoderImputer", "AutoencoderOutlierDetector"]

#: the hyperparameters handed to TableAutoencoder unchanged (the others keep its defaults)
PASSED_ON = ("kind", "hidden_dim", "code_dim", "members", "epochs", "patience", "batch_size", "learning_rate",
             "validation_fraction", "seed", "verbose")


def _refuse_infinite(frame: pd.DataFrame) -> None:
    """A ``ValueError`` naming the numeric columns of ``frame`` that hold +-inf (NaN is a missing cell, inf is not)."""
    infinite = [column for column in frame.columns
                if pd.api.types.is_numeric_dtype(frame[column].dtype)
                and not pd.api.types.is_complex_dtype(frame[column].dtype)
                and np.isinf(frame[column].to_numpy(dtype=np.float64, na_value=np.nan)).any()]
    if infinite:
        raise DataValidationError(f"X: column(s) {infinite} hold infinite values; make them NaN (a missing cell) "
                                  f"or drop those rows")


class _OverTableAutoencoder(BaseEstimator):
    """What both estimators share: their hyperparameters' checks, reading X, the tags, fitting ``model_``."""

    # aerec's declarative checks, taken from TableAutoencoder so they are declared once. Not named
    # `_parameter_constraints`: scikit-learn reads that name with its own constraint classes
    _hyperparameter_constraints: ClassVar[dict] = {name: TableAutoencoder._parameter_constraints[name]
                                                   for name in PASSED_ON}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN (None, NA in a DataFrame) is a missing cell
        tags.input_tags.string = True  # string and object columns of a DataFrame (an array must be numeric)
        tags.input_tags.categorical = True  # category and bool columns of a DataFrame
        return tags

    def _table(self, X, *, reset: bool) -> tuple[pd.DataFrame, bool]:
        """``X`` as the DataFrame that ``model_`` reads, and whether it came as an array (not a DataFrame).

        ``reset=True`` (in ``fit``) sets ``n_features_in_`` and ``feature_names_in_``; otherwise X is
        checked against them.
        """
        if isinstance(X, pd.DataFrame):
            # names and counts checked as scikit-learn does; the columns keep their dtypes for the network
            validate_data(self, X, reset=reset, skip_check_array=True)
            _refuse_infinite(X)
            if not reset and not hasattr(self, "feature_names_in_"):  # fitted without names: columns by position
                X = X.set_axis(self.model_.columns_, axis=1)
            return X, False
        array = validate_data(self, X, reset=reset, dtype=np.float64, ensure_all_finite="allow-nan",
                              ensure_min_samples=2 if reset else 1)
        columns = [f"x{j}" for j in range(array.shape[1])] if reset else self.model_.columns_
        return pd.DataFrame(array, columns=columns), True

    def _fit_model(self, table: pd.DataFrame) -> None:
        self.model_ = TableAutoencoder(**{name: getattr(self, name) for name in PASSED_ON}).fit(table)


class AutoencoderImputer(OneToOneFeatureMixin, TransformerMixin, _OverTableAutoencoder):
    """Fill missing cells with an autoencoder, as a scikit-learn transformer.

    ``fit`` trains a :class:`~aerec.TableAutoencoder` (kept in ``model_``) on a table with holes;
    ``transform`` returns the table with its missing cells filled and its observed cells unchanged:
    a DataFrame (same index, columns and dtypes) for a DataFrame, a float64 array for anything else.
    It takes numeric, bool, string and category columns, so it can stand in front of a model as
    :class:`~sklearn.impute.IterativeImputer` or :class:`~sklearn.impute.KNNImputer` do, or take the
    numeric columns of a :class:`~sklearn.compose.ColumnTransformer`.

    A column with no observed cell at fit time raises a ``ValueError`` naming it (there is nothing to
    learn about it). A row with no observed cell at transform time is filled with what the network
    reconstructs from nothing, a typical row of the training table.

    Parameters
    ----------
    kind : {"denoising", "undercomplete", "sparse", "contractive", "variational"}, default "denoising"
        The kind of autoencoder (see :class:`~aerec.TableAutoencoder`); the denoising kind is trained to
        predict cells it cannot see, which is the imputation task.
    hidden_dim : int or tuple of int, default 128
        Widths of the encoder's hidden layers (the decoder mirrors them).
    code_dim : int, optional
        Width of the code; by default half the number of columns, between 2 and 16.
    members : int, default 1
        Number of autoencoders trained side by side and averaged.
    epochs : int, default 500
        Most passes over the rows.
    patience : int, default 50
        Epochs without a lower validation error before training stops.
    batch_size : int, default 64
    learning_rate : float, default 3e-3
        Adam's learning rate.
    validation_fraction : float, default 0.1
        Share of the observed cells held out for early stopping (0: train ``epochs`` epochs on all of them).
    seed : int, default 0
        Seeds the weights, the shuffling and the held-out cells: the same seed and data give the same fit.
    verbose : int, default 0
        Keras's progress output during training.

    Attributes
    ----------
    model_ : aerec.TableAutoencoder
        The fitted network; ``model_.transform(df)`` gives row codes, ``model_.save(path)`` a bundle.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit``, when X was a DataFrame with string column names.

    See Also
    --------
    AutoencoderOutlierDetector : the same network, scoring rows.
    sklearn.impute.IterativeImputer : a round-robin regression imputer, numeric columns only.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.linear_model import Ridge
    >>> from sklearn.pipeline import make_pipeline
    >>> from aerec.sklearn import AutoencoderImputer
    >>> X = np.random.default_rng(0).normal(size=(40, 3))
    >>> y = X.sum(axis=1)
    >>> X[::5, 1] = np.nan
    >>> model = make_pipeline(AutoencoderImputer(hidden_dim=8, epochs=5, seed=0), Ridge()).fit(X, y)
    >>> model.predict(X[:2]).shape
    (2,)
    >>> filled = model[0].transform(X)
    >>> filled.dtype, bool(np.isnan(filled).any()), bool(np.array_equal(filled[1:5], X[1:5]))
    (dtype('float64'), False, True)
    """

    def __init__(self, *, kind: str = "denoising", hidden_dim=128, code_dim: int | None = None, members: int = 1,
                 epochs: int = 500, patience: int = 50, batch_size: int = 64, learning_rate: float = 3e-3,
                 validation_fraction: float = 0.1, seed: int = 0, verbose: int = 0):
        self.kind = kind
        self.hidden_dim = hidden_dim
        self.code_dim = code_dim
        self.members = members
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.verbose = verbose

    def fit(self, X, y=None) -> AutoencoderImputer:
        """Train the autoencoder on ``X``, a table with holes.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            A DataFrame (numeric, bool, string, category columns; NaN / None / NA missing) or a numeric
            array (NaN missing). At least two rows, and at least one observed cell in every column.
        y : None
            Ignored; there for the Pipeline API.

        Returns
        -------
        self
        """
        check_params(self, self._hyperparameter_constraints)
        table, _ = self._table(X, reset=True)
        self._fit_model(table)
        return self

    def transform(self, X):
        """``X`` with its missing cells filled; observed cells, index and dtypes stay as they are.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            The same columns as in ``fit``.

        Returns
        -------
        DataFrame or ndarray of float64, shape (n_samples, n_features)
            A DataFrame for a DataFrame (categorical cells get the most likely category, nullable
            integer columns rounded values), a float64 array for anything else.
        """
        check_is_fitted(self)
        table, from_array = self._table(X, reset=False)
        filled = self.model_.impute(table)
        return filled.to_numpy(dtype=np.float64) if from_array else filled.set_axis(X.columns, axis=1)


class AutoencoderOutlierDetector(OutlierMixin, _OverTableAutoencoder):
    """Flag unusual rows by how badly an autoencoder reconstructs them, as a scikit-learn outlier detector.

    ``fit`` trains a :class:`~aerec.TableAutoencoder` (kept in ``model_``) on a table that may have
    holes. :meth:`score_samples` is minus the row's reconstruction error
    (:meth:`~aerec.TableAutoencoder.anomaly_score`: the mean loss over its observed cells), so higher
    is more normal, as in :class:`~sklearn.ensemble.IsolationForest`; :meth:`decision_function` is
    ``score_samples(X) - offset_`` and :meth:`predict` gives -1 where it is negative, +1 elsewhere.

    ``offset_`` is the ``contamination`` quantile of the training rows' scores, so ``predict`` on the
    training table flags that share of its rows (fewer only where scores tie).

    A row with no observed cell cannot be reconstructed, so it has no score: ``fit``,
    ``score_samples``, ``decision_function`` and ``predict`` raise a ``ValueError`` naming such rows
    (drop them, e.g. ``X.dropna(how="all")``, or flag them yourself). Scoring them as the worst row
    would put -inf (or an invented number) into scores that metrics and thresholds then trip on.

    Parameters
    ----------
    contamination : "auto" or float in (0, 0.5], default "auto"
        Share of outliers expected in the training table; it sets ``offset_``. ``"auto"`` is 0.1 (the
        90th percentile of the training rows' anomaly scores, PyOD's default contamination): a
        reconstruction error has no scale shared across tables, unlike IsolationForest's normalised
        path length whose fixed -0.5 threshold its "auto" uses, so the threshold has to come from the
        training scores; a rule from their spread (median + k MAD) would flag a share that depends on
        the table's error distribution, and on a clean table could flag nothing, where 10% is a share
        one can predict and review.
    kind : {"undercomplete", "sparse", "contractive", "denoising", "variational"}, default "undercomplete"
        The kind of autoencoder (see :class:`~aerec.TableAutoencoder`); the undercomplete kind scores
        plain reconstruction through a narrow code.
    hidden_dim : int or tuple of int, default 128
        Widths of the encoder's hidden layers (the decoder mirrors them).
    code_dim : int, optional
        Width of the code; by default half the number of columns, between 2 and 16.
    members : int, default 1
        Number of autoencoders trained side by side; scores use their average reconstruction.
    epochs : int, default 500
        Most passes over the rows.
    patience : int, default 50
        Epochs without a lower validation error before training stops.
    batch_size : int, default 64
    learning_rate : float, default 3e-3
        Adam's learning rate.
    validation_fraction : float, default 0.1
        Share of the observed cells held out for early stopping (0: train ``epochs`` epochs on all of them).
    seed : int, default 0
        Seeds the weights, the shuffling and the held-out cells: the same seed and data give the same fit.
    verbose : int, default 0
        Keras's progress output during training.

    Attributes
    ----------
    model_ : aerec.TableAutoencoder
        The fitted network; ``model_.anomaly_score(df)`` is minus :meth:`score_samples`.
    offset_ : float
        The score below which a row is an outlier: the ``contamination`` quantile of the training scores.
    n_features_in_ : int
        Number of columns seen in ``fit``.
    feature_names_in_ : ndarray of str
        Column names seen in ``fit``, when X was a DataFrame with string column names.

    See Also
    --------
    AutoencoderImputer : the same network, filling cells.
    sklearn.ensemble.IsolationForest : the same interface, from random partitions.

    Examples
    --------
    >>> import numpy as np
    >>> from aerec.sklearn import AutoencoderOutlierDetector
    >>> X = np.random.default_rng(0).normal(size=(40, 3))
    >>> X[::9, 2] = np.nan
    >>> detector = AutoencoderOutlierDetector(contamination=0.1, hidden_dim=8, epochs=5, seed=0).fit(X)
    >>> labels = detector.predict(X)
    >>> labels.dtype.kind, int((labels == -1).sum())
    ('i', 4)
    >>> bool(np.array_equal(detector.decision_function(X) < 0, labels == -1))
    True
    """

    _hyperparameter_constraints: ClassVar[dict] = {
        "contamination": [Options("auto"), Interval("real", 0, 0.5, closed="right")],
        **_OverTableAutoencoder._hyperparameter_constraints,
    }

    def __init__(self, *, contamination="auto", kind: str = "undercomplete", hidden_dim=128,
                 code_dim: int | None = None, members: int = 1, epochs: int = 500, patience: int = 50,
                 batch_size: int = 64, learning_rate: float = 3e-3, validation_fraction: float = 0.1,
                 seed: int = 0, verbose: int = 0):
        self.contamination = contamination
        self.kind = kind
        self.hidden_dim = hidden_dim
        self.code_dim = code_dim
        self.members = members
        self.epochs = epochs
        self.patience = patience
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.verbose = verbose

    def fit(self, X, y=None) -> AutoencoderOutlierDetector:
        """Train the autoencoder on ``X`` and set ``offset_`` from the training rows' scores.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            A DataFrame (numeric, bool, string, category columns; NaN / None / NA missing) or a numeric
            array (NaN missing). At least two rows, each with an observed cell.
        y : None
            Ignored; there for the Pipeline API.

        Returns
        -------
        self
        """
        check_params(self, self._hyperparameter_constraints)
        table, _ = self._table(X, reset=True)
        self._refuse_empty_rows(table)
        self._fit_model(table)
        share = 0.1 if self.contamination == "auto" else float(self.contamination)
        self.offset_ = float(np.percentile(self._scores(table), 100 * share))
        return self

    def score_samples(self, X) -> np.ndarray:
        """Minus the reconstruction error of each row: higher is more normal.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)
            The same columns as in ``fit``; every row with an observed cell.

        Returns
        -------
        ndarray of float64, shape (n_samples,)
        """
        check_is_fitted(self)
        table, _ = self._table(X, reset=False)
        self._refuse_empty_rows(table)
        return self._scores(table)

    def decision_function(self, X) -> np.ndarray:
        """``score_samples(X) - offset_``: negative for outliers, positive for inliers.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of float64, shape (n_samples,)
        """
        return self.score_samples(X) - self.offset_

    def predict(self, X) -> np.ndarray:
        """-1 for outliers (``decision_function(X) < 0``), +1 for inliers.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_samples, n_features)

        Returns
        -------
        ndarray of int, shape (n_samples,)
        """
        return np.where(self.decision_function(X) < 0, -1, 1)

    def _scores(self, table: pd.DataFrame) -> np.ndarray:
        return -self.model_.anomaly_score(table).to_numpy(dtype=np.float64)

    @staticmethod
    def _refuse_empty_rows(table: pd.DataFrame) -> None:
        empty = table.isna().all(axis=1).to_numpy()
        if empty.any():
            raise DataValidationError(
                f"X: {int(empty.sum())} row(s) have no observed cell and cannot be scored: "
                f"{first_rows(table.index, empty)}. Drop them (e.g. X.dropna(how='all')) or flag them yourself")
