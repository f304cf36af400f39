"""`KerasRecommender`: what the Keras autoencoder recommenders share, written once."""
from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from ..params import Interval, Options
from .base import Recommender, ValidationData

__all__ = ["KerasRecommender", "LocalTraining"]

#: the training hyperparameters every Keras recommender documents alike ({training_parameters} in a docstring)
_TRAINING_PARAMETERS = """epochs : int, default {epochs}
        Most epochs (passes over the training users; RecVAE: cycles of encoder and decoder passes).
    batch_size : int, default {batch_size}
        Users per update.
    patience : int or None, default {patience}
        With ``valid``, stop after this many epochs without a better validation NDCG@100 (the
        best epoch's weights are kept either way); None trains all ``epochs``. Validation scores
        at most 5,000 validation users (a fixed sample) and costs at most about 20% of training:
        where as many users are checked as trained (small data), every 5th epoch is checked and
        the epochs between carry the last value in ``history_``.
    seed : int, default {seed}
        Seeds weights, dropout, sampling and shuffling: same seed and data, same model on a machine.
    verbose : int, default {verbose}
        Keras' progress output: 0 silent, 1 progress bar, 2 one line per epoch."""


class KerasRecommender(Recommender):
    """Base class of the Keras autoencoder recommenders: batches of sparse user rows, training through
    ``keras.Model.fit`` with early stopping on validation NDCG@100, codes from the output layer, saving.

    Hooks a subclass provides
    -------------------------
    ``network_class()`` (classmethod)
        The Keras model class (registered serialisable). It is imported here, when needed, so that
        ``import aerec`` does not start TensorFlow, and :func:`aerec.load` calls it to register the
        class before reading ``model.keras``: no list of network modules is kept anywhere.
    ``_build_network(n_users, n_items)``
        The built network: a Keras model with an ``output_layer`` (whose kernel and bias are the
        item codes ``W_i``, ``b_i``) and ``user_code(x)`` (``user_code(x, users)`` when
        ``with_user_index``); optionally ``numpy_user_code(rows, users)`` for a fast path.
    ``_callbacks(steps_per_epoch)``, ``_steps_per_epoch(batches_per_pass)`` (optional)
        Extra training callbacks (e.g. KL annealing) and updates per Keras epoch.

    The hyperparameters every subclass has (``dropout``, ``learning_rate``, ``epochs``,
    ``batch_size``, ``patience``, ``seed``, ``verbose``) are checked from
    ``_parameter_constraints``; a subclass adds its own with ``{**KerasRecommender._parameter_constraints, ...}``.
    """

    _parameter_constraints = {
        "dropout": [Interval("real", 0, 1, closed="left")],
        "learning_rate": [Interval("real", 0, None, closed="neither")],
        "epochs": [Interval("int", 1, None)],
        "batch_size": [Interval("int", 1, None)],
        "patience": [Interval("int", 1, None), None],
        "seed": [Interval("int", 0, None)],
        "verbose": [Options(0, 1, 2, False, True)],
    }

    #: the network also takes each row's user index (CDAE's per-user input); -1 for fold-in users
    with_user_index = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__doc__ and "{training_parameters}" in cls.__doc__:  # written once, with each class's defaults
            import inspect

            defaults = {p.name: p.default for p in inspect.signature(cls.__init__).parameters.values()}
            cls.__doc__ = cls.__doc__.replace("{training_parameters}", _TRAINING_PARAMETERS.format(**defaults))

    @classmethod
    def network_class(cls):
        """The Keras model class this recommender trains."""
        raise NotImplementedError

    def _build_network(self, n_users: int, n_items: int):
        raise NotImplementedError

    def _steps_per_epoch(self, batches_per_pass: int) -> int:
        """Updates in one Keras epoch (one pass over the users unless the model says otherwise)."""
        return batches_per_pass

    def _trained_share(self, n_items: int) -> float:
        """The share of the catalogue's output columns a training batch scores (1: the full softmax)."""
        return 1.0

    def _optimizer(self):
        """The Keras optimizer ``fit`` trains with: Adam at ``learning_rate``."""
        import keras

        return keras.optimizers.Adam(learning_rate=self.learning_rate)

    def _callbacks(self, steps_per_epoch: int) -> list:
        """The model's own training callbacks (e.g. KL annealing), run before validation."""
        return []

    # --- training --------------------------------------------------------------------------
    #: the network reads batches as ``tf.SparseTensor`` rather than dense rows
    _sparse_batches = False

    def _dataset(self, matrix: sp.csr_matrix, shard: tuple[int, int] | None = None, batch_size: int | None = None):
        """Endless shuffled batches of users as dense ``(batch, n_items)`` rows (``tf.SparseTensor`` when
        ``_sparse_batches``), gathered from the sparse matrix in the input pipeline: the whole users x
        items matrix is never dense. ``shard=(index, count)`` keeps the users ``index::count`` (one
        worker's part in training across workers), in batches of ``batch_size`` (default ``self.batch_size``)."""
        import tensorflow as tf

        from ..models.batches import dense_row_gather, sparse_row_gather

        n_users = matrix.shape[0]
        gather = (sparse_row_gather if self._sparse_batches else dense_row_gather)(matrix)

        def dense_rows(users):
            rows = gather(users)
            # a 1-tuple: Keras would read a pair as (x, y)
            return ((rows, tf.cast(users, tf.int32)),) if self.with_user_index else rows

        users = tf.data.Dataset.range(n_users)
        if shard is not None:
            users = users.shard(shard[1], shard[0])
        # repeated, so that fit keeps one iterator (instantiating the pipeline every epoch costs more
        # than an epoch of small data); each pass reshuffles
        return (users.shuffle(n_users, seed=self.seed, reshuffle_each_iteration=True)
                .batch(batch_size or self.batch_size)
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

    #: how ``fit`` runs the training loop: None for ``keras.Model.fit`` in this process; a worker of
    #: :func:`aerec.distributed.fit` sets its own (see :class:`LocalTraining` for what one provides)
    _training = None
    #: whether :func:`aerec.distributed.fit` can train this model across workers (one optimizer, the
    #: network's own ``compute_loss``: no custom ``train_step``)
    _trains_across_workers = True

    def _train(self, X, valid: ValidationData | None) -> None:
        import keras

        from ..models.callbacks import EpochTimer, early_stopping

        training = self._training or LocalTraining()
        keras.utils.set_random_seed(self.seed)
        n_users, n_items = X.shape
        with training.scope():
            self.network_ = self._build_network(n_users, n_items)
            # XLA and several steps per call were measured no faster here (A1: 2 updates per epoch)
            self.network_.compile(optimizer=self._optimizer(), jit_compile=False)
        steps_per_epoch = self._steps_per_epoch(-(-n_users // self.batch_size))

        timer = EpochTimer()
        callbacks = [timer] + self._callbacks(steps_per_epoch)
        if valid is not None:
            checked = self._early_stopping_sample(valid)
            every = self._validation_every(checked.inputs.shape[0], X.shape[0], self._trained_share(n_items))
            callbacks += early_stopping(training.check(self, checked), patience=self.patience or self.epochs + 1,
                                        every=every, verbose=int(bool(self.verbose)) if training.is_chief else 0)
        logs = training.run(self, X.matrix, epochs=self.epochs, steps_per_epoch=steps_per_epoch, callbacks=callbacks)
        self.history_ = {name: [float(v) for v in values] for name, values in logs.items()}
        self.history_["train_seconds"] = timer.seconds
        if valid is not None:
            self.history_["valid_seconds"] = callbacks[-2].seconds  # early_stopping's RankingValidation
            self.best_epoch_ = int(np.argmax(self.history_["val_ndcg@100"]))
        else:
            self.best_epoch_ = len(self.history_["loss"]) - 1
        self.history_["best_epoch"] = [self.best_epoch_]

    def _check_score(self, checked: ValidationData) -> float:
        """An early-stopping check's NDCG@100: between steps the weights hold still, so networks with a
        NumPy path score through it (sparse rows, no dense batch through TensorFlow: half the check's
        time on a 21,640-item catalogue)."""
        between_steps = getattr(self.network_, "between_steps", None)
        with between_steps() if between_steps is not None else contextlib.nullcontext():
            return self.validation_metrics(checked, ["ndcg@100"])["ndcg@100"]

    # --- codes ---------------------------------------------------------------------------
    def _user_vectors(self, rows: sp.csr_matrix, user_index) -> np.ndarray:
        users = None
        if self.with_user_index:
            users = np.full(rows.shape[0], -1, np.int32) if user_index is None else np.asarray(user_index, np.int32)
        fast = _numpy_user_code(self.network_, rows, users)
        if fast is not None:
            return fast
        dense = np.asarray(rows.toarray(), dtype=np.float32)
        if not self.with_user_index:
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

        cls.network_class()  # importing it registers it for deserialisation
        model = super()._load_from(directory, meta)
        model.network_ = keras.saving.load_model(Path(directory) / "model.keras", compile=False, safe_mode=True)
        model.best_epoch_ = meta.get("best_epoch")
        return model


class LocalTraining:
    """The training loop of :class:`KerasRecommender` in this process: ``keras.Model.fit``.

    What a training loop provides (:func:`aerec.distributed.fit`'s workers run another one):
    ``scope()``, within which the network and its optimizer are built; ``check(estimator, checked)``,
    the early-stopping score function; ``run(estimator, matrix, epochs=, steps_per_epoch=, callbacks=)``,
    which trains and returns the history (``{name: [value per epoch]}``); ``is_chief``, whether this
    process reports progress.
    """

    is_chief = True

    def scope(self):
        return contextlib.nullcontext()

    def check(self, estimator: KerasRecommender, checked: ValidationData):
        return functools.partial(estimator._check_score, checked)

    def run(self, estimator: KerasRecommender, matrix: sp.csr_matrix, *, epochs: int, steps_per_epoch: int,
            callbacks: list) -> dict:
        history = estimator.network_.fit(estimator._dataset(matrix), epochs=epochs, steps_per_epoch=steps_per_epoch,
                                         callbacks=callbacks, verbose=estimator.verbose, shuffle=False)
        return history.history


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
