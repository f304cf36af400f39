"""Training callbacks of the aerec Keras models: KL annealing and validation on a ranking metric.

Early stopping itself is :class:`keras.callbacks.EarlyStopping` monitoring the log entry that
:class:`RankingValidation` writes (``val_ndcg@100`` by default), with ``mode="max"`` and
``restore_best_weights=True``; :func:`early_stopping` builds that pair.
"""
from __future__ import annotations

import time
from typing import Callable

import keras

__all__ = ["KLAnnealing", "RankingValidation", "EpochTimer", "early_stopping"]


class KLAnnealing(keras.callbacks.Callback):
    """Raise the model's KL weight ``beta`` linearly with the number of updates, up to ``cap``.

    Before update ``t`` (counted from 0 over the whole ``fit``), ``beta = min(cap, cap * t / steps)``:
    it reaches ``cap`` after ``steps`` updates and stays there (Liang et al., 2018, anneal
    ``min(cap, t / total_anneal_steps)`` with ``total_anneal_steps = steps / cap``).

    Parameters
    ----------
    cap : float
        The largest ``beta``.
    steps : int
        Updates until ``beta`` reaches ``cap``; 0 sets ``beta = cap`` from the start.
    variable : str, default "beta"
        Name of the model attribute holding the weight (a non-trainable ``keras.Variable``).

    Examples
    --------
    >>> annealing = KLAnnealing(cap=0.2, steps=100)
    >>> annealing.value(50), annealing.value(1000)
    (0.1, 0.2)
    """

    def __init__(self, cap: float, steps: int, variable: str = "beta"):
        super().__init__()
        self.cap = float(cap)
        self.steps = int(steps)
        self.variable = variable
        self.updates = 0

    def value(self, updates: int) -> float:
        if self.steps <= 0:
            return self.cap
        return min(self.cap, self.cap * updates / self.steps)

    def on_train_begin(self, logs=None):
        self.updates = 0

    def on_train_batch_begin(self, batch, logs=None):
        getattr(self.model, self.variable).assign(self.value(self.updates))
        self.updates += 1

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs[self.variable] = float(getattr(self.model, self.variable).numpy())


class RankingValidation(keras.callbacks.Callback):
    """Write a validation ranking metric into the epoch logs, for early stopping and the history.

    Parameters
    ----------
    score : callable
        ``score() -> float``, computed with the model's current weights (for example the mean
        NDCG@100 of validation users, seen items excluded).
    name : str, default "val_ndcg@100"
        The log entry to write.
    every : int, default 1
        Compute ``score`` at epochs 0, ``every``, 2·``every``, ... (and the last one); the epochs
        in between carry the last value, which :class:`keras.callbacks.EarlyStopping` counts as
        epochs without improvement, so its patience stays a number of epochs and the best
        weights are those of a checked epoch. A number, not a clock: the same seed and data give
        the same checks, so the same model, however loaded the machine.

    Attributes
    ----------
    checked : list of int
        The epochs at which ``score`` was computed.
    seconds : list of float
        Per epoch, the seconds spent computing ``score`` (0 where the value was carried).
    """

    def __init__(self, score: Callable[[], float], name: str = "val_ndcg@100", every: int = 1):
        super().__init__()
        self.score = score
        self.name = name
        self.every = max(1, int(every))
        self.checked: list[int] = []
        self.seconds: list[float] = []
        self._last, self._epochs = None, None

    def on_train_begin(self, logs=None):
        self.checked, self.seconds, self._last = [], [], None
        self._epochs = (self.params or {}).get("epochs")

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        cost = 0.0
        if epoch % self.every == 0 or self._last is None or epoch + 1 == self._epochs:
            begin = time.perf_counter()
            self._last = float(self.score())
            cost = time.perf_counter() - begin
            self.checked.append(epoch)
        self.seconds.append(cost)
        logs[self.name] = self._last


class EpochTimer(keras.callbacks.Callback):
    """Wall-clock seconds of each epoch's training steps, in ``seconds``.

    Put it first in the callback list: it stops the clock before later callbacks' ``on_epoch_end``
    (validation) run.
    """

    def __init__(self):
        super().__init__()
        self.seconds: list[float] = []
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)


def early_stopping(score: Callable[[], float], patience: int, name: str = "val_ndcg@100",
                   verbose: int = 0, every: int = 1) -> list[keras.callbacks.Callback]:
    """``[RankingValidation, EarlyStopping]``: stop when ``score`` has not improved for ``patience``
    epochs and restore the weights of the best epoch (also when training runs to the last epoch).
    ``score`` is computed every ``every`` epochs (see :class:`RankingValidation`), at least every
    ``min(10, patience // 5)``."""
    return [
        RankingValidation(score, name, every=min(every, max(1, min(10, patience // 5)))),
        keras.callbacks.EarlyStopping(monitor=name, mode="max", patience=patience, restore_best_weights=True,
                                      verbose=verbose),
    ]
