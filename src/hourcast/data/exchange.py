"""The exchange edge: a ccxt client with bounded, jittered retries and candle pagination.

This is the one retry layer for exchange requests: transient faults (ccxt ``NetworkError``: timeouts, 5xx,
429) are retried here, per request, with exponential backoff that honours the server's ``Retry-After``,
which only this layer can see. Nothing above retries (the Prefect pull tasks do not): a run whose retries
ran out stops with what it stored, and the next scheduled run resumes. Permanent errors (an unknown market,
rejected credentials, a bad request) are never retried: they fail at once with a clear message.

A ``CandleSource`` may be used from many threads at once (ingestion fetches symbols concurrently): each
thread talks through its own copy of the ccxt client (its own HTTP session and ``last_response_headers``,
the markets shared), and every copy waits its turn on one ``RateLimiter``, ccxt's own cost model
(``rateLimit`` milliseconds per unit of an endpoint's cost) enforced across all threads.

Order flow: Binance's klines carry quote volume, number of trades and taker-buy base and quote volume,
which ccxt's ``fetch_ohlcv`` drops. For Binance (``ORDER_FLOW_EXCHANGES``) pages come from ccxt's raw
klines call (``publicGetKlines``, the request ``fetch_ohlcv`` sends, through the same retries, rate limit
and error mapping) with those four fields kept; every other exchange goes through ``fetch_ohlcv`` and has
no order flow.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar
from urllib.parse import urlsplit

import ccxt

from hourcast.compat.ccxt import replace_throttle, thread_copy
from hourcast.data.candles import slot_ms
from hourcast.data.selection import SELECTOR_PREFIX, has_selector, is_selector
from hourcast.errors import HourcastError, UserError
from hourcast.settings import Settings

T = TypeVar("T")

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (ccxt.NetworkError,)
"""ccxt's NetworkError covers RequestTimeout, ExchangeNotAvailable (5xx), DDoSProtection and
RateLimitExceeded (429): the faults worth waiting out."""


ORDER_FLOW_EXCHANGES = ("binance",)
"""ccxt exchange ids whose candles are read as raw klines, order flow included."""
KLINES_MAX_LIMIT = 1000
"""Binance spot's largest klines page (ccxt's ``fetch_ohlcv`` caps ``limit`` at it too)."""


class ExchangeFailure(HourcastError):
    """An exchange request failed for good (unknown market, rejected request, or retries exhausted)."""


def permanent_message(exchange_id: str, what: str, error: Exception) -> str:
    """A clear one-line message for a permanent ccxt error."""
    detail = f"{type(error).__name__}: {str(error)[:200]}"
    if isinstance(error, ccxt.BadSymbol):
        return f"the exchange {exchange_id} has no market for that symbol ({what}: {detail})"
    if isinstance(error, ccxt.AuthenticationError):
        return f"the exchange {exchange_id} refused the credentials or permissions ({what}: {detail})"
    if isinstance(error, ccxt.BadRequest):
        return f"the exchange {exchange_id} rejected the request as invalid ({what}: {detail})"
    return f"{exchange_id} {what} failed: {detail}"


class UnknownSymbol(ExchangeFailure):
    """The exchange lists no market for a symbol: re-running cannot help, the symbol must change."""


class ExchangeUnavailable(ExchangeFailure):
    """Transient exchange faults outlasted the retry budget."""


def rebase_urls(urls: object, base_url: str) -> object:
    """Replace the scheme and host of every URL in a ccxt ``urls['api']`` tree with ``base_url``."""
    if isinstance(urls, dict):
        return {key: rebase_urls(value, base_url) for key, value in urls.items()}
    if isinstance(urls, str) and urls.startswith(("http://", "https://")):
        parts = urlsplit(urls)
        return base_url.rstrip("/") + parts.path + (f"?{parts.query}" if parts.query else "")
    return urls


def make_client(settings: Settings) -> ccxt.Exchange:
    """A ccxt exchange for ``settings.exchange``, rate-limited, pointed at ``exchange_url`` if set."""
    exchange_class = getattr(ccxt, settings.exchange, None)
    if exchange_class is None or settings.exchange not in ccxt.exchanges:
        raise UserError(
            f"HOURCAST_EXCHANGE={settings.exchange!r} is not an exchange ccxt knows; set it to a ccxt "
            "exchange id such as binance (see ccxt.exchanges)"
        )
    client = exchange_class(
        {
            "enableRateLimit": True,
            "timeout": settings.exchange_timeout_ms,
            "options": {"defaultType": "spot"},
        }
    )
    if settings.exchange_url:
        client.urls["api"] = rebase_urls(client.urls["api"], settings.exchange_url)
    return client


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, bounded in attempts and per-delay length."""

    attempts: int = 6
    base_seconds: float = 0.5
    max_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> RetryPolicy:
        """The policy the settings describe."""
        return cls(settings.retry_attempts, settings.retry_base_seconds, settings.retry_max_seconds)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Seconds to wait after failed try number ``attempt`` (0-based)."""
        return rng.uniform(0, min(self.max_seconds, self.base_seconds * 2**attempt))


class RateLimiter:
    """ccxt's request spacing shared by threads: each request waits until ``interval_ms`` times the cost of
    the request before it has passed since that one went out, whichever thread sent it (ccxt's own
    ``throttle`` keeps that time per client and is not thread-safe)."""

    def __init__(self, interval_ms: float) -> None:
        self.interval_ms = interval_ms
        self._lock = threading.Lock()
        self._next = 0.0  # monotonic time the next request may go out

    def throttle(self, cost: float | None = None) -> None:
        """Wait for this request's turn; ``cost`` is ccxt's weight of the endpoint (1 if not given)."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval_ms * (1 if cost is None else cost) / 1000
        if start > now:
            time.sleep(start - now)


@dataclass
class CandleSource:
    """Candles and the clock of one exchange, with transient faults retried; safe to share between threads
    (see the module docstring)."""

    client: ccxt.Exchange
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    sleep: Callable[[float], None] = time.sleep
    rng: random.Random = field(default_factory=random.Random)
    retries: int = 0

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self._local.client = self.client
        if self.client.enableRateLimit:
            replace_throttle(self.client, RateLimiter(self.client.rateLimit).throttle)  # shared by the copies

    def _client(self) -> ccxt.Exchange:
        """This thread's copy of the client: markets, options and rate limiter shared, its own HTTP session
        and last response."""
        client = getattr(self._local, "client", None)
        if client is None:
            with self._lock:
                client = thread_copy(self.client)
            self._local.client = client
        return client

    def _call(self, what: str, function: Callable[..., T], *args: object, **kwargs: object) -> T:
        for attempt in range(self.retry.attempts):
            try:
                return function(*args, **kwargs)
            except TRANSIENT_ERRORS as error:
                if attempt + 1 == self.retry.attempts:
                    raise ExchangeUnavailable(
                        f"{self.client.id} {what} failed after {self.retry.attempts} tries: "
                        f"{type(error).__name__}: {str(error)[:200]}"
                    ) from error
                with self._lock:
                    self.retries += 1
                    delay = self.retry.delay(attempt, self.rng)
                self.sleep(max(delay, self._retry_after(error)))
            except ccxt.BaseError as error:  # permanent: retrying cannot help
                raise ExchangeFailure(permanent_message(self.client.id, what, error)) from error
        raise AssertionError("unreachable")

    def _retry_after(self, error: Exception) -> float:
        """The server's ``Retry-After`` (seconds) on a rate-limit answer, capped by the policy."""
        if not isinstance(error, ccxt.DDoSProtection):
            return 0.0
        headers = self._client().last_response_headers or {}
        value = next((v for k, v in headers.items() if k.lower() == "retry-after"), None)
        try:
            return min(float(value), self.retry.max_seconds) if value is not None else 0.0
        except ValueError:
            return 0.0

    def load_markets(self) -> None:
        """Load the exchange's markets (needed once before symbols can be resolved; every thread's copy of
        the client shares them)."""
        with self._lock:  # one thread loads them, the others wait and find them loaded
            self._call("load_markets", self.client.load_markets)
        client = self._client()
        if client is not self.client and client.markets is not self.client.markets:
            client.set_markets(self.client.markets, self.client.currencies)

    def select(self, quote: str, min_quote_volume: float) -> list[str]:
        """The exchange's active spot markets quoted in ``quote`` whose last 24 h traded at least
        ``min_quote_volume`` (in ``quote``, by ``fetch_tickers``), most traded first."""
        self.load_markets()
        listed = {
            symbol
            for symbol, market in self.client.markets.items()
            if market.get("spot") and market.get("active") is not False and market.get("quote") == quote
        }
        tickers = self._call("fetch_tickers", self._client().fetch_tickers)
        volumes = {
            symbol: tickers[symbol].get("quoteVolume") or 0.0 for symbol in listed if symbol in tickers
        }
        chosen = [symbol for symbol, volume in volumes.items() if volume >= min_quote_volume]
        return sorted(chosen, key=lambda symbol: (-volumes[symbol], symbol))

    def check_symbol(self, symbol: str) -> None:
        """Raise ``ExchangeFailure`` (at once, never retried) if the exchange does not list ``symbol``."""
        self.load_markets()
        if symbol not in self._client().markets:
            raise UnknownSymbol(
                f"the exchange {self.client.id} has no market {symbol!r}; check the symbol "
                "(HOURCAST_SYMBOLS or --symbol), e.g. BTC/USDT"
            )

    def now_ms(self) -> int:
        """The exchange's clock, in epoch milliseconds."""
        return int(self._call("fetch_time", self._client().fetch_time))

    def page(self, symbol: str, timeframe: str, since_ms: int, limit: int) -> list[list]:
        """One page of candles from ``since_ms``: ``fetch_ohlcv`` rows ``[ts, o, h, l, c, v]``, or for an
        exchange of ``ORDER_FLOW_EXCHANGES`` rows ``[ts, o, h, l, c, v, quote_volume, trades,
        taker_buy_base, taker_buy_quote]`` from its raw klines (values as the exchange sent them)."""
        client = self._client()
        if client.id not in ORDER_FLOW_EXCHANGES:
            return self._call(
                "fetch_ohlcv", client.fetch_ohlcv, symbol, timeframe, since=since_ms, limit=limit
            )
        self.load_markets()
        return self._call("klines", _klines, client, symbol, timeframe, since_ms, limit)

    def pages(
        self, symbol: str, timeframe: str, since_ms: int, until_ms: int, limit: int
    ) -> Iterator[list[list]]:
        """Pages (``page``) covering the periods ``since_ms..until_ms`` (open times, inclusive),
        off-grid candles included with the period they fall in (``candles.slot_ms``).

        Each next page starts 1 ms after the newest open time of the last one, not one timeframe after
        it: after an off-grid candle (say 10:30 in an hourly feed) the 11:00 candle must still come.
        """
        since = since_ms
        while since <= until_ms:
            rows = self.page(symbol, timeframe, since, limit)
            stamps = [row[0] for row in rows if row and isinstance(row[0], int)]
            page = [
                row
                for row in rows
                if not (row and isinstance(row[0], int) and slot_ms(row[0], timeframe) > until_ms)
            ]
            if page:
                yield page
            if not stamps or max(stamps) < since:
                return
            since = max(stamps) + 1


def _klines(client: ccxt.Exchange, symbol: str, timeframe: str, since_ms: int, limit: int) -> list[list]:
    """Binance's raw ``/api/v3/klines`` rows through ccxt's implicit API, the request ``fetch_ohlcv`` sends,
    each cut to ``[openTime, open, high, low, close, volume, quoteVolume, trades, takerBuyBase,
    takerBuyQuote]`` (close time and the ignored field dropped)."""
    request = {
        "symbol": client.market(symbol)["id"],
        "interval": client.timeframes.get(timeframe, timeframe),
        "startTime": since_ms,
        "limit": min(limit, KLINES_MAX_LIMIT),
    }
    rows = client.publicGetKlines(request)
    return [[*row[:6], *row[7:11]] for row in rows]


def resolve_symbols(settings: Settings, source: CandleSource) -> Settings:
    """``settings`` with every selector of ``symbols`` (``all-usdt``: the exchange's active spot markets
    quoted in USDT that traded at least ``min_quote_volume`` USDT in the last 24 h, most traded first)
    replaced by the symbols it selects now; the same object when there is none. Call it at entry points:
    it asks the exchange (``hourcast.data.ingest.resolve_settings`` also records what it resolved)."""
    if not has_selector(settings):
        return settings
    resolved: list[str] = []
    for entry in settings.symbols:
        if is_selector(entry):
            quote = entry[len(SELECTOR_PREFIX) :].upper()
            try:
                selected = source.select(quote, settings.min_quote_volume)
            except ExchangeFailure as error:
                raise UserError(
                    f"HOURCAST_SYMBOLS={entry} could not be resolved: {error}; try again, or name the symbols"
                ) from error
            if not selected:
                raise UserError(
                    f"HOURCAST_SYMBOLS={entry} selects no market of {source.client.id}: none quoted in "
                    f"{quote} traded HOURCAST_MIN_QUOTE_VOLUME={settings.min_quote_volume:g} in the last "
                    "24 h; lower it or name the symbols"
                )
            resolved += selected
        else:
            resolved.append(entry)
    return settings.model_copy(update={"symbols": list(dict.fromkeys(resolved))})
