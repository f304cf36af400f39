"""`ImageSearch`: a convolutional autoencoder learns image codes; a FAISS index answers "images like this one"."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from .base import BaseEstimator, register
from .bundle import load_part, save_part
from .data.images import ASPECTS, ImageSource, image_source, is_path_list, read_image
from .exceptions import DataValidationError, UnknownIdError
from .index import EmbeddingIndex
from .params import Interval, Options, Widths
from .utils import as_list

__all__ = ["ImageSearch", "KINDS"]

#: plain, denoising and variational convolutional autoencoders
KINDS = ("conv-ae", "conv-dae", "conv-vae")


@register
class ImageSearch(BaseEstimator):
    """Similarity search over images with codes learned by a convolutional autoencoder.

    Parameters
    ----------
    kind : {"conv-ae", "conv-dae", "conv-vae"}, default "conv-dae"
        Plain, denoising or variational convolutional autoencoder.
    code_dim : int, default 32
        Size of the code that is indexed.
    image_size : (height, width), optional
        The working size every image is brought to. By default, images that all share one size
        of at most 128 pixels a side keep it (rounded up to a multiple of ``2 ** len(filters)``),
        and anything else (photos of mixed or large sizes) works at 64 x 64: training memory
        then follows the batch, not the photos. ``fit`` prints the choice and why.
    channels : {1, 3}, optional
        Convert images to grayscale (1) or RGB (3); by default the data's own (a folder mixing
        both: the majority's, the others converted with a warning that counts them). To find
        copies of photos (crops, recompression, colour changes), ``kind="conv-ae", channels=1``
        measured best, above perceptual hashing (``benchmarks/protocol_c2.py``).
    aspect : {"crop", "pad", "stretch"}, default "crop"
        How an image of another aspect reaches the working size: its centre cropped, fitted
        and padded with black, or stretched. Queries are read the same way.
    filters : tuple of int, default (32, 64)
        Filters of the encoder's strided convolutions.
    dense : tuple of int, default ()
        Dense ReLU layers between the convolutions and the code.
    noise, noise_level : str, float
        Corruption of the denoising autoencoder: "shift" (default; random translations of up to
        ``noise_level`` of the image size, which measured best on protocol C), "augment" (zooms,
        shifts, brightness, contrast, blur and colour changes: codes for finding copies of a photo,
        protocol C2), "gaussian", "masking"
        or "salt_pepper".
    beta : float
        KL weight of the variational autoencoder.
    epochs, batch_size, learning_rate : training settings (Adam).
    validation_fraction : float
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
        The working size.
    sizing_ : str
        Why: the line ``fit`` prints.
    history_ : dict of per-epoch training and validation loss
    skipped_ : list of (path, reason) for folder files that could not be read
    folder_ : str or None
        The folder fitted on (absolute), whose files the ids name; None when fitted on an array.
        ``aerec serve`` shows thumbnails from it unless told another folder.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> images = (rng.random((64, 8, 8)) * 255).astype("uint8")
    >>> search = ImageSearch(code_dim=4, filters=(8,), epochs=1, verbose=0).fit(images)
    >>> search.similar([0], k=3).columns.tolist()
    ['query', 'id', 'score', 'rank']
    """

    served_as = "image search"
    _parameter_constraints = {
        "kind": [Options(*KINDS)],
        "code_dim": [Interval("int", 1, None)],
        "image_size": [Widths(1), None],
        "channels": [Options(1, 3), None],
        "aspect": [Options(*ASPECTS)],
        "filters": [Widths(1)],
        "dense": [Widths(1), Options(())],
        "noise": [Options("shift", "augment", "gaussian", "masking", "salt_pepper"), None],
        "noise_level": [Interval("real", 0, None)],
        "beta": [Interval("real", 0, None)],
        "epochs": [Interval("int", 1, None)],
        "batch_size": [Interval("int", 1, None)],
        "learning_rate": [Interval("real", 0, None, closed="neither")],
        "validation_fraction": [Interval("real", 0, 1, closed="left")],
        "patience": [Interval("int", 1, None)],
        "metric": [Options("cosine", "l2", "ip")],
        "seed": [Interval("int", 0, None)],
        "verbose": [Options("auto", 0, 1, 2, False, True)],
    }

    def __init__(self, kind: str = "conv-dae", code_dim: int = 32, image_size=None, channels=None, aspect: str = "crop",
                 filters=(32, 64), dense=(), noise: str = "shift", noise_level: float = 0.1, beta: float = 1.0,
                 epochs: int = 50, batch_size: int = 128, learning_rate: float = 1e-3,
                 validation_fraction: float = 0.1, patience: int = 5, metric: str = "cosine",
                 index_kind: str = "auto", seed: int = 0, verbose="auto"):
        self.kind = kind
        self.code_dim = code_dim
        self.image_size = image_size
        self.channels = channels
        self.aspect = aspect
        self.filters = filters
        self.dense = dense
        self.noise = noise
        self.noise_level = noise_level
        self.beta = beta
        self.epochs = epochs
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.validation_fraction = validation_fraction
        self.patience = patience
        self.metric = metric
        self.index_kind = index_kind
        self.seed = seed
        self.verbose = verbose

    # --- fitting -------------------------------------------------------------------------
    def _source(self, images, ids=None, on_error="skip", fitted: bool = False) -> ImageSource:
        aspect = self.aspect
        if fitted:
            h, w, c = self.image_shape_
            return image_source(images, ids=ids, image_size=(h, w), channels=c, on_error=on_error, aspect=aspect)
        source = image_source(images, ids=ids, image_size=self.image_size, channels=self.channels, on_error=on_error,
                              aspect=aspect)
        if self.image_size is None:  # round up so the strided convolutions tile the image exactly
            scale = 2 ** len(self.filters)
            h, w, c = source.shape
            rounded = (-(-h // scale) * scale, -(-w // scale) * scale)
            if rounded != (h, w):
                why = f"{source.why}, rounded up to a multiple of {scale}"
                source = image_source(images, ids=ids, image_size=rounded, channels=c, on_error=on_error, aspect=aspect)
                source.why = why
        return source

    def _build_model(self, image_shape):
        import keras

        from .models.conv_ae import ConvAutoencoder
        from .models.conv_vae import ConvVAE

        keras.utils.set_random_seed(self.seed)
        if self.kind == "conv-vae":
            net = ConvVAE(image_shape, self.code_dim, self.filters, beta=self.beta, seed=self.seed, dense=self.dense)
        else:
            noise = self.noise if self.kind == "conv-dae" else None
            net = ConvAutoencoder(image_shape, self.code_dim, self.filters, noise=noise,
                                  noise_level=self.noise_level if noise else 0.0, seed=self.seed, dense=self.dense)
        net.compile(optimizer=keras.optimizers.Adam(self.learning_rate), loss="binary_crossentropy")
        return net

    def fit(self, images, ids=None, on_error: str = "skip") -> "ImageSearch":
        """Train the autoencoder on ``images`` and index their codes.

        Parameters
        ----------
        images : array (N, H, W[, C]), path of a folder (searched recursively for PNG/JPEG), or list of image paths
        ids : list, optional
            One id per image (default: positions for an array, relative paths for a folder, the
            paths as given for a list).
        on_error : {"skip", "raise"}
            Unreadable (or, in a list, missing) files are skipped with a warning naming them, or raise.
        """
        import keras

        self._validate_params()
        start = time.perf_counter()
        source = self._source(images, ids, on_error)
        self.image_shape_ = source.shape
        self.skipped_ = source.skipped
        self.folder_ = str(Path(images).resolve()) if isinstance(images, (str, Path)) else None
        h, w, c = source.shape
        how = {"crop": "aspect kept by a centre crop", "pad": "aspect kept by padding", "stretch": "stretched"}
        self.sizing_ = (f"working size {h}x{w}x{c}: {source.why}; {how[source.aspect]}"
                        f"{'' if self.image_size is not None else '; pass image_size=(height, width) to change it'}")
        if self.verbose not in (0, False):
            print(f"ImageSearch: {len(source)} images, {self.sizing_}", flush=True)
        rng = np.random.default_rng(self.seed)
        order = rng.permutation(len(source))
        n_val = int(round(self.validation_fraction * len(source))) if len(source) >= 10 else 0
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
        # batches of the training batch size: memory follows the batch, never the number of images
        parts = [np.asarray(self.model_.encode(batch)) for batch in source.batches(self.batch_size)]
        return np.concatenate(parts).astype(np.float32)

    def codes(self, images, ids=None) -> pd.DataFrame:
        """Codes of ``images`` (an array, a folder or a list of paths), indexed by ``ids`` (columns ``c0..``)."""
        self._check_fitted()
        source = self._source(images, ids, fitted=True)
        codes = self._encode(source)
        return pd.DataFrame(codes, index=pd.Index(source.ids, name="id"), columns=[f"c{j}" for j in range(codes.shape[1])])

    def reconstruct(self, images) -> np.ndarray:
        """The autoencoder's reconstructions (float32 in [0, 1], shape (N, H, W, C)).

        ``images`` is anything :meth:`search` takes as a query (paths, a folder, bytes, a PIL
        image, one array image or several), read at the working size.
        """
        self._check_fitted()
        source, _ = self._queries(images)
        return np.concatenate([np.asarray(self.model_(b, training=False)) for b in source.batches(self.batch_size)])

    def denoise(self, images) -> np.ndarray:
        """Noisy images cleaned by the autoencoder: its reconstructions, at the working size.

        A denoising autoencoder learns to undo the corruption it trains with, so fit the kind and
        noise that match the images to clean: for sensor-like noise, ``kind="conv-dae",
        noise="gaussian", noise_level=`` the noise's standard deviation (pixels in [0, 1]). Any kind
        reconstructs, but only a model trained on that corruption removes it well
        (``benchmarks/denoise_bench.py``: PSNR on MNIST beside total-variation and non-local-means
        denoising).

        Parameters
        ----------
        images
            Anything :meth:`search` takes as a query: a path, a folder, a list of paths, bytes, a
            PIL image, one array image (H, W[, C]) or several (N, H, W[, C]); arrays are uint8 or
            floats in [0, 1].

        Returns
        -------
        float32 array (N, H, W, C) in [0, 1], one image per input, at ``image_shape_``.

        Examples
        --------
        >>> import numpy as np
        >>> rng = np.random.default_rng(0)
        >>> clean = np.zeros((64, 8, 8), dtype="float32"); clean[:, 2:6, 2:6] = 1.0
        >>> noisy = np.clip(clean + 0.3 * rng.standard_normal(clean.shape), 0, 1)
        >>> model = ImageSearch(noise="gaussian", noise_level=0.3, code_dim=4, filters=(8,), epochs=1, verbose=0)
        >>> model.fit(clean).denoise(noisy[:2]).shape
        (2, 8, 8, 1)
        """
        return self.reconstruct(images)

    def search(self, query, k: int = 10, query_ids=None) -> pd.DataFrame:
        """The ``k`` indexed images most like each query image.

        Parameters
        ----------
        query
            What a person means by it: an image file's path (one image) or a folder's (every image in
            it, ids relative to it); a list of paths; the bytes of an image file; a PIL image; an array
            of one image, (H, W) or (H, W, C), or of several, (N, H, W[, C]). Each image is converted
            and resized to the fitted shape.
        k : int
        query_ids : list, optional
            What the ``query`` column holds; by default the paths given, the folder's relative
            paths, or the query's position.

        Returns
        -------
        DataFrame ``query, id, score, rank``.
        """
        self._check_fitted()
        source, labels = self._queries(query)
        labels = labels if query_ids is None else query_ids
        return self.index_.search(self._encode(source), k=k, query_ids=labels)

    def _queries(self, query) -> tuple[ImageSource, list | None]:
        """The query images as a source of the fitted shape, and their default labels."""
        from PIL import Image

        h, w, c = self.image_shape_
        if isinstance(query, (str, Path)) and Path(query).is_dir():
            source = self._source(query, fitted=True)
            return source, source.ids
        if isinstance(query, (str, Path)):
            if not Path(query).is_file():
                raise FileNotFoundError(f"{query}: no such image file or folder")
            return self._source(read_image(query, self.image_shape_, self.aspect)[None], fitted=True), [str(query)]
        if isinstance(query, (bytes, bytearray, Image.Image)):
            return self._source(read_image(query, self.image_shape_, self.aspect)[None], fitted=True), None
        if is_path_list(query):  # streamed from the files; a file that cannot be read is named
            return self._source(list(query), fitted=True, on_error="raise"), [str(q) for q in query]
        array = np.asarray(query)
        if array.ndim == 2 or (array.ndim == 3 and array.shape[-1] in (1, 3) and array.shape[-1] == c):
            array = array[None]  # one image: (H, W) or (H, W, C)
        if array.ndim not in (3, 4):
            raise DataValidationError(
                f"query images have shape {array.shape}; expected one image (H, W[, C]) or several (N, H, W[, C]), "
                f"a path, a list of paths, bytes or a PIL image")
        channels = array.shape[3] if array.ndim == 4 else 1
        if channels not in (1, 3):
            raise DataValidationError(f"query images have {channels} channels (shape {array.shape}); expected 1 or 3")
        return self._source(array, fitted=True), None

    def similar(self, ids, k: int = 10) -> pd.DataFrame:
        """The ``k`` indexed images most like the indexed images ``ids`` (each itself excluded)."""
        self._check_fitted()
        wanted = as_list(ids)
        unknown = [i for i, position in zip(wanted, self.index_.ids_.index_of(wanted, on_unknown="mark")) if position < 0]
        if unknown:
            raise UnknownIdError("image", unknown, hint="similar() takes the ids of indexed images")
        return self.index_.search_ids(wanted, k=k, exclude_self=True)

    def add(self, images, ids) -> "ImageSearch":
        """Index more images under new ``ids``, without retraining."""
        self._check_fitted()
        source = self._source(images, ids, fitted=True)
        self.index_.add(self._encode(source), ids=source.ids)
        return self

    # --- saving ---------------------------------------------------------------------------
    def _save_to(self, directory) -> dict:
        self.model_.save(directory / "model.keras")
        return {"image_shape": list(self.image_shape_), "history": self.history_, "fit_seconds": self.fit_seconds_,
                "index": save_part(self.index_, directory, "index"), "skipped": self.skipped_,
                "sizing": self.sizing_, "folder": self.folder_}

    @classmethod
    def _load_from(cls, directory, meta: dict) -> "ImageSearch":
        import keras

        from .models import conv_ae, conv_vae  # noqa: F401 - registers the classes for deserialisation

        search = cls(**meta["params"])
        search.model_ = keras.saving.load_model(directory / "model.keras", safe_mode=True)
        search.index_ = load_part(directory, meta["index"])
        search.image_shape_ = tuple(meta["image_shape"])
        search.history_, search.fit_seconds_ = meta["history"], meta["fit_seconds"]
        search.skipped_ = [tuple(s) for s in meta.get("skipped", [])]
        search.sizing_ = meta.get("sizing", "")
        search.folder_ = meta.get("folder")
        search.fitted_ = True
        return search
