"""Small Keras helpers the estimators share."""
from __future__ import annotations

__all__ = ["set_seed", "inference_copy"]


def set_seed(seed) -> None:
    """Seed Keras, TensorFlow, NumPy and Python's generators (nothing when ``seed`` is None)."""
    import keras

    if seed is not None:
        keras.utils.set_random_seed(int(seed))


def inference_copy(network, sample):
    """A fresh, uncompiled copy of a trained network (what is saved: no optimizer state), built by
    calling it on ``sample`` (an input it accepts, e.g. one row)."""
    copy = type(network).from_config(network.get_config())
    copy(sample)
    copy.set_weights(network.get_weights())
    return copy
