"""`AutoRec`: predict missing ratings with an autoencoder over rating rows (Sedhain et al., 2015).

A rating model of the interaction family: it reads the same (user, item, rating) DataFrames as the
recommenders and answers ``predict(pairs)`` rather than top-K lists; the Keras network it trains
lives in :mod:`aerec.models.autorec`.
"""
from __future__ import annotations

import time
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..base import BaseEstimator, register
from ..data import IdMap, Interactions, check_columns
from ..exceptions import DataValidationError, InvalidParameterError, UnknownIdsWarning
from ..metrics import rmse
from ..models.batches import masked_rows_dataset
from ..models.keras_utils import inference_copy, set_seed
from ..params import Boolean, Interval, Options, Pair, Widths
from ..utils import first_rows

__all__ = ["AutoRec", "KINDS"]

#: which rows AutoRec reconstructs
KINDS = ("item", "user", "both")


@register
class AutoRec(BaseEstimator):
    """Predict missing ratings with AutoRec (Sedhain et al., 2015): an autoencoder over rating rows.

    Item-based AutoRec (``kind="item"``) reconstructs each item's row of ratings by all users
    from its observed entries; user-based (``kind="user"``) each user's row of ratings of all
    items; ``kind="both"`` trains both and averages them with a weight chosen on validation
    ratings. The loss counts observed ratings only. A validation part of the training ratings
    (``validation_fraction``, drawn with ``seed``) is held out: one half stops training early on
    its RMSE, the other half, which the stopping never saw, chooses the weights described below
    and reports ``validation_rmse_``. Predictions then use every training rating as input.

    Options from GLocal-K (Han et al., 2021): ``kernel_dim`` (a local kernel that learns which
    weights to use) and ``global_kernel_size`` (a convolution over the whole rating matrix,
    fine-tuned after a first fit; trains on the whole matrix per step).

    **Safe on sparse data** (``baseline=True``, the default). The networks learn the residual of
    each rating over a baseline ``mu + b_u + b_i`` (the global mean and regularised user and item
    biases, fitted by alternating least squares as Surprise's ``BaselineOnly``), so an item or a
    user with few ratings falls back smoothly to the baseline rather than to a reconstruction fitted
    to a handful of entries. The bias penalty is chosen on the validation ratings among
    ``(1, 2, 5, 10, 25)`` unless ``bias_l2`` is given, and the weight of the networks' residual
    (``residual_weight_``, 0 to 1) is chosen on the same validation ratings: where the networks do
    not beat the baseline there, the prediction is the baseline's. ``baseline=False`` is the
    AutoRec of the paper, reconstructing the raw ratings.

    Predictions are clipped to the rating range (``rating_range``, or the range seen in
    training). Pairs with an id unseen in training get a fallback, and a
    :class:`~aerec.exceptions.UnknownIdsWarning` counts them: an unseen user on a known item gets
    the item's baseline ``mu + b_i`` (its mean training rating with ``baseline=False``), a known
    user on an unseen item the user's ``mu + b_u`` (mean), and a pair with both unseen ``mu``.

    As in the paper, a network reads 0 as "unknown" in its input rows; a rating scale that
    includes 0 should be shifted (e.g. 0-4 to 1-5) before fitting.

    Parameters
    ----------
    kind : {"item", "user", "both"}, default "item"
        Which rows are reconstructed; item-based is the stronger one on MovieLens.
    hidden_dim : int or tuple of int, default 500
        Width(s) of the sigmoid hidden layer(s).
    l2 : float, default 1e-3
        Weight decay ``l2 * sum(W ** 2)`` per kernel, beside the mean squared error per rating.
    dropout : float, default 0.0
        Dropout on the hidden layers in training.
    kernel_dim : int, default 0
        GLocal-K's local kernel dimension (0: plain dense layers).
    sparsity : float, default 0.0
        Penalty on the local kernel values (with ``kernel_dim > 0``).
    global_kernel_size : int, default 0
        GLocal-K's global convolution filter side (0: none); needs ``batch_size=None``.
    learning_rate : float, default 1e-2
        Adam's learning rate.
    batch_size : int, optional
        Rows per step; None (default) uses all rows in each step, which trains the most stable
        models on catalogues of MovieLens size.
    epochs : int, default 2000
        Most passes over the rows.
    patience : int, default 50
        Epochs without a better validation RMSE before training stops (the best weights are kept).
    validation_fraction : float, default 0.05
        Share of the training ratings held out for early stopping and the ensemble weight; 0
        trains ``epochs`` epochs on everything.
    refit : bool, default False
        After early stopping, train the network(s) again from the same start on every training
        rating, for the number of epochs that was best on validation.
    rating_range : (float, float), optional
        The valid ratings; ``fit`` refuses ratings outside it. Default: the range in the data.
    baseline : bool, default True
        Learn the residual over the user/item bias baseline (see above).
    bias_l2 : float, optional
        Penalty of the user and item biases (Surprise's ``reg``); by default chosen on the validation
        ratings (5.0 without them).
    seed : int, default 0
    verbose : int, default 0
        Keras' progress output.

    Attributes
    ----------
    users_, items_ : IdMap
    ratings_ : Interactions
        The training ratings (users x items).
    rating_range_ : (float, float)
    global_mean_ : float
    validation_rmse_ : dict
        Validation RMSE of each trained network (and of the ensemble for ``kind="both"``).
    ensemble_weight_ : float
        Weight of the item-based network (1.0 for ``kind="item"``, 0.0 for ``"user"``).
    user_bias_, item_bias_ : ndarray
        The baseline's biases (zeros with ``baseline=False``); ``global_mean_`` is its ``mu``.
    bias_l2_ : float or None
        The bias penalty used.
    residual_weight_ : float
        Weight of the networks' output over the baseline (1.0 with ``baseline=False``).
    history_ : dict
        Per network: the epoch logs of training.

    Examples
    --------
    >>> import pandas as pd
    >>> ratings = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": ["a", "b", "a", "c", "b", "c"],
    ...                         "rating": [5, 3, 4, 2, 1, 4]})
    >>> model = AutoRec(hidden_dim=8, epochs=20, validation_fraction=0.0, seed=0).fit(ratings)
    >>> out = model.predict(pd.DataFrame({"user": [1, 3], "item": ["c", "a"]}))
    >>> out.columns.tolist(), bool(out["rating"].between(1, 5).all())
    (['user', 'item', 'rating'], True)
    """

    served_as = "rating model"
    _parameter_constraints = {
        "kind": [Options(*KINDS)],
        "hidden_dim": [Widths(1)],
        "l2": [Interval("real", 0, None)],
        "dropout": [Interval("real", 0, 1, closed="left")],
        "kernel_dim": [Interval("int", 0, None)],
        "sparsity": [Interval("real", 0, None)],
        "global_kernel_size": [Interval("int", 0, None)],
        "learning_rate": [Interval("real", 0, None, closed="neither")],
        "batch_size": [Interval("int", 1, None), None],
        "epochs": [Interval("int", 1, None)],
        "patience": [Interval("int", 1, None)],
        "validation_fraction": [Interval("real", 0, 1, closed="left")],
        "refit": [Boolean()],
        "rating_range": [Pair(), None],
        "baseline": [Boolean()],
        "bias_l2": [Interval("real", 0, None), None],
        "seed": [Interval("int", 0, None), None],
        "verbose": [Options(0, 1, 2, False, True)],
    }

    def __init__(self, kind: str = "item", hidden_dim=500, l2: float = 1e-3, dropout: float = 0.0, kernel_dim: int = 0,
                 sparsity: float = 0.0, global_kernel_size: int = 0, learning_rate: float = 1e-2,
                 batch_size: int | None = None, epochs: int = 2000, patience: int = 50,
                 validation_fraction: float = 0.05, refit: bool = False, rating_range=None, baseline: bool = True,
                 bias_l2: float | None = None, seed: int = 0, verbose: int = 0):
        self.kind = kind
        self.hidden_dim = hidden_dim
        self.l2 = l2
        self.dropout = dropout
        self.kernel_dim = kernel_dim
        self.sparsity = sparsity
        self.global_kernel_size = global_kernel_size
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.epochs = epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.refit = refit
        self.rating_range = rating_range
        self.baseline = baseline
        self.bias_l2 = bias_l2
        self.seed = seed
        self.verbose = verbose

    # --- checks -----------------------------------------------------------------------
    def _check_param_relations(self) -> None:
        if self.global_kernel_size and self.batch_size is not None:
            raise InvalidParameterError("global_kernel_size needs batch_size=None: the convolution runs over the whole matrix")

    def _declared_range(self) -> tuple[float, float]:
        lo, hi = self.rating_range
        return float(lo), float(hi)

    def _check_range(self, df: pd.DataFrame, rating: str) -> None:
        if self.rating_range is None:
            return
        lo, hi = self._declared_range()
        values = pd.to_numeric(df[rating], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        outside = (values < lo) | (values > hi)
        if outside.any():
            raise DataValidationError(
                f"ratings: column {rating!r} has {int(outside.sum())} value(s) outside rating_range=({lo:g}, {hi:g}), "
                f"first at rows {first_rows(df.index, outside)} (values {df.loc[outside, rating].head(5).tolist()})"
            )

    # --- fitting ------------------------------------------------------------------------
    def fit(self, ratings: pd.DataFrame, user: str = "user", item: str = "item", rating: str = "rating") -> "AutoRec":
        """Learn from observed ratings.

        Parameters
        ----------
        ratings : DataFrame
            One row per rating with the user's ids; repeated (user, item) pairs keep the last rating
            (a warning counts them).
        user, item, rating : str
            Column names.

        Returns
        -------
        self
        """
        self._validate_params()
        start = time.perf_counter()
        X = Interactions.from_frame(ratings, user=user, item=item, rating=rating, what="ratings")
        self._check_range(ratings, rating)
        R = X.matrix
        self.columns_ = {"user": user, "item": item, "rating": rating}
        self.ratings_ = X
        lo, hi = self._declared_range() if self.rating_range is not None else (float(R.data.min()), float(R.data.max()))
        self.rating_range_ = (lo, hi)
        train, valid = self._split(R)
        self._fit_baseline(R, train, valid)
        # one half of the validation ratings stops the networks, the other chooses the weights below: the epoch
        # early stopping keeps is the one that fits its own ratings best, so they would overrate the networks
        stop, valid = _halves(valid, self.seed)
        targets, valid_targets = self._residuals(train), None if stop is None else self._residuals(stop)
        kinds = ("item", "user") if self.kind == "both" else (self.kind,)
        set_seed(self.seed)
        self.networks_, self.history_, self.validation_rmse_ = {}, {}, {}
        for j, kind in enumerate(kinds):
            self.networks_[kind], self.history_[kind] = self._train_network(kind, train, targets, valid_targets, j)
        self.ensemble_weight_ = {"item": 1.0, "user": 0.0, "both": 0.5}[self.kind]
        self.residual_weight_ = 1.0
        if valid is not None:
            held = valid.tocoo()
            base = self._baseline_pairs(held.row, held.col)
            per_kind = {k: self._network_pairs(k, train, held.row, held.col) for k in kinds}
            truth = held.data
            for k in kinds:
                self.validation_rmse_[k] = rmse(truth, np.clip(base + per_kind[k], lo, hi))
            if self.kind == "both":
                weights = np.linspace(0.0, 1.0, 21)
                scores = [rmse(truth, np.clip(base + w * per_kind["item"] + (1 - w) * per_kind["user"], lo, hi))
                          for w in weights]
                self.ensemble_weight_ = float(weights[int(np.argmin(scores))])
                self.validation_rmse_["both"] = float(min(scores))
            if self.baseline:
                w = self.ensemble_weight_
                residual = w * per_kind.get("item", 0.0) + (1 - w) * per_kind.get("user", 0.0)
                self.residual_weight_, self.validation_rmse_["baseline"], self.validation_rmse_["final"] = \
                    _residual_weight(truth, base, residual, lo, hi)
            self._refit_biases(R)
        if self.refit and valid is not None:  # the same schedule again, on every training rating
            all_targets = self._residuals(R)
            for j, kind in enumerate(kinds):
                epochs = self.history_[kind]["best_epochs"]
                self.networks_[kind], refit_history = self._train_network(kind, R, all_targets, None, j, epochs=epochs)
                self.history_[kind]["refit_epochs"] = refit_history["stage_epochs"]
        self.fit_seconds_ = time.perf_counter() - start
        self.fitted_ = True
        return self

    # --- the baseline ---------------------------------------------------------------------
    def _fit_baseline(self, R: sp.csr_matrix, train: sp.csr_matrix, valid: sp.csr_matrix | None) -> None:
        """``global_mean_``, ``user_bias_``, ``item_bias_`` (fitted on ``train``) and the fallback means."""
        n_users, n_items = R.shape
        self.bias_l2_ = None
        if not self.baseline:
            self.global_mean_ = float(R.data.mean())
            self.user_bias_, self.item_bias_ = np.zeros(n_users), np.zeros(n_items)
            self.user_means_ = _row_means(R, self.global_mean_)
            self.item_means_ = _row_means(R.T.tocsr(), self.global_mean_)
            return
        if self.bias_l2 is not None:
            penalty = float(self.bias_l2)
        elif valid is None:
            penalty = 5.0
        else:
            held = valid.tocoo()
            lo, hi = self.rating_range_
            errors = {}
            for candidate in (1.0, 2.0, 5.0, 10.0, 25.0):
                mu, bu, bi = user_item_biases(train, candidate)
                errors[candidate] = rmse(held.data, np.clip(mu + bu[held.row] + bi[held.col], lo, hi))
            penalty = min(errors, key=errors.get)
        self.bias_l2_ = penalty
        self.global_mean_, self.user_bias_, self.item_bias_ = user_item_biases(train, penalty)
        self.user_means_ = self.global_mean_ + self.user_bias_  # the fallbacks of unknown items / users
        self.item_means_ = self.global_mean_ + self.item_bias_

    def _refit_biases(self, R: sp.csr_matrix) -> None:
        """After the choices made on validation: the biases again, on every training rating."""
        if self.baseline:
            self.global_mean_, self.user_bias_, self.item_bias_ = user_item_biases(R, self.bias_l2_)
            self.user_means_ = self.global_mean_ + self.user_bias_
            self.item_means_ = self.global_mean_ + self.item_bias_

    def _baseline_pairs(self, u_idx: np.ndarray, i_idx: np.ndarray) -> np.ndarray:
        if not self.baseline:
            return np.zeros(len(u_idx))
        return self.global_mean_ + self.user_bias_[u_idx] + self.item_bias_[i_idx]

    def _residuals(self, R: sp.csr_matrix) -> sp.csr_matrix:
        """``R`` minus the baseline on its entries (``R`` itself with ``baseline=False``): what the networks learn
        to output. Their input stays the ratings themselves, so that they see who rated what."""
        if not self.baseline:
            return R
        coo = R.tocoo()
        values = coo.data - self._baseline_pairs(coo.row, coo.col)
        # an entry exactly on the baseline must stay an entry: the networks read a stored 0 as "observed, no deviation"
        return sp.csr_matrix((values.astype(np.float32), (coo.row, coo.col)), shape=R.shape)

    def _split(self, R: sp.csr_matrix) -> tuple[sp.csr_matrix, sp.csr_matrix | None]:
        if not self.validation_fraction:
            return R, None
        coo = R.tocoo()
        held = np.random.default_rng(self.seed).random(coo.nnz) < self.validation_fraction
        if held.all() or not held.any():
            return R, None

        def part(mask):
            return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=R.shape, dtype=np.float32)

        return part(~held), part(held)

    def _network(self, kind: str, n_inputs: int, n_rows: int, offset: int):
        from ..models.autorec import AutoRecNetwork

        hidden = (self.hidden_dim,) if isinstance(self.hidden_dim, (int, np.integer)) else tuple(int(h) for h in self.hidden_dim)
        return AutoRecNetwork(n_inputs, hidden=hidden, l2=float(self.l2), dropout=float(self.dropout),
                              kernel_dim=int(self.kernel_dim), sparsity=float(self.sparsity),
                              global_kernel_size=int(self.global_kernel_size), n_rows=n_rows,
                              seed=None if self.seed is None else int(self.seed) + 100 * offset,
                              name=f"autorec_{kind}")

    def _train_network(self, kind: str, train: sp.csr_matrix, targets: sp.csr_matrix, valid: sp.csr_matrix | None,
                       offset: int, epochs: list[int] | None = None):
        """Train one network to map the ratings ``train`` to ``targets`` (their residuals over the baseline, or
        the ratings), stopping early on ``valid`` (held-out targets); with ``epochs`` (per stage) for that many
        epochs and no validation (a refit)."""
        import keras

        from ..models.callbacks import RankingValidation

        def by_kind(matrix):
            return matrix.T.tocsr() if kind == "item" else matrix

        rows, target_rows = by_kind(train), by_kind(targets)
        valid_rows = None if valid is None else by_kind(valid)
        n_rows, n_inputs = rows.shape
        batch = n_rows if self.batch_size is None else min(int(self.batch_size), n_rows)
        net = self._network(kind, n_inputs, n_rows, offset)
        # one endless iterator (a new one per epoch costs more than an epoch of MovieLens), and validation by a
        # callback: one forward pass over the input rows, scored on the held-out cells
        train_ds = masked_rows_dataset(rows, target_rows, batch, shuffle_seed=self.seed).repeat()
        steps = -(-n_rows // batch)
        valid_ds = None
        if valid_rows is not None:
            held = valid_rows.tocoo()
            chunk = n_rows if self.global_kernel_size else 4096  # the global convolution reads every row at once

            def valid_ds():
                predicted = np.empty(len(held.data), dtype=np.float64)
                for start in range(0, n_rows, chunk):
                    inside = (held.row >= start) & (held.row < start + chunk)
                    if inside.any():
                        out = np.asarray(net(rows[start:start + chunk].toarray(), training=False))
                        predicted[inside] = out[held.row[inside] - start, held.col[inside]]
                return float(np.sqrt(np.mean((held.data - predicted) ** 2)))
        history: dict[str, list] = {}
        stages = [False, True] if self.global_kernel_size else [False]
        if epochs is not None:
            stages = stages[:len(epochs)]
        for stage, fine_tune in enumerate(stages):
            if fine_tune:  # GLocal-K: the global kernel is read from the pre-trained model's predictions
                lo, hi = self.rating_range_
                full = np.asarray(net(rows.toarray()))
                if not self.baseline:
                    full = np.clip(full, lo, hi)
                pretrained = [w.copy() for w in net.get_weights()]
                pretrained_rmse = min(history.get("val_rmse", [np.inf]))
                net.set_row_summary(full.mean(axis=1))
            net.compile(optimizer=keras.optimizers.Adam(float(self.learning_rate)))
            callbacks = []
            if valid_ds is not None:
                callbacks.append(RankingValidation(valid_ds, "val_rmse"))
                callbacks.append(keras.callbacks.EarlyStopping(monitor="val_rmse", mode="min",
                                                               patience=int(self.patience),
                                                               restore_best_weights=True))
            n_epochs = int(self.epochs) if epochs is None else int(epochs[stage])
            logs = net.fit(train_ds, epochs=n_epochs, steps_per_epoch=steps, callbacks=callbacks,
                           shuffle=False, verbose=self.verbose).history
            for key, values in logs.items():
                history.setdefault(key, []).extend(float(v) for v in values)
            history.setdefault("stage_epochs", []).append(len(logs.get("loss", [])))
            if "val_rmse" in logs:
                history.setdefault("best_epochs", []).append(int(np.argmin(logs["val_rmse"])) + 1)
            if fine_tune and valid_ds is not None and min(logs["val_rmse"]) >= pretrained_rmse:
                net.set_weights(pretrained)  # fine-tuning never beat the pre-trained model on validation
                net.switch_global_off()
                history["global_kernel_used"] = [0.0]
                history["best_epochs"] = history["best_epochs"][:1]
        return inference_copy(net, np.zeros((1, n_inputs), dtype=np.float32)), history

    # --- predicting ---------------------------------------------------------------------
    def _input_rows(self, kind: str, R: sp.csr_matrix | None = None) -> sp.csr_matrix:
        R = self.ratings_.matrix if R is None else R
        return R.T.tocsr() if kind == "item" else R

    def _network_pairs(self, kind: str, R: sp.csr_matrix, u_idx: np.ndarray, i_idx: np.ndarray) -> np.ndarray:
        """The network's reconstruction at (user, item) index pairs, with ``R`` (users x items) as input."""
        rows_of_pairs, cols_of_pairs = (i_idx, u_idx) if kind == "item" else (u_idx, i_idx)
        inputs = self._input_rows(kind, R)
        net = self.networks_[kind]
        out = np.empty(len(u_idx), dtype=np.float32)
        if not len(out):
            return out
        if self.global_kernel_size:  # the convolution needs every row at once
            full = np.asarray(net(inputs.toarray()))
            return full[rows_of_pairs, cols_of_pairs]
        order = np.argsort(rows_of_pairs, kind="stable")
        uniq, starts = np.unique(rows_of_pairs[order], return_index=True)
        ends = np.append(starts[1:], len(order))
        chunk = 512
        for a in range(0, len(uniq), chunk):
            block = uniq[a:a + chunk]
            recon = np.asarray(net(inputs[block].toarray()))
            for j in range(len(block)):
                sel = order[starts[a + j]:ends[a + j]]
                out[sel] = recon[j, cols_of_pairs[sel]]
        return out

    def _predict_index(self, u_idx: np.ndarray, i_idx: np.ndarray) -> np.ndarray:
        """Clipped predictions for index pairs; -1 marks an unseen id and gets the fallback."""
        lo, hi = self.rating_range_
        pred = np.full(len(u_idx), self.global_mean_, dtype=np.float64)
        known = (u_idx >= 0) & (i_idx >= 0)
        if known.any():
            u, i = u_idx[known], i_idx[known]
            w = self.ensemble_weight_
            value = np.zeros(len(u), dtype=np.float64)
            for kind, weight in (("item", w), ("user", 1.0 - w)):
                if weight > 0 and self.residual_weight_ > 0:
                    value += weight * self._network_pairs(kind, self.ratings_.matrix, u, i)
            pred[known] = self._baseline_pairs(u, i) + self.residual_weight_ * value
        only_item = (u_idx < 0) & (i_idx >= 0)
        pred[only_item] = self.item_means_[i_idx[only_item]]
        only_user = (u_idx >= 0) & (i_idx < 0)
        pred[only_user] = self.user_means_[u_idx[only_user]]
        return np.clip(pred, lo, hi)

    def _indices(self, df: pd.DataFrame, user: str, item: str, what: str,
                 warn: bool = True) -> tuple[np.ndarray, np.ndarray]:
        check_columns(df, [user, item], what)
        for col in (user, item):
            nulls = df[col].isna().to_numpy()
            if nulls.any():
                raise DataValidationError(
                    f"{what}: column {col!r} has {int(nulls.sum())} null id(s), first at rows {first_rows(df.index, nulls)}")
        u_idx = self.users_.index_of(df[user].to_numpy(), on_unknown="mark")
        i_idx = self.items_.index_of(df[item].to_numpy(), on_unknown="mark")
        n_u, n_i = int((u_idx < 0).sum()), int((i_idx < 0).sum())
        if (n_u or n_i) and warn:
            n_any = int(((u_idx < 0) | (i_idx < 0)).sum())
            warnings.warn(
                f"{what}: {n_any} of {len(df)} pair(s) have ids unseen at fit time ({n_u} with an unknown user, "
                f"{n_i} with an unknown item); they get a fallback: the item's baseline (mean) for an unknown user, "
                f"the user's for an unknown item, the global mean when both are unknown",
                UnknownIdsWarning, stacklevel=3)
        return u_idx, i_idx

    def predict(self, pairs: pd.DataFrame, user: str | None = None, item: str | None = None,
                with_fallback: bool = False) -> pd.DataFrame:
        """Predicted ratings of (user, item) pairs.

        Parameters
        ----------
        pairs : DataFrame
            With the user and item columns (named as at fit time, or by ``user=`` / ``item=``).
        with_fallback : bool, default False
            Add a ``fallback`` column saying how each pair was answered: ``"item_mean"`` (unknown
            user), ``"user_mean"`` (unknown item), ``"global_mean"`` (both unknown) or None (the
            model's prediction). No warning is given then: the column says it pair by pair.

        Returns
        -------
        DataFrame
            A copy of ``pairs`` with the rating column (named as at fit time) added or replaced,
            clipped to ``rating_range_``. Pairs with unseen ids get the documented fallback and,
            unless ``with_fallback``, a :class:`~aerec.exceptions.UnknownIdsWarning` counting them.
        """
        self._check_fitted()
        user, item = user or self.columns_["user"], item or self.columns_["item"]
        u_idx, i_idx = self._indices(pairs, user, item, "pairs", warn=not with_fallback)
        out = pairs.copy()
        out[self.columns_["rating"]] = self._predict_index(u_idx, i_idx)
        if with_fallback:
            out["fallback"] = pd.Series(np.where(u_idx < 0, np.where(i_idx < 0, "global_mean", "item_mean"),
                                                 np.where(i_idx < 0, "user_mean", None)),
                                        index=out.index, dtype=object)
        return out

    def complete(self, users=None, items=None) -> pd.DataFrame:
        """A dense block of predicted ratings, users x items (observed cells are predicted too).

        Parameters
        ----------
        users, items : list-like, optional
            The rows and columns of the block; by default every training user / item.

        Returns
        -------
        DataFrame
            Users x items (index and columns named after the fit's user and item columns) of predicted
            ratings; ids unseen at fit time get the fallback of :meth:`predict`.
        """
        self._check_fitted()
        user_ids = self.users_.ids if users is None else pd.Index(pd.unique(pd.Series(list(users), dtype=object)))
        item_ids = self.items_.ids if items is None else pd.Index(pd.unique(pd.Series(list(items), dtype=object)))
        grid = pd.DataFrame({"u": np.repeat(np.asarray(user_ids, dtype=object), len(item_ids)),
                             "i": np.tile(np.asarray(item_ids, dtype=object), len(user_ids))})
        u_idx, i_idx = self._indices(grid, "u", "i", "complete")
        values = self._predict_index(u_idx, i_idx).reshape(len(user_ids), len(item_ids))
        return pd.DataFrame(values, index=pd.Index(user_ids, name=self.columns_["user"]),
                            columns=pd.Index(item_ids, name=self.columns_["item"]))

    @property
    def users_(self) -> IdMap:
        return self.ratings_.users

    @property
    def items_(self) -> IdMap:
        return self.ratings_.items

    # --- saving -------------------------------------------------------------------------
    def _save_to(self, directory) -> dict:
        self.ratings_.save(directory, "ratings")
        np.savez(directory / "means.npz", user_means=self.user_means_, item_means=self.item_means_,
                 user_bias=self.user_bias_, item_bias=self.item_bias_)
        for kind, net in self.networks_.items():
            net.save(directory / f"autorec_{kind}.keras")
        return {"columns": self.columns_, "rating_range": list(self.rating_range_), "global_mean": self.global_mean_,
                "ensemble_weight": self.ensemble_weight_, "validation_rmse": self.validation_rmse_,
                "residual_weight": self.residual_weight_, "bias_l2": self.bias_l2_,
                "history": self.history_, "fit_seconds": self.fit_seconds_, "networks": sorted(self.networks_)}

    @classmethod
    def _load_from(cls, directory, meta: dict) -> "AutoRec":
        import keras

        from ..models import autorec as _registers_the_layers  # noqa: F401

        model = cls(**meta["params"])
        with np.load(directory / "means.npz", allow_pickle=False) as z:
            model.user_means_, model.item_means_ = z["user_means"], z["item_means"]
            model.user_bias_, model.item_bias_ = z["user_bias"], z["item_bias"]
        model.ratings_ = Interactions.load(directory, "ratings")
        model.networks_ = {kind: keras.saving.load_model(directory / f"autorec_{kind}.keras", compile=False)
                           for kind in meta["networks"]}
        model.columns_ = meta["columns"]
        model.rating_range_ = tuple(meta["rating_range"])
        model.global_mean_ = meta["global_mean"]
        model.ensemble_weight_ = meta["ensemble_weight"]
        model.residual_weight_ = meta["residual_weight"]
        model.bias_l2_ = meta["bias_l2"]
        model.validation_rmse_ = meta["validation_rmse"]
        model.history_ = meta["history"]
        model.fit_seconds_ = meta["fit_seconds"]
        model.fitted_ = True
        return model


def _row_means(R: sp.csr_matrix, default: float) -> np.ndarray:
    counts = np.diff(R.indptr)
    sums = np.asarray(R.sum(axis=1)).ravel()
    return np.where(counts > 0, sums / np.maximum(counts, 1), default).astype(np.float64)


def user_item_biases(R: sp.csr_matrix, penalty: float, sweeps: int = 10) -> tuple[float, np.ndarray, np.ndarray]:
    """``(mu, b_u, b_i)`` minimising ``sum (r - mu - b_u - b_i)^2 + penalty (|b_u|^2 + |b_i|^2)`` over the entries
    of ``R`` (users x items), by alternating least squares (as Surprise's ``BaselineOnly``); ``mu`` is the mean.

    Examples
    --------
    >>> import scipy.sparse as sp
    >>> mu, bu, bi = user_item_biases(sp.csr_matrix([[5.0, 3.0], [4.0, 0.0]]), penalty=0.0)
    >>> round(mu, 3), bool(bi[0] > bi[1])
    (4.0, True)
    """
    coo = R.tocoo()
    mu = float(coo.data.mean())
    n_users, n_items = R.shape
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    user_counts = np.bincount(coo.row, minlength=n_users) + penalty
    item_counts = np.bincount(coo.col, minlength=n_items) + penalty
    for _ in range(sweeps):
        bi = np.bincount(coo.col, coo.data - mu - bu[coo.row], minlength=n_items) / np.maximum(item_counts, 1e-12)
        bu = np.bincount(coo.row, coo.data - mu - bi[coo.col], minlength=n_users) / np.maximum(user_counts, 1e-12)
    return mu, bu, bi


def _halves(valid: sp.csr_matrix | None, seed) -> tuple[sp.csr_matrix | None, sp.csr_matrix | None]:
    """``valid`` split at random into two disjoint halves (both ``valid`` when it holds under 2 ratings)."""
    if valid is None or valid.nnz < 2:
        return valid, valid
    coo = valid.tocoo()
    first = np.zeros(coo.nnz, dtype=bool)
    first[np.random.default_rng([0 if seed is None else int(seed), 1]).permutation(coo.nnz)[: coo.nnz // 2]] = True

    def part(mask):
        return sp.csr_matrix((coo.data[mask], (coo.row[mask], coo.col[mask])), shape=valid.shape, dtype=np.float32)

    return part(first), part(~first)


def _residual_weight(truth: np.ndarray, base: np.ndarray, residual: np.ndarray, lo: float, hi: float):
    """``(weight, baseline RMSE, final RMSE)`` on validation ratings: the weight in 0, 0.05, ..., 1 of the
    networks' residual that lowers the squared error the most, kept only when its improvement over the
    baseline alone is larger than twice its standard error (else 0: the baseline). With few validation
    ratings a lucky draw cannot buy a weight that then loses on new ratings."""
    base_error = (truth - np.clip(base, lo, hi)) ** 2
    best, best_gain = 0.0, 0.0
    for weight in np.linspace(0.05, 1.0, 20):
        gain = base_error - (truth - np.clip(base + weight * residual, lo, hi)) ** 2
        mean, error = float(gain.mean()), float(gain.std() / np.sqrt(len(gain)))
        if mean - 2 * error > 0 and mean > best_gain:
            best, best_gain = float(weight), mean
    final = (truth - np.clip(base + best * residual, lo, hi)) ** 2
    return best, float(np.sqrt(base_error.mean())), float(np.sqrt(final.mean()))
