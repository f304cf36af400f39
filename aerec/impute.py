"""Imputing missing values: ratings with :class:`AutoRec`, table cells with :class:`TableAutoencoder`.

Both are estimators in the scikit-learn style (hyperparameters in ``__init__``, ``fit`` returns
``self``, learned state ends in ``_``) over the user's DataFrames; the Keras models they train
live in :mod:`aerec.models.autorec` and :mod:`aerec.models.table` and know nothing of ids or
DataFrames.
"""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .base import BaseEstimator, register
from .data import IdMap, Interactions, check_columns
from .exceptions import AerecWarning, BundleError, DataValidationError, MissingColumnError, UnknownIdsWarning

__all__ = ["AutoRec", "TableAutoencoder"]


def _first_rows(index: pd.Index, mask, n: int = 5) -> str:
    mask = np.asarray(mask)
    rows = index[mask][:n].tolist()
    more = int(mask.sum()) - len(rows)
    return f"{rows}" + (f" and {more} more" if more > 0 else "")


def _keras_seed(seed) -> None:
    import keras

    if seed is not None:
        keras.utils.set_random_seed(int(seed))


# =====================================================================================
# AutoRec: ratings
# =====================================================================================

_AUTOREC_KINDS = ("item", "user", "both")


def _sparse_tensor(matrix: sp.csr_matrix, values=None):
    import tensorflow as tf

    coo = matrix.tocoo()
    data = coo.data.astype(np.float32) if values is None else np.full(coo.nnz, values, dtype=np.float32)
    order = np.lexsort((coo.col, coo.row))
    indices = np.stack([coo.row[order], coo.col[order]], axis=1).astype(np.int64)
    return tf.SparseTensor(indices, data[order], dense_shape=matrix.shape)


def _rows_dataset(inputs: sp.csr_matrix, targets: sp.csr_matrix, batch_size: int, shuffle_seed=None):
    """``tf.data`` batches ``(input rows, (target rows, mask))`` sliced from sparse matrices, densified per batch."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(
        (_sparse_tensor(inputs), (_sparse_tensor(targets), _sparse_tensor(targets, values=1.0))))
    if shuffle_seed is not None and batch_size < inputs.shape[0]:
        ds = ds.shuffle(inputs.shape[0], seed=int(shuffle_seed), reshuffle_each_iteration=True)
    dense = tf.sparse.to_dense
    return ds.batch(batch_size).map(lambda x, y: (dense(x), (dense(y[0]), dense(y[1])))).prefetch(2)


@register
class AutoRec(BaseEstimator):
    """Predict missing ratings with AutoRec (Sedhain et al., 2015): an autoencoder over rating rows.

    Item-based AutoRec (``kind="item"``) reconstructs each item's row of ratings by all users
    from its observed entries; user-based (``kind="user"``) each user's row of ratings of all
    items; ``kind="both"`` trains both and averages them with a weight chosen on validation
    ratings. The loss counts observed ratings only. A validation part of the training ratings
    (``validation_fraction``, drawn with ``seed``) is held out for early stopping on its RMSE;
    predictions then use every training rating as input.

    Options from GLocal-K (Han et al., 2021): ``kernel_dim`` (a local kernel that learns which
    weights to use) and ``global_kernel_size`` (a convolution over the whole rating matrix,
    fine-tuned after a first fit; trains on the whole matrix per step).

    Predictions are clipped to the rating range (``rating_range``, or the range seen in
    training). Pairs with an id unseen in training get a fallback, and a
    :class:`~aerec.exceptions.UnknownIdsWarning` counts them: an unseen user on a known item gets
    the item's mean training rating, a known user on an unseen item the user's mean, and a pair
    with both unseen the global mean.

    As in the paper, a network reads 0 as "unknown" in its input rows; a rating scale that
    includes 0 should be shifted (e.g. 0-4 to 1-5) before fitting.

    Parameters
    ----------
    kind : {"item", "user", "both"}, default "item"
        Which rows are reconstructed; item-based is the stronger one on MovieLens.
    hidden : int or tuple of int, default 500
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
    max_epochs : int, default 2000
    patience : int, default 50
        Epochs without a better validation RMSE before training stops (the best weights are kept).
    validation_fraction : float, default 0.05
        Share of the training ratings held out for early stopping and the ensemble weight; 0
        trains ``max_epochs`` epochs on everything.
    refit : bool, default False
        After early stopping, train the network(s) again from the same start on every training
        rating, for the number of epochs that was best on validation.
    rating_range : (float, float), optional
        The valid ratings; ``fit`` refuses ratings outside it. Default: the range in the data.
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
    history_ : dict
        Per network: the epoch logs of training.

    Examples
    --------
    >>> import pandas as pd
    >>> ratings = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": ["a", "b", "a", "c", "b", "c"],
    ...                         "rating": [5, 3, 4, 2, 1, 4]})
    >>> model = AutoRec(hidden=8, max_epochs=20, validation_fraction=0.0, seed=0).fit(ratings)
    >>> out = model.predict(pd.DataFrame({"user": [1, 3], "item": ["c", "a"]}))
    >>> out.columns.tolist(), bool(out["rating"].between(1, 5).all())
    (['user', 'item', 'rating'], True)
    """

    def __init__(self, kind: str = "item", hidden=500, l2: float = 1e-3, dropout: float = 0.0, kernel_dim: int = 0,
                 sparsity: float = 0.0, global_kernel_size: int = 0, learning_rate: float = 1e-2,
                 batch_size: int | None = None, max_epochs: int = 2000, patience: int = 50,
                 validation_fraction: float = 0.05, refit: bool = False, rating_range=None, seed: int = 0,
                 verbose: int = 0):
        self.kind = kind
        self.hidden = hidden
        self.l2 = l2
        self.dropout = dropout
        self.kernel_dim = kernel_dim
        self.sparsity = sparsity
        self.global_kernel_size = global_kernel_size
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation_fraction = validation_fraction
        self.refit = refit
        self.rating_range = rating_range
        self.seed = seed
        self.verbose = verbose

    # --- checks -----------------------------------------------------------------------
    def _validate_params(self) -> None:
        if self.kind not in _AUTOREC_KINDS:
            raise ValueError(f"kind must be one of {_AUTOREC_KINDS}, got {self.kind!r}")
        hidden = (self.hidden,) if isinstance(self.hidden, (int, np.integer)) else tuple(self.hidden)
        if not hidden or any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden must be a positive width or a tuple of them, got {self.hidden!r}")
        for name in ("l2", "sparsity"):
            value = getattr(self, name)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a non-negative number, got {value!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if self.learning_rate <= 0:
            raise ValueError(f"learning_rate must be positive, got {self.learning_rate!r}")
        if self.batch_size is not None and int(self.batch_size) < 1:
            raise ValueError(f"batch_size must be a positive integer or None, got {self.batch_size!r}")
        if self.global_kernel_size and self.batch_size is not None:
            raise ValueError("global_kernel_size needs batch_size=None: the convolution runs over the whole matrix")
        if int(self.max_epochs) < 1 or int(self.patience) < 1:
            raise ValueError(f"max_epochs and patience must be positive, got {self.max_epochs!r}, {self.patience!r}")
        if self.rating_range is not None:
            lo, hi = self._declared_range()
            if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
                raise ValueError(f"rating_range must be (low, high) with low < high, got {self.rating_range!r}")

    def _declared_range(self) -> tuple[float, float]:
        try:
            lo, hi = (float(v) for v in self.rating_range)
        except (TypeError, ValueError):
            raise ValueError(f"rating_range must be a pair (low, high), got {self.rating_range!r}") from None
        return lo, hi

    def _check_range(self, df: pd.DataFrame, rating: str) -> None:
        if self.rating_range is None:
            return
        lo, hi = self._declared_range()
        values = pd.to_numeric(df[rating], errors="coerce").to_numpy(dtype=float, na_value=np.nan)
        outside = (values < lo) | (values > hi)
        if outside.any():
            raise DataValidationError(
                f"ratings: column {rating!r} has {int(outside.sum())} value(s) outside rating_range=({lo:g}, {hi:g}), "
                f"first at rows {_first_rows(df.index, outside)} (values {df.loc[outside, rating].head(5).tolist()})"
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
        self.global_mean_ = float(R.data.mean())
        self.user_means_ = _row_means(R, self.global_mean_)
        self.item_means_ = _row_means(R.T.tocsr(), self.global_mean_)

        train, valid = self._split(R)
        kinds = ("item", "user") if self.kind == "both" else (self.kind,)
        _keras_seed(self.seed)
        self.networks_, self.history_, self.validation_rmse_ = {}, {}, {}
        for j, kind in enumerate(kinds):
            self.networks_[kind], self.history_[kind] = self._train_network(kind, train, valid, j)
        self.ensemble_weight_ = {"item": 1.0, "user": 0.0, "both": 0.5}[self.kind]
        if valid is not None:
            held = valid.tocoo()
            per_kind = {k: self._network_pairs(k, train, held.row, held.col) for k in kinds}
            truth = held.data
            for k in kinds:
                self.validation_rmse_[k] = _rmse(truth, np.clip(per_kind[k], lo, hi))
            if self.kind == "both":
                weights = np.linspace(0.0, 1.0, 21)
                scores = [_rmse(truth, np.clip(w * per_kind["item"] + (1 - w) * per_kind["user"], lo, hi))
                          for w in weights]
                self.ensemble_weight_ = float(weights[int(np.argmin(scores))])
                self.validation_rmse_["both"] = float(min(scores))
        if self.refit and valid is not None:  # the same schedule again, on every training rating
            for j, kind in enumerate(kinds):
                epochs = self.history_[kind]["best_epochs"]
                self.networks_[kind], refit_history = self._train_network(kind, R, None, j, epochs=epochs)
                self.history_[kind]["refit_epochs"] = refit_history["stage_epochs"]
        self.fit_seconds_ = time.perf_counter() - start
        self.fitted_ = True
        return self

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
        from .models.autorec import AutoRecNetwork

        hidden = (self.hidden,) if isinstance(self.hidden, (int, np.integer)) else tuple(int(h) for h in self.hidden)
        return AutoRecNetwork(n_inputs, hidden=hidden, l2=float(self.l2), dropout=float(self.dropout),
                              kernel_dim=int(self.kernel_dim), sparsity=float(self.sparsity),
                              global_kernel_size=int(self.global_kernel_size), n_rows=n_rows,
                              seed=None if self.seed is None else int(self.seed) + 100 * offset,
                              name=f"autorec_{kind}")

    def _train_network(self, kind: str, train: sp.csr_matrix, valid: sp.csr_matrix | None, offset: int,
                       epochs: list[int] | None = None):
        """Train one network; with ``epochs`` (per stage) for that many epochs and no validation (a refit)."""
        import keras

        rows = train.T.tocsr() if kind == "item" else train
        valid_rows = None if valid is None else (valid.T.tocsr() if kind == "item" else valid)
        n_rows, n_inputs = rows.shape
        batch = n_rows if self.batch_size is None else min(int(self.batch_size), n_rows)
        net = self._network(kind, n_inputs, n_rows, offset)
        train_ds = _rows_dataset(rows, rows, batch, shuffle_seed=self.seed)
        valid_ds = None if valid_rows is None else _rows_dataset(rows, valid_rows, n_rows)
        history: dict[str, list] = {}
        stages = [False, True] if self.global_kernel_size else [False]
        if epochs is not None:
            stages = stages[:len(epochs)]
        for stage, fine_tune in enumerate(stages):
            if fine_tune:  # GLocal-K: the global kernel is read from the pre-trained model's predictions
                lo, hi = self.rating_range_
                full = np.clip(np.asarray(net(rows.toarray())), lo, hi)
                pretrained = [w.copy() for w in net.get_weights()]
                pretrained_rmse = min(history.get("val_rmse", [np.inf]))
                net.set_row_summary(full.mean(axis=1))
            net.compile(optimizer=keras.optimizers.Adam(float(self.learning_rate)))
            callbacks = []
            if valid_ds is not None:
                callbacks.append(keras.callbacks.EarlyStopping(monitor="val_rmse", mode="min",
                                                               patience=int(self.patience),
                                                               restore_best_weights=True))
            n_epochs = int(self.max_epochs) if epochs is None else int(epochs[stage])
            logs = net.fit(train_ds, validation_data=valid_ds, epochs=n_epochs, callbacks=callbacks,
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
        return _inference_copy(net, n_inputs), history

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
                if weight > 0:
                    value += weight * self._network_pairs(kind, self.ratings_.matrix, u, i)
            pred[known] = value
        only_item = (u_idx < 0) & (i_idx >= 0)
        pred[only_item] = self.item_means_[i_idx[only_item]]
        only_user = (u_idx >= 0) & (i_idx < 0)
        pred[only_user] = self.user_means_[u_idx[only_user]]
        return np.clip(pred, lo, hi)

    def _indices(self, df: pd.DataFrame, user: str, item: str, what: str) -> tuple[np.ndarray, np.ndarray]:
        check_columns(df, [user, item], what)
        for col in (user, item):
            nulls = df[col].isna().to_numpy()
            if nulls.any():
                raise DataValidationError(
                    f"{what}: column {col!r} has {int(nulls.sum())} null id(s), first at rows {_first_rows(df.index, nulls)}")
        u_idx = self.users_.index_of(df[user].to_numpy(), on_unknown="mark")
        i_idx = self.items_.index_of(df[item].to_numpy(), on_unknown="mark")
        n_u, n_i = int((u_idx < 0).sum()), int((i_idx < 0).sum())
        if n_u or n_i:
            n_any = int(((u_idx < 0) | (i_idx < 0)).sum())
            warnings.warn(
                f"{what}: {n_any} of {len(df)} pair(s) have ids unseen at fit time ({n_u} with an unknown user, "
                f"{n_i} with an unknown item); they get a fallback: the item's mean rating for an unknown user, "
                f"the user's mean for an unknown item, the global mean when both are unknown",
                UnknownIdsWarning, stacklevel=3)
        return u_idx, i_idx

    def predict(self, pairs: pd.DataFrame, user: str | None = None, item: str | None = None) -> pd.DataFrame:
        """Predicted ratings of (user, item) pairs.

        Parameters
        ----------
        pairs : DataFrame
            With the user and item columns (named as at fit time, or by ``user=`` / ``item=``).

        Returns
        -------
        DataFrame
            A copy of ``pairs`` with the rating column (named as at fit time) added or replaced,
            clipped to ``rating_range_``. Pairs with unseen ids get the documented fallback and a
            :class:`~aerec.exceptions.UnknownIdsWarning`.
        """
        self._check_fitted()
        user, item = user or self.columns_["user"], item or self.columns_["item"]
        u_idx, i_idx = self._indices(pairs, user, item, "pairs")
        out = pairs.copy()
        out[self.columns_["rating"]] = self._predict_index(u_idx, i_idx)
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
    def save(self, path) -> None:
        """Save to a bundle directory; :func:`aerec.load` reads it back."""
        from .bundle import save

        self._check_fitted()
        save(self, path)

    def _save_to(self, directory) -> dict:
        directory = Path(directory)
        R = self.ratings_.matrix
        self.users_.to_parquet(directory / "users.parquet")
        self.items_.to_parquet(directory / "items.parquet")
        np.savez(directory / "ratings.npz", data=R.data, indices=R.indices, indptr=R.indptr, shape=np.asarray(R.shape))
        np.savez(directory / "means.npz", user_means=self.user_means_, item_means=self.item_means_)
        for kind, net in self.networks_.items():
            net.save(directory / f"autorec_{kind}.keras")
        return {"columns": self.columns_, "rating_range": list(self.rating_range_), "global_mean": self.global_mean_,
                "ensemble_weight": self.ensemble_weight_, "validation_rmse": self.validation_rmse_,
                "history": self.history_, "fit_seconds": self.fit_seconds_, "networks": sorted(self.networks_)}

    @classmethod
    def _load_from(cls, directory, meta: dict) -> "AutoRec":
        import keras

        from .models import autorec as _registers_the_layers  # noqa: F401

        directory = Path(directory)
        params = dict(meta["params"])
        if isinstance(params.get("hidden"), list):
            params["hidden"] = tuple(params["hidden"])
        if isinstance(params.get("rating_range"), list):
            params["rating_range"] = tuple(params["rating_range"])
        model = cls(**params)
        with np.load(directory / "ratings.npz", allow_pickle=False) as z:
            R = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
        with np.load(directory / "means.npz", allow_pickle=False) as z:
            model.user_means_, model.item_means_ = z["user_means"], z["item_means"]
        model.ratings_ = Interactions(R, IdMap.from_parquet(directory / "users.parquet"),
                                      IdMap.from_parquet(directory / "items.parquet"))
        model.networks_ = {kind: keras.saving.load_model(directory / f"autorec_{kind}.keras", compile=False)
                           for kind in meta["networks"]}
        model.columns_ = meta["columns"]
        model.rating_range_ = tuple(meta["rating_range"])
        model.global_mean_ = meta["global_mean"]
        model.ensemble_weight_ = meta["ensemble_weight"]
        model.validation_rmse_ = meta["validation_rmse"]
        model.history_ = meta["history"]
        model.fit_seconds_ = meta["fit_seconds"]
        model.fitted_ = True
        return model


def _row_means(R: sp.csr_matrix, default: float) -> np.ndarray:
    counts = np.diff(R.indptr)
    sums = np.asarray(R.sum(axis=1)).ravel()
    return np.where(counts > 0, sums / np.maximum(counts, 1), default).astype(np.float64)


def _rmse(truth, pred) -> float:
    return float(np.sqrt(np.mean((np.asarray(truth, dtype=float) - np.asarray(pred, dtype=float)) ** 2)))


def _inference_copy(net, n_inputs: int):
    """A fresh, uncompiled copy of a trained network (what is saved: no optimizer state)."""
    copy = type(net).from_config(net.get_config())
    copy(np.zeros((1, n_inputs), dtype=np.float32))
    copy.set_weights(net.get_weights())
    return copy


# =====================================================================================
# TableAutoencoder: tables with numeric and categorical cells
# =====================================================================================

_TABLE_KINDS = ("undercomplete", "sparse", "contractive", "denoising", "variational")
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
    hidden : int or tuple of int, default 128
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
    max_epochs : int, default 500
    patience : int, default 50
        Epochs without a lower validation error before training stops (the best weights are kept).
        The first 10 epochs (or ``patience`` if fewer) are not judged; when ``max_epochs`` ends
        training before any epoch was judged, the last weights are kept.
    validation : {"cells", "rows"}, default "cells"
        What early stopping watches. ``"cells"``: a share ``validation_fraction`` of the observed
        cells of every row is hidden from training, and the error is measured on those cells.
        ``"rows"``: a share of the rows is held out; a fifth of their observed cells are hidden
        from the model's input and the error is measured on those cells.
    validation_fraction : float, default 0.1
        Share of cells or rows held out for early stopping (0: train ``max_epochs`` epochs on everything).
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
    >>> model = TableAutoencoder(kind="denoising", hidden=8, max_epochs=5, seed=0).fit(df)
    >>> filled = model.impute(df)
    >>> int(filled.isna().sum().sum()), filled.dtypes.equals(df.dtypes)
    (0, True)
    >>> model.transform(df).shape, model.anomaly_score(df).index.equals(df.index)
    ((40, 2), True)
    """

    def __init__(self, kind: str = "denoising", hidden=128, code_dim: int | None = None, activation: str = "tanh",
                 corruption: float = 0.25, visible_weight: float = 0.1, sparsity: float = 1.0,
                 sparsity_target: float = 0.05, sparsity_penalty: str = "kl", contraction: float = 0.1,
                 beta: float = 1.0, dropout: float = 0.0, members: int = 1, linear_skip: bool | None = None,
                 standardize: bool = True, learning_rate: float = 3e-3, batch_size: int = 64, max_epochs: int = 500,
                 patience: int = 50, validation: str = "cells", validation_fraction: float = 0.1, seed: int = 0,
                 verbose: int = 0):
        self.kind = kind
        self.hidden = hidden
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
        self.max_epochs = max_epochs
        self.patience = patience
        self.validation = validation
        self.validation_fraction = validation_fraction
        self.seed = seed
        self.verbose = verbose

    # --- checks -----------------------------------------------------------------------
    def _validate_params(self) -> None:
        if self.kind not in _TABLE_KINDS:
            raise ValueError(f"kind must be one of {_TABLE_KINDS}, got {self.kind!r}")
        hidden = (self.hidden,) if isinstance(self.hidden, (int, np.integer)) else tuple(self.hidden)
        if any(int(h) < 1 for h in hidden):
            raise ValueError(f"hidden must be positive widths, got {self.hidden!r}")
        if self.code_dim is not None and int(self.code_dim) < 1:
            raise ValueError(f"code_dim must be a positive integer or None, got {self.code_dim!r}")
        if not 0 <= self.corruption < 1:
            raise ValueError(f"corruption must be in [0, 1), got {self.corruption!r}")
        if not 0 < self.sparsity_target < 1:
            raise ValueError(f"sparsity_target must be in (0, 1), got {self.sparsity_target!r}")
        for name in ("sparsity", "contraction", "beta"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be non-negative, got {getattr(self, name)!r}")
        if not 0 <= self.validation_fraction < 1:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction!r}")
        if self.validation not in ("cells", "rows"):
            raise ValueError(f"validation must be 'cells' or 'rows', got {self.validation!r}")
        if not 0 <= self.visible_weight <= 1:
            raise ValueError(f"visible_weight must be in [0, 1], got {self.visible_weight!r}")
        if not 0 <= self.dropout < 1:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout!r}")
        if int(self.members) < 1:
            raise ValueError(f"members must be a positive integer, got {self.members!r}")
        if self.linear_skip and self.kind != "denoising":
            raise ValueError(f"linear_skip is for the denoising kind (got kind={self.kind!r}): any other kind would "
                             f"learn to copy its input through it")
        if int(self.batch_size) < 1 or int(self.max_epochs) < 1 or int(self.patience) < 1:
            raise ValueError("batch_size, max_epochs and patience must be positive integers")

    def _hidden(self) -> tuple[int, ...]:
        return (int(self.hidden),) if isinstance(self.hidden, (int, np.integer)) else tuple(int(h) for h in self.hidden)

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

        _keras_seed(self.seed)
        network = TableNetwork(
            numeric_mean=[schema[c]["mean"] for c in numeric], numeric_variance=[schema[c]["variance"] for c in numeric],
            vocabularies=[[str(v) for v in schema[c]["categories"]] for c in categorical], kind=self.kind,
            hidden=self._hidden(), code_dim=code_dim, activation=self.activation, corruption=float(self.corruption),
            sparsity=float(self.sparsity), sparsity_target=float(self.sparsity_target),
            sparsity_penalty=self.sparsity_penalty, contraction=float(self.contraction), beta=float(self.beta),
            visible_weight=float(self.visible_weight), dropout=float(self.dropout), members=int(self.members),
            linear_skip=self.kind == "denoising" if self.linear_skip is None else bool(self.linear_skip),
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
                              f"hold out a share of {self.validation_fraction}; training {self.max_epochs} epochs "
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
        logs = network.fit(train_ds, validation_data=valid_ds, epochs=int(self.max_epochs), callbacks=callbacks,
                           shuffle=False, verbose=self.verbose).history
        self.history_ = {k: [float(v) for v in values] for k, values in logs.items()}
        self.network_ = _table_inference_copy(network, arrays)
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
    def save(self, path) -> None:
        """Save to a bundle directory; :func:`aerec.load` reads it back."""
        from .bundle import save

        self._check_fitted()
        save(self, path)

    def _save_to(self, directory) -> dict:
        directory = Path(directory)
        self.network_.save(directory / "table_autoencoder.keras")
        (directory / "schema.json").write_text(json.dumps({"columns": self.columns_, "schema": self.schema_}))
        return {"history": self.history_, "fit_seconds": self.fit_seconds_}

    @classmethod
    def _load_from(cls, directory, meta: dict) -> "TableAutoencoder":
        import keras

        from .models import table as _registers_the_model  # noqa: F401

        directory = Path(directory)
        params = dict(meta["params"])
        if isinstance(params.get("hidden"), list):
            params["hidden"] = tuple(params["hidden"])
        if "members" not in params:
            raise BundleError(f"{directory} holds a TableAutoencoder saved by an aerec older than its ensemble network "
                              f"(its parameters have no 'members'); the weights have another layout: refit the model "
                              f"and save it again")
        model = cls(**params)
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


def _table_inference_copy(net, arrays: dict):
    """A fresh, uncompiled copy of the trained table network (what is saved: no optimizer state)."""
    copy = type(net).from_config(net.get_config())
    copy({k: v[:1] for k, v in arrays.items()})
    copy.set_weights(net.get_weights())
    return copy
