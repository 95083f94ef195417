"""The HTTP edge of the prediction API, shared by ``bento_service/service.py``: the FastAPI app with one
error shape (``schema.ErrorBody``) for every status and path, every status declared in the OpenAPI
document (with the service's own title, version, description and tags), a request body bound answered
413 before the body is read, ``/readyz`` with reasons, and the monitoring answers (``/scoreboard``,
``/performance``, ``/monitor/metrics``) read off the event loop from the scores dataset, and ``/model`` (the
served model's training window and gate figures) from the model store.

A rejected request is one INFO line in the log, never a traceback; only a server error (500) logs one.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from email.message import Message
from http import HTTPStatus
from typing import Any, TypeVar

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from hourcast import __version__
from hourcast.errors import HourcastError
from hourcast.model import card, registry
from hourcast.monitor import prometheus, scoreboard, scoring
from hourcast.redact import redact
from hourcast.serving.predictor import Unavailable, UnknownSymbol
from hourcast.serving.schema import (
    ErrorBody,
    GateFigures,
    ModelCard,
    Performance,
    Prediction,
    Readiness,
    Scoreboard,
)
from hourcast.settings import Settings

READY_PATH, LIVE_PATHS = "/readyz", ("/livez", "/healthz")
HEALTH_URLS = [rf"{path}$" for path in (READY_PATH, *LIVE_PATHS)]  # BentoML's tracing leaves these out
MAX_BODY_BYTES = 4096  # the largest valid body (100 symbols of 31 characters) is about 3.5 KB
MONITOR_SECONDS = 5.0  # bound on one read of the scores dataset (about 50 ms normally)
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
FORECASTS, MONITORING = "Forecasts", "Monitoring"
DESCRIPTION = (
    "Next-hour close forecasts of crypto pairs from the production CatBoost model and the freshest online "
    "features (Feast, Redis), with an uncertainty band, and how past forecasts fared against what the market "
    'then did. Every error, on every path, is `{"error", "status"}`.'
)
TAGS = [
    {"name": FORECASTS, "description": "Next-hour forecasts and the candles they start from."},
    {"name": MONITORING, "description": "Forecasts scored against the realised closes (`hourcast monitor`)."},
    {"name": "Infrastructure", "description": "Liveness, readiness and BentoML's own Prometheus metrics."},
]
logger = logging.getLogger("hourcast.api.asgi")

_DESCRIPTIONS = {
    400: "Invalid request: not JSON, wrong type, unknown field, malformed symbol, out-of-range value.",
    404: "Unknown symbol (or path).",
    405: "Method not allowed on this path.",
    413: f"Request body over {MAX_BODY_BYTES} bytes (refused before it is read).",
    415: "The body is not sent as application/json.",
    503: "Cannot answer now: no model, online store down, or stale features; `error` says which.",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` for the given error statuses, all with the ``ErrorBody`` shape (plus ``4XX``,
    which also keeps FastAPI from declaring its own 422 body, a shape this API never sends)."""
    responses: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": _DESCRIPTIONS[status]} for status in statuses
    }
    responses["4XX"] = {"model": ErrorBody, "description": "Any other client error, same shape."}
    return responses


POST_ERRORS = error_responses(400, 404, 405, 413, 415, 503)
GET_ERRORS = error_responses(400, 404, 405)
MONITOR_ERRORS = {
    **error_responses(400, 404, 405),
    503: {"model": ErrorBody, "description": "The scores dataset could not be read in time."},
}
MODEL_ERRORS = {
    **error_responses(405),
    503: {"model": ErrorBody, "description": "No model loaded, or the model store did not answer in time."},
}
PROMETHEUS_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "Prometheus text exposition (version 0.0.4).",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    },
    **MONITOR_ERRORS,
}


def error_response(status: int, message: str) -> JSONResponse:
    """The one error body, credentials redacted."""
    return JSONResponse(ErrorBody(error=redact(message), status=status).model_dump(), status_code=status)


def _rejected(request: Request, status: int, message: str) -> JSONResponse:
    if logger.isEnabledFor(logging.INFO):
        logger.info("%s %s -> %d: %s", request.method, request.scope["path"], status, redact(message)[:200])
    return error_response(status, message)


def _is_json(content_type: str | None) -> bool:
    if not content_type:
        return False
    message = Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json")
    )


def _field(location: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in location if part != "body") or "body"


async def _validation_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, RequestValidationError)
    if request.method == "POST" and not _is_json(request.headers.get("content-type")):
        return _rejected(request, 415, "send the body as JSON with content-type: application/json")
    problems = []
    for item in error.errors():
        if item.get("type") == "json_invalid":
            problems.append("the body is not valid JSON")
        else:
            problems.append(f"{_field(tuple(item.get('loc', ())))}: {item.get('msg', 'invalid')}")
    return _rejected(request, 400, "invalid request: " + "; ".join(dict.fromkeys(problems)))


async def _http_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, HTTPException)
    return _rejected(request, error.status_code, str(error.detail))


async def _unknown_symbol(request: Request, error: Exception) -> JSONResponse:
    return _rejected(request, 404, str(error))


async def _unavailable(request: Request, error: Exception) -> JSONResponse:
    return _rejected(request, 503, str(error))


def build_app(title: str) -> FastAPI:
    """The FastAPI app the service's routes are declared on (its OpenAPI paths are merged into BentoML's
    ``/docs.json``; FastAPI's own docs routes are off)."""
    app = FastAPI(title=title, openapi_url=None, docs_url=None, redoc_url=None)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(UnknownSymbol, _unknown_symbol)
    app.add_exception_handler(Unavailable, _unavailable)
    return app


T = TypeVar("T")


async def off_loop(function: Callable[..., T], *args: Any, source: str = "the scores dataset") -> T:
    """``function(*args)`` in a thread, bounded by ``MONITOR_SECONDS`` (``Unavailable`` naming ``source``
    past it)."""
    try:
        return await asyncio.wait_for(asyncio.to_thread(function, *args), MONITOR_SECONDS)
    except TimeoutError:
        raise Unavailable(f"{source} did not answer within {MONITOR_SECONDS:g} s") from None


def _iso(value: Any) -> str:
    return pd.Timestamp(value).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


def _rows(frame: pd.DataFrame, times: list[str]) -> list[dict[str, Any]]:
    """Records of ``frame`` with ``times`` as ISO strings and NaN as None."""
    return scoreboard.json_records(frame.assign(**{column: frame[column].map(_iso) for column in times}))


def scoreboard_body(settings: Settings, symbol: str | None, window: str | None) -> Scoreboard:
    """``GET /scoreboard``: ``scoreboard.current_scoreboard``, the numbers ``hourcast monitor`` prints."""
    return Scoreboard.model_validate(scoreboard.current_scoreboard(settings, symbol, window))


def performance_body(settings: Settings, symbol: str, hours: int, production: str | None) -> Performance:
    """``GET /performance``: ``scoreboard.performance`` of ``symbol`` over the ``hours`` up to the data
    clock."""
    now = scoreboard.newest_hour(settings, [symbol])
    if now is None:
        return Performance(
            symbol=symbol, newest_hour=None, production=production, history=[], rolling=[], models=[]
        )
    view = scoreboard.performance(scoring.read_scores(settings.scores_dir), symbol, now, hours)
    return Performance(
        symbol=symbol,
        newest_hour=_iso(now),
        production=production,
        history=_rows(view["history"].drop(columns="status"), ["target_time"]),
        rolling=_rows(view["rolling"], ["target_time"]),
        models=_rows(view["models"], ["first", "last"]),
    )


def model_card_body(settings: Settings, tag: str | None) -> ModelCard:
    """``GET /model``: the served model's training window and gate figures (``hourcast.model.card``), from
    its metadata in the model store; ``Unavailable`` without a model."""
    if tag is None:
        raise Unavailable("no model is loaded yet; train one (`hourcast train`) and promote it")
    try:
        metadata = registry.model_metadata(settings.model_name, tag)
    except registry.RegistryError as error:
        raise Unavailable(str(error)) from None
    window, gate = metadata.get("training_window") or {}, card.gate(metadata)
    return ModelCard(
        model=tag,
        trained_from=window.get("start"),
        trained_until=window.get("end"),
        training_days=card.training_days(metadata),
        training_rows=metadata.get("training_rows"),
        gate=GateFigures(**gate.as_json()) if gate is not None else None,
        summary=card.summary(metadata),
    )


def prometheus_body(settings: Settings, production: str | None, ages: dict[str, float]) -> str:
    """``GET /monitor/metrics``: the rolling scoreboard, feature ages and production tag as gauges."""
    now = scoreboard.newest_hour(settings, settings.symbols)
    scores = scoring.read_scores(settings.scores_dir)
    board = (
        scoreboard.scoreboard(scores, now)
        if now is not None
        else scores.iloc[0:0].reindex(columns=scoreboard.BOARD_COLUMNS)
    )
    return prometheus.prometheus_text(board, production, ages)


class FeatureAges:
    """The age of each symbol's online features for the metrics: the newest answer seen (a fresh bounded
    read per scrape while the store is up, else the last one), aged by the service's clock."""

    def __init__(self) -> None:
        self._targets: dict[str, pd.Timestamp] = {}

    def remember(self, predictions: list[Prediction]) -> None:
        """Note the features the answers were computed from."""
        for prediction in predictions:
            self._targets[prediction.symbol] = pd.Timestamp(prediction.target_time)

    def ages(self, now: datetime) -> dict[str, float]:
        """Seconds since each known symbol's features' next candle opened (the answers' age)."""
        stamp = pd.Timestamp(now)
        return {symbol: (stamp - target).total_seconds() for symbol, target in self._targets.items()}


Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


async def _send_json(send: Send, status: int, body: dict[str, Any]) -> None:
    payload = json.dumps(body).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


class ErrorShape:
    """ASGI middleware: an error response (status >= 400) that is not JSON already, such as Starlette's
    plain-text 404 for an unknown path, is rewritten into the ``ErrorBody`` shape."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def shaped_send(message: dict[str, Any]) -> None:
            nonlocal held
            if message["type"] == "http.response.start":
                content_type = dict(message.get("headers", [])).get(b"content-type", b"")
                if message["status"] >= 400 and not content_type.startswith(b"application/json"):
                    held = message
                    return
            elif held is not None and message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    status = held["status"]
                    text = b"".join(chunks).decode(errors="replace").strip() or HTTPStatus(status).phrase
                    logger.info("%s %s -> %d: %s", scope["method"], scope["path"], status, text[:200])
                    await _send_json(
                        send, status, ErrorBody(error=redact(text)[:500], status=status).model_dump()
                    )
                return
            await send(message)

        await self.app(scope, receive, shaped_send)


class BodyTooLarge(HourcastError, HTTPException):
    """The body grew past the limit while it was being received (an ``HTTPException``: a 413 wherever it
    escapes to the framework)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body over {limit} bytes")

    def body(self) -> dict[str, Any]:
        """The error body."""
        return ErrorBody(error=str(self.detail), status=413).model_dump()


class BodyLimit:
    """ASGI middleware: a body declared (Content-Length) or received over ``max_bytes`` gets a 413; a
    declared one is refused before a byte of it is read."""

    def __init__(self, app: ASGIApp, max_bytes: int = MAX_BODY_BYTES) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                await _send_json(
                    send, 400, ErrorBody(error="invalid Content-Length", status=400).model_dump()
                )
                return
            if too_large:
                logger.info("%s %s -> 413: body of %s bytes", scope["method"], scope["path"], int(declared))
                await _send_json(send, 413, BodyTooLarge(self.max_bytes).body())
                return
        received = 0
        started = False

        async def limited_receive() -> dict[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: dict[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as error:
            if started:
                raise
            logger.info("%s %s -> 413: streamed body over the limit", scope["method"], scope["path"])
            await _send_json(send, 413, error.body())


class HealthEndpoints:
    """ASGI middleware answering the health probes from memory, ahead of the rest of the stack: ``GET
    /readyz`` with a ``Readiness`` body (200 when ready, else 503 with the reasons; BentoML's own endpoint
    only says ready or not), and ``GET /livez`` (and BentoML's alias ``/healthz``) with BentoML's own 200.

    Added as the first of the service's middlewares (and excluded from BentoML's tracing), a probe costs no
    routing, no thread, no store call: it answers in a fraction of a millisecond of CPU, so a load
    balancer's probes stay fast while the online store hangs and requests are being refused."""

    def __init__(self, app: ASGIApp, readiness: Callable[[], Readiness]) -> None:
        self.app, self.readiness = app, readiness

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == READY_PATH:
            await _send_json(send, *self._readiness())
        elif path in LIVE_PATHS:
            headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"1")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"\n"})
        else:
            await self.app(scope, receive, send)

    def _readiness(self) -> tuple[int, dict[str, Any]]:
        try:
            state = self.readiness()
        except Exception as error:  # the service instance does not exist yet (starting) or is gone
            state = Readiness(
                ready=False,
                model=None,
                online_store="unknown",
                model_reload_error=None,
                clock="system",
                problems=[f"the service is not running: {redact(str(error))}"],
            )
        return 200 if state.ready else 503, state.model_dump()


class OpenApiInfo:
    """ASGI middleware giving BentoML's ``/docs.json`` (what its Swagger page shows) the service's own
    title, version (the package's), description and tag descriptions, in place of BentoML's stock ones."""

    def __init__(self, app: ASGIApp, title: str, path: str = "/docs.json") -> None:
        self.app, self.title, self.path = app, title, path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: dict[str, Any] | None = None
        chunks: list[bytes] = []

        async def rewriting_send(message: dict[str, Any]) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                start = message
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False) or start is None:
                return
            if start["status"] != 200:
                await send(start)
                await send({"type": "http.response.body", "body": b"".join(chunks)})
                return
            document = json.loads(b"".join(chunks))
            document["info"] = {"title": self.title, "version": __version__, "description": DESCRIPTION}
            used = {
                tag
                for item in document.get("paths", {}).values()
                for op in item.values()
                for tag in (op.get("tags", []) if isinstance(op, dict) else [])
            }
            document["tags"] = [tag for tag in TAGS if tag["name"] in used]
            await _send_json(send, 200, document)

        await self.app(scope, receive, rewriting_send)
