"""`RecVAENetwork`: RecVAE of Shenbin et al. (2020) as one Keras model.

The encoder reads the L2-normalised, dropped-out interaction row through five densely connected
layers (each ``LayerNorm(swish(Dense(h_{k-1}) + h_1 + ... + h_{k-1}))``) to a Gaussian code; the
decoder is a single linear layer to one logit per item, and the likelihood is multinomial, as in
Mult-VAE. What RecVAE adds:

* **a composite prior**: a mixture of ``N(0, I)``, a wide ``N(0, e^10 I)`` and the posterior of a
  frozen copy of the encoder from the previous epoch (``update_prior``), which keeps the encoder
  from drifting far from where it was;
* **a user-specific beta**: the KL term of user ``u`` is weighted by ``gamma * |x_u|`` (the number
  of the user's interactions);
* **alternating updates**: every epoch trains the encoder for ``encoder_epochs`` passes (input
  dropout on) and then the decoder for ``decoder_epochs`` passes (no dropout), each with its own
  Adam optimiser.

The KL divergence against the mixture has no closed form; as in the paper it is estimated with
the one reparameterised sample ``z``: ``log q(z|x) - log p(z)``.

With ``fit``, one Keras epoch is one RecVAE epoch (``encoder_epochs + decoder_epochs`` passes):
``steps_per_epoch`` must be ``cycle_steps(batches_per_pass)`` and the data must repeat its passes
in order. :class:`UpdatePrior` copies the encoder into the prior at the start of every epoch.

The decoder is linear, so the code's mean ``mu_u`` dotted with a column of the output kernel plus
its bias is the item's logit: :meth:`RecVAENetwork.user_code` is ``mu_u``.
"""
from __future__ import annotations

import math

import keras
from keras import layers, ops

from .vae import multinomial_nll

__all__ = ["RecVAENetwork", "RecVAEEncoder", "UpdatePrior"]

_LOG_2PI = math.log(2.0 * math.pi)


def _log_normal(z, mean, log_var):
    return -0.5 * (log_var + _LOG_2PI + ops.square(z - mean) * ops.exp(-log_var))


@keras.saving.register_keras_serializable(package="aerec")
class RecVAEEncoder(keras.layers.Layer):
    """RecVAE's encoder: normalise, drop out, five densely connected swish layers with layer
    normalisation, then the code's mean and log-variance."""

    def __init__(self, hidden_dim: int = 600, latent_dim: int = 200, dropout: float = 0.5, n_layers: int = 5,
                 seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.hidden_dim = int(hidden_dim)
        self.latent_dim = int(latent_dim)
        self.dropout_rate = float(dropout)
        self.n_layers = int(n_layers)
        self.seed = seed

        def init(j):
            return keras.initializers.GlorotUniform(seed=None if seed is None else seed + j)

        self.input_dropout = layers.Dropout(self.dropout_rate, seed=seed, name="input_dropout")
        self.hidden = [layers.Dense(self.hidden_dim, kernel_initializer=init(j), name=f"dense_{j}")
                       for j in range(self.n_layers)]
        # the authors' layer norm has eps=0.1: it keeps the small first-layer activations from being blown up
        self.norms = [layers.LayerNormalization(epsilon=0.1, name=f"norm_{j}") for j in range(self.n_layers)]
        self.mean_layer = layers.Dense(self.latent_dim, kernel_initializer=init(self.n_layers), name="mean")
        self.log_var_layer = layers.Dense(self.latent_dim, kernel_initializer=init(self.n_layers + 1), name="log_var")

    def build(self, input_shape):
        width = input_shape[-1]
        for dense, norm in zip(self.hidden, self.norms):
            dense.build((None, width))
            norm.build((None, self.hidden_dim))
            width = self.hidden_dim
        self.mean_layer.build((None, self.hidden_dim))
        self.log_var_layer.build((None, self.hidden_dim))
        self.built = True

    def call(self, x, training=False):
        x = ops.convert_to_tensor(x, dtype="float32")
        x = x * ops.rsqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), 1e-12))
        x = self.input_dropout(x, training=training)
        outputs = []
        for dense, norm in zip(self.hidden, self.norms):
            pre = dense(x)
            for earlier in outputs:  # dense connections: every earlier layer's output is added in
                pre = pre + earlier
            x = norm(ops.silu(pre))
            outputs.append(x)
        return self.mean_layer(x), self.log_var_layer(x)

    def get_config(self):
        config = super().get_config()
        config.update(hidden_dim=self.hidden_dim, latent_dim=self.latent_dim, dropout=self.dropout_rate,
                      n_layers=self.n_layers, seed=self.seed)
        return config


@keras.saving.register_keras_serializable(package="aerec")
class RecVAENetwork(keras.Model):
    """RecVAE over item interaction rows.

    Parameters
    ----------
    n_items : int
        Width of the input and output layers.
    hidden_dim : int, default 600
        Width of the encoder's hidden layers.
    latent_dim : int, default 200
        Width of the code.
    dropout : float, default 0.5
        Input dropout in the encoder's passes.
    gamma : float, default 0.005
        The KL weight of user ``u`` is ``gamma * |x_u|``.
    mixture_weights : tuple of 3 floats, default (0.15, 0.75, 0.1)
        Weights of ``N(0, I)``, the previous encoder's posterior and ``N(0, e^10 I)`` in the prior.
    encoder_epochs, decoder_epochs : int, default 3 and 1
        Passes over the data per epoch for the encoder, then for the decoder.
    learning_rate : float, default 5e-4
        Step size of both Adam optimisers (the encoder's is the compiled one).
    seed : int, optional
        Seed of the initial weights, the dropout masks and the sampling noise.

    Examples
    --------
    >>> import numpy as np
    >>> net = RecVAENetwork(n_items=5, hidden_dim=4, latent_dim=2, seed=0)
    >>> net.build((None, 5))
    >>> tuple(net(np.eye(5, dtype="float32")[:2]).shape), tuple(net.user_code(np.eye(5, dtype="float32")[:2]).shape)
    ((2, 5), (2, 2))
    """

    def __init__(self, n_items: int, hidden_dim: int = 600, latent_dim: int = 200, dropout: float = 0.5,
                 gamma: float = 0.005, mixture_weights=(0.15, 0.75, 0.1), encoder_epochs: int = 3,
                 decoder_epochs: int = 1, learning_rate: float = 5e-4, seed: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.n_items = int(n_items)
        self.hidden_dim = int(hidden_dim)
        self.latent_dim = int(latent_dim)
        self.dropout_rate = float(dropout)
        self.gamma = float(gamma)
        self.mixture_weights = tuple(float(w) for w in mixture_weights)
        self.encoder_epochs = int(encoder_epochs)
        self.decoder_epochs = int(decoder_epochs)
        self.learning_rate = float(learning_rate)
        self.seed = seed
        self.encoder = RecVAEEncoder(hidden_dim, latent_dim, dropout, seed=seed, name="encoder")
        self.prior_encoder = RecVAEEncoder(hidden_dim, latent_dim, 0.0, seed=seed, name="prior_encoder")
        self.prior_encoder.trainable = False
        self.output_layer = layers.Dense(
            self.n_items, name="item_logits",
            kernel_initializer=keras.initializers.GlorotUniform(seed=None if seed is None else seed + 100))
        self.noise_seed = keras.random.SeedGenerator(None if seed is None else seed + 1000)
        self.updates = keras.Variable(0, trainable=False, dtype="int64", name="updates")
        self.batches_per_pass = keras.Variable(1, trainable=False, dtype="int64", name="batches_per_pass")

    def build(self, input_shape):
        self.encoder.build(input_shape)
        self.prior_encoder.build(input_shape)
        self.output_layer.build((None, self.latent_dim))
        self.built = True

    # --- inference --------------------------------------------------------------------------
    def user_code(self, x):
        """``mu_u``: the code's mean (no dropout, no sampling); the decoder is linear on it."""
        mean, _ = self.encoder(x, training=False)
        return mean

    def call(self, x, training=False):
        mean, log_var = self.encoder(x, training=training)
        z = self._sample(mean, log_var) if training else mean
        return self.output_layer(z)

    # --- training ---------------------------------------------------------------------------
    def cycle_steps(self, batches_per_pass: int) -> int:
        """Updates in one epoch: the encoder's passes, then the decoder's."""
        self.batches_per_pass.assign(int(batches_per_pass))
        return (self.encoder_epochs + self.decoder_epochs) * int(batches_per_pass)

    def update_prior(self) -> None:
        """Copy the encoder's weights into the prior's frozen encoder."""
        for target, source in zip(self.prior_encoder.weights, self.encoder.weights):
            target.assign(source)

    def _sample(self, mean, log_var):
        return mean + ops.exp(0.5 * log_var) * keras.random.normal(ops.shape(mean), seed=self.noise_seed)

    def _log_prior(self, x, z):
        mean, log_var = self.prior_encoder(x, training=False)
        zeros = ops.zeros_like(z)
        parts = [_log_normal(z, zeros, zeros), _log_normal(z, mean, log_var), _log_normal(z, zeros, zeros + 10.0)]
        parts = [p + math.log(w) for p, w in zip(parts, self.mixture_weights) if w > 0]
        return ops.logsumexp(ops.stack(parts, axis=-1), axis=-1)

    def elbo_terms(self, x, mean, log_var, z):
        """``(-log-likelihood, weighted KL)`` of the sample ``z``, each a mean over users: the KL is the
        one-sample estimate ``log q(z|x) - log p(z)``, weighted per user by ``gamma * |x_u|``."""
        x = ops.convert_to_tensor(x, dtype="float32")
        nll = multinomial_nll(x, self.output_layer(z))
        kl_weight = self.gamma * ops.sum(x, axis=-1)
        kl = ops.mean(ops.sum(_log_normal(z, mean, log_var) - self._log_prior(x, z), axis=-1) * kl_weight)
        return nll, kl

    def negative_elbo(self, x, training=True):
        """``(loss, -log-likelihood, KL)``: the mean over users of the negated ELBO and its two terms."""
        mean, log_var = self.encoder(x, training=training)
        nll, kl = self.elbo_terms(x, mean, log_var, self._sample(mean, log_var))
        return nll + kl, nll, kl

    def train_step(self, x):
        import tensorflow as tf

        encoder_steps = self.encoder_epochs * self.batches_per_pass
        encoder_turn = (self.updates % (encoder_steps + self.decoder_epochs * self.batches_per_pass)) < encoder_steps

        def encoder_update():
            with tf.GradientTape() as tape:
                loss, nll, kl = self.negative_elbo(x, training=True)
            variables = self.encoder.trainable_variables
            self.optimizer.apply(tape.gradient(loss, variables), variables)
            return loss, nll, kl

        def decoder_update():
            # no input dropout; the encoder is not updated, so only the likelihood matters for the gradient
            with tf.GradientTape() as tape:
                mean, log_var = self.encoder(x, training=False)
                nll = multinomial_nll(x, self.output_layer(self._sample(mean, log_var)))
            variables = self.output_layer.trainable_variables
            self.decoder_optimizer.apply(tape.gradient(nll, variables), variables)
            return nll, nll, tf.zeros_like(nll)

        loss, nll, kl = tf.cond(encoder_turn, encoder_update, decoder_update)
        self.updates.assign_add(1)
        return {"loss": loss, "nll": nll, "kl": kl}

    def build_optimizers(self) -> None:
        """Create the decoder's optimiser and both optimisers' slots before ``fit`` traces the conditional
        update (made here, not in ``__init__``: a model loaded for inference has no optimiser to restore)."""
        self.decoder_optimizer = keras.optimizers.Adam(learning_rate=self.learning_rate)
        self.optimizer.build(self.encoder.trainable_variables)
        self.decoder_optimizer.build(self.output_layer.trainable_variables)

    def get_config(self):
        config = super().get_config()
        config.update(n_items=self.n_items, hidden_dim=self.hidden_dim, latent_dim=self.latent_dim,
                      dropout=self.dropout_rate, gamma=self.gamma, mixture_weights=list(self.mixture_weights),
                      encoder_epochs=self.encoder_epochs, decoder_epochs=self.decoder_epochs,
                      learning_rate=self.learning_rate, seed=self.seed)
        return config


class UpdatePrior(keras.callbacks.Callback):
    """Copy the encoder into RecVAE's prior at the start of every epoch."""

    def on_epoch_begin(self, epoch, logs=None):
        self.model.update_prior()
