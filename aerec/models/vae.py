"""`MultinomialAutoencoder`: Mult-VAE and Mult-DAE of Liang et al. (2018) as one Keras model.

Architecture ``[I -> hidden -> latent -> hidden -> I]`` (``[I-600-200-600-I]`` by default): the
input row is L2-normalised and dropped out, hidden layers are tanh, the output layer gives one
logit per item, and the loss is the multinomial log-likelihood of the user's items under the
softmax of the logits. The variational model adds ``beta * KL(q(z|x) || N(0, I))``, with ``beta``
held in a non-trainable variable that :class:`aerec.models.callbacks.KLAnnealing` raises during
training; the denoising model has a deterministic tanh code and no KL term. Weight decay is an
L2 penalty ``weight_decay * sum(w ** 2)`` on every kernel (as in the authors' code).

The last hidden activation of the decoder, :meth:`MultinomialAutoencoder.user_code`, dotted with
a column of the output kernel plus its bias is the item's logit: that is what makes an inner
product index over the output layer return the model's own ranking.
"""
from __future__ import annotations

import keras
from keras import layers, ops

__all__ = ["MultinomialAutoencoder", "multinomial_nll"]


def multinomial_nll(x, logits):
    """Mean over users of ``-sum_i x_ui log softmax(logits_u)_i`` (the multinomial log-likelihood, negated)."""
    return -ops.mean(ops.sum(ops.log_softmax(logits, axis=-1) * x, axis=-1))


@keras.saving.register_keras_serializable(package="aerec")
class MultinomialAutoencoder(keras.Model):
    """Multinomial-likelihood autoencoder over item interaction rows (Mult-VAE / Mult-DAE).

    Parameters
    ----------
    n_items : int
        Width of the input and output layers.
    hidden_dim : int, default 600
        Width of the encoder's and the decoder's hidden tanh layer; 0 for none (``[I-latent-I]``).
    latent_dim : int, default 200
        Width of the code ``z``.
    variational : bool, default True
        Mult-VAE (Gaussian code, reparameterised sample in training, KL term) when True,
        Mult-DAE (deterministic tanh code, no KL) when False.
    dropout : float, default 0.5
        Rate of the dropout applied to the normalised input in training.
    weight_decay : float, default 0.0
        L2 penalty on the kernels, ``weight_decay * sum(w ** 2)`` per layer.
    seed : int, optional
        Seed of the initial weights, the dropout masks and the reparameterisation noise.

    Examples
    --------
    >>> import numpy as np
    >>> net = MultinomialAutoencoder(n_items=5, hidden_dim=4, latent_dim=2, seed=0)
    >>> logits = net(np.eye(5, dtype="float32")[:2])
    >>> tuple(logits.shape), tuple(net.user_code(np.eye(5, dtype="float32")[:2]).shape)
    ((2, 5), (2, 4))
    """

    def __init__(self, n_items: int, hidden_dim: int = 600, latent_dim: int = 200, variational: bool = True,
                 dropout: float = 0.5, weight_decay: float = 0.0, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_items = int(n_items)
        self.hidden_dim = int(hidden_dim)
        self.latent_dim = int(latent_dim)
        self.variational = bool(variational)
        self.dropout_rate = float(dropout)
        self.weight_decay = float(weight_decay)
        self.seed = seed
        reg = keras.regularizers.L2(self.weight_decay) if self.weight_decay > 0 else None

        def dense(units, activation, name, j):
            # one seed per layer: an initializer given an int seed draws the same numbers on every call
            s = None if seed is None else seed + 2 * j
            return layers.Dense(units, activation=activation, name=name, kernel_regularizer=reg,
                                kernel_initializer=keras.initializers.GlorotUniform(seed=s),
                                bias_initializer=keras.initializers.TruncatedNormal(
                                    stddev=0.001, seed=None if s is None else s + 1))

        self.input_dropout = layers.Dropout(self.dropout_rate, seed=seed, name="input_dropout")
        # hidden_dim=0 drops the hidden layers: [I-latent-I], the shape of the paper's Mult-DAE example
        self.encoder_hidden = dense(self.hidden_dim, "tanh", "encoder_hidden", 1) if self.hidden_dim else None
        # the VAE's encoder emits mean and log-variance side by side; the DAE's emits a tanh code
        self.encoder_code = dense(2 * self.latent_dim if self.variational else self.latent_dim,
                                  None if self.variational else "tanh", "encoder_code", 2)
        self.decoder_hidden = dense(self.hidden_dim, "tanh", "decoder_hidden", 3) if self.hidden_dim else None
        self.output_layer = dense(self.n_items, None, "item_logits", 4)
        self.beta = keras.Variable(0.0, trainable=False, dtype="float32", name="beta")
        self.noise_seed = keras.random.SeedGenerator(None if seed is None else seed + 1000)

    @property
    def code_dim(self) -> int:
        """Width of :meth:`user_code` (the decoder's last hidden layer, or the code without hidden layers)."""
        return self.hidden_dim or self.latent_dim

    def build(self, input_shape):
        width = input_shape[-1]
        if self.encoder_hidden is not None:
            self.encoder_hidden.build((None, width))
            width = self.hidden_dim
        self.encoder_code.build((None, width))
        if self.decoder_hidden is not None:
            self.decoder_hidden.build((None, self.latent_dim))
        self.output_layer.build((None, self.code_dim))
        self.built = True

    def encode(self, x, training=False):
        """Mean (and log-variance, for the VAE; else None) of the code of each row."""
        x = ops.convert_to_tensor(x, dtype="float32")
        x = x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))
        x = self.input_dropout(x, training=training)
        if self.encoder_hidden is not None:
            x = self.encoder_hidden(x)
        code = self.encoder_code(x)
        if self.variational:
            return code[:, : self.latent_dim], code[:, self.latent_dim:]
        return code, None

    def user_code(self, x):
        """``h_u``: the decoder's last hidden activation at the code's mean (no dropout, no sampling)."""
        mean, _ = self.encode(x, training=False)
        return self.decode_hidden(mean)

    def decode_hidden(self, z):
        return z if self.decoder_hidden is None else self.decoder_hidden(z)

    def call(self, x, training=False):
        mean, log_var = self.encode(x, training=training)
        z = mean
        if self.variational and training:
            std = ops.exp(0.5 * log_var)
            z = mean + std * keras.random.normal(ops.shape(std), seed=self.noise_seed)
            kl = ops.mean(ops.sum(0.5 * (ops.exp(log_var) + ops.square(mean) - 1.0 - log_var), axis=-1))
            self.add_loss(self.beta * kl)
        return self.output_layer(self.decode_hidden(z))

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        # the target is the input row itself; self.losses holds the KL term and the weight decay
        loss = multinomial_nll(x, y_pred)
        for extra in self.losses:
            loss = loss + ops.cast(extra, "float32")
        return loss

    def get_config(self):
        config = super().get_config()
        config.update(n_items=self.n_items, hidden_dim=self.hidden_dim, latent_dim=self.latent_dim,
                      variational=self.variational, dropout=self.dropout_rate, weight_decay=self.weight_decay,
                      seed=self.seed)
        return config
