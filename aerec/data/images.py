"""Images from arrays or folders: checked, brought to one working size, and streamed in batches.

A folder is scanned once (recursively, PNG and JPEG): each file's header is read with Pillow,
unreadable or corrupt files are named and skipped (or raise, with ``on_error="raise"``), and the
pixels are then streamed batch by batch, so a folder never has to fit in memory.

**The working size.** Images that all share one size of at most ``MAX_OWN_SIZE`` pixels a side
(digits, icons, thumbnails) keep it; anything else (photos of mixed or large sizes) is brought to
``DEFAULT_IMAGE_SIZE``, the aspect kept by a centre crop (``aspect="crop"``; ``"pad"`` fits the
whole image and pads with black, ``"stretch"`` ignores the aspect). Memory then follows the batch,
never the photos' own size. **Channels**: a folder mixing greyscale and colour files is converted to
the majority's channels, with a :class:`~aerec.exceptions.ConvertedImagesWarning` that counts the
converted files.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from ..exceptions import ConvertedImagesWarning, DataValidationError, DroppedRowsWarning, ImageTooLargeError

__all__ = ["ImageSource", "image_source", "read_image", "decode_image", "working_size", "IMAGE_SUFFIXES",
           "DEFAULT_IMAGE_SIZE", "MAX_OWN_SIZE", "ASPECTS"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
#: the working size (height, width) of images that do not all share one small size
DEFAULT_IMAGE_SIZE = (64, 64)
#: images that all share one size of at most this many pixels a side keep their size
MAX_OWN_SIZE = 128
#: how an image of another aspect reaches the working size
ASPECTS = ("crop", "pad", "stretch")


def working_size(sizes, image_size=None) -> tuple[tuple[int, int], str]:
    """The (height, width) images of ``sizes`` are brought to, and why (a phrase for logs).

    >>> working_size([(28, 28), (28, 28)])
    ((28, 28), "the images' own size")
    >>> working_size([(480, 640), (8, 8)])
    ((64, 64), 'the default for images of mixed sizes (from 8x8 to 480x640)')
    """
    if image_size is not None:
        return (int(image_size[0]), int(image_size[1])), "as asked (image_size)"
    distinct = {tuple(int(v) for v in s) for s in sizes}
    if len(distinct) == 1:
        (h, w), = distinct
        if max(h, w) <= MAX_OWN_SIZE:
            return (h, w), "the images' own size"
        return DEFAULT_IMAGE_SIZE, f"the default for images larger than {MAX_OWN_SIZE} pixels a side ({h}x{w})"
    by_area = sorted(distinct, key=lambda s: (s[0] * s[1], s))
    return DEFAULT_IMAGE_SIZE, (f"the default for images of mixed sizes (from {by_area[0][0]}x{by_area[0][1]} "
                                f"to {by_area[-1][0]}x{by_area[-1][1]})")


@dataclass
class ImageSource:
    """Images to read: an in-memory array, or files of a folder.

    Attributes
    ----------
    ids : list
        One id per image (relative paths for a folder, positions or the given ids for an array).
    shape : (height, width, channels)
        The shape every image is delivered in (after resizing and channel conversion).
    skipped : list of (path, reason)
        Folder files left out.
    aspect : {"crop", "pad", "stretch"}
        How images of another aspect reach ``shape``.
    why : str
        Why ``shape`` is the working size (a phrase for logs).
    """

    ids: list
    shape: tuple[int, int, int]
    array: np.ndarray | None = None
    paths: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    aspect: str = "crop"
    why: str = ""

    def __len__(self) -> int:
        return len(self.ids)

    def batches(self, batch_size: int = 256, indices=None) -> Iterator[np.ndarray]:
        """Float32 batches in [0, 1] of shape (b, H, W, C), in order (optionally of ``indices`` only)."""
        order = np.arange(len(self)) if indices is None else np.asarray(indices)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            if self.array is not None:
                yield _to_float(self.array[chunk], self.shape)
            else:
                yield np.stack([read_image(self.paths[i], self.shape, self.aspect) for i in chunk])

    def dataset(self, batch_size: int, indices=None, shuffle_seed: int | None = None):
        """A ``tf.data.Dataset`` of ``(x, x)`` float batches streaming the images (a folder is read lazily)."""
        import tensorflow as tf

        order = np.arange(len(self)) if indices is None else np.asarray(indices)
        h, w, c = self.shape
        if self.array is not None:
            images = self.array[order]
            ds = tf.data.Dataset.from_tensor_slices(images)
            if shuffle_seed is not None:
                ds = ds.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
            shape = self.shape
            scale = 255.0 if images.dtype == np.uint8 else 1.0

            def prepare(x):
                x = tf.cast(x, tf.float32) / scale
                return tf.reshape(x, shape)

            ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
        else:
            paths = [str(self.paths[i]) for i in order]
            ds = tf.data.Dataset.from_tensor_slices(paths)
            if shuffle_seed is not None:
                ds = ds.shuffle(len(paths), seed=shuffle_seed, reshuffle_each_iteration=True)
            shape, aspect = self.shape, self.aspect

            def load(path):
                x = tf.numpy_function(lambda p: read_image(Path(p.decode()), shape, aspect), [path], tf.float32)
                x.set_shape((h, w, c))
                return x

            ds = ds.map(load, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.batch(batch_size).map(lambda x: (x, x)).prefetch(2)  # two batches ahead, a bounded buffer


def image_source(images, ids=None, image_size=None, channels: int | None = None,
                 on_error: str = "skip", aspect: str = "crop") -> ImageSource:
    """Check images given as an array (N, H, W[, C]), a folder or a list of files, and describe how to read them.

    Parameters
    ----------
    images : array, folder path, or list of image file paths
    ids : list, optional
        One id per image; default positions (array), paths relative to the folder, or the paths
        as given (list).
    image_size : (height, width), optional
        Bring every image to this size; default: see :func:`working_size` (the images' own size
        when they all share one of at most ``MAX_OWN_SIZE`` a side, else ``DEFAULT_IMAGE_SIZE``).
    channels : {1, 3}, optional
        Convert to this many channels; default: the data's own (a folder mixing grayscale and
        colour files: the majority's, the others converted with a warning that counts them).
    on_error : {"skip", "raise"}
        What to do with unreadable (or, in a list, missing) files: skip them with a
        :class:`~aerec.exceptions.DroppedRowsWarning` that counts and names them, or raise.
    aspect : {"crop", "pad", "stretch"}, default "crop"
        How an image of another aspect reaches the working size: centre crop, fit and pad with
        black, or stretch.
    """
    if on_error not in ("skip", "raise"):
        raise ValueError(f"on_error must be 'skip' or 'raise', got {on_error!r}")
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    if aspect not in ASPECTS:
        raise ValueError(f"aspect must be one of {', '.join(map(repr, ASPECTS))}, got {aspect!r}")
    if isinstance(images, (str, Path)):
        folder = Path(images)
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: no such folder")
        files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        names = [str(p.relative_to(folder)) for p in files]
        return _files_source(files, names, ids, str(folder), image_size, channels, on_error, aspect, folder)
    if is_path_list(images):
        files = [Path(p) for p in images]
        names = [str(p) for p in images] if ids is None else _check_ids(ids, len(files))
        return _files_source(files, names, None, "the image list", image_size, channels, on_error, aspect)
    return _array_source(images, ids, image_size, channels, aspect)


def is_path_list(images) -> bool:
    """Whether ``images`` is a non-empty list or tuple of file paths (str or Path)."""
    return isinstance(images, (list, tuple)) and bool(images) and all(isinstance(p, (str, Path)) for p in images)


def _array_source(images, ids, image_size, channels, aspect="crop") -> ImageSource:
    array = np.asarray(images)
    if array.ndim == 3:
        array = array[..., None]
    if array.ndim != 4 or array.shape[-1] not in (1, 3):
        raise DataValidationError(
            f"images must be an array of shape (N, H, W) or (N, H, W, C) with C = 1 or 3, got shape {array.shape}")
    if len(array) == 0:
        raise DataValidationError("images is empty: there is nothing to learn from")
    if not np.issubdtype(array.dtype, np.number):
        raise DataValidationError(f"images must be numeric, got dtype {array.dtype}")
    if array.dtype != np.uint8:
        bad = ~np.isfinite(array).reshape(len(array), -1).all(axis=1)
        if bad.any():
            raise DataValidationError(f"images {np.flatnonzero(bad)[:10].tolist()} contain NaN or inf")
        if array.min() < 0 or array.max() > 1:
            raise DataValidationError(
                f"float images must be in [0, 1] (got values from {array.min():.3g} to {array.max():.3g}); "
                f"pass uint8 images in [0, 255] or scale them")
    (h, w), why = working_size([array.shape[1:3]], image_size)
    c = channels or array.shape[-1]
    if (h, w) != array.shape[1:3] or c != array.shape[-1]:
        array = _resize_array(array, (h, w), c, aspect)
    ids = list(range(len(array))) if ids is None else _check_ids(ids, len(array))
    return ImageSource(ids=ids, shape=(int(h), int(w), int(c)), array=array, aspect=aspect, why=why)


def _check_ids(ids, n: int) -> list:
    ids = list(ids)
    if len(ids) != n:
        raise DataValidationError(f"got {len(ids)} ids for {n} images")
    return ids


def _files_source(files: list, names: list, ids, label: str, image_size, channels, on_error, aspect="crop",
                  folder: Path | None = None) -> ImageSource:
    """The readable ones of ``files`` (named ``names``; ``ids`` given for the readable ones of a folder)."""
    from PIL import Image, UnidentifiedImageError

    good, kept, modes, sizes, skipped = [], [], [], [], []
    for path, name in zip(files, names):
        try:
            if not path.is_file():
                raise FileNotFoundError("no such file")
            with Image.open(path) as img:
                img.verify()
            with Image.open(path) as img:  # verify() leaves the file unusable; reopen to read the header
                modes.append(img.mode)
                sizes.append(img.size[::-1])
            good.append(path)
            kept.append(name)
        except (UnidentifiedImageError, *_undecodable()) as exc:
            reason = f"{type(exc).__name__}: {exc}"
            if on_error == "raise":
                raise DataValidationError(f"{path}: cannot read it as an image ({reason})") from exc
            skipped.append((str(path), reason))
    if skipped:
        named = "; ".join(f"{p} ({r})" for p, r in skipped[:5])
        warnings.warn(f"{label}: skipped {len(skipped)} of {len(files)} image file(s) that could not be read: "
                      f"{named}{' ...' if len(skipped) > 5 else ''}", DroppedRowsWarning, stacklevel=3)
    if not good:
        where = " (looked recursively)" if folder is not None else ""
        raise DataValidationError(f"{label}: no readable PNG or JPEG image in it (looked at {len(files)} "
                                  f"file(s){where})")
    grey = {p for p, m in zip(good, modes) if m in ("L", "1", "I", "I;16", "F", "LA")}
    colour = [p for p in good if p not in grey]
    if channels is None:
        channels = 1 if len(grey) > len(colour) else 3
        converted = sorted(colour if channels == 1 else grey)
        if converted:
            warnings.warn(
                f"{label}: converted {len(converted)} of {len(good)} image(s) to "
                f"{'greyscale' if channels == 1 else 'colour'}, the channels of the majority (e.g. "
                f"{', '.join(kept[good.index(p)] for p in converted[:3])}); pass channels=1 or channels=3 "
                f"to choose", ConvertedImagesWarning, stacklevel=3)
    size, why = working_size(sizes, image_size)
    ids = kept if ids is None else _check_ids(ids, len(good))
    return ImageSource(ids=ids, shape=(size[0], size[1], int(channels)), paths=good, skipped=skipped,
                       aspect=aspect, why=why)


def _undecodable():
    """The exceptions Pillow raises for a file that is not a well-formed image (a bomb included)."""
    import struct

    from PIL import Image

    return (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, Image.DecompressionBombError)


def read_image(source, shape, aspect: str = "crop") -> np.ndarray:
    """One image as float32 in [0, 1] of ``shape`` (height, width, channels), converted and resized
    with Pillow (bilinear; a JPEG is decoded at the smallest scale that still covers ``shape``).

    Parameters
    ----------
    source : path, bytes, file object or PIL image
    shape : (height, width, channels)
    aspect : {"crop", "pad", "stretch"}, default "crop"
        How an image of another aspect reaches ``shape`` (see :func:`image_source`).

    Raises
    ------
    DataValidationError
        The source is not a decodable image (naming the path when there is one).

    Examples
    --------
    >>> from PIL import Image
    >>> read_image(Image.new("RGB", (4, 2), (255, 0, 0)), (2, 2, 1)).shape
    (2, 2, 1)
    """
    import io

    from PIL import Image

    h, w, c = shape
    opened = None
    try:
        if isinstance(source, Image.Image):
            img = source
        else:
            img = opened = Image.open(io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source)
        mode = "L" if c == 1 else "RGB"
        if opened is not None and img.format == "JPEG":
            img.draft(mode, (w, h))  # DCT scaling: never below (w, h), much less to decode for a large photo
        img = _to_shape(img.convert(mode), h, w, aspect)
        x = np.asarray(img, dtype=np.float32) / 255.0
    except _undecodable() as exc:
        where = f"{source}: " if isinstance(source, (str, Path)) else ""
        raise DataValidationError(f"{where}not a decodable image ({type(exc).__name__}: {exc})") from None
    finally:
        if opened is not None:  # a caller's own PIL image stays open
            opened.close()
    return x.reshape(h, w, c)


def _to_shape(img, h: int, w: int, aspect: str):
    """``img`` resized to (w, h): its centre cropped to the aspect, fitted and padded with black, or stretched."""
    from PIL import Image

    iw, ih = img.size
    if (iw, ih) == (w, h):
        return img
    if aspect == "stretch" or iw * h == ih * w:
        return img.resize((w, h), Image.BILINEAR)
    if aspect == "crop":
        scale = max(w / iw, h / ih)
        cw, ch = w / scale, h / scale
        left, top = (iw - cw) / 2, (ih - ch) / 2
        return img.resize((w, h), Image.BILINEAR, box=(left, top, left + cw, top + ch))
    scale = min(w / iw, h / ih)
    nw, nh = max(1, round(iw * scale)), max(1, round(ih * scale))
    canvas = Image.new(img.mode, (w, h))
    canvas.paste(img.resize((nw, nh), Image.BILINEAR), ((w - nw) // 2, (h - nh) // 2))
    return canvas


def decode_image(data: bytes, shape, max_pixels: int | None = None, aspect: str = "crop") -> np.ndarray:
    """An uploaded file's bytes as one float image of ``shape``, read as :func:`read_image` reads files.

    The header is read first: an image of more than ``max_pixels`` pixels raises
    :class:`~aerec.exceptions.ImageTooLargeError` before anything is decoded (a small file can hold
    a huge image).
    """
    import io

    from PIL import Image, UnidentifiedImageError

    if not data:
        raise DataValidationError("the image is empty (0 bytes); send a PNG or JPEG image")
    extensions = Image.registered_extensions()
    formats = sorted({extensions[s] for s in IMAGE_SUFFIXES if s in extensions})
    try:
        with Image.open(io.BytesIO(data), formats=formats) as img:  # reads the header only
            width, height = img.size
    except UnidentifiedImageError:
        raise DataValidationError(f"not a decodable image (expected {' or '.join(formats)})") from None
    except _undecodable() as exc:
        raise DataValidationError(f"not a decodable image ({type(exc).__name__}: {exc})") from None
    if max_pixels is not None and width * height > max_pixels:
        raise ImageTooLargeError(f"the image is {width} x {height} pixels; the limit is {max_pixels} pixels")
    return read_image(data, shape, aspect)


def _to_float(batch: np.ndarray, shape) -> np.ndarray:
    x = batch.astype(np.float32)
    if batch.dtype == np.uint8:
        x /= 255.0
    return x.reshape((len(batch),) + tuple(shape))


def _resize_array(array: np.ndarray, size, channels: int, aspect: str = "crop") -> np.ndarray:
    from PIL import Image

    out = np.empty((len(array), size[0], size[1], channels), dtype=np.uint8 if array.dtype == np.uint8 else np.float32)
    for n, image in enumerate(array):
        mode_in = image[..., 0] if image.shape[-1] == 1 else image
        if array.dtype != np.uint8:
            mode_in = (mode_in * 255).round().astype(np.uint8)
        img = _to_shape(Image.fromarray(mode_in).convert("L" if channels == 1 else "RGB"), size[0], size[1], aspect)
        x = np.asarray(img).reshape(size[0], size[1], channels)
        out[n] = x if array.dtype == np.uint8 else x / 255.0
    return out
