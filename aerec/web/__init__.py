"""The pages ``aerec serve`` shows in a browser, and the files they read.

The pages are plain HTML, CSS and JavaScript shipped inside the package (``aerec/web/*.html`` and
``aerec/web/static/``): nothing comes from a CDN, so they work on a machine without internet. They
call the server's JSON routes with ``fetch`` (with the ``X-API-Key`` header when the server wants
one; the key is typed into the page and kept in the tab's ``sessionStorage`` only).

This module holds what the server reads for them besides the model: image files confined to one
folder (:func:`confined_file`), their thumbnails (:func:`thumbnail_png`) and the items' display
titles (:func:`item_titles`).
"""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd

from ..exceptions import DataValidationError, ImageTooLargeError, MissingColumnError, OutsideFolderError

__all__ = ["PAGES", "STATIC", "page_html", "confined_file", "thumbnail_png", "item_titles"]

#: the folder of the pages (``<kind>.html``)
PAGES = Path(__file__).resolve().parent
#: the folder of their scripts, style sheet and icon, served at ``/ui``
STATIC = PAGES / "static"

#: kind of bundle -> (what the page is called, its content in PAGES, its script in STATIC)
_PAGE_OF_KIND = {"recommender": ("recommendations", "recommender.html", "recommender.js"),
                 "image search": ("image search", "images.html", "images.js")}


def page_html(kind: str) -> str | None:
    """The HTML of the page of a kind of bundle (``"recommender"``, ``"image search"``); None when it has none.

    Every page is ``layout.html`` (head, the bar with the model and the API key field) around its own content.
    """
    if kind not in _PAGE_OF_KIND:
        return None
    name, content, script = _PAGE_OF_KIND[kind]
    layout = (PAGES / "layout.html").read_text(encoding="utf-8")
    return (layout.replace("{{kind}}", name).replace("{{script}}", script)
            .replace("{{main}}", (PAGES / content).read_text(encoding="utf-8")))


def confined_file(root, relative: str) -> Path:
    """The file ``relative`` names inside the folder ``root``, refused when it resolves outside it.

    Parameters
    ----------
    root : path
        The folder files may be read from.
    relative : str
        A path relative to ``root`` (an image id, by default the path ``ImageSearch.fit`` found it at).

    Raises
    ------
    OutsideFolderError
        ``relative`` is absolute, or resolves outside ``root`` (``..`` parts, a symlink that points out).
    FileNotFoundError
        No such file inside ``root``.

    Examples
    --------
    >>> import tempfile
    >>> root = Path(tempfile.mkdtemp()); (root / "a.png").write_bytes(b"")
    0
    >>> confined_file(root, "a.png") == (root / "a.png").resolve()
    True
    >>> confined_file(root, "../a.png")
    Traceback (most recent call last):
    ...
    aerec.exceptions.OutsideFolderError: '../a.png' is outside the image folder
    """
    base = Path(root).resolve()
    name = str(relative)
    if not name or Path(name).is_absolute() or "\x00" in name:
        raise OutsideFolderError(f"{name!r} is outside the image folder")
    try:
        # strict: every symlink on the way is followed to what it points at, which must still be inside
        path = (base / name).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        # a missing file whose name climbs out is refused as climbing out, not reported missing
        if not (base / name).resolve().is_relative_to(base):
            raise OutsideFolderError(f"{name!r} is outside the image folder") from None
        raise FileNotFoundError(f"{name!r}: no such file in the image folder") from None
    except (OSError, RuntimeError, ValueError):  # a symlink loop, a name the OS refuses
        raise FileNotFoundError(f"{name!r}: no such file in the image folder") from None
    if not path.is_relative_to(base):
        raise OutsideFolderError(f"{name!r} is outside the image folder")
    if not path.is_file():
        raise FileNotFoundError(f"{name!r}: no such file in the image folder")
    return path


def thumbnail_png(path, max_side: int = 160, max_pixels: int | None = None) -> bytes:
    """A PNG of the image file at ``path``, scaled down (never up) to at most ``max_side`` pixels a side.

    The aspect is kept and a photo's EXIF orientation applied. The header is read first: an image of
    more than ``max_pixels`` pixels raises :class:`~aerec.exceptions.ImageTooLargeError` before it is
    decoded; a file that is not an image raises :class:`~aerec.exceptions.DataValidationError`.
    """
    import struct

    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            width, height = img.size
            if max_pixels is not None and width * height > max_pixels:
                raise ImageTooLargeError(f"the image is {width} x {height} pixels; the limit is {max_pixels} pixels")
            if img.format == "JPEG":
                img.draft("RGB", (max_side, max_side))  # decode at a reduced scale: far less work for a photo
            img = ImageOps.exif_transpose(img)
            if img.mode not in ("1", "L", "LA", "RGB", "RGBA"):
                img = img.convert("RGBA" if "A" in img.getbands() or "transparency" in img.info else "RGB")
            img.thumbnail((max_side, max_side), Image.LANCZOS)
            out = io.BytesIO()
            img.save(out, format="PNG", optimize=False)
    except ImageTooLargeError:
        raise
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error,
            Image.DecompressionBombError) as exc:
        raise DataValidationError(f"{Path(path).name}: not a decodable image ({type(exc).__name__})") from None
    return out.getvalue()


def item_titles(table, items, item: str = "item", title: str = "title") -> pd.Series:
    """The display titles of a model's items, read from a table of item features.

    Parameters
    ----------
    table : DataFrame or path
        One row per item (CSV, TSV or Parquet when a path), e.g. MovieLens' ``item, title, ...``.
    items : IdMap or index
        The model's item ids: the table's ids are read as ids of the same type (``"42"`` is 42 where the
        ids are integers), and rows of items the model does not know are left out.
    item, title : str
        The id column and the title column.

    Returns
    -------
    Series of str, indexed by item id (the first title of an id given twice; items without one left out).

    Raises
    ------
    MissingColumnError
        ``item`` or ``title`` is not a column of the table (naming it and the columns there are).

    Examples
    --------
    >>> table = pd.DataFrame({"item": ["1", "2", "9"], "title": ["Toy Story", None, "Heat"]})
    >>> item_titles(table, pd.Index([1, 2, 3])).to_dict()
    {1: 'Toy Story'}
    """
    from ..data import coerce_ids, read_table

    frame = table if isinstance(table, pd.DataFrame) else read_table(table)
    what = "the item titles" if isinstance(table, pd.DataFrame) else str(table)
    missing = [c for c in (item, title) if c not in frame.columns]
    if missing:
        raise MissingColumnError(f"{what} has no column(s) {missing}; its columns are {list(frame.columns)}. "
                                 f"Name the id and title columns (title_column=, --title-column)")
    known = items.ids if hasattr(items, "ids") and not isinstance(items, pd.Index) else pd.Index(items)
    ids = coerce_ids(frame[item].tolist(), known)
    titles = pd.Series(frame[title].to_numpy(), index=pd.Index(ids, dtype=object), dtype=object)
    titles = titles[~titles.index.duplicated() & titles.notna() & titles.index.isin(known)]
    if titles.empty and len(frame):
        raise DataValidationError(f"{what}: none of its {len(frame)} {item!r} ids is an item of the model "
                                  f"(e.g. {frame[item].iloc[0]!r}; the model's are like {known[0]!r})")
    return titles.astype(str)
