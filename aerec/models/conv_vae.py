"""A convolutional variational autoencoder for images."""
from __future__ import annotations

import keras
from keras import ops

from .conv_ae import check_image_shape, conv_decoder, conv_encoder

__all__ = ["ConvVAE"]


@keras.saving.register_keras_serializable(package="aerec")
class ConvVAE(keras.Model):
    """Convolutional VAE: a Gaussian code ``q(z|x) = N(mu, sigma^2)`` with a KL term to ``N(0, I)``.

    The reconstruction loss is the one given to ``compile`` (mean per pixel); the KL term is added
    with ``add_loss`` divided by the number of pixels, so ``beta = 1`` is the usual ELBO.
    The code used for search is the mean ``mu``.

    Parameters
    ----------
    image_shape : (height, width, channels)
    code_dim : int
    filters : tuple of int
    beta : float
        Weight of the KL term.
    seed : int
    """

    def __init__(self, image_shape, code_dim: int = 32, filters=(32, 64), beta: float = 1.0, seed: int = 0, dense=(),
                 **kwargs):
        super().__init__(**kwargs)
        self.image_shape = check_image_shape(image_shape, filters)
        self.code_dim = int(code_dim)
        self.filters = tuple(int(f) for f in filters)
        self.beta = float(beta)
        self.seed = int(seed)
        self.dense = tuple(int(d) for d in dense)
        self.encoder = conv_encoder(self.image_shape, self.filters, 2 * self.code_dim, "encoder", self.dense)
        self.decoder = conv_decoder(self.image_shape, self.filters, self.code_dim, "decoder", self.dense)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self._pixels = float(self.image_shape[0] * self.image_shape[1] * self.image_shape[2])

    def encode(self, x):
        """The mean of ``q(z|x)``: the code used for search."""
        return self.encoder(x)[:, : self.code_dim]

    def call(self, x, training=False):
        stats = self.encoder(x, training=training)
        mu, log_var = stats[:, : self.code_dim], ops.clip(stats[:, self.code_dim:], -10.0, 10.0)
        if training:
            eps = keras.random.normal(ops.shape(mu), seed=self.seed_generator)
            z = mu + ops.exp(0.5 * log_var) * eps
            kl = -0.5 * ops.mean(ops.sum(1 + log_var - ops.square(mu) - ops.exp(log_var), axis=1))
            self.add_loss(self.beta * kl / self._pixels)
        else:
            z = mu
        return self.decoder(z, training=training)

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape), "code_dim": self.code_dim,
                "filters": list(self.filters), "beta": self.beta, "seed": self.seed, "dense": list(self.dense)}
