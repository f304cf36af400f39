"""`ShallowLowRankAutoencoder`: ELSA (Vančura, Alves, Kasalický and Kordík, RecSys 2022) as a Keras model.

EASE's item x item matrix ``B`` is replaced by a low-rank one, ``B = A Aᵀ - I``, where ``A``
(items x ``code_dim``) has rows of unit length. The score of a history ``x`` is
``x A Aᵀ - x``: with binary ``x`` the ``-x`` removes exactly each seen item's own contribution
``|a_i|² = 1``, the zero diagonal EASE gets from its constraint. Memory is ``n_items x code_dim``
instead of ``n_items²``, so catalogues EASE cannot hold fit.

Training is Adam on the loss of the paper: the squared distance between the L2-normalised
prediction and the L2-normalised input row, summed over items and averaged over the users of a
batch. The prediction is never made: with ``z = x A`` and ``G = AᵀA`` (``code_dim²``), ``x·p = |z|² -
|x|²`` and ``|p|² = z G zᵀ - 2|z|² + |x|²`` give the same loss from the codes, read from the
nonzeros of a sparse batch (:func:`low_rank_normalized_squared_error`). A step costs
``n_items x code_dim²`` for ``G`` instead of ``batch x n_items x code_dim`` twice, and no batch is
ever dense over the catalogue. The user code is ``x A`` (``code_dim`` numbers) and the item code is the row ``a_i``:
``score = h_u · a_i``, bias 0, so an inner-product index over ``A`` answers top-K exactly for
unseen items (seen items are excluded, where the ``-x`` would apply).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .vae import NumpyInference, numpy_rows

__all__ = ["ShallowLowRankAutoencoder", "normalized_squared_error", "low_rank_normalized_squared_error"]


def normalized_squared_error(x, prediction):
    """Mean over rows of ``|x / |x| - p / |p||²``: ELSA's loss (scale-free in both the input and the prediction)."""
    def unit(v):
        return v / ops.maximum(ops.sqrt(ops.sum(ops.square(v), axis=-1, keepdims=True)), 1e-12)

    return ops.mean(ops.sum(ops.square(unit(x) - unit(prediction)), axis=-1))


def low_rank_normalized_squared_error(x_squared_norms, z, a):
    """:func:`normalized_squared_error` of ``x`` and ``p = z aᵀ - x`` (``z = x a``), without ``p``.

    ``x_squared_norms`` (B,) are ``|x|²``, ``z`` (B, d) the codes, ``a`` (I, d) the item matrix.
    With ``x·p = |z|² - |x|²`` and ``|p|² = z (aᵀa) zᵀ - 2|z|² + |x|²`` the loss of a row is
    ``|x|²/|x|² + |p|²/|p|² - 2 x·p / (|x| |p|)``, each norm floored at 1e-12 as in the dense form
    (an empty row costs 0). Equal to the dense loss up to float32 rounding (tested).
    """
    zz = ops.sum(ops.square(z), axis=-1)
    zgz = ops.sum(ops.matmul(z, ops.matmul(ops.transpose(a), a)) * z, axis=-1)
    pp = ops.maximum(zgz - 2.0 * zz + x_squared_norms, 0.0)
    xn = ops.maximum(ops.sqrt(x_squared_norms), 1e-12)
    pn = ops.maximum(ops.sqrt(pp), 1e-12)
    xp = zz - x_squared_norms
    return ops.mean(x_squared_norms / ops.square(xn) + pp / ops.square(pn) - 2.0 * xp / (xn * pn))


@keras.saving.register_keras_serializable(package="aerec")
class ShallowLowRankAutoencoder(NumpyInference, keras.Model):
    """ELSA's ``x -> x A Aᵀ - x`` with unit-length rows of ``A``.

    Parameters
    ----------
    n_items : int
        Rows of ``A``: the width of the input and the output.
    code_dim : int, default 256
        Columns of ``A``: the rank of ``B = A Aᵀ - I``.
    seed : int, optional
        Seed of the initial ``A`` (He-uniform, as in the authors' code).

    Examples
    --------
    >>> import numpy as np
    >>> net = ShallowLowRankAutoencoder(n_items=5, code_dim=2, seed=0)
    >>> scores = net(np.eye(5, dtype="float32")[:1])
    >>> tuple(scores.shape), round(float(np.linalg.norm(net.item_vectors()[0])), 5)
    ((1, 5), 1.0)
    """

    def __init__(self, n_items: int, code_dim: int = 256, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_items, self.code_dim, self.seed = int(n_items), int(code_dim), seed
        self.items = self.add_weight(shape=(self.n_items, self.code_dim), name="items",
                                     initializer=keras.initializers.HeUniform(seed=seed))

    def build(self, input_shape=None):
        self.built = True

    def item_vectors(self):
        """``A`` with unit-length rows: the item codes."""
        return self.items / ops.maximum(ops.sqrt(ops.sum(ops.square(self.items), axis=-1, keepdims=True)), 1e-12)

    def user_code(self, x):
        """``h_u = x A``."""
        return ops.matmul(x, self.item_vectors())

    def call(self, x, training=False):
        import tensorflow as tf

        a = self.item_vectors()
        if isinstance(x, tf.SparseTensor):  # a training batch: the loss needs only the codes x A
            return tf.sparse.sparse_dense_matmul(x, a)
        return ops.matmul(ops.matmul(x, a), ops.transpose(a)) - x

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        import tensorflow as tf

        if isinstance(x, tf.SparseTensor):
            norms = tf.math.unsorted_segment_sum(tf.square(x.values), x.indices[:, 0], x.dense_shape[0])
            return low_rank_normalized_squared_error(norms, y_pred, self.item_vectors())
        return normalized_squared_error(x, y_pred)

    _numpy_mirrors = ("user_code", "item_vectors")

    def _numpy_weight_arrays(self) -> dict:
        return {"items": np.asarray(ops.convert_to_numpy(self.item_vectors()))}

    def numpy_user_code(self, x, users=None):
        """:meth:`user_code` in NumPy on a sparse row (its items' rows of ``A`` summed), or None while training."""
        w = self._numpy_weights()
        if w is None:
            return None
        return np.asarray(numpy_rows(x) @ w["items"], dtype=np.float32)

    def get_config(self):
        config = super().get_config()
        config.update(n_items=self.n_items, code_dim=self.code_dim, seed=self.seed)
        return config
