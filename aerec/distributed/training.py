"""Training across workers: a Keras recommender fitted data-parallel by Ray actors under
``tf.distribute.MultiWorkerMirroredStrategy``.

:func:`fit` starts ``num_workers`` Ray actors, gives each its ``TF_CONFIG`` (the cluster's addresses and
its own index) and has each run the estimator's own ``fit`` on the same frame. Each worker prepares
the same id maps and matrices (the preparation is deterministic), builds the network and its optimizer
under the strategy's scope, and trains on its own part of the users (``index::num_workers``) with
``ceil(batch_size / num_workers)`` users per step, so one synchronous update still averages the
gradients of ``batch_size`` users and an epoch has as many updates as in one process. The step is a
loop of this module's (:class:`MultiWorkerTraining`): ``strategy.run`` over a distributed ``tf.data``
dataset, the network's own ``compute_loss`` scaled by ``1 / num_workers``, the gradients summed across
workers by the Keras optimizer. ``keras.Model.fit`` is not used: under this strategy it fails
(keras-team/keras#20585).

The callbacks run as in ``fit``, through :class:`keras.callbacks.CallbackList`: KL annealing sets
``beta`` before each step on every worker; each early-stopping check scores the worker's part of the
validation users and the sums are all-reduced, so every worker gets the same NDCG@100, takes the same
decision and restores the same best weights. The first worker (the chief) saves the fitted estimator
and the driver reads it back into the estimator it was given.

Ray Train's own ``TensorflowTrainer`` is not used: it sets ``TF_USE_LEGACY_KERAS=1`` on its workers (Keras 2).
"""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np

from ..exceptions import InvalidParameterError, WorkersDivergedError
from ._ray import import_ray

__all__ = ["fit", "MultiWorkerTraining"]


class MultiWorkerTraining:
    """The training loop of a :class:`~aerec.recommend.keras_base.KerasRecommender` on one worker of a
    ``tf.distribute.MultiWorkerMirroredStrategy`` (the same interface as
    :class:`~aerec.recommend.keras_base.LocalTraining`).

    Parameters
    ----------
    strategy : tf.distribute.MultiWorkerMirroredStrategy
        Made from this worker's ``TF_CONFIG``.
    """

    def __init__(self, strategy):
        self.strategy = strategy
        self.index = int(strategy.cluster_resolver.task_id or 0)
        self.workers = int(strategy.num_replicas_in_sync)
        self.is_chief = self.index == 0
        self._sum = None

    def scope(self):
        return self.strategy.scope()

    def all_sum(self, values) -> np.ndarray:
        """The element-wise sum of ``values`` over the workers (every worker must call it at the same point)."""
        import tensorflow as tf

        if self._sum is None:
            strategy = self.strategy

            @tf.function
            def total(v):
                return strategy.reduce("SUM", strategy.run(tf.identity, args=(v,)), axis=None)

            self._sum = total
        return np.asarray(self._sum(tf.constant(values, tf.float64)))

    def check(self, estimator, checked):
        """An early-stopping score: this worker's part of the checked users (``index::workers``), the
        NDCG@100 sums and counts all-reduced, so every worker gets the mean over all of them."""
        from ..recommend.base import ValidationData

        part = slice(self.index, None, self.workers)
        mine = ValidationData(checked.inputs[part], checked.held_out[part],
                              None if checked.user_index is None else checked.user_index[part])
        counted = int((np.diff(mine.held_out.indptr) > 0).sum())  # the users validation_metrics averages over

        def score() -> float:
            mean = estimator._check_score(mine) if counted else 0.0
            total, count = self.all_sum([mean * counted, counted])
            return float(total / count)

        return score

    def _step(self, network):
        """One synchronous update: each worker's batch through the network's own loss, scaled so that the
        optimizer's all-reduced sum is the mean gradient; returns (loss x users, users) summed over the
        workers (the epoch's loss is their ratio, as ``fit`` weighs its batches by their size)."""
        import keras
        import tensorflow as tf

        strategy, workers = self.strategy, self.workers

        def replica_step(data):
            x, _, _ = keras.utils.unpack_x_y_sample_weight(data)
            with tf.GradientTape() as tape:
                loss = network.compute_loss(x=x, y_pred=network(x, training=True), training=True)
                scaled = loss / workers
            weights = network.trainable_weights
            network.optimizer.apply_gradients(zip(tape.gradient(scaled, weights), weights))
            users = tf.cast(tf.shape(next(i for i in tf.nest.flatten(x) if i is not None))[0], tf.float32)
            return tf.stack([loss * users, users])

        @tf.function
        def step(batches):
            return strategy.reduce("SUM", strategy.run(replica_step, args=(next(batches),)), axis=None)

        return step

    def run(self, estimator, matrix, *, epochs: int, steps_per_epoch: int, callbacks: list) -> dict:
        import keras

        network = estimator.network_
        per_worker = -(-estimator.batch_size // self.workers)

        def dataset(context):
            return estimator._dataset(matrix, shard=(context.input_pipeline_id, context.num_input_pipelines),
                                      batch_size=per_worker)

        batches = iter(self.strategy.distribute_datasets_from_function(dataset))
        step = self._step(network)
        verbose = estimator.verbose if self.is_chief else 0
        recorded = keras.callbacks.History()  # last: it sees the logs the other callbacks wrote into
        callback_list = keras.callbacks.CallbackList([*callbacks, recorded], add_history=False,
                                                     add_progbar=bool(verbose), model=network, verbose=verbose,
                                                     epochs=epochs, steps=steps_per_epoch)
        network.stop_training = False
        steps_context = getattr(network, "training_steps", contextlib.nullcontext)
        with steps_context():
            callback_list.on_train_begin()
            logs = {}
            for epoch in range(epochs):
                callback_list.on_epoch_begin(epoch)
                total = np.zeros(2)
                for batch in range(steps_per_epoch):
                    callback_list.on_train_batch_begin(batch)
                    total += np.asarray(step(batches), dtype=np.float64)
                    callback_list.on_train_batch_end(batch, {"loss": total[0] / total[1]})
                logs = {"loss": float(total[0] / total[1])}
                callback_list.on_epoch_end(epoch, logs)
                if network.stop_training:
                    break
            callback_list.on_train_end(logs)
        return recorded.history


class _TrainingWorker:
    """One Ray actor of :func:`fit`: its address for the cluster spec, then the estimator's ``fit`` under the strategy."""

    def __init__(self, threads: int):
        self.threads = max(1, int(threads))

    def address(self) -> str:
        import socket

        import ray

        with socket.socket() as probe:  # a free port for TensorFlow's gRPC server
            probe.bind(("", 0))
            port = probe.getsockname()[1]
        return f"{ray.util.get_node_ip_address()}:{port}"

    def fit(self, estimator, cluster: list[str], index: int, train, fit_params: dict):
        os.environ["TF_CONFIG"] = json.dumps({"cluster": {"worker": cluster}, "task": {"type": "worker", "index": index}})
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(self.threads)
        tf.config.threading.set_inter_op_parallelism_threads(self.threads)
        estimator._training = MultiWorkerTraining(tf.distribute.MultiWorkerMirroredStrategy())
        try:
            estimator.fit(train, **fit_params)
        finally:
            del estimator._training
        sums = [float(np.sum(w, dtype=np.float64)) for w in estimator.network_.get_weights()]
        if index != 0:
            return sums, None
        with tempfile.TemporaryDirectory() as tmp:  # the chief's bundle, sent back as its files
            estimator.save(Path(tmp) / "bundle")
            root = Path(tmp) / "bundle"
            return sums, {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def fit(estimator, train, *, num_workers: int = 2, cpus_per_worker: float | None = None, **fit_params):
    """Fit a Keras recommender across ``num_workers`` Ray workers (synchronous data parallelism).

    Parameters
    ----------
    estimator : MultVAE, MultDAE, CDAE or ELSA
        Unfitted or fitted (then refitted); it is fitted in place and returned, as ``estimator.fit``
        would. RecVAE (two optimizers) and SequentialDAE (its own loop) are refused.
    train : DataFrame
        The interactions, as for ``estimator.fit``; sent once to the object store, each worker reads it.
    num_workers : int, default 2
        Ray actors, one TensorFlow worker each. 1 runs the same loop on one worker.
    cpus_per_worker : float, optional
        CPUs each actor reserves (and TensorFlow's thread count, rounded down, at least 1). By
        default 1, or an equal share of the cluster's CPUs where it has fewer than ``num_workers``.
    **fit_params
        ``valid``, ``user``, ``item``, ``rating``, ``threshold``, ... as for ``estimator.fit``.

    Returns
    -------
    estimator
        Fitted: the chief worker's weights (every worker holds the same), ``history_`` and
        ``best_epoch_`` from its run.

    Raises
    ------
    InvalidParameterError
        A model this loop cannot train, or a bad ``num_workers`` (before any worker starts).
    WorkersDivergedError
        A worker's weights ended different from the chief's (the sums of its weight arrays are compared).
    Any error of ``estimator.fit``
        Raised by the first worker that fails (bad input names its column or row, as in process);
        the other workers are stopped.

    Examples
    --------
    >>> import aerec, aerec.distributed  # doctest: +SKIP
    >>> model = aerec.distributed.fit(aerec.MultVAE(), train, valid=valid, num_workers=2)  # doctest: +SKIP
    """
    from ..recommend.keras_base import KerasRecommender

    if not isinstance(estimator, KerasRecommender) or not estimator._trains_across_workers:
        raise InvalidParameterError(
            f"aerec.distributed.fit trains MultVAE, MultDAE, CDAE and ELSA, not {type(estimator).__name__}")
    if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 1:
        raise InvalidParameterError(f"num_workers must be a positive integer, got {num_workers!r}")
    estimator._validate_params()
    ray = import_ray()
    if cpus_per_worker is None:
        cpus_per_worker = min(1.0, float(ray.cluster_resources().get("CPU", 1)) / num_workers)
    worker_class = ray.remote(_TrainingWorker).options(num_cpus=cpus_per_worker, scheduling_strategy="SPREAD")
    workers = [worker_class.remote(int(cpus_per_worker)) for _ in range(num_workers)]
    try:
        cluster = ray.get([w.address.remote() for w in workers])
        train_ref, params_ref = ray.put(train), ray.put(fit_params)  # in the object store once, read by every worker
        fresh = type(estimator)(**estimator.get_params())  # the hyperparameters only: no fitted state to ship
        pending = [w.fit.remote(fresh, cluster, i, train_ref, params_ref) for i, w in enumerate(workers)]
        results = dict.fromkeys(pending)
        while not all(results.values()):  # the first failure is raised at once (the others would wait on it forever)
            done, _ = ray.wait([ref for ref, got in results.items() if got is None], num_returns=1)
            results[done[0]] = ray.get(done[0])
    finally:
        for w in workers:
            ray.kill(w)
    (chief_sums, files), *others = results.values()
    for index, (sums, _) in enumerate(others, start=1):
        if not np.allclose(sums, chief_sums, rtol=1e-5, atol=1e-6):
            raise WorkersDivergedError(f"worker {index}'s weights differ from the chief's after training "
                                       f"(sums of the weight arrays {sums} vs {chief_sums})")
    return _load_into(estimator, files)


def _load_into(estimator, files: dict):
    """Write the chief's bundle files, load them, and move the fitted state into ``estimator``."""
    from ..bundle import load

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "bundle"
        for name, data in files.items():
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            (root / name).write_bytes(data)
        fitted = load(root)
    estimator.__dict__.update(fitted.__dict__)
    return estimator
