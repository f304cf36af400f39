"""`ImageSearch`: a convolutional autoencoder learns image codes; a FAISS index answers "images like this one"."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .base import BaseEstimator, register
from .data.images import ImageSource, image_source
from .exceptions import DataValidationError
from .index import EmbeddingIndex

__all__ = ["ImageSearch"]

_MODELS = ("conv-ae", "conv-dae", "conv-vae")


@register
class ImageSearch(BaseEstimator):
    """Similarity search over images with codes learned by a convolutional autoencoder.

    Parameters
    ----------
    model : {"conv-ae", "conv-dae", "conv-vae"}, default "conv-dae"
        Plain, denoising or variational convolutional autoencoder.
    code_dim : int, default 32
        Size of the code that is indexed.
    image_size : (height, width), optional
        Images are resized to this; by default the data's own size rounded up to a multiple of 4.
    channels : {1, 3}, optional
        Convert images to grayscale (1) or RGB (3); by default the data's own.
    filters : tuple of int, default (32, 64)
        Filters of the encoder's strided convolutions.
    dense : tuple of int, default ()
        Dense ReLU layers between the convolutions and the code.
    noise, noise_level : str, float
        Corruption of the denoising autoencoder: "shift" (default; random translations of up to
        ``noise_level`` of the image size, which measured best on protocol C), "gaussian", "masking"
        or "salt_pepper".
    beta : float
        KL weight of the variational autoencoder.
    epochs, batch_size, learning_rate : training settings (Adam).
    validation_split : float
        Share of the images held out for early stopping (on reconstruction loss, best weights kept).
    patience : int
        Epochs without improvement before stopping.
    metric : {"cosine", "l2", "ip"}
        How codes are compared.
    index_kind : str
        ``EmbeddingIndex`` kind ("auto": exact below 10,000 images, approximate above).
    seed : int
    verbose : "auto", 0, 1 or 2
        Keras' progress bar while training.

    Attributes
    ----------
    model_ : keras.Model
    index_ : EmbeddingIndex
    image_shape_ : (height, width, channels)
    history_ : dict of per-epoch training and validation loss
    skipped_ : list of (path, reason) for folder files that could not be read

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> images = (rng.random((64, 8, 8)) * 255).astype("uint8")
    >>> search = ImageSearch(code_dim=4, filters=(8,), epochs=1, verbose=0).fit(images)
    >>> search.similar([0], k=3).columns.tolist()
    ['query', 'id', 'score', 'rank']
    """

    def __init__(self, model: str = "conv-dae", code_dim: int = 32, image_size=None, channels=None,
                 filters=(32, 64), dense=(), noise: str = "shift", noise_level: float = 0.1, beta: float = 1.0,
                 epochs: int = 50, batch_size: int = 128, learning_rate: float = 1e-3,
                 validation_split: float = 0.1, patience: int = 5, metric: str = "cosine",
                 index_kind: str = "auto", seed: int = 0, verbose="auto"):
        self.model = model
        self.code_dim = code_dim
        self.image_size = image_size
        self.channels = channels
        self.filters = filters
        self.dense = dense
        self.noise = noise
        self.noise_level = noise_level
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_split = validation_split
        self.patience = patience
        self.metric = metric
        self.index_kind = index_kind
        self.seed = seed
        self.verbose = verbose

    # --- fitting -------------------------------------------------------------------------
    def _validate_params(self) -> None:
        if self.model not in _MODELS:
            raise ValueError(f"model must be one of {_MODELS}, got {self.model!r}")
        for name in ("code_dim", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 <= self.validation_split < 1:
            raise ValueError(f"validation_split must be in [0, 1), got {self.validation_split!r}")

    def _source(self, images, ids=None, on_error="skip", fitted: bool = False) -> ImageSource:
        if fitted:
            h, w, c = self.image_shape_
            return image_source(images, ids=ids, image_size=(h, w), channels=c, on_error=on_error)
        source = image_source(images, ids=ids, image_size=self.image_size, channels=self.channels, on_error=on_error)
        if self.image_size is None:  # round up so the strided convolutions tile the image exactly
            scale = 2 ** len(self.filters)
            h, w, c = source.shape
            rounded = (-(-h // scale) * scale, -(-w // scale) * scale)
            if rounded != (h, w):
                source = image_source(images, ids=ids, image_size=rounded, channels=c, on_error=on_error)
        return source

    def _build_model(self, image_shape):
        import keras

        from .models.conv_ae import ConvAutoencoder
        from .models.conv_vae import ConvVAE

        keras.utils.set_random_seed(self.seed)
        if self.model == "conv-vae":
            net = ConvVAE(image_shape, self.code_dim, self.filters, beta=self.beta, seed=self.seed, dense=self.dense)
        else:
            noise = self.noise if self.model == "conv-dae" else None
            net = ConvAutoencoder(image_shape, self.code_dim, self.filters, noise=noise,
                                  noise_level=self.noise_level if noise else 0.0, seed=self.seed, dense=self.dense)
        net.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="binary_crossentropy")
        return net

    def fit(self, images, ids=None, on_error: str = "skip") -> "ImageSearch":
        """Train the autoencoder on ``images`` and index their codes.

        Parameters
        ----------
        images : array (N, H, W[, C]) or path of a folder (searched recursively for PNG/JPEG)
        ids : list, optional
            One id per image (default: positions for an array, relative paths for a folder).
        on_error : {"skip", "raise"}
            Unreadable files in a folder are skipped with a warning naming them, or raise.
        """
        import keras

        self._validate_params()
        start = time.perf_counter()
        source = self._source(images, ids, on_error)
        self.image_shape_ = source.shape
        self.skipped_ = source.skipped
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(source))
        n_val = int(round(self.validation_split * len(source))) if len(source) >= 10 else 0
        val_idx, train_idx = np.sort(order[:n_val]), np.sort(order[n_val:])
        self.model_ = self._build_model(source.shape)
        train = source.dataset(self.batch_size, train_idx, shuffle_seed=self.seed)
        callbacks = []
        val = None
        if n_val:
            val = source.dataset(self.batch_size, val_idx)
            callbacks.append(keras.callbacks.EarlyStopping(monitor="val_loss", patience=self.patience,
                                                           restore_best_weights=True))
        history = self.model_.fit(train, validation_data=val, epochs=self.epochs, callbacks=callbacks,
                                  verbose=self.verbose, shuffle=False)  # the dataset shuffles itself, seeded
        self.history_ = {k: [float(v) for v in vals] for k, vals in history.history.items()}
        self.index_ = EmbeddingIndex(metric=self.metric, kind=self.index_kind, seed=self.seed)
        self.index_.build(self._encode(source), ids=source.ids)
        self.fit_seconds_ = time.perf_counter() - start
        self.fitted_ = True
        return self

    # --- codes and search ------------------------------------------------------------------
    def _encode(self, source: ImageSource) -> np.ndarray:
        parts = [np.asarray(self.model_.encode(batch)) for batch in source.batches(max(self.batch_size, 256))]
        return np.concatenate(parts).astype(np.float32)

    def codes(self, images, ids=None) -> pd.DataFrame:
        """Codes of ``images`` (an array or a folder), indexed by ``ids`` (columns ``c0..``)."""
        self._check_fitted()
        source = self._source(images, ids, fitted=True)
        codes = self._encode(source)
        return pd.DataFrame(codes, index=pd.Index(source.ids, name="id"), columns=[f"c{j}" for j in range(codes.shape[1])])

    def reconstruct(self, images) -> np.ndarray:
        """The autoencoder's reconstructions (float32 in [0, 1], shape (N, H, W, C))."""
        self._check_fitted()
        source = self._source(images, fitted=True)
        return np.concatenate([np.asarray(self.model_(b, training=False)) for b in source.batches(256)])

    def search(self, query_images, k: int = 10, query_ids=None) -> pd.DataFrame:
        """The ``k`` indexed images most like each query image.

        Returns
        -------
        DataFrame ``query, id, score, rank``; ``query`` is the query's position unless ``query_ids`` is given.
        """
        self._check_fitted()
        source = self._check_query(query_images, query_ids)
        return self.index_.search(self._encode(source), k=k, query_ids=query_ids)

    def _check_query(self, query_images, query_ids) -> ImageSource:
        if not isinstance(query_images, (str, Path)):
            array = np.asarray(query_images)
            if array.ndim == 2:
                array = array[None]
            expected = self.image_shape_
            given = array.shape[1:3] + ((array.shape[3],) if array.ndim == 4 else (1,))
            if array.ndim not in (3, 4) or given[2] != expected[2]:
                raise DataValidationError(
                    f"query images have shape {array.shape}; expected (N, {expected[0]}, {expected[1]}"
                    f"{', ' + str(expected[2]) if expected[2] != 1 else ''}) images with {expected[2]} channel(s)")
            query_images = array
        return self._source(query_images, query_ids, fitted=True)

    def similar(self, ids, k: int = 10) -> pd.DataFrame:
        """The ``k`` indexed images most like the indexed images ``ids`` (each itself excluded)."""
        self._check_fitted()
        return self.index_.search_ids(ids, k=k, exclude_self=True)

    def add(self, images, ids) -> "ImageSearch":
        """Index more images under new ``ids``, without retraining."""
        self._check_fitted()
        source = self._source(images, ids, fitted=True)
        self.index_.add(self._encode(source), ids=source.ids)
        return self

    # --- saving ---------------------------------------------------------------------------
    def save(self, path) -> None:
        """Save to a bundle directory; :func:`aerec.load` reads it."""
        from .bundle import save

        self._check_fitted()
        save(self, path)

    def _save_to(self, directory) -> dict:
        directory = Path(directory)
        self.model_.save(directory / "model.keras")
        index_meta = {"params": self.index_.get_params(), **self.index_._save_to(directory)}
        return {"image_shape": list(self.image_shape_), "history": self.history_, "fit_seconds": self.fit_seconds_,
                "index": index_meta, "skipped": self.skipped_}

    @classmethod
    def _load_from(cls, directory, meta: dict) -> "ImageSearch":
        import keras

        from .models import conv_ae, conv_vae  # noqa: F401 - registers the classes for deserialisation

        directory = Path(directory)
        params = dict(meta["params"])
        for key in ("filters", "dense", "image_size"):
            if isinstance(params.get(key), list):
                params[key] = tuple(params[key])
        search = cls(**params)
        search.model_ = keras.saving.load_model(directory / "model.keras", safe_mode=True)
        search.index_ = EmbeddingIndex._load_from(directory, meta["index"])
        search.image_shape_ = tuple(meta["image_shape"])
        search.history_, search.fit_seconds_ = meta["history"], meta["fit_seconds"]
        search.skipped_ = [tuple(s) for s in meta.get("skipped", [])]
        search.fitted_ = True
        return search
