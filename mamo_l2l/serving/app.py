"""The HTTP service: `mamo-l2l serve` (FastAPI + uvicorn, the optional ``serve`` extra).

Endpoints (docs/serving.md): ``GET /`` the web page (mamo_l2l/serving/web/index.html), ``GET /health``,
``GET /items?q=...`` title search, ``POST /recommend``. Requests are bounded (MAX_* below, or
``create_app`` arguments); invalid ones get a 4xx answer ``{"error": "..."}`` saying what is wrong.

Read-only: the app holds one ``ItemRecommender``; a request only reads the model (evaluation
path, no memory writes) and model calls run one at a time, in arrival order, on the process's one
model thread, so concurrent requests answer exactly as sequential ones would (tests/test_serve.py).
"""
# No ``from __future__ import annotations`` here: FastAPI reads the request models defined inside
# create_app from the endpoint annotations, which must be real classes, not strings.
import asyncio
import concurrent.futures
import functools
import json
import os
from importlib import resources
from typing import Any, Dict, List, Optional, Union

import torch

from mamo_l2l.api.load import open_recommender
from mamo_l2l.core.errors import MamoError
from mamo_l2l.core.plugins import load_plugins

#: ratings per request
MAX_RATINGS = 500
#: top-k per request
MAX_K = 100
#: title-search results per request
MAX_SEARCH = 50
#: request body size (bytes); larger bodies get 413
MAX_BODY_BYTES = 256 * 1024
#: characters in a title-search query
MAX_QUERY_CHARS = 200

_MISSING = ("the HTTP service needs FastAPI and uvicorn, which are not installed; "
            "install them with: pip install 'mamo_l2l[serve]' (or pip install fastapi uvicorn)")


def require_fastapi():
    try:
        import fastapi  # noqa: F401  (optional dependency)
        import pydantic  # noqa: F401  (optional dependency)
    except ImportError:
        raise MamoError(_MISSING) from None
    return fastapi


def page_html() -> str:
    """The web page (a static file in the package)."""
    return resources.files("mamo_l2l").joinpath("serving/web/index.html").read_text(encoding="utf-8")


def create_app(recommender, max_ratings: int = MAX_RATINGS, max_k: int = MAX_K, max_search: int = MAX_SEARCH,
               max_body_bytes: int = MAX_BODY_BYTES):
    """A FastAPI app serving ``recommender`` (an ``ItemRecommender``)."""
    require_fastapi()
    from fastapi import FastAPI  # optional dependency

    catalog = recommender.catalog
    catalog.index                      # built now, not lazily by concurrent requests
    catalog.search("warm-up", 1)
    recommender.warm_up()              # one recommendation (item profiles, lazy imports) before the first request
    app = FastAPI(title="mamo_l2l recommendations", docs_url=None, redoc_url=None, openapi_url=None)
    _add_guards(app, max_body_bytes)
    _add_pages(app, recommender, dict(max_ratings=max_ratings, max_k=max_k, max_search=max_search,
                                      max_body_bytes=max_body_bytes, max_query_chars=MAX_QUERY_CHARS))
    _add_recommend(app, recommender, max_ratings, max_k)
    return app


def error_response(status: int, message: str):
    """The one shape of every error answer: ``{"error": message}``."""
    from fastapi.responses import JSONResponse  # optional dependency
    return JSONResponse({"error": message}, status_code=status)


#: what the service answers, for the message of a 404 / 405
ENDPOINTS = {"/": "GET", "/health": "GET", "/items": "GET", "/recommend": "POST"}


def validation_message(errors: List[Dict[str, Any]]) -> str:
    """One plain sentence for FastAPI's validation errors (invalid JSON included)."""
    if any(e.get("type") == "json_invalid" for e in errors):
        return ("invalid request: the body is not valid JSON (expected e.g. "
                '{"ratings": [{"item_id": "50", "rating": 5}], "k": 10})')
    parts = []
    for e in errors[:5]:
        where = ".".join(str(x) for x in e.get("loc", ()) if x != "body")
        parts.append(f"{where or 'body'}: {e.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def http_message(status: int, method: str, path: str, detail: Any) -> str:
    """A plain message for an HTTP error raised by the framework (unknown path, wrong method)."""
    listing = ", ".join(f"{m} {p}" for p, m in ENDPOINTS.items())
    if status == 404:
        return f"no such endpoint: {method} {path} (this service answers {listing})"
    if status == 405:
        allowed = ENDPOINTS.get(path)
        return f"{method} is not allowed on {path}" + (f"; use {allowed}" if allowed else "")
    return str(detail) if detail else f"HTTP error {status}"


def _add_guards(app, max_body_bytes: int) -> None:
    """The body-size bound and the error answers (invalid requests 422, the user's mistakes 400)."""
    from fastapi import Request  # optional dependency
    from fastapi.exceptions import RequestValidationError  # optional dependency
    from starlette.exceptions import HTTPException as StarletteHTTPException  # optional dependency

    @app.middleware("http")
    async def bounded_body(request: Request, call_next):
        if request.method in ("POST", "PUT", "PATCH"):
            length = request.headers.get("content-length")
            if length is None:
                return error_response(411, "a Content-Length header is required")
            if not length.isdigit() or int(length) > max_body_bytes:
                return error_response(413, f"request body too large (at most {max_body_bytes} bytes)")
        return await call_next(request)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError):
        return error_response(422, validation_message(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error_response(exc.status_code, http_message(exc.status_code, request.method, request.url.path,
                                                            exc.detail))

    @app.exception_handler(MamoError)
    async def bad_input(request: Request, exc: MamoError):
        return error_response(400, str(exc))

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception):   # a bug: still the one shape (and logged by uvicorn)
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details")


def _add_pages(app, recommender, limits: Dict[str, int]) -> None:
    """``GET /`` (the page), ``GET /health`` and ``GET /items`` (title search)."""
    from fastapi.responses import HTMLResponse  # optional dependency
    catalog = recommender.catalog

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page_html()

    @app.get("/health")
    def health() -> Dict[str, Any]:
        return {"status": "ok", "model": recommender.model_name, "items": len(catalog),
                "rating_range": list(recommender.rating_range), "limits": limits}

    @app.get("/items")
    def items(q: str = "", limit: int = 20) -> Dict[str, Any]:
        if len(q) > MAX_QUERY_CHARS:
            raise MamoError(f"q is too long ({len(q)} characters; at most {MAX_QUERY_CHARS})")
        if not 1 <= limit <= limits["max_search"]:
            raise MamoError(f"limit must be between 1 and {limits['max_search']}, got {limit}")
        return {"items": [{"item_id": i, "title": t} for i, t in catalog.search(q, limit)]}


def _add_recommend(app, recommender, max_ratings: int, max_k: int) -> None:
    """``POST /recommend``, run on the process's one model thread: requests queue for it in arrival
    order (the event loop keeps reading and answering HTTP meanwhile), so no two threads ever
    contend for the model."""
    from fastapi.responses import JSONResponse  # optional dependency
    from pydantic import BaseModel, Field  # optional dependency

    class RatingIn(BaseModel):
        item_id: Union[str, int]
        rating: float

    class RecommendIn(BaseModel):
        ratings: List[RatingIn] = Field(default_factory=list)
        user: Optional[Dict[str, Optional[str]]] = None
        k: int = 10
        exclude_rated: bool = True

    model_thread = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="mamo-model")

    @app.post("/recommend")
    async def recommend(body: RecommendIn) -> JSONResponse:
        if len(body.ratings) > max_ratings:
            raise MamoError(f"too many ratings ({len(body.ratings)}; at most {max_ratings} per request)")
        if not 1 <= body.k <= max_k:
            raise MamoError(f"k must be between 1 and {max_k}, got {body.k}")
        problems = recommender.catalog.profile_problems(body.user)
        if problems:
            raise MamoError("; ".join(problems))
        call = functools.partial(recommender.recommend_records, [(str(r.item_id), r.rating) for r in body.ratings],
                                 user=body.user, k=body.k, exclude_rated=body.exclude_rated)
        top = await asyncio.get_running_loop().run_in_executor(model_thread, call)
        return JSONResponse({"k": body.k, "items": top})


def serve(recommender, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info", **limits) -> None:
    """Run the app with uvicorn until interrupted."""
    app = create_app(recommender, **limits)
    try:
        import uvicorn  # optional dependency
    except ImportError:
        raise MamoError(_MISSING) from None
    uvicorn.run(app, host=host, port=port, log_level=log_level)


_WORKER_ENV = "MAMO_L2L_SERVE_ARGS"


def serve_workers(workers: int, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info",
                  **recommender_args) -> None:
    """Run ``workers`` server processes (uvicorn's workers) on one port, each with its own copy of
    the read-only model and one torch thread: one process serialises its model calls (torch.func
    is not safe across threads), several processes answer in parallel (docs/serving.md)."""
    try:
        import uvicorn  # optional dependency
    except ImportError:
        raise MamoError(_MISSING) from None
    os.environ[_WORKER_ENV] = json.dumps(recommender_args)
    uvicorn.run("mamo_l2l.serving.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                log_level=log_level)


def app_from_env():
    """The app of one worker process of ``serve_workers`` (its arguments come in the environment)."""


    args = json.loads(os.environ[_WORKER_ENV])
    torch.set_num_threads(1)
    load_plugins(args.pop("plugins", ()) or ())
    return create_app(open_recommender(**args))
