"""Errors and warnings raised by aerec.

Every error subclasses the builtin it means (``ValueError``, ``KeyError``, ...), so
``except ValueError`` keeps working, and its message names the file, column, row or id
at fault. Recoverable problems are warnings of ours that count the rows they touched.
"""
from __future__ import annotations

__all__ = [
    "AerecError",
    "NotFittedError",
    "DataValidationError",
    "InvalidParameterError",
    "MissingColumnError",
    "ImageTooLargeError",
    "UnknownIdError",
    "OutsideFolderError",
    "ChecksumError",
    "BundleError",
    "DownloadError",
    "CatalogueTooLargeError",
    "WorkersDivergedError",
    "AerecWarning",
    "DuplicatesMergedWarning",
    "UnknownIdsWarning",
    "DroppedRowsWarning",
    "BundleVersionWarning",
]


class AerecError(Exception):
    """Base class of every error aerec raises on purpose."""


class NotFittedError(AerecError, ValueError, AttributeError):
    """An estimator was used before ``fit``."""


class DataValidationError(AerecError, ValueError):
    """User data is malformed; the message names the column and the rows at fault."""


class InvalidParameterError(AerecError, ValueError):
    """A hyperparameter is outside what the estimator accepts; the message names it, what it must be and what it got."""


class MissingColumnError(DataValidationError):
    """A column the call needs is not in the DataFrame."""


class ImageTooLargeError(DataValidationError):
    """An image has more pixels than the limit it is read under (a decompression bomb, or an oversized upload)."""


class UnknownIdError(AerecError, KeyError):
    """Ids that the fitted estimator has never seen.

    Attributes
    ----------
    ids : list
        The unknown ids (all of them, in the order given).
    kind : str
        ``"user"`` or ``"item"``.
    """

    def __init__(self, kind: str, ids, hint: str = ""):
        self.kind = kind
        self.ids = list(ids)
        from .utils import shown

        msg = f"{len(self.ids)} unknown {kind} id(s): {shown(self.ids)}"
        if hint:
            msg += f". {hint}"
        super().__init__(msg)

    def __str__(self) -> str:  # KeyError would print the message quoted as a repr
        return str(self.args[0])


class ChecksumError(AerecError, ValueError):
    """A downloaded or saved file does not have the checksum it must have."""


class BundleError(AerecError, ValueError):
    """A saved bundle is missing, truncated, tampered with or of an unknown version."""


class DownloadError(AerecError, OSError):
    """A data set could not be downloaded; the message names it, the address, and the way to work offline."""


class CatalogueTooLargeError(AerecError, MemoryError):
    """The model would need more memory than the machine has for this catalogue."""


class WorkersDivergedError(AerecError, RuntimeError):
    """Workers training one model across machines ended with different weights (their updates were not in step)."""


class AerecWarning(UserWarning):
    """Base class of aerec's warnings."""


class DuplicatesMergedWarning(AerecWarning):
    """Duplicated (user, item) pairs were merged into one entry each."""


class UnknownIdsWarning(AerecWarning):
    """Ids unseen at fit time were ignored; the message counts them."""


class DroppedRowsWarning(AerecWarning):
    """Rows were left out of the data; the message counts them and says why."""


class ConvertedImagesWarning(AerecWarning):
    """Some images were converted (greyscale to colour or back) to the channels of the others; the message counts them."""


class BundleVersionWarning(AerecWarning):
    """A bundle was written with other major.minor versions of the libraries that read it."""


class OutsideFolderError(AerecError, PermissionError):
    """A file asked for resolves outside the folder it must be read from (``..``, an absolute path, a symlink)."""
