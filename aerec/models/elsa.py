"""`ShallowLowRankAutoencoder`: ELSA (Vančura, Alves, Kasalický and Kordík, RecSys 2022) as a Keras model.

EASE's item x item matrix ``B`` is replaced by a low-rank one, ``B = A Aᵀ - I``, where ``A``
(items x ``code_dim``) has rows of unit length. The score of a history ``x`` is
``x A Aᵀ - x``: with binary ``x`` the ``-x`` removes exactly each seen item's own contribution
``|a_i|² = 1``, the zero diagonal EASE gets from its constraint. Memory is ``n_items x code_dim``
instead of ``n_items²``, so catalogues EASE cannot hold fit.

Training is Adam on the loss of the paper: the squared distance between the L2-normalised
prediction and the L2-normalised input row, summed over items and averaged over the users of a
batch. The user code is ``x A`` (``code_dim`` numbers) and the item code is the row ``a_i``:
``score = h_u · a_i``, bias 0, so an inner-product index over ``A`` answers top-K exactly for
unseen items (seen items are excluded, where the ``-x`` would apply).
"""
from __future__ import annotations

import keras
import numpy as np
from keras import ops

from .vae import NumpyInference, numpy_rows

__all__ = ["ShallowLowRankAutoencoder", "normalized_squared_error"]


def normalized_squared_error(x, prediction):
    """Mean over rows of ``|x / |x| - p / |p||²``: ELSA's loss (scale-free in both the input and the prediction)."""
    def unit(v):
        return v / ops.maximum(ops.sqrt(ops.sum(ops.square(v), axis=-1, keepdims=True)), 1e-12)

    return ops.mean(ops.sum(ops.square(unit(x) - unit(prediction)), axis=-1))


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
        a = self.item_vectors()
        return ops.matmul(ops.matmul(x, a), ops.transpose(a)) - x

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
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
