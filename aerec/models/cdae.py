"""`CollaborativeDenoisingAutoencoder`: CDAE of Wu et al. (2016) as a Keras model.

``h_u = sigmoid(W' · dropout(x_u) + V_u + b)`` with a learned offset ``V_u`` per training user
(zero for users folded in after training), and one logit per item ``h_u · W_i + b_i``. The loss is
the logistic (binary cross-entropy) loss over every item of the user's row, summed over items and
averaged over users: for catalogues of thousands of items scoring all of them costs no more than
the paper's negative sampling. Weight decay is ``weight_decay * sum(w ** 2)`` on the kernels and
the user offsets.
"""
from __future__ import annotations

import keras
import numpy as np
from keras import layers, ops

from .vae import NumpyInference, numpy_rows

__all__ = ["CollaborativeDenoisingAutoencoder"]


@keras.saving.register_keras_serializable(package="aerec")
class CollaborativeDenoisingAutoencoder(NumpyInference, keras.Model):
    """Denoising autoencoder of interaction rows with a per-user input offset (CDAE).

    Called on ``(x, users)``: ``x`` the dense interaction rows, ``users`` their integer user
    indices (``-1`` for a user without an offset).

    Parameters
    ----------
    n_items, n_users : int
        Catalogue size and number of users with a learned offset.
    hidden_dim : int, default 50
        Width of the code ``h_u``.
    dropout : float, default 0.5
        Corruption: dropout rate on the input rows in training.
    weight_decay : float, default 0.0
        L2 penalty on the kernels and the user offsets.
    seed : int, optional
        Seed of the initial weights and the dropout masks.

    Examples
    --------
    >>> import numpy as np
    >>> net = CollaborativeDenoisingAutoencoder(n_items=5, n_users=3, hidden_dim=4, seed=0)
    >>> x, users = np.eye(5, dtype="float32")[:2], np.array([0, -1], dtype="int32")
    >>> tuple(net((x, users)).shape), tuple(net.user_code(x, users).shape)
    ((2, 5), (2, 4))
    """

    def __init__(self, n_items: int, n_users: int, hidden_dim: int = 50, dropout: float = 0.5,
                 weight_decay: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_items = int(n_items)
        self.n_users = int(n_users)
        self.hidden_dim = int(hidden_dim)
        self.dropout_rate = float(dropout)
        self.weight_decay = float(weight_decay)
        self.seed = seed
        reg = keras.regularizers.L2(self.weight_decay) if self.weight_decay > 0 else None

        def seeded(j):
            return None if seed is None else seed + j

        self.input_dropout = layers.Dropout(self.dropout_rate, seed=seed, name="input_dropout")
        self.encoder = layers.Dense(self.hidden_dim, name="encoder", kernel_regularizer=reg,
                                    kernel_initializer=keras.initializers.GlorotUniform(seed=seeded(1)))
        self.user_offset = layers.Embedding(self.n_users, self.hidden_dim, name="user_offset",
                                            embeddings_regularizer=reg,
                                            embeddings_initializer=keras.initializers.RandomNormal(
                                                stddev=0.01, seed=seeded(2)))
        self.output_layer = layers.Dense(self.n_items, name="item_logits", kernel_regularizer=reg,
                                         kernel_initializer=keras.initializers.GlorotUniform(seed=seeded(3)))

    @property
    def code_dim(self) -> int:
        return self.hidden_dim

    def build(self, input_shape=None):
        self.encoder.build((None, self.n_items))
        self.user_offset.build((None,))
        self.output_layer.build((None, self.hidden_dim))
        self.built = True

    def user_code(self, x, users, training=False):
        """``h_u`` of each row; users with index -1 get no offset."""
        x = self.input_dropout(ops.convert_to_tensor(x, dtype="float32"), training=training)
        users = ops.convert_to_tensor(users, dtype="int32")
        known = ops.expand_dims(ops.cast(users >= 0, "float32"), -1)
        offset = self.user_offset(ops.maximum(users, 0)) * known
        return ops.sigmoid(self.encoder(x) + offset)

    def _numpy_weight_arrays(self) -> dict:
        return {"encoder_kernel": ops.convert_to_numpy(self.encoder.kernel),
                "encoder_bias": ops.convert_to_numpy(self.encoder.bias),
                "user_offset": ops.convert_to_numpy(self.user_offset.embeddings)}

    def numpy_user_code(self, x, users=None):
        """:meth:`user_code` in NumPy (equal up to float32 rounding), or None while the network trains.

        ``x`` holds dense or scipy sparse interaction rows, ``users`` their user indices (-1, or
        None for all rows, for users without an offset).
        """
        from scipy.special import expit

        w = self._numpy_weights()
        if w is None:
            return None
        x = numpy_rows(x)
        h = np.asarray(x @ w["encoder_kernel"]) + w["encoder_bias"]
        if users is not None:
            users = np.asarray(users, dtype=np.int64)
            known = users >= 0
            h[known] += w["user_offset"][users[known]]
        return expit(h).astype(np.float32, copy=False)

    def call(self, inputs, training=False):
        x, users = inputs
        return self.output_layer(self.user_code(x, users, training=training))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        rows = x[0]
        per_item = ops.binary_crossentropy(rows, y_pred, from_logits=True)
        loss = ops.mean(ops.sum(per_item, axis=-1))
        for extra in self.losses:
            loss = loss + ops.cast(extra, "float32")
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(n_items=self.n_items, n_users=self.n_users, hidden_dim=self.hidden_dim,
                      dropout=self.dropout_rate, weight_decay=self.weight_decay, seed=self.seed)
        return config
