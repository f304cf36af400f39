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

Nothing is loaded at import and nothing is global: each app holds its own model. The hot path of
the recommender endpoints is a dict lookup of the id, the model's user code (NumPy for the Keras
recommenders that offer it, see ``numpy_user_code``), one FAISS search and the ids of the result:
no pandas and no TensorFlow call per request. Unknown ids answer 404 naming them, bad bodies 422
with one readable line, uploads over the size limit 413.

Run it with ``aerec serve BUNDLE`` (binds 127.0.0.1 unless told otherwise).
"""
from __future__ import annotations

import gc
import io
import os
import struct
import warnings
from pathlib import Path
from typing import Literal, Union

try:
    from fastapi import Depends, FastAPI, File, Form, HTTPException, Request, UploadFile
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from fastapi.security import APIKeyHeader
    from pydantic import BaseModel, Field, StrictInt, StrictStr
    from typing_extensions import Annotated
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("aerec's HTTP server needs the 'serve' extra: pip install 'aerec[serve]'") from exc

import numpy as np
import scipy.sparse as sp

from .exceptions import AerecError, DataValidationError, UnknownIdError

__all__ = ["create_app", "app_from_env", "serving_kind"]

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
    items: list[Id] = Field(min_length=1, description="Items the (new) user interacted with.")
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


class Health(BaseModel):
    status: str
    model: str


Kind = Literal["recommender", "image search", "rating model"]


class Metadata(BaseModel):
    kind: Kind
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


class ErrorBody(BaseModel):
    detail: str


# --- ids ------------------------------------------------------------------------------------
class _IdLookup:
    """Dense index of a JSON id in O(1): a dict built once from an ``IdMap``, accepting "42" for
    the integer id 42 and 42 for the string id "42"."""

    def __init__(self, idmap, name: str | None = None):
        self.name = name or idmap.name
        self.ids = np.asarray(idmap.ids).tolist()  # JSON-ready ids, by index
        self.index = {value: i for i, value in enumerate(self.ids)}
        self.integer = idmap.ids.dtype.kind in "iu"

    def get(self, value) -> int:
        """The index of ``value``, or -1."""
        found = self.index.get(value)
        if found is None:
            if isinstance(value, str) and self.integer:
                try:
                    found = self.index.get(int(value))
                except ValueError:
                    pass
            elif isinstance(value, int) and not self.integer:
                found = self.index.get(str(value))
        return -1 if found is None else found

    def __call__(self, value) -> int:
        """The index of ``value``; :class:`~aerec.exceptions.UnknownIdError` naming it when unknown."""
        found = self.get(value)
        if found < 0:
            raise UnknownIdError(self.name, [value])
        return found


def _json_id(value):
    return value.item() if isinstance(value, np.generic) else value


# --- what the server answers ---------------------------------------------------------------------
def serving_kind(estimator) -> str | None:
    """``"recommender"``, ``"image search"`` or ``"rating model"`` for an estimator (or its class) that
    :func:`create_app` serves; None for anything else."""
    from .images import ImageSearch
    from .impute import AutoRec
    from .recommend.base import Recommender

    cls = estimator if isinstance(estimator, type) else type(estimator)
    for base, kind in ((Recommender, "recommender"), (ImageSearch, "image search"), (AutoRec, "rating model")):
        if issubclass(cls, base):
            return kind
    return None


class _Limits:
    def __init__(self, max_k: int, max_history: int, max_pairs: int, max_upload_bytes: int, max_image_pixels: int):
        for name, value in (("max_k", max_k), ("max_history", max_history), ("max_pairs", max_pairs),
                            ("max_upload_bytes", max_upload_bytes), ("max_image_pixels", max_image_pixels)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        self.max_k, self.max_history, self.max_pairs = max_k, max_history, max_pairs
        self.max_upload_bytes, self.max_image_pixels = max_upload_bytes, max_image_pixels


class _TooLarge(AerecError, ValueError):
    """A request over a size limit (answered 413)."""


def create_app(bundle_path, api_key: str | None = None, max_k: int = 1000, max_history: int = 10_000,
               via: str = "index", max_pairs: int = 10_000, max_upload_bytes: int = 10 * 2**20,
               max_image_pixels: int = 4096 * 4096):
    """A FastAPI app serving the bundle at ``bundle_path``; its routes depend on what the bundle holds.

    Parameters
    ----------
    bundle_path : path
        A directory written by ``save`` of a recommender (``EASE``, ``MultVAE``, ...), an
        ``ImageSearch`` or an ``AutoRec``.
    api_key : str, optional
        When set, every endpoint but ``/health`` wants it in the ``X-API-Key`` header (401 otherwise).
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

    Raises
    ------
    TypeError
        When the bundle holds an estimator the server does not answer (e.g. a ``TableAutoencoder``).
    """
    from . import __version__
    from .bundle import load, read_meta

    if via not in ("index", "model"):
        raise ValueError(f"via must be 'index' or 'model', got {via!r}")
    limits = _Limits(max_k, max_history, max_pairs, max_upload_bytes, max_image_pixels)
    meta = read_meta(bundle_path)
    model = load(bundle_path)
    kind = serving_kind(model)
    if kind is None:
        raise TypeError(f"{Path(bundle_path).name} holds a {type(model).__name__}; the server answers recommender, "
                        "ImageSearch and AutoRec bundles")

    app = FastAPI(title="aerec", version=__version__,
                  description=f"{kind.capitalize()} {type(model).__name__} from the bundle {Path(bundle_path).name}.")
    app.state.model = model
    app.state.kind = kind

    secured = []
    if api_key is not None:
        key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

        def check_key(key: str | None = Depends(key_header)) -> None:
            if key != api_key:
                raise HTTPException(status_code=401, detail="missing or wrong X-API-Key")

        secured = [Depends(check_key)]

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, exc: UnknownIdError):
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(_TooLarge)
    async def too_large(request: Request, exc: _TooLarge):
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

    errors = {422: {"model": ErrorBody}}
    if api_key is not None:
        errors[401] = {"model": ErrorBody}
    with_ids = {**errors, 404: {"model": ErrorBody}}

    @app.get("/health", response_model=Health)
    async def health():
        """Liveness: the model is loaded."""
        return {"status": "ok", "model": type(model).__name__}

    sizes, limit_values = _describe(model, kind, limits)

    @app.get("/metadata", response_model=Metadata, dependencies=secured,
             responses={401: {"model": ErrorBody}} if api_key is not None else None)
    async def metadata():
        """What is being served: the kind of model, its parameters, library versions, training history, limits."""
        return {"kind": kind, "model": type(model).__name__, "params": meta["params"],
                "versions": meta.get("versions", {}), "history": _plain(meta.get("history", {})),
                "limits": limit_values, **sizes}

    routes = {"recommender": _recommender_routes, "image search": _image_routes, "rating model": _rating_routes}
    routes[kind](app, model, limits, secured, errors, with_ids, via)
    return app


def _describe(model, kind: str, limits: _Limits) -> tuple[dict, dict]:
    """Sizes for ``/metadata`` and the limits that apply to this kind of model."""
    if kind == "recommender":
        return ({"n_users": len(model.users_), "n_items": len(model.items_)},
                {"max_k": min(limits.max_k, len(model.items_)), "max_history": limits.max_history})
    if kind == "image search":
        return ({"n_images": len(model.index_), "image_shape": [int(v) for v in model.image_shape_]},
                {"max_k": min(limits.max_k, len(model.index_)), "max_upload_bytes": limits.max_upload_bytes,
                 "max_image_pixels": limits.max_image_pixels})
    return ({"n_users": len(model.users_), "n_items": len(model.items_),
             "rating_range": [float(v) for v in model.rating_range_]},
            {"max_pairs": limits.max_pairs})


def _plain(value):
    """JSON-safe copy of a training history (NaN and infinities become None)."""
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
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body") or "body"
        parts.append(f"{where}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def _check_k(k: int, cap: int, n: int, what: str) -> None:
    if k > cap:
        raise DataValidationError(f"k={k} is above the limit of {cap} ({n} {what})")


# --- recommenders ---------------------------------------------------------------------------------
def _recommender_routes(app, model, limits: _Limits, secured, errors, with_ids, via: str) -> None:
    users, items = _IdLookup(model.users_), _IdLookup(model.items_)
    item_ids = items.ids
    n_items = len(item_ids)
    k_cap = min(limits.max_k, n_items)
    matrix = model.interactions_.matrix

    def scored(idx: np.ndarray, vals: np.ndarray) -> list[dict]:
        # plain dicts: FastAPI validates and serialises the whole response in one pass (pydantic-core)
        out = []
        for rank, (i, score) in enumerate(zip(idx.tolist(), vals.tolist()), 1):
            if score != -np.inf:
                out.append({"item": item_ids[i], "score": score, "rank": rank})
        return out

    # async handlers: the work is a fraction of a millisecond of NumPy and FAISS, cheaper to run on
    # the event loop than to hand to a worker thread
    @app.post("/recommend", response_model=RecommendResponse, dependencies=secured, responses=with_ids)
    async def recommend(body: RecommendRequest):
        """Top-k items for a user seen at fit time."""
        _check_k(body.k, k_cap, n_items, "items in the catalogue")
        u = users(body.user)
        idx, vals = model._top_items(matrix[u:u + 1], np.array([u]), body.k, body.exclude_seen, None, via)
        return {"user": body.user, "items": scored(idx[0], vals[0])}

    @app.post("/recommend/history", response_model=HistoryResponse, dependencies=secured, responses=errors)
    async def recommend_for_history(body: HistoryRequest):
        """Top-k items for a user the model has never seen, from the items they interacted with (fold-in)."""
        _check_k(body.k, k_cap, n_items, "items in the catalogue")
        if len(body.items) > limits.max_history:
            raise DataValidationError(f"the history has {len(body.items)} items; the limit is {limits.max_history}")
        index = [items.get(i) for i in body.items]
        ignored = [i for i, j in zip(body.items, index) if j < 0]
        cols = np.unique(np.array([j for j in index if j >= 0], dtype=np.int32))
        row = sp.csr_matrix((np.ones(len(cols), np.float32), cols, np.array([0, len(cols)], dtype=np.int32)),
                            shape=(1, n_items))
        idx, vals = model._top_items(row, None, body.k, body.exclude_seen, None, via)
        return {"items": scored(idx[0], vals[0]), "ignored": ignored}

    @app.post("/similar-items", response_model=SimilarResponse, dependencies=secured, responses=with_ids)
    async def similar_items(body: SimilarRequest):
        """The k items most similar to an item (the item itself excluded)."""
        _check_k(body.k, min(k_cap, n_items - 1), n_items - 1, "other items")
        i = items(body.item)
        row = sp.csr_matrix((np.ones(1, np.float32), np.array([i], dtype=np.int32), np.array([0, 1], dtype=np.int32)),
                            shape=(1, n_items))
        idx, vals = model._top_items(row, None, body.k, True, None, via)
        return {"item": body.item, "items": scored(idx[0], vals[0])}


# --- image search ----------------------------------------------------------------------------------
def _image_routes(app, search, limits: _Limits, secured, errors, with_ids, via: str) -> None:
    n_images = len(search.index_)
    k_cap = min(limits.max_k, n_images)
    app.add_middleware(_BodyLimit, paths=("/images/search",), limit=limits.max_upload_bytes)
    too_large = {413: {"model": ErrorBody, "description": "The upload is over the size limit."}}

    def scored(frame) -> list[dict]:
        return [{"id": _json_id(i), "score": float(s), "rank": int(r)}
                for i, s, r in zip(frame["id"].tolist(), frame["score"].tolist(), frame["rank"].tolist())]

    # a worker thread per request (def, not async def): decoding and the Keras encoder take milliseconds
    @app.post("/images/search", response_model=ImageSearchResponse, dependencies=secured,
              responses={**errors, **too_large})
    def search_images(file: Annotated[UploadFile, File(description="The query image (PNG or JPEG).")],
                      k: Annotated[int, Form(ge=1, description="How many images.")] = 10):
        """The k indexed images most like an uploaded image."""
        _check_k(k, k_cap, n_images, "indexed images")
        image = _decode_image(file.file.read(limits.max_upload_bytes + 1), search.image_shape_, limits)
        return {"items": scored(search.search(image[None], k=k))}

    stored = _IdLookup(search.index_.ids_, name="image")

    @app.post("/images/similar", response_model=SimilarImagesResponse, dependencies=secured, responses=with_ids)
    def similar_images(body: SimilarImagesRequest):
        """The k indexed images most like an indexed image (itself excluded)."""
        _check_k(body.k, min(k_cap, n_images - 1), n_images - 1, "other indexed images")
        image_id = stored.ids[stored(body.id)]
        return {"id": body.id, "items": scored(search.similar([image_id], k=body.k))}


def _decode_image(data: bytes, shape, limits: _Limits) -> np.ndarray:
    """An uploaded file as one float image of ``shape``, read and resized as ``ImageSearch`` reads files."""
    from PIL import Image, UnidentifiedImageError

    from .data.images import IMAGE_SUFFIXES, _read_file

    if len(data) > limits.max_upload_bytes:  # a client that sent no Content-Length and got past the middleware
        raise _TooLarge(f"the upload is more than {limits.max_upload_bytes} bytes, the limit")
    if not data:
        raise DataValidationError("the upload is empty; send a PNG or JPEG image")
    extensions = Image.registered_extensions()
    formats = sorted({extensions[s] for s in IMAGE_SUFFIXES if s in extensions})
    undecodable = (OSError, SyntaxError, ValueError, EOFError, IndexError, struct.error, Image.DecompressionBombError)
    try:
        with Image.open(io.BytesIO(data), formats=formats) as img:  # reads the header only
            width, height = img.size
    except UnidentifiedImageError:
        raise DataValidationError(f"the upload is not a decodable image (expected {' or '.join(formats)})") from None
    except undecodable as exc:
        raise DataValidationError(f"the upload is not a decodable image ({type(exc).__name__}: {exc})") from None
    if width * height > limits.max_image_pixels:  # before decoding: a small file can hold a huge image
        raise _TooLarge(f"the image is {width} x {height} pixels; the limit is {limits.max_image_pixels} pixels")
    try:
        return _read_file(io.BytesIO(data), shape)
    except undecodable as exc:
        raise DataValidationError(f"the upload is not a decodable image ({type(exc).__name__}: {exc})") from None


class _BodyLimit:
    """ASGI middleware: 413 for a request to one of ``paths`` whose body is over ``limit`` bytes, before
    the app parses it (from Content-Length, or while counting a streamed body)."""

    def __init__(self, app, paths: tuple[str, ...], limit: int):
        self.app, self.paths, self.limit = app, paths, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] not in self.paths:
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._reject(send, f"the upload is {int(declared)} bytes; the limit is {self.limit} bytes")
        received, total = [], 0
        while True:  # buffered, never more than the limit
            message = await receive()
            if message["type"] != "http.request":
                received.append(message)
                break
            total += len(message.get("body", b""))
            if total > self.limit:
                return await self._reject(send, f"the upload is more than {self.limit} bytes, the limit")
            received.append(message)
            if not message.get("more_body", False):
                break

        async def replay():
            return received.pop(0) if received else await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _reject(send, detail: str) -> None:
        response = JSONResponse(status_code=413, content={"detail": detail}, headers={"Connection": "close"})
        await response({"type": "http"}, None, send)


# --- rating models ---------------------------------------------------------------------------------
def _rating_routes(app, model, limits: _Limits, secured, errors, with_ids, via: str) -> None:
    import pandas as pd

    from .exceptions import UnknownIdsWarning

    users, items = _IdLookup(model.users_), _IdLookup(model.items_)
    rating = model.columns_["rating"]

    @app.post("/predict", response_model=PredictResponse, dependencies=secured, responses=errors)
    def predict(body: PredictRequest):
        """Predicted ratings of (user, item) pairs; pairs with ids unseen at fit time get AutoRec's fallback."""
        if len(body.pairs) > limits.max_pairs:
            raise DataValidationError(f"{len(body.pairs)} pairs; the limit is {limits.max_pairs}")
        u_idx = np.array([users.get(p.user) for p in body.pairs], dtype=np.int64)
        i_idx = np.array([items.get(p.item) for p in body.pairs], dtype=np.int64)
        # the stored ids, so that "42" finds the integer id 42 as the other endpoints do
        pairs = pd.DataFrame({
            "user": pd.Series([users.ids[u] if u >= 0 else p.user for u, p in zip(u_idx, body.pairs)], dtype=object),
            "item": pd.Series([items.ids[i] if i >= 0 else p.item for i, p in zip(i_idx, body.pairs)], dtype=object),
        })
        with warnings.catch_warnings():  # the response reports the fallbacks pair by pair
            warnings.simplefilter("ignore", UnknownIdsWarning)
            predicted = model.predict(pairs, user="user", item="item")[rating].to_numpy(dtype=np.float64)
        fallback = np.where(u_idx < 0, np.where(i_idx < 0, "global_mean", "item_mean"),
                            np.where(i_idx < 0, "user_mean", ""))
        return {"predictions": [{"user": p.user, "item": p.item, "rating": r, "fallback": f or None}
                                for p, r, f in zip(body.pairs, predicted.tolist(), fallback.tolist())],
                "n_fallback": int(((u_idx < 0) | (i_idx < 0)).sum())}


def app_from_env():
    """App factory for ``uvicorn --factory`` and multi-worker serving: reads ``AEREC_BUNDLE`` (and
    ``AEREC_API_KEY``, ``AEREC_MAX_K``, ``AEREC_MAX_HISTORY``, ``AEREC_MAX_PAIRS``, ``AEREC_MAX_UPLOAD_BYTES``)."""
    bundle = os.environ.get("AEREC_BUNDLE")
    if not bundle:
        raise RuntimeError("set AEREC_BUNDLE to the bundle directory to serve")
    app = create_app(bundle, api_key=os.environ.get("AEREC_API_KEY") or None,
                     max_k=int(os.environ.get("AEREC_MAX_K", "1000")),
                     max_history=int(os.environ.get("AEREC_MAX_HISTORY", "10000")),
                     max_pairs=int(os.environ.get("AEREC_MAX_PAIRS", "10000")),
                     max_upload_bytes=int(os.environ.get("AEREC_MAX_UPLOAD_BYTES", str(10 * 2**20))))
    # TensorFlow, Keras and the model leave ~450,000 Python objects behind; a full collection of the
    # cyclic garbage collector (rare, but it comes) scans them all, a pause of a few hundred ms on
    # 2 cores for whatever requests are in flight. This process only serves, so they move to the
    # permanent generation: the requests' own garbage is still collected.
    gc.freeze()
    return app
