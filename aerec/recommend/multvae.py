"""`MultVAE` and `MultDAE`: the multinomial-likelihood autoencoders of Liang et al. (2018) behind the recommender contract."""
from __future__ import annotations

import numbers
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..base import register
from .base import Recommender, ValidationData

__all__ = ["MultVAE", "MultDAE"]


def _check(name: str, value, kind: str, low=None, high=None, low_open=False, high_open=False, none_ok=False):
    """Raise a ValueError naming the parameter, what it must be, and what it got."""
    if value is None and none_ok:
        return
    is_int = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    is_real = isinstance(value, numbers.Real) and not isinstance(value, bool) and np.isfinite(value)
    ok = is_int if kind == "int" else is_real
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else ("> " if low_open else ">= ") + str(low)
        hi = "" if high is None else ("< " if high_open else "<= ") + str(high)
        bounds = " and ".join(b for b in (lo, hi) if b)
        expected = f"{'an integer' if kind == 'int' else 'a number'}{' ' + bounds if bounds else ''}"
        if none_ok:
            expected += " or None"
        raise ValueError(f"{name} must be {expected}; got {value!r}")


class _KerasRecommender(Recommender):
    """What the Keras autoencoder recommenders share: batches of sparse user rows, training through
    ``keras.Model.fit`` with early stopping on validation NDCG@100, codes from the output layer, saving.

    A subclass provides ``_build_network(n_users, n_items)`` (a Keras model with ``output_layer``
    and ``user_code(x)``, or ``user_code(x, users)`` when ``_with_user_index``) and may add callbacks
    with ``_callbacks``.
    """

    #: the network also takes each row's user index (CDAE's per-user input); -1 for fold-in users
    _with_user_index = False

    def _build_network(self, n_users: int, n_items: int):
        raise NotImplementedError

    # --- hyperparameters -----------------------------------------------------------------
    def _validate_params(self) -> None:
        _check("dropout", self.dropout, "real", low=0, high=1, high_open=True)
        _check("weight_decay", self.weight_decay, "real", low=0)
        _check("learning_rate", self.learning_rate, "real", low=0, low_open=True)
        _check("epochs", self.epochs, "int", low=1)
        _check("batch_size", self.batch_size, "int", low=1)
        _check("patience", self.patience, "int", low=1, none_ok=True)
        _check("seed", self.seed, "int", low=0)
        if self.verbose not in (0, 1, 2, False, True):
            raise ValueError(f"verbose must be 0, 1 or 2; got {self.verbose!r}")

    def _steps_per_epoch(self, batches_per_pass: int) -> int:
        """Updates in one Keras epoch (one pass over the users unless the model says otherwise)."""
        return batches_per_pass

    def _callbacks(self, steps_per_epoch: int) -> list:
        """The model's own training callbacks (e.g. KL annealing), run before validation."""
        return []

    # --- training --------------------------------------------------------------------------
    def _dataset(self, matrix: sp.csr_matrix):
        """Endless shuffled batches of users as dense ``(batch, n_items)`` rows, gathered from the sparse matrix
        in the input pipeline: the whole users x items matrix is never dense."""
        import tensorflow as tf

        from ..models.batches import dense_row_gather

        n_users = matrix.shape[0]
        gather = dense_row_gather(matrix)

        def dense_rows(users):
            rows = gather(users)
            # a 1-tuple: Keras would read a pair as (x, y)
            return ((rows, tf.cast(users, tf.int32)),) if self._with_user_index else rows

        # repeated, so that fit keeps one iterator (instantiating the pipeline every epoch costs more
        # than an epoch of small data); each pass reshuffles
        return (tf.data.Dataset.range(n_users)
                .shuffle(n_users, seed=self.seed, reshuffle_each_iteration=True)
                .batch(self.batch_size)
                .map(dense_rows)
                .repeat()
                .prefetch(2))

    def _fit(self, X, valid: ValidationData | None) -> None:
        import random

        # keras.utils.set_random_seed also seeds Python's and NumPy's global generators: give the caller theirs back
        python_state, numpy_state = random.getstate(), np.random.get_state()
        try:
            self._train(X, valid)
        finally:
            random.setstate(python_state)
            np.random.set_state(numpy_state)

    def _train(self, X, valid: ValidationData | None) -> None:
        import keras

        from ..models.callbacks import EpochTimer, early_stopping

        keras.utils.set_random_seed(self.seed)
        n_users, n_items = X.shape
        self.network_ = self._build_network(n_users, n_items)
        steps_per_epoch = self._steps_per_epoch(-(-n_users // self.batch_size))
        # XLA and several steps per call were measured no faster here (A1: 2 updates per epoch)
        self.network_.compile(optimizer=keras.optimizers.Adam(learning_rate=self.learning_rate), jit_compile=False)

        timer = EpochTimer()
        callbacks = [timer] + self._callbacks(steps_per_epoch)
        if valid is not None:
            score = lambda: self.validation_metrics(valid, ["ndcg@100"])["ndcg@100"]  # noqa: E731
            callbacks += early_stopping(score, patience=self.patience or self.epochs + 1, verbose=int(bool(self.verbose)))
        history = self.network_.fit(self._dataset(X.matrix), epochs=self.epochs, steps_per_epoch=steps_per_epoch,
                                    callbacks=callbacks, verbose=self.verbose, shuffle=False)
        logs = history.history
        self.history_ = {name: [float(v) for v in values] for name, values in logs.items()}
        self.history_["train_seconds"] = timer.seconds
        if valid is not None:
            self.best_epoch_ = int(np.argmax(self.history_["val_ndcg@100"]))
        else:
            self.best_epoch_ = len(self.history_["loss"]) - 1
        self.history_["best_epoch"] = [self.best_epoch_]

    # --- codes ---------------------------------------------------------------------------
    def _user_vectors(self, rows: sp.csr_matrix, user_index) -> np.ndarray:
        users = None
        if self._with_user_index:
            users = np.full(rows.shape[0], -1, np.int32) if user_index is None else np.asarray(user_index, np.int32)
        fast = _numpy_user_code(self.network_, rows, users)
        if fast is not None:
            return fast
        dense = np.asarray(rows.toarray(), dtype=np.float32)
        if not self._with_user_index:
            return _numpy(self.network_.user_code(dense))
        return _numpy(self.network_.user_code(dense, users))

    def _item_vectors(self):
        layer = self.network_.output_layer
        return _numpy(layer.kernel).T, _numpy(layer.bias)

    # --- saving ----------------------------------------------------------------------------
    def _save_to(self, directory) -> dict:
        meta = super()._save_to(directory)
        self.network_.save(Path(directory) / "model.keras", include_optimizer=False)
        meta["best_epoch"] = self.best_epoch_
        return meta

    @classmethod
    def _load_from(cls, directory, meta: dict):
        import keras

        from ..models import cdae, recvae, vae  # noqa: F401  (register the Keras classes for deserialisation)

        model = super()._load_from(directory, meta)
        model.network_ = keras.saving.load_model(Path(directory) / "model.keras", compile=False, safe_mode=True)
        model.best_epoch_ = meta.get("best_epoch")
        return model


def _numpy_user_code(network, rows: sp.csr_matrix, users) -> np.ndarray | None:
    """The user codes from the network's NumPy path, or None when it has none (or none now, while
    training): a Keras call costs milliseconds of TensorFlow overhead per request, the NumPy
    products on a sparse row microseconds. Networks opt in with ``numpy_user_code(x, users=None)``."""
    method = getattr(network, "numpy_user_code", None)
    return None if method is None else method(rows, users)


def _numpy(tensor) -> np.ndarray:
    # TensorFlow's own conversion: numpy 2 warns about np.array(EagerTensor), which keras.ops uses
    if hasattr(tensor, "numpy"):
        return np.asarray(tensor.numpy())
    from keras import ops

    return ops.convert_to_numpy(tensor)


class _MultAutoencoderRecommender(_KerasRecommender):
    """Mult-VAE and Mult-DAE: one network, variational or not."""

    _variational = True

    def _validate_params(self) -> None:
        _check("hidden_dim", self.hidden_dim, "int", low=0)
        _check("latent_dim", self.latent_dim, "int", low=1)
        super()._validate_params()

    def _build_network(self, n_users: int, n_items: int):
        from ..models.vae import MultinomialAutoencoder

        network = MultinomialAutoencoder(
            n_items, hidden_dim=self.hidden_dim, latent_dim=self.latent_dim, variational=self._variational,
            dropout=self.dropout, weight_decay=self.weight_decay, seed=self.seed)
        network.build((None, n_items))
        return network


@register
class MultVAE(_MultAutoencoderRecommender):
    """Variational autoencoder with a multinomial likelihood for implicit feedback (Liang et al., 2018).

    Each user's interaction row is L2-normalised, dropped out and encoded to a Gaussian code
    (``[I-600-200-600-I]``, tanh); the decoder's softmax over items is trained to put mass on the
    user's items, with a KL term whose weight ``beta`` is annealed from 0 to ``beta_cap``.
    Training runs through ``keras.Model.fit`` on shuffled batches of sparse user rows and, given
    ``valid``, keeps the weights of the epoch with the best validation NDCG@100.

    The user code is the decoder's last hidden activation at the code's mean (no dropout, no
    sampling) and the item code is the output layer's kernel column plus its bias, so the score
    ``h_u · W_i + b_i`` is the item's logit. Users unseen at fit time are folded in by encoding
    their history: nothing is retrained.

    Parameters
    ----------
    hidden_dim : int, default 600
        Width of the hidden tanh layer of the encoder and of the decoder.
    latent_dim : int, default 200
        Width of the Gaussian code.
    dropout : float, default 0.5
        Dropout rate on the normalised input during training.
    beta_cap : float, default 1.0
        Largest weight of the KL term. The paper caps it at 0.2 on its larger data sets; on
        MovieLens-100K (protocol A1 validation split) a cap of 1.0 reached over all ``epochs``
        did better: early stopping then picks ``beta`` around 0.5.
    anneal_steps : int, optional
        Updates over which ``beta`` rises linearly from 0 to ``beta_cap``; by default the number
        of updates in ``epochs`` epochs.
    weight_decay : float, default 0.0
        L2 penalty ``weight_decay * sum(w ** 2)`` on every kernel.
    learning_rate : float, default 1e-3
        Adam's step size.
    epochs : int, default 200
        Most passes over the training users.
    batch_size : int, default 500
        Users per update.
    patience : int or None, default 50
        With ``valid``, stop after this many epochs without a better validation NDCG@100 (the
        best epoch's weights are kept either way); None trains all ``epochs``.
    seed : int, default 0
        Seeds weights, dropout, sampling and shuffling: same seed and data, same model on a machine.
    verbose : int, default 0
        Keras' progress output: 0 silent, 1 progress bar, 2 one line per epoch.

    Attributes
    ----------
    network_ : aerec.models.vae.MultinomialAutoencoder
        The trained Keras model.
    history_ : dict of lists
        Per epoch: ``loss``, ``beta``, ``val_ndcg@100`` (with ``valid``), ``train_seconds``; and ``best_epoch``.
    best_epoch_ : int
        Index of the epoch whose weights were kept.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": ["a", "b", "a", "c", "b", "c"]})
    >>> model = MultVAE(hidden_dim=8, latent_dim=4, epochs=3).fit(df)
    >>> model.recommend([1], k=1)["item"].tolist()
    ['c']
    """

    _variational = True

    def __init__(self, hidden_dim: int = 600, latent_dim: int = 200, dropout: float = 0.5, beta_cap: float = 1.0,
                 anneal_steps: int | None = None, weight_decay: float = 0.0, learning_rate: float = 1e-3,
                 epochs: int = 200, batch_size: int = 500, patience: int | None = 50, seed: int = 0,
                 verbose: int = 0):
        self.hidden_dim = hidden_dim
        self.latent_dim = latent_dim
        self.dropout = dropout
        self.beta_cap = beta_cap
        self.anneal_steps = anneal_steps
        self.weight_decay = weight_decay
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.seed = seed
        self.verbose = verbose

    def _validate_params(self) -> None:
        super()._validate_params()
        _check("beta_cap", self.beta_cap, "real", low=0)
        _check("anneal_steps", self.anneal_steps, "int", low=0, none_ok=True)

    def _callbacks(self, steps_per_epoch: int) -> list:
        from ..models.callbacks import KLAnnealing

        steps = self.anneal_steps if self.anneal_steps is not None else self.epochs * steps_per_epoch
        return [KLAnnealing(cap=self.beta_cap, steps=steps)]


@register
class MultDAE(_MultAutoencoderRecommender):
    """Denoising autoencoder with a multinomial likelihood for implicit feedback (Liang et al., 2018).

    Mult-VAE without the variational part: the dropped-out, L2-normalised interaction row is
    encoded to a deterministic tanh code and decoded to a softmax over items, with L2 weight
    decay. By default the network is ``[I-200-I]`` (the shape of the authors' Mult-DAE example);
    ``hidden_dim=600`` gives ``[I-600-200-600-I]``. Training, validation, codes (``h_u · W_i + b_i``
    is the item's logit; without hidden layers ``h_u`` is the code itself), fold-in and saving are
    as in :class:`MultVAE`.

    The defaults were chosen on the validation split of MovieLens-100K protocol A1 (seed 0): the
    shallow network with light weight decay and a larger step beat ``[I-600-200-600-I]`` with
    ``weight_decay=0.01``.

    Parameters
    ----------
    hidden_dim : int, default 0
        Width of the hidden tanh layer of the encoder and of the decoder; 0 for none.
    latent_dim : int, default 200
        Width of the code.
    dropout : float, default 0.5
        Dropout rate on the normalised input during training.
    weight_decay : float, default 0.001
        L2 penalty ``weight_decay * sum(w ** 2)`` on every kernel (λ of the paper).
    learning_rate : float, default 3e-3
        Adam's step size.
    epochs : int, default 200
        Most passes over the training users.
    batch_size : int, default 500
        Users per update.
    patience : int or None, default 50
        With ``valid``, stop after this many epochs without a better validation NDCG@100 (the
        best epoch's weights are kept either way); None trains all ``epochs``.
    seed : int, default 0
        Seeds weights, dropout and shuffling.
    verbose : int, default 0
        Keras' progress output: 0 silent, 1 progress bar, 2 one line per epoch.

    Attributes
    ----------
    network_ : aerec.models.vae.MultinomialAutoencoder
        The trained Keras model (``variational=False``).
    history_ : dict of lists
        Per epoch: ``loss``, ``val_ndcg@100`` (with ``valid``), ``train_seconds``; and ``best_epoch``.
    best_epoch_ : int
        Index of the epoch whose weights were kept.

    Examples
    --------
    >>> import pandas as pd
    >>> df = pd.DataFrame({"user": [1, 1, 2, 2, 3, 3], "item": ["a", "b", "a", "c", "b", "c"]})
    >>> model = MultDAE(hidden_dim=8, latent_dim=4, epochs=3).fit(df)
    >>> model.recommend([1], k=1)["item"].tolist()
    ['c']
    """

    _variational = False

    def __init__(self, hidden_dim: int = 0, latent_dim: int = 200, dropout: float = 0.5,
                 weight_decay: float = 0.001, learning_rate: float = 3e-3, epochs: int = 200, batch_size: int = 500,
                 patience: int | None = 50, seed: int = 0, verbose: int = 0):
        self.hidden_dim = hidden_dim
        self.latent_dim = latent_dim
        self.dropout = dropout
        self.weight_decay = weight_decay
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.batch_size = batch_size
        self.patience = patience
        self.seed = seed
        self.verbose = verbose
