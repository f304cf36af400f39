"""HTTP serving of a saved bundle: ``create_app(bundle_path)`` returns a FastAPI app.

Which routes the app has depends on what the bundle holds:

========================  =========================================================================
bundle                    routes (besides ``GET /health`` and ``GET /metadata``)
========================  =========================================================================
a recommender             ``POST /recommend`` (known user), ``POST /recommend/history`` (fold-in of a
(EASE, Mult-VAE, ...)     new user's items), ``POST /similar-items``
``ImageSearch``           ``POST /images/search`` (an uploaded image file), ``POST /images/similar``
``AutoRec``               ``POST /predict`` (ratings of (user, item) pairs)
========================  =========================================================================

A recommender and an ``ImageSearch`` bundle also get a page for a browser at ``GET /`` (HTML, CSS and
JavaScript of :mod:`aerec.web`, nothing from a CDN) and the small routes it reads: ``GET /users``
and ``GET /items`` (ids, and the items' titles when the app was given a table of them), ``GET
/images/ids`` and ``GET /images/file/{id}`` (a thumbnail, read only from the image folder given at
start: ``..``, absolute paths and symlinks out of it are refused with 403).

Nothing is loaded at import and nothing is global: each app holds its own model, and the routes call
only the estimators' public API (the recommenders' :class:`~aerec.TopK` array methods, whose hot path
is the model's user code in NumPy and one FAISS search; ``ImageSearch.search``; ``AutoRec.predict``).
Ids in JSON are read with :func:`aerec.data.coerce_ids`, as on the command line. Unknown ids answer
404 naming them, bad bodies 422 with one readable line, bodies and uploads over the size limits 413.

Which routes a kind of bundle gets is said in one place: a function decorated with
``@_serves("kind")`` here, for the estimator classes whose ``served_as`` is that kind.

Run it with ``aerec serve BUNDLE`` (binds 127.0.0.1 unless told otherwise).
"""
from __future__ import annotations

import gc
import hmac
import os
from pathlib import Path
from typing import Callable, Literal, Union

try:
    from fastapi import Depends, FastAPI, File, Form, HTTPException, Query, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import HTMLResponse, JSONResponse, Response
    from fastapi.security import APIKeyHeader
    from pydantic import BaseModel, Field, StrictInt, StrictStr
    from typing_extensions import Annotated
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("aerec's HTTP server needs the 'serve' extra: pip install 'aerec[serve]'") from exc

import numpy as np

from .data import coerce_ids
from .data.images import decode_image
from .exceptions import (AerecError, DataValidationError, ImageTooLargeError, InvalidParameterError, OutsideFolderError,
                         UnknownIdError)

__all__ = ["create_app", "app_from_env", "serving_kind", "served_kinds"]

Id = Union[StrictInt, StrictStr]


# --- request and response models ------------------------------------------------------------
class ScoredItem(BaseModel):
    item: Id
    score: float
    rank: int


class RecommendRequest(BaseModel):
    user: Id = Field(description="The user's id, as in the training data.")
    k: int = Field(10, ge=1, description="How many items.")
    exclude_seen: bool = Field(True, description="Leave out items the user interacted with in training.")


class RecommendResponse(BaseModel):
    user: Id
    items: list[ScoredItem]


class HistoryRequest(BaseModel):
    items: list[Id] = Field(min_length=1, description="Items the (new) user interacted with, oldest first "
                                                       "(a sequential model reads the order; the others a set).")
    k: int = Field(10, ge=1)
    exclude_seen: bool = Field(True, description="Leave out the history's own items.")


class HistoryResponse(BaseModel):
    items: list[ScoredItem]
    ignored: list[Id] = Field(description="History items unknown to the model (not used).")


class SimilarRequest(BaseModel):
    item: Id
    k: int = Field(10, ge=1)


class SimilarResponse(BaseModel):
    item: Id
    items: list[ScoredItem]


class ScoredImage(BaseModel):
    id: Id = Field(description="The indexed image's id (a path relative to the fitted folder, by default).")
    score: float
    rank: int


class ImageSearchResponse(BaseModel):
    items: list[ScoredImage]


class SimilarImagesRequest(BaseModel):
    id: Id = Field(description="An indexed image's id.")
    k: int = Field(10, ge=1)


class SimilarImagesResponse(BaseModel):
    id: Id
    items: list[ScoredImage]


class Pair(BaseModel):
    user: Id
    item: Id


class PredictRequest(BaseModel):
    pairs: list[Pair] = Field(min_length=1, description="The (user, item) pairs to predict ratings of.")


Fallback = Literal["item_mean", "user_mean", "global_mean"]


class Prediction(BaseModel):
    user: Id
    item: Id
    rating: float
    fallback: Fallback | None = Field(
        description="How a pair with an id unseen at fit time was answered: the item's mean training rating "
                    "(unknown user), the user's mean (unknown item), the global mean (both unknown); "
                    "null when the model predicted it.")


class PredictResponse(BaseModel):
    predictions: list[Prediction]
    n_fallback: int = Field(description="How many pairs got a fallback instead of the model's prediction.")


class IdPage(BaseModel):
    total: int = Field(description="How many ids there are in all.")
    offset: int
    ids: list[Id] = Field(description="The ids from ``offset`` on, in the model's order.")


class UserItems(BaseModel):
    user: Id
    total: int = Field(description="How many items the user interacted with in training.")
    items: list[Id] = Field(description="The first ``limit`` of them, the heaviest (e.g. highest rated) first.")


class ItemTitle(BaseModel):
    item: Id
    title: str | None = Field(description="The item's title; null when the server was given none for it.")


class ItemsResponse(BaseModel):
    items: list[ItemTitle]


class Health(BaseModel):
    status: str
    model: str


class Metadata(BaseModel):
    kind: str = Field(description="What the bundle serves: the estimator class's ``served_as``.")
    model: str
    params: dict
    versions: dict
    history: dict
    limits: dict
    n_users: int | None = None
    n_items: int | None = None
    n_images: int | None = None
    image_shape: list[int] | None = None
    rating_range: list[float] | None = None
    titles: int | None = Field(None, description="Recommenders: how many items have a title (0: none given).")
    thumbnails: bool | None = Field(None, description="Image search: whether ``/images/file/{id}`` has a folder "
                                                      "to read thumbnails from.")


class ErrorBody(BaseModel):
    detail: str


# --- what the server answers ---------------------------------------------------------------------
_ROUTES: dict[str, Callable] = {}


def _serves(kind: str):
    """Register the function that adds the routes of estimators whose ``served_as`` is ``kind``."""
    def decorate(func):
        _ROUTES[kind] = func
        return func
    return decorate


def served_kinds() -> list[str]:
    """The kinds of bundle :func:`create_app` serves."""
    return sorted(_ROUTES)


def _served_classes() -> str:
    """``"image search (ImageSearch), ..."``: the kinds served and the estimator classes of each."""
    from .base import estimator_classes

    return ", ".join(f"{kind} ({', '.join(estimator_classes(served_as=kind))})" for kind in served_kinds())


def serving_kind(estimator) -> str | None:
    """The kind :func:`create_app` serves an estimator (or its class) as; None when it serves none."""
    cls = estimator if isinstance(estimator, type) else type(estimator)
    kind = getattr(cls, "served_as", None)
    return kind if kind in _ROUTES else None


class _Limits:
    def __init__(self, max_k: int, max_history: int, max_pairs: int, max_upload_bytes: int, max_image_pixels: int,
                 max_body_bytes: int):
        for name, value in (("max_k", max_k), ("max_history", max_history), ("max_pairs", max_pairs),
                            ("max_upload_bytes", max_upload_bytes), ("max_image_pixels", max_image_pixels),
                            ("max_body_bytes", max_body_bytes)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidParameterError(f"{name} must be a positive integer, got {value!r}")
        self.max_k, self.max_history, self.max_pairs = max_k, max_history, max_pairs
        self.max_upload_bytes, self.max_image_pixels, self.max_body_bytes = max_upload_bytes, max_image_pixels, max_body_bytes


class _Sources:
    """What the app reads besides the bundle: the folder of the indexed images, the items' titles."""

    def __init__(self, images_root: Path | None, titles):
        self.images_root, self.titles = images_root, titles


class _TooLarge(AerecError, ValueError):
    """A request over a size limit (answered 413)."""


def create_app(bundle_path, api_key: str | None = None, max_k: int = 1000, max_history: int = 10_000,
               via: str = "index", max_pairs: int = 10_000, max_upload_bytes: int = 10 * 2**20,
               max_image_pixels: int = 4096 * 4096, max_body_bytes: int = 2**20, images_root=None, titles=None,
               title_column: str = "title"):
    """A FastAPI app serving the bundle at ``bundle_path``; its routes depend on what the bundle holds.

    Parameters
    ----------
    bundle_path : path
        A directory written by ``save`` of a recommender (``EASE``, ``MultVAE``, ...), an
        ``ImageSearch`` or an ``AutoRec``.
    api_key : str, optional
        When set, every endpoint but ``/health`` wants it in the ``X-API-Key`` header (401 otherwise),
        checked before the body is read. An empty key is refused.
    max_k : int
        Most results per request (422 beyond it).
    max_history : int
        Most items in a fold-in history (recommenders; 422 beyond it).
    via : {"index", "model"}
        Recommenders: answer from the bundle's FAISS index over item codes (exact unless the bundle
        was saved with an approximate one), or score every item with the model.
    max_pairs : int
        Most (user, item) pairs per ``/predict`` request (rating models; 422 beyond it).
    max_upload_bytes, max_image_pixels : int
        Largest image upload, in bytes and in decoded pixels (image search; 413 beyond them).
    max_body_bytes : int
        Largest JSON body (413 beyond it, from the Content-Length header or while the body streams in).
    images_root : path, optional
        Image search: the folder ``GET /images/file/{id}`` reads the indexed images from (an id is a
        path relative to it); by default the folder the ``ImageSearch`` was fitted on, when it was
        fitted on a folder that is still there. Nothing outside it is ever read.
    titles : DataFrame or path, optional
        Recommenders: a table of item features (CSV, TSV or Parquet) with the model's item id column
        and ``title_column``; the page and ``GET /items`` show these titles.
    title_column : str
        The column of ``titles`` to show.

    Raises
    ------
    TypeError
        When the bundle holds an estimator the server does not answer (e.g. a ``TableAutoencoder``).
    """
    from . import __version__
    from .bundle import load, read_meta

    if via not in ("index", "model"):
        raise InvalidParameterError(f"via must be 'index' or 'model', got {via!r}")
    if api_key is not None and (not isinstance(api_key, str) or not api_key.strip()):
        raise InvalidParameterError("api_key is empty: give a real key, or None to serve without one")
    limits = _Limits(max_k, max_history, max_pairs, max_upload_bytes, max_image_pixels, max_body_bytes)
    meta = read_meta(bundle_path)
    model = load(bundle_path)
    kind = serving_kind(model)
    if kind is None:
        raise TypeError(f"{Path(bundle_path).name} holds a {type(model).__name__}; the server answers "
                        f"{_served_classes()} bundles")
    sources = _sources(model, kind, images_root, titles, title_column)

    app = FastAPI(title="aerec", version=__version__, docs_url=None, redoc_url=None,
                  description=f"{kind.capitalize()} {type(model).__name__} from the bundle {Path(bundle_path).name}.")
    _offline_docs(app)
    app.state.model = model
    app.state.kind = kind

    secured = []
    if api_key is not None:
        key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

        def check_key(key: str | None = Depends(key_header)) -> None:  # declares the key in the OpenAPI schema
            if key is None or not hmac.compare_digest(key.encode(), api_key.encode()):
                raise HTTPException(status_code=401, detail="missing or wrong X-API-Key")

        secured = [Depends(check_key)]

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, exc: UnknownIdError):
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(OutsideFolderError)
    async def outside_folder(request: Request, exc: OutsideFolderError):
        return JSONResponse(status_code=403, content={"detail": str(exc)})

    @app.exception_handler(_TooLarge)
    async def too_large(request: Request, exc: _TooLarge):
        return JSONResponse(status_code=413, content={"detail": str(exc)})

    @app.exception_handler(ImageTooLargeError)
    async def image_too_large(request: Request, exc: ImageTooLargeError):
        return JSONResponse(status_code=413, content={"detail": str(exc)})

    @app.exception_handler(AerecError)
    async def bad_input(request: Request, exc: AerecError):
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(RequestValidationError)
    async def bad_body(request: Request, exc: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": _validation_message(exc.errors())})

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):  # never leak tracebacks or paths
        return JSONResponse(status_code=500, content={"detail": f"internal error ({type(exc).__name__})"})

    errors = {422: {"model": ErrorBody}, 413: {"model": ErrorBody, "description": "The body is over the size limit."}}
    if api_key is not None:
        errors[401] = {"model": ErrorBody}
    with_ids = {**errors, 404: {"model": ErrorBody}}

    @app.get("/health", response_model=Health)
    async def health():
        """Liveness: the model is loaded."""
        return {"status": "ok", "model": type(model).__name__}

    served = _ROUTES[kind](app, model, limits, secured, errors, with_ids, via, sources)
    _page(app, kind)

    @app.get("/metadata", response_model=Metadata, dependencies=secured,
             responses={401: {"model": ErrorBody}} if api_key is not None else None)
    async def metadata():
        """What is being served: the kind of model, its parameters, library versions, training history, limits."""
        return {"kind": kind, "model": type(model).__name__, "params": _plain(meta["params"]),
                "versions": meta.get("versions", {}), "history": _plain(meta.get("history", {})),
                "limits": served["limits"], **served["sizes"]}

    # outermost: the key and the body size are checked before anything reads the body
    upload_paths = tuple(served.get("upload_paths", ()))
    app.add_middleware(_Gate, api_key=api_key, open_paths=("/health", "/docs", "/openapi.json", _DOCS_ASSETS, "/",
                                                         _PAGE_ASSETS),
                       limit=limits.max_body_bytes,
                       upload_paths=upload_paths, upload_limit=limits.max_upload_bytes)
    return app


_DOCS_ASSETS = "/docs-assets"
_PAGE_ASSETS = "/ui"
#: the page runs only its own scripts and styles, talks only to this server, and is never framed
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; "
                               "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache",
}


def _page(app, kind: str) -> None:
    """``GET /``: the kind's page for a browser (when it has one), its assets at ``/ui``. Both are open
    (they hold no data); the page sends the API key, typed in by its user, with every request it makes."""
    from fastapi.staticfiles import StaticFiles

    from .web import STATIC, page_html

    html = page_html(kind)
    if html is None:
        return
    app.mount(_PAGE_ASSETS, StaticFiles(directory=str(STATIC)), name="page-assets")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def page():
        return HTMLResponse(html, headers=_PAGE_HEADERS)


def _sources(model, kind: str, images_root, titles, title_column: str) -> _Sources:
    """Check what the app is to read besides the bundle, once, at start."""
    from .web import item_titles

    if images_root is not None and kind != "image search":
        raise InvalidParameterError(f"images_root is for ImageSearch bundles; this one holds a {type(model).__name__}")
    if titles is not None and kind != "recommender":
        raise InvalidParameterError(f"titles are for recommender bundles; this one holds a {type(model).__name__}")
    root = None
    if images_root is not None:
        root = Path(images_root)
        if not root.is_dir():
            raise FileNotFoundError(f"{images_root}: no such folder (images_root)")
    elif kind == "image search" and model.folder_ is not None and Path(model.folder_).is_dir():
        root = Path(model.folder_)
    shown = None
    if titles is not None:
        shown = item_titles(titles, model.items_, item=model.columns_["item"], title=title_column)
    return _Sources(root.resolve() if root is not None else None, shown)


def _offline_docs(app) -> None:
    """``/docs`` with Swagger UI's JavaScript and CSS served by the app itself (from the swagger-ui-bundle
    package), so the page works on a machine without internet; FastAPI's own page loads them from a CDN."""
    from fastapi.openapi.docs import get_swagger_ui_html
    from fastapi.staticfiles import StaticFiles
    from swagger_ui_bundle import swagger_ui_path

    app.mount(_DOCS_ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs():
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} - API",
                                   swagger_js_url=f"{_DOCS_ASSETS}/swagger-ui-bundle.js",
                                   swagger_css_url=f"{_DOCS_ASSETS}/swagger-ui.css",
                                   swagger_favicon_url=f"{_DOCS_ASSETS}/favicon-32x32.png")


def _plain(value):
    """JSON-safe copy of a training history or parameters (tuples as lists; NaN and infinities become None)."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _validation_message(errors) -> str:
    """FastAPI's list of validation errors as one readable line."""
    parts = []
    for error in errors[:5]:
        if error.get("type") == "json_invalid":
            position = next((p for p in error.get("loc", ()) if isinstance(p, int)), None)
            reason = (error.get("ctx") or {}).get("error", "invalid JSON")
            where = f" at character {position}" if position is not None else ""
            parts.append(f"the body is not valid JSON: {str(reason).lower()}{where}")
            continue
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def _check_k(k: int, cap: int, n: int, what: str) -> None:
    if k > cap:
        raise DataValidationError(f"k={k} is above the limit of {cap} ({n} {what})")


def _one_id(value, ids):
    return coerce_ids([value], ids)[0]


def _check_limit(limit: int, cap: int) -> None:
    if limit > cap:
        raise DataValidationError(f"limit={limit} is above the limit of {cap} per request")


def _id_page(ids, offset: int, limit: int | None, cap: int) -> dict:
    """Ids ``offset .. offset + limit`` of an index, for the pages' pickers (``limit`` at most ``cap``)."""
    if limit is None:
        limit = min(100, cap)
    _check_limit(limit, cap)
    return {"total": len(ids), "offset": offset, "ids": ids[offset:offset + limit].tolist()}


# --- recommenders ---------------------------------------------------------------------------------
@_serves("recommender")
def _recommender_routes(app, model, limits: _Limits, secured, errors, with_ids, via: str, sources: _Sources) -> dict:
    n_items = len(model.items_)
    if via == "index":
        model.index_  # noqa: B018 - an index built on first use is built now, not by the first request
    k_cap = min(limits.max_k, n_items)

    def scored(top) -> list[dict]:
        # plain dicts: FastAPI validates and serialises the whole response in one pass (pydantic-core)
        return [{"item": item, "score": score, "rank": rank} for rank, (item, score) in enumerate(top.row(0), 1)]

    # async handlers: the work is a fraction of a millisecond of NumPy and FAISS, cheaper to run on
    # the event loop than to hand to a worker thread
    @app.post("/recommend", response_model=RecommendResponse, dependencies=secured, responses=with_ids)
    async def recommend(body: RecommendRequest):
        """Top-k items for a user seen at fit time."""
        _check_k(body.k, k_cap, n_items, "items in the catalogue")
        top = model.top_k([_one_id(body.user, model.users_)], k=body.k, exclude_seen=body.exclude_seen, via=via)
        return {"user": body.user, "items": scored(top)}

    @app.post("/recommend/history", response_model=HistoryResponse, dependencies=secured, responses=errors)
    async def recommend_for_history(body: HistoryRequest):
        """Top-k items for a user the model has never seen, from the items they interacted with (fold-in)."""
        _check_k(body.k, k_cap, n_items, "items in the catalogue")
        if len(body.items) > limits.max_history:
            raise DataValidationError(f"the history has {len(body.items)} items; the limit is {limits.max_history}")
        history = coerce_ids(body.items, model.items_)
        top = model.top_k_for_histories([history], k=body.k, exclude_seen=body.exclude_seen, via=via)
        unknown = set(top.ignored[0])
        return {"items": scored(top), "ignored": [given for given, item in zip(body.items, history) if item in unknown]}

    @app.post("/similar-items", response_model=SimilarResponse, dependencies=secured, responses=with_ids)
    async def similar_items(body: SimilarRequest):
        """The k items most similar to an item (the item itself excluded)."""
        _check_k(body.k, min(k_cap, n_items - 1), n_items - 1, "other items")
        top = model.top_k_similar([_one_id(body.item, model.items_)], k=body.k, via=via)
        return {"item": body.item, "items": scored(top)}

    titles = sources.titles if sources.titles is not None else {}

    @app.get("/users", response_model=IdPage, dependencies=secured, responses=errors)
    async def users(offset: Annotated[int, Query(ge=0)] = 0,
                    limit: Annotated[int | None, Query(ge=1, description="At most max_k; default 100 (or max_k).")] = None):
        """Ids of users seen at fit time, ``limit`` of them from ``offset`` on (for a picker)."""
        return _id_page(model.users_.ids, offset, limit, limits.max_k)

    @app.get("/users/{user}/items", response_model=UserItems, dependencies=secured, responses=with_ids)
    async def user_items(user: str, limit: Annotated[int, Query(ge=1, description="At most max_k.")] = 20):
        """The items a user seen at fit time interacted with in training (what the recommendations leave out)."""
        _check_limit(limit, limits.max_k)
        found = _one_id(user, model.users_)
        row = model.interactions_.matrix[int(model.users_.index_of([found])[0])]
        order = np.argsort(-row.data, kind="stable")[:limit]
        return {"user": found, "total": int(row.nnz), "items": model.items_.ids_of(row.indices[order]).tolist()}

    @app.get("/items", response_model=ItemsResponse, dependencies=secured, responses=with_ids)
    async def items(ids: Annotated[list[str], Query(min_length=1, description="Item ids (repeat the parameter).")]):
        """The titles of items (from the table given at start; null without one)."""
        if len(ids) > limits.max_history:
            raise DataValidationError(f"{len(ids)} ids; the limit is {limits.max_history}")
        wanted = coerce_ids(ids, model.items_)
        model.items_.index_of(wanted)  # unknown ids: 404 naming them
        return {"items": [{"item": item, "title": titles.get(item)} for item in wanted]}

    @app.get("/items/search", response_model=ItemsResponse, dependencies=secured, responses=errors)
    async def find_items(q: Annotated[str, Query(min_length=1, max_length=200, description="Part of a title.")],
                         limit: Annotated[int, Query(ge=1, description="At most max_k.")] = 20):
        """Items whose title holds ``q`` (any case), in the model's order (none without titles)."""
        _check_limit(limit, limits.max_k)
        if not len(titles):
            return {"items": []}
        found = titles[titles.str.contains(q, case=False, regex=False)].head(limit)
        return {"items": [{"item": item, "title": title} for item, title in found.items()]}

    return {"sizes": {"n_users": len(model.users_), "n_items": n_items, "titles": len(titles)},
            "limits": {"max_k": k_cap, "max_history": limits.max_history, "max_body_bytes": limits.max_body_bytes}}


# --- image search ----------------------------------------------------------------------------------
@_serves("image search")
def _image_routes(app, search, limits: _Limits, secured, errors, with_ids, via: str, sources: _Sources) -> dict:
    n_images = len(search.index_)
    k_cap = min(limits.max_k, n_images)

    def scored(frame) -> list[dict]:
        return [{"id": i, "score": float(s), "rank": int(r)}
                for i, s, r in zip(frame["id"].tolist(), frame["score"].tolist(), frame["rank"].tolist())]

    # a worker thread per request (def, not async def): decoding and the Keras encoder take milliseconds
    @app.post("/images/search", response_model=ImageSearchResponse, dependencies=secured, responses=errors)
    def search_images(file: Annotated[UploadFile, File(description="The query image (PNG or JPEG).")],
                      k: Annotated[int, Form(ge=1, description="How many images.")] = 10):
        """The k indexed images most like an uploaded image."""
        _check_k(k, k_cap, n_images, "indexed images")
        data = file.file.read(limits.max_upload_bytes + 1)
        if len(data) > limits.max_upload_bytes:  # a client that sent no Content-Length and got past the gate
            raise _TooLarge(f"the upload is more than {limits.max_upload_bytes} bytes, the limit")
        try:
            image = decode_image(data, search.image_shape_, max_pixels=limits.max_image_pixels,
                                 aspect=search.aspect)
        except ImageTooLargeError:
            raise
        except DataValidationError as exc:
            raise DataValidationError(f"the upload is {exc}") from None
        return {"items": scored(search.search(image[None], k=k))}

    @app.post("/images/similar", response_model=SimilarImagesResponse, dependencies=secured, responses=with_ids)
    def similar_images(body: SimilarImagesRequest):
        """The k indexed images most like an indexed image (itself excluded)."""
        _check_k(body.k, min(k_cap, n_images - 1), n_images - 1, "other indexed images")
        return {"id": body.id, "items": scored(search.similar([_one_id(body.id, search.index_.ids_)], k=body.k))}

    @app.get("/images/ids", response_model=IdPage, dependencies=secured, responses=errors)
    async def image_ids(offset: Annotated[int, Query(ge=0)] = 0,
                        limit: Annotated[int | None, Query(ge=1, description="At most max_k; default 100 (or max_k).")] = None):
        """Ids of indexed images, ``limit`` of them from ``offset`` on (for a picker)."""
        return _id_page(search.index_.ids_.ids, offset, limit, limits.max_k)

    root = sources.images_root
    png = {200: {"content": {"image/png": {}}, "description": "A PNG thumbnail."},
           403: {"model": ErrorBody, "description": "The id's file is outside the image folder."}}

    @app.get("/images/file/{image_id:path}", response_class=Response, dependencies=secured,
             responses={**with_ids, **png})
    def image_file(image_id: str, size: Annotated[int, Query(ge=16, le=512, description="Longest side, pixels.")] = 160):
        """A thumbnail of an indexed image, read from the image folder given at start (404 without one)."""
        from .web import confined_file, thumbnail_png

        found = _one_id(image_id, search.index_.ids_)
        if found not in search.index_.ids_:  # only indexed images: 404 naming any other id
            raise UnknownIdError("image", [found], hint="/images/file/ serves indexed images only")
        if root is None:
            raise HTTPException(status_code=404, detail="no image folder: start the server with --images DIR "
                                                        "(create_app(..., images_root=DIR))")
        try:
            path = confined_file(root, str(found))
        except FileNotFoundError:
            raise HTTPException(status_code=404, detail=f"image {found!r} has no file in the image folder") from None
        return Response(thumbnail_png(path, size, max_pixels=limits.max_image_pixels), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})

    return {"sizes": {"n_images": n_images, "image_shape": [int(v) for v in search.image_shape_],
                      "thumbnails": root is not None},
            "limits": {"max_k": k_cap, "max_upload_bytes": limits.max_upload_bytes,
                       "max_image_pixels": limits.max_image_pixels, "max_body_bytes": limits.max_body_bytes},
            "upload_paths": ["/images/search"]}


# --- rating models ---------------------------------------------------------------------------------
@_serves("rating model")
def _rating_routes(app, model, limits: _Limits, secured, errors, with_ids, via: str, sources: _Sources) -> dict:
    import pandas as pd

    rating = model.columns_["rating"]

    @app.post("/predict", response_model=PredictResponse, dependencies=secured, responses=errors)
    def predict(body: PredictRequest):
        """Predicted ratings of (user, item) pairs; pairs with ids unseen at fit time get AutoRec's fallback."""
        if len(body.pairs) > limits.max_pairs:
            raise DataValidationError(f"{len(body.pairs)} pairs; the limit is {limits.max_pairs}")
        pairs = pd.DataFrame({
            "user": pd.Series(coerce_ids([p.user for p in body.pairs], model.users_), dtype=object),
            "item": pd.Series(coerce_ids([p.item for p in body.pairs], model.items_), dtype=object),
        })
        predicted = model.predict(pairs, user="user", item="item", with_fallback=True)
        fallback = predicted["fallback"].tolist()
        return {"predictions": [{"user": p.user, "item": p.item, "rating": r, "fallback": f}
                                for p, r, f in zip(body.pairs, predicted[rating].astype(float).tolist(), fallback)],
                "n_fallback": sum(f is not None for f in fallback)}

    return {"sizes": {"n_users": len(model.users_), "n_items": len(model.items_),
                      "rating_range": [float(v) for v in model.rating_range_]},
            "limits": {"max_pairs": limits.max_pairs, "max_body_bytes": limits.max_body_bytes}}


# --- the gate: key and body size before the app reads anything ------------------------------------
class _Gate:
    """ASGI middleware run before routing: 401 for a request without the API key (every path but
    ``open_paths``), then 413 for a body over its limit (``upload_limit`` on ``upload_paths``, ``limit``
    elsewhere), from Content-Length or while counting a streamed body, before the app parses it."""

    def __init__(self, app, api_key: str | None, open_paths: tuple[str, ...], limit: int,
                 upload_paths: tuple[str, ...], upload_limit: int):
        self.app, self.open_paths, self.limit = app, open_paths, limit
        self.api_key = api_key.encode() if api_key is not None else None
        self.upload_paths, self.upload_limit = upload_paths, upload_limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.api_key is not None and not _is_open(scope["path"], self.open_paths):
            given = headers.get(b"x-api-key", b"")
            if not hmac.compare_digest(given, self.api_key):
                return await _reply(send, 401, "missing or wrong X-API-Key")
        if scope["method"] in ("GET", "HEAD", "OPTIONS"):
            return await self.app(scope, receive, send)
        limit = self.upload_limit if scope["path"] in self.upload_paths else self.limit
        what = "upload" if scope["path"] in self.upload_paths else "body"
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _reply(send, 413, f"the {what} is {int(declared)} bytes; the limit is {limit} bytes")
        received, total = [], 0
        while True:  # buffered, never more than the limit
            message = await receive()
            if message["type"] != "http.request":
                received.append(message)
                break
            total += len(message.get("body", b""))
            if total > limit:
                return await _reply(send, 413, f"the {what} is more than {limit} bytes, the limit")
            received.append(message)
            if not message.get("more_body", False):
                break

        async def replay():
            return received.pop(0) if received else await receive()

        await self.app(scope, replay, send)


def _is_open(path: str, open_paths: tuple[str, ...]) -> bool:
    if any(part in (".", "..") for part in path.split("/")):  # "/ui/../metadata" is not under "/ui"
        return False
    return path in open_paths or any(path.startswith(p + "/") for p in open_paths)


async def _reply(send, status: int, detail: str) -> None:
    response = JSONResponse(status_code=status, content={"detail": detail}, headers={"Connection": "close"})
    await response({"type": "http"}, None, send)


def app_from_env():
    """App factory for ``uvicorn --factory`` and multi-worker serving: reads ``AEREC_BUNDLE`` (and
    ``AEREC_API_KEY``, ``AEREC_MAX_K``, ``AEREC_MAX_HISTORY``, ``AEREC_MAX_PAIRS``, ``AEREC_MAX_UPLOAD_BYTES``,
    ``AEREC_MAX_BODY_BYTES``, ``AEREC_IMAGES``, ``AEREC_TITLES``, ``AEREC_TITLE_COLUMN``)."""
    bundle = os.environ.get("AEREC_BUNDLE")
    if not bundle:
        raise RuntimeError("set AEREC_BUNDLE to the bundle directory to serve")
    app = create_app(bundle, api_key=os.environ.get("AEREC_API_KEY") or None,
                     max_k=int(os.environ.get("AEREC_MAX_K", "1000")),
                     max_history=int(os.environ.get("AEREC_MAX_HISTORY", "10000")),
                     max_pairs=int(os.environ.get("AEREC_MAX_PAIRS", "10000")),
                     max_upload_bytes=int(os.environ.get("AEREC_MAX_UPLOAD_BYTES", str(10 * 2**20))),
                     max_body_bytes=int(os.environ.get("AEREC_MAX_BODY_BYTES", str(2**20))),
                     images_root=os.environ.get("AEREC_IMAGES") or None, titles=os.environ.get("AEREC_TITLES") or None,
                     title_column=os.environ.get("AEREC_TITLE_COLUMN") or "title")
    # TensorFlow, Keras and the model leave ~450,000 Python objects behind; a full collection of the
    # cyclic garbage collector (rare, but it comes) scans them all, a pause of a few hundred ms on
    # 2 cores for whatever requests are in flight. This process only serves, so they move to the
    # permanent generation: the requests' own garbage is still collected.
    gc.freeze()
    return app
