"""The replay exchange over HTTP: Starlette routes for the Binance market-data endpoints ccxt calls and the
``/_replay/`` control endpoints, served by uvicorn in a daemon thread of the caller's process.

Answers are JSON as Binance writes it (``application/json;charset=UTF-8``, compact); a rejected request gets
Binance's ``{"code", "msg"}`` body; an unknown path or method a 404 of the same shape; a method other than
GET, POST and DELETE a 501. Paths are matched as sent, trailing slashes ignored.

May import: the replay's other modules.
"""

from __future__ import annotations

import html
import http.server
import json
import socket
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from hourcast.dev.replay import binance
from hourcast.dev.replay.binance import ReplayError
from hourcast.dev.replay.data import load_candles_file, synthetic_datasets
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.errors import HourcastError

SERVER_HEADER = f"hourcast-replay/1 {http.server.BaseHTTPRequestHandler.sys_version}"
SERVED_METHODS = ("GET", "POST", "DELETE")
STARTUP_TIMEOUT_SECONDS = 30.0


def _answer(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    """A JSON body (compact, as Binance writes it) or a plain-text one."""
    if isinstance(body, str):
        payload, content_type = body.encode(), "text/plain"
    else:
        payload = json.dumps(body, separators=(",", ":")).encode()
        content_type = "application/json;charset=UTF-8"
    return Response(payload, status, headers={"Content-Type": content_type, **(headers or {})})


def _query(request: Request) -> dict[str, str]:
    """The query string, the last value of each parameter, blank values left out."""
    parsed = parse_qs(request.scope["query_string"].decode("latin-1"))
    return {key: values[-1] for key, values in parsed.items()}


def _exchange(request: Request) -> ReplayExchange:
    exchange: ReplayExchange = request.app.state.exchange
    return exchange


async def _json_body(request: Request) -> dict[str, Any]:
    """The JSON object of a control POST; 415 unless ``Content-Type: application/json``."""
    # only JSON: a web page can POST text/plain cross-origin without a preflight, JSON it cannot
    content_type = (request.headers.get("Content-Type") or "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise ReplayError(415, -1, "control requests need Content-Type: application/json")
    raw = await request.body() or b"{}"
    try:
        body = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise ReplayError(400, -1, f"invalid JSON body: {exc}") from None
    if not isinstance(body, dict):
        raise ReplayError(400, -1, "JSON body must be an object")
    return body


async def klines(request: Request) -> Response:
    """``GET /api/v3/klines``, through the error, slow and data faults."""
    exchange, query = _exchange(request), _query(request)
    error, stall, retry_after = exchange.draw_error_fault(query.get("symbol"))
    if error == "rate_limit":
        body = {"code": -1003, "msg": binance.RATE_LIMIT_MSG}
        return _answer(429, body, {"Retry-After": str(retry_after)})
    if error == "server_error":
        return _answer(503, "Service Unavailable (replay fault)")
    if stall:
        await anyio.sleep(stall)
    return _answer(200, exchange.klines(query))


async def ping(request: Request) -> Response:
    """``GET /api/v3/ping``."""
    return _answer(200, {})


async def server_time(request: Request) -> Response:
    """``GET /api/v3/time``: the simulated clock."""
    return _answer(200, {"serverTime": _exchange(request).now_ms()})


async def exchange_info(request: Request) -> Response:
    """``GET /api/v3/exchangeInfo``: the spot markets."""
    return _answer(200, _exchange(request).exchange_info())


async def tickers(request: Request) -> Response:
    """``GET /api/v3/ticker/24hr``."""
    return _answer(200, _exchange(request).tickers(_query(request)))


async def futures_info(request: Request) -> Response:
    """``GET /fapi/v1/exchangeInfo`` and ``/dapi/v1/exchangeInfo``: no futures markets."""
    return _answer(200, {**binance.EMPTY_FUTURES_INFO, "serverTime": _exchange(request).now_ms()})


async def clock(request: Request) -> Response:
    """``GET``/``POST /_replay/clock``: read or move the simulated clock."""
    exchange = _exchange(request)
    if request.method == "POST":
        exchange.clock.apply(await _json_body(request))
    return _answer(200, exchange.clock_state())


async def faults(request: Request) -> Response:
    """``GET``/``POST``/``DELETE /_replay/faults``: read, merge (optionally for one ``symbol``) or clear."""
    exchange = _exchange(request)
    if request.method == "POST":
        body = await _json_body(request)
        symbol = body.pop("symbol", None)
        exchange.set_faults(body, None if symbol is None else str(symbol))
    elif request.method == "DELETE":
        exchange.clear_faults()
    return _answer(200, exchange.fault_state())


async def _rejected(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ReplayError)
    return _answer(exc.status, {"code": exc.code, "msg": exc.msg})


async def _invalid(request: Request, exc: Exception) -> Response:
    return _answer(400, {"code": -1, "msg": str(exc)})


async def _unknown_endpoint(request: Request, exc: Exception) -> Response:
    path = request.scope["raw_path"].decode("latin-1")
    return _answer(404, {"code": -1, "msg": f"Unknown endpoint {request.method} {path}"})


def _unsupported_method(method: str) -> Response:
    """The 501 page Python's ``http.server`` answers a method it has no handler for with."""
    explain = http.server.BaseHTTPRequestHandler.responses[501][1]
    message = html.escape(f"Unsupported method ({method!r})", quote=False)
    page = http.server.DEFAULT_ERROR_MESSAGE % {"code": 501, "message": message, "explain": explain}
    headers = {"Content-Type": http.server.DEFAULT_ERROR_CONTENT_TYPE, "Connection": "close"}
    return Response(page.encode("UTF-8", "replace"), 501, headers=headers)


class _ExchangePaths:
    """Routes on the path as sent (not percent-decoded) without its trailing slashes, as Binance does, and
    answers a method the exchange has no endpoint for with a 501."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if scope["method"] not in SERVED_METHODS:
            await _unsupported_method(scope["method"])(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode()
        scope = {**scope, "raw_path": raw_path, "path": raw_path.decode("latin-1").rstrip("/") or "/"}
        await self.app(scope, receive, send)


def replay_app(exchange: ReplayExchange) -> Starlette:
    """The ASGI app serving ``exchange``."""
    app = Starlette(
        routes=[
            Route("/api/v3/klines", klines, methods=["GET"]),
            Route("/api/v3/ping", ping, methods=["GET"]),
            Route("/api/v3/time", server_time, methods=["GET"]),
            Route("/api/v3/exchangeInfo", exchange_info, methods=["GET"]),
            Route("/api/v3/ticker/24hr", tickers, methods=["GET"]),
            Route("/fapi/v1/exchangeInfo", futures_info, methods=["GET"]),
            Route("/dapi/v1/exchangeInfo", futures_info, methods=["GET"]),
            Route("/_replay/clock", clock, methods=["GET", "POST"]),
            Route("/_replay/faults", faults, methods=["GET", "POST", "DELETE"]),
        ],
        middleware=[Middleware(_ExchangePaths)],
        exception_handlers={
            ReplayError: _rejected,
            ValueError: _invalid,
            TypeError: _invalid,
            HTTPException: _unknown_endpoint,  # 404 unknown path, 405 known path but not this method
        },
    )
    app.state.exchange = exchange
    return app


class ReplayServer:
    """Runs a :class:`ReplayExchange` over HTTP in a daemon thread; usable as a context manager.

    The port is bound when the server is made (``url`` is known before ``start``); ``stop`` returns at
    once, abandoning requests still in progress (a stalled ``slow`` fault)."""

    def __init__(self, exchange: ReplayExchange, host: str = "127.0.0.1", port: int = 0) -> None:
        self.exchange = exchange
        self._socket = socket.create_server((host, port), backlog=2048)
        config = uvicorn.Config(
            replay_app(exchange),
            lifespan="off",
            ws="none",
            log_config=None,  # the process's logging stays as the caller set it
            log_level="warning",  # quiet like http.server was: no start/stop lines, errors still shown
            access_log=False,
            server_header=False,
            headers=[("Server", SERVER_HEADER)],
        )
        self._uvicorn = uvicorn.Server(config)
        self._thread: threading.Thread | None = None
        bound_host, bound_port = self._socket.getsockname()[:2]
        shown = "127.0.0.1" if bound_host in ("0.0.0.0", "") else bound_host
        self.url = f"http://{shown}:{bound_port}"

    def start(self) -> ReplayServer:
        """Start serving in the background once it accepts requests; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._uvicorn.run, args=([self._socket],), name="replay-exchange", daemon=True
            )
            self._thread.start()
            deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
            while not self._uvicorn.started:
                if not self._thread.is_alive() or time.monotonic() > deadline:
                    raise HourcastError(f"the replay exchange at {self.url} did not start; see the log above")
                time.sleep(0.005)
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._uvicorn.should_exit = self._uvicorn.force_exit = True
            self._thread.join()
            self._thread = None
        self._socket.close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve_forever(
    datasets: dict[str, Path], host: str, port: int, now: str | None, speed: float = 0.0, synthetic: int = 0
) -> None:
    """Load the datasets (plus ``synthetic`` symbols derived from them) and serve them until interrupted."""
    frames = {symbol: load_candles_file(path) for symbol, path in datasets.items()}
    exchange = ReplayExchange(frames | synthetic_datasets(synthetic, frames), now=now, speed=speed)
    with ReplayServer(exchange, host, port) as server:
        served = exchange.symbols
        shown = ", ".join(served[:10]) + (f" and {len(served) - 10} more" if len(served) > 10 else "")
        print(f"replay exchange at {server.url} serving {shown}", flush=True)
        print(
            f"clock {exchange.clock_state()['now']} (speed {speed}); control: {server.url}/_replay/",
            flush=True,
        )
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            print("replay exchange stopped", flush=True)
