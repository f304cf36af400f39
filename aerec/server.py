"""HTTP serving of a saved bundle: ``create_app(bundle_path)`` returns a FastAPI app.

Nothing is loaded at import and nothing is global: the app holds its model in ``app.state``.
The hot path of every endpoint is the model's precomputed arrays and one top-K: no pandas, no
TensorFlow graph building per request. Unknown ids answer 404 naming them, bad bodies 422.

Run it with ``aerec serve BUNDLE`` (binds 127.0.0.1 unless told otherwise).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Union

try:
    from fastapi import Depends, FastAPI, HTTPException, Request
    from fastapi.responses import JSONResponse
    from fastapi.security import APIKeyHeader
    from pydantic import BaseModel, Field, StrictInt, StrictStr
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("aerec's HTTP server needs the 'serve' extra: pip install 'aerec[serve]'") from exc

import numpy as np
import scipy.sparse as sp

from .exceptions import AerecError, DataValidationError, UnknownIdError
from .recommend.base import Recommender

__all__ = ["create_app", "app_from_env"]

Id = Union[StrictInt, StrictStr]


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


class Health(BaseModel):
    status: str
    model: str


class Metadata(BaseModel):
    model: str
    params: dict
    n_users: int
    n_items: int
    versions: dict
    history: dict
    limits: dict


class ErrorBody(BaseModel):
    detail: str


def _lookup(idmap, value) -> int:
    """Index of a JSON id, accepting "42" for the integer id 42 and 42 for the string id "42"."""
    for candidate in _candidates(idmap, value):
        index = idmap.ids.get_indexer([candidate])[0]
        if index >= 0:
            return int(index)
    raise UnknownIdError(idmap.name, [value])


def _candidates(idmap, value):
    yield value
    if isinstance(value, str) and idmap.ids.dtype.kind in "iu":
        try:
            yield int(value)
        except ValueError:
            pass
    elif isinstance(value, int) and idmap.ids.dtype.kind not in "iu":
        yield str(value)


def _json_id(value):
    return value.item() if isinstance(value, np.generic) else value


def create_app(bundle_path, api_key: str | None = None, max_k: int = 1000, max_history: int = 10_000,
               via: str = "index"):
    """A FastAPI app serving the bundle at ``bundle_path``.

    Parameters
    ----------
    bundle_path : path
        A directory written by ``model.save``.
    api_key : str, optional
        When set, every endpoint but ``/health`` wants it in the ``X-API-Key`` header (401 otherwise).
    max_k, max_history : int
        Limits on ``k`` and on the length of a fold-in history (422 beyond them).
    via : {"index", "model"}
        Answer from the bundle's FAISS index over item codes (exact unless the bundle was saved
        with an approximate one), or score every item with the model.
    """
    from . import __version__
    from .bundle import load, read_meta

    model = load(bundle_path)
    meta = read_meta(bundle_path)
    if not isinstance(model, Recommender):
        raise TypeError(f"{bundle_path} holds a {type(model).__name__}; the server answers recommender bundles")
    n_items = len(model.items_)
    k_cap = min(max_k, n_items)

    app = FastAPI(title="aerec", version=__version__,
                  description=f"Recommendations from the {type(model).__name__} bundle {Path(bundle_path).name}.")
    app.state.model = model

    key_header = APIKeyHeader(name="X-API-Key", auto_error=False)

    def check_key(key: str | None = Depends(key_header)) -> None:
        if api_key is not None and key != api_key:
            raise HTTPException(status_code=401, detail="missing or wrong X-API-Key")

    @app.exception_handler(UnknownIdError)
    async def unknown_id(request: Request, exc: UnknownIdError):
        return JSONResponse(status_code=404, content={"detail": str(exc)})

    @app.exception_handler(AerecError)
    async def bad_input(request: Request, exc: AerecError):
        return JSONResponse(status_code=422, content={"detail": str(exc)})

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception):  # never leak tracebacks or paths
        return JSONResponse(status_code=500, content={"detail": f"internal error ({type(exc).__name__})"})

    def check_k(k: int) -> None:
        if k > k_cap:
            raise DataValidationError(f"k={k} is above the limit of {k_cap} (the catalogue has {n_items} items)")

    def scored(idx: np.ndarray, vals: np.ndarray) -> list[ScoredItem]:
        keep = np.isfinite(vals)
        ids = model.items_.ids_of(idx[keep])
        return [ScoredItem(item=_json_id(i), score=float(s), rank=r + 1)
                for r, (i, s) in enumerate(zip(ids, vals[keep]))]

    errors = {404: {"model": ErrorBody}, 422: {"model": ErrorBody}, 401: {"model": ErrorBody}}

    @app.get("/health", response_model=Health)
    def health() -> Health:
        """Liveness: the model is loaded."""
        return Health(status="ok", model=type(model).__name__)

    @app.get("/metadata", response_model=Metadata, dependencies=[Depends(check_key)], responses=errors)
    def metadata() -> Metadata:
        """What is being served: the estimator, its parameters, library versions, training history."""
        return Metadata(model=type(model).__name__, params=meta["params"], n_users=len(model.users_),
                        n_items=n_items, versions=meta.get("versions", {}), history=meta.get("history", {}),
                        limits={"max_k": k_cap, "max_history": max_history})

    @app.post("/recommend", response_model=RecommendResponse, dependencies=[Depends(check_key)], responses=errors)
    def recommend(body: RecommendRequest) -> RecommendResponse:
        """Top-k items for a user seen at fit time."""
        check_k(body.k)
        u = _lookup(model.users_, body.user)
        rows = model.interactions_.matrix[[u]]
        idx, vals = model._top_items(rows, np.array([u]), body.k, body.exclude_seen, None, via)
        return RecommendResponse(user=body.user, items=scored(idx[0], vals[0]))

    @app.post("/recommend/history", response_model=HistoryResponse, dependencies=[Depends(check_key)],
              responses=errors)
    def recommend_for_history(body: HistoryRequest) -> HistoryResponse:
        """Top-k items for a user the model has never seen, from the items they interacted with (fold-in)."""
        check_k(body.k)
        if len(body.items) > max_history:
            raise DataValidationError(f"the history has {len(body.items)} items; the limit is {max_history}")
        index = np.array([_index_or_minus_one(model.items_, i) for i in body.items], dtype=np.int64)
        ignored = [i for i, j in zip(body.items, index) if j < 0]
        cols = np.unique(index[index >= 0])
        row = sp.csr_matrix((np.ones(len(cols), np.float32), cols, [0, len(cols)]), shape=(1, n_items))
        idx, vals = model._top_items(row, None, body.k, body.exclude_seen, None, via)
        return HistoryResponse(items=scored(idx[0], vals[0]), ignored=ignored)

    @app.post("/similar-items", response_model=SimilarResponse, dependencies=[Depends(check_key)], responses=errors)
    def similar_items(body: SimilarRequest) -> SimilarResponse:
        """The k items most similar to an item (the item itself excluded)."""
        check_k(body.k)
        if body.k > n_items - 1:
            raise DataValidationError(f"k={body.k} is larger than the {n_items - 1} other items")
        i = _lookup(model.items_, body.item)
        row = sp.csr_matrix((np.ones(1, np.float32), [i], [0, 1]), shape=(1, n_items))
        idx, vals = model._top_items(row, None, body.k, True, None, via)
        return SimilarResponse(item=body.item, items=scored(idx[0], vals[0]))

    return app


def _index_or_minus_one(idmap, value) -> int:
    try:
        return _lookup(idmap, value)
    except UnknownIdError:
        return -1


def app_from_env():
    """App factory for ``uvicorn --factory`` and multi-worker serving: reads ``AEREC_BUNDLE`` (and ``AEREC_API_KEY``)."""
    bundle = os.environ.get("AEREC_BUNDLE")
    if not bundle:
        raise RuntimeError("set AEREC_BUNDLE to the bundle directory to serve")
    return create_app(bundle, api_key=os.environ.get("AEREC_API_KEY") or None,
                      max_k=int(os.environ.get("AEREC_MAX_K", "1000")),
                      max_history=int(os.environ.get("AEREC_MAX_HISTORY", "10000")))
