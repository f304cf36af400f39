"""A convolutional autoencoder for images; with ``noise`` it is the denoising variant."""
from __future__ import annotations

import keras
from keras import layers, ops

__all__ = ["ConvAutoencoder", "conv_encoder", "conv_decoder"]

_NOISES = (None, "gaussian", "masking", "salt_pepper", "shift", "augment")


def conv_encoder(image_shape, filters, out_dim: int, name: str, dense=()) -> keras.Sequential:
    """Strided 3x3 convolutions (each halves the size), optional dense ReLU layers, then ``out_dim`` linear units."""
    stack = [keras.Input(shape=tuple(image_shape))]
    for n, f in enumerate(filters):
        stack.append(layers.Conv2D(f, 3, strides=2, padding="same", activation="relu", name=f"conv{n}"))
    stack.append(layers.Flatten())
    stack += [layers.Dense(units, activation="relu", name=f"dense{n}") for n, units in enumerate(dense)]
    stack.append(layers.Dense(out_dim, name="code"))
    return keras.Sequential(stack, name=name)


def conv_decoder(image_shape, filters, code_dim: int, name: str, dense=()) -> keras.Sequential:
    """The mirror of :func:`conv_encoder`, ending in a sigmoid so pixels are in [0, 1]."""
    h, w, c = image_shape
    scale = 2 ** len(filters)
    stack = [keras.Input(shape=(code_dim,))]
    stack += [layers.Dense(units, activation="relu", name=f"dense{n}") for n, units in enumerate(reversed(dense))]
    stack += [layers.Dense((h // scale) * (w // scale) * filters[-1], activation="relu", name="expand"),
             layers.Reshape((h // scale, w // scale, filters[-1]))]
    for n, f in enumerate(reversed(filters)):
        stack.append(layers.Conv2DTranspose(f, 3, strides=2, padding="same", activation="relu", name=f"deconv{n}"))
    stack.append(layers.Conv2D(c, 3, padding="same", activation="sigmoid", name="pixels"))
    return keras.Sequential(stack, name=name)


def check_image_shape(image_shape, filters) -> tuple[int, int, int]:
    h, w, c = (int(v) for v in image_shape)
    scale = 2 ** len(filters)
    if h % scale or w % scale:
        raise ValueError(f"image height and width must be multiples of {scale} for {len(filters)} strided "
                         f"convolutions, got {h} x {w}")
    return h, w, c


def _augmenter(level: float, channels: int, seed: int) -> list:
    """The layers of the "augment" corruption, in the order a copy goes through them (images in [0, 1])."""
    zoom, shift, change = min(2 * level, 0.9), min(level, 0.9), min(2 * level, 0.9)
    stack = [layers.RandomZoom((-zoom, 0.0), fill_mode="reflect", seed=seed, name="zoom"),
             layers.RandomTranslation(shift, shift, fill_mode="reflect", seed=seed + 1, name="shift"),
             layers.RandomBrightness(change, value_range=(0.0, 1.0), seed=seed + 2, name="brightness"),
             layers.RandomContrast(change, value_range=(0.0, 1.0), seed=seed + 3, name="contrast"),
             layers.RandomGaussianBlur(factor=(0.0, 1.0), kernel_size=3, sigma=(0.1, 1.0), value_range=(0.0, 1.0),
                                       seed=seed + 4, name="blur")]
    if channels == 3:
        stack += [layers.RandomSaturation((max(0.0, 0.5 - change / 2), min(1.0, 0.5 + change / 2)),
                                          value_range=(0.0, 1.0), seed=seed + 5, name="saturation"),
                  layers.RandomGrayscale(factor=0.25, seed=seed + 6, name="greyscale")]
    return stack


@keras.saving.register_keras_serializable(package="aerec")
class ConvAutoencoder(keras.Model):
    """Convolutional autoencoder: image -> code (``code_dim``) -> image.

    Parameters
    ----------
    image_shape : (height, width, channels)
        Height and width must be multiples of ``2 ** len(filters)``.
    code_dim : int
    filters : tuple of int
        Filters of the strided convolutions of the encoder (mirrored in the decoder).
    dense : tuple of int
        Units of dense ReLU layers between the convolutions and the code (mirrored in the decoder).
    noise : {None, "gaussian", "masking", "salt_pepper", "shift"}
        Corruption applied to the input during training only: the denoising autoencoder. "shift"
        translates each image by up to ``noise_level`` of its size (the target stays unshifted),
        which teaches codes that ignore small translations. "augment" applies what a copied photo
        goes through (a zoom into a part of it, a shift, brightness and contrast changes, a blur,
        for colour images saturation changes and greyscale), so that the code of a copy stays near
        its source's: near-duplicate retrieval.
    noise_level : float
        Standard deviation (gaussian), share of pixels corrupted (masking, salt_pepper), largest
        translation as a share of height and width (shift); for augment, the strength: zoom in by
        up to ``2 * noise_level`` of each side, shift by up to ``noise_level``, brightness, contrast
        and saturation by up to ``2 * noise_level``.
    seed : int
    """

    def __init__(self, image_shape, code_dim: int = 32, filters=(32, 64), noise=None, noise_level: float = 0.0,
                 seed: int = 0, dense=(), **kwargs):
        super().__init__(**kwargs)
        if noise not in _NOISES:
            raise ValueError(f"noise must be one of {_NOISES}, got {noise!r}")
        self.image_shape = check_image_shape(image_shape, filters)
        self.code_dim = int(code_dim)
        self.filters = tuple(int(f) for f in filters)
        self.noise = noise
        self.noise_level = float(noise_level)
        self.seed = int(seed)
        self.dense = tuple(int(d) for d in dense)
        self.encoder = conv_encoder(self.image_shape, self.filters, self.code_dim, "encoder", self.dense)
        self.decoder = conv_decoder(self.image_shape, self.filters, self.code_dim, "decoder", self.dense)
        self.seed_generator = keras.random.SeedGenerator(self.seed)
        self.shifter = (layers.RandomTranslation(self.noise_level, self.noise_level, fill_mode="constant",
                                                 seed=self.seed, name="shift") if noise == "shift" else None)
        self.augmenter = _augmenter(self.noise_level, self.image_shape[2], self.seed) if noise == "augment" else None

    def corrupt(self, x):
        """The training-time corruption of a batch (identity without noise)."""
        if self.noise is None or self.noise_level <= 0:
            return x
        if self.noise == "shift":
            return self.shifter(x, training=True)
        if self.noise == "augment":
            for layer in self.augmenter:
                x = layer(x, training=True)
            return ops.clip(x, 0, 1)
        if self.noise == "gaussian":
            return ops.clip(x + keras.random.normal(ops.shape(x), stddev=self.noise_level, seed=self.seed_generator), 0, 1)
        u = keras.random.uniform(ops.shape(x), seed=self.seed_generator)
        if self.noise == "masking":
            return ops.where(u < self.noise_level, ops.zeros_like(x), x)
        salt = keras.random.uniform(ops.shape(x), seed=self.seed_generator) < 0.5
        return ops.where(u < self.noise_level, ops.cast(salt, x.dtype), x)

    def encode(self, x):
        return self.encoder(x)

    def call(self, x, training=False):
        if training:
            x = self.corrupt(x)
        return self.decoder(self.encoder(x, training=training), training=training)

    def get_config(self):
        return {**super().get_config(), "image_shape": list(self.image_shape), "code_dim": self.code_dim,
                "filters": list(self.filters), "noise": self.noise, "noise_level": self.noise_level, "seed": self.seed,
                "dense": list(self.dense)}
