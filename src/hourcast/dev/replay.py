"""Replay exchange: a local HTTP server speaking the subset of Binance's public spot REST API
that ``ccxt.binance`` needs for ``load_markets``, ``fetch_time`` and ``fetch_ohlcv``.

It serves real recorded candles against a simulated clock: only candles that opened at or before
the clock are visible, and the one in progress is served as a partial candle. A file's own interval
(1h for the bundled files) is served as is, and any multiple of it (2h, 4h, 1d, ...) is aggregated
from it as the exchange aggregates (first open, highest high, lowest low, last close, summed volume,
periods aligned to midnight UTC); candles are served as they are in the file, off-grid ones included. Faults
(rate limits, 5xx, slowness, corrupt/duplicate/missing rows) can be injected at run time.

Order flow: a kline's fields 7..10 (quote volume, number of trades, taker-buy base and quote volume) are
served from the file's optional columns ``quote_volume,trades,taker_buy_base,taker_buy_quote`` (all four or
none), summed into longer intervals (null if any candle of the period has none), scaled like the volume
for synthetic symbols and for the candle in progress. A file without them (the bundled recordings have
none) gets ``null`` in those four positions: the replay never invents order flow. The 24 h ticker's
``quoteVolume`` (what ``all-usdt`` selects by) is computed from the candles (volume times close) either way.

Market-data endpoints (what ccxt calls after its URLs are rebased onto the server)::

    GET  /api/v3/ping | /api/v3/time | /api/v3/exchangeInfo | /api/v3/klines
    GET  /api/v3/ticker/24hr     (``fetch_tickers``: last price and 24 h base and quote volume)
    GET  /fapi/v1/exchangeInfo | /dapi/v1/exchangeInfo          (no futures markets)

Synthetic symbols (:func:`synthetic_datasets`) let scale runs serve hundreds of markets offline:
``SYN001/USDT`` .. ``SYNnnn/USDT`` are NOT real markets but the recorded series rotated in time and rescaled.

Control endpoints::

    GET    /_replay/clock    -> {"now": ISO, "now_ms": int, "speed": float}
    POST   /_replay/clock    {"now": ISO | ms} or {"advance_seconds": s}, optional "speed"
    GET    /_replay/faults   -> {"config": {...}, "fired": {kind: n}, "symbols": {symbol: {...}}}
    POST   /_replay/faults   {"seed": 0, "slow_seconds": 3.0, "retry_after": 1,
                              "<kind>": {"rate": 0..1, "count": n}, ...}
                             with "symbol": "SYN003/USDT": faults of that symbol's klines only, on top
                             of the exchange-wide ones (each symbol its own counts, seed and counters)
    DELETE /_replay/faults   clear all faults and counters (exchange-wide and per symbol)

POSTs must be ``Content-Type: application/json`` (415 otherwise), so a web page cannot move the clock.

Faults only ever apply to ``/api/v3/klines``; markets, tickers, time and ping always answer.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np
import pandas as pd

from hourcast.data.candles import ORDER_FLOW_COLUMNS, to_ms
from hourcast.errors import HourcastError, UsageError
from hourcast.timeframe import timeframe_ms

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
FILE_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]
ERROR_FAULTS = ("rate_limit", "server_error")
DATA_FAULTS = ("malformed", "duplicate", "missing")
FAULT_KINDS = (*ERROR_FAULTS, "slow", *DATA_FAULTS)
_FAULT_SETTINGS = {"seed": 0, "slow_seconds": 3.0, "retry_after": 1}
_RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]
_ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT"]


class ReplayError(HourcastError):
    """A request the replay exchange rejects, answered as a Binance-style ``{"code", "msg"}`` body."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


def _ms(value: pd.Timestamp | str | int) -> int:
    """Epoch milliseconds of an int (taken as ms), ISO string or timestamp (naive = UTC)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return to_ms(value)


def _iso(ms: int) -> str:
    """ISO-8601 UTC text of epoch milliseconds, e.g. ``2024-03-01T00:00:00.000Z``."""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _fmt(value: float) -> str:
    """Binance-style decimal string with 8 places."""
    return f"{value:.8f}"


def market_id(symbol: str) -> str:
    """Binance market id of a unified symbol: ``BTC/USDT`` -> ``BTCUSDT``."""
    base, _, quote = symbol.partition("/")
    if not base or not quote or "/" in quote:
        raise ValueError(f"symbol must look like BASE/QUOTE, got {symbol!r}")
    return f"{base}{quote}".upper()


def parse_timestamps(values: pd.Series, path: str | Path = "<data>") -> pd.Series:
    """Open times as UTC: epoch milliseconds (integers), or ISO-8601 text of any precision, mixed freely
    (``2020-01-01T04:00:00Z`` beside ``2020-01-01T09:28:14.789Z``; no offset means UTC).
    ``ValueError`` naming the file and the first value that is neither."""
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_datetime(values, unit="ms", utc=True).astype("datetime64[ms, UTC]")
    try:
        return pd.to_datetime(values, utc=True, format="ISO8601").astype("datetime64[ms, UTC]")
    except (ValueError, TypeError) as error:
        raise ValueError(f"{path}: timestamps must be ISO-8601 UTC or epoch milliseconds ({error})") from None


def load_candles_file(path: str | Path) -> pd.DataFrame:
    """Read a ``timestamp,open,high,low,close,volume`` CSV (optionally .gz), optionally with the order flow
    ``quote_volume,trades,taker_buy_base,taker_buy_quote`` (all four; an empty cell is a candle without
    it), into a sorted frame with columns ``ts`` (UTC) and the float values."""
    raw = pd.read_csv(path)
    missing = [column for column in FILE_COLUMNS if column not in raw.columns]
    if missing:
        raise ValueError(f"{path}: missing columns {missing} (expected header {','.join(FILE_COLUMNS)})")
    flow = [column for column in ORDER_FLOW_COLUMNS if column in raw.columns]
    if flow and flow != ORDER_FLOW_COLUMNS:
        absent = [column for column in ORDER_FLOW_COLUMNS if column not in flow]
        raise ValueError(f"{path}: order-flow columns come all four or none; {absent} missing")
    frame = pd.DataFrame({"ts": parse_timestamps(raw["timestamp"], path)})
    for column in [*FILE_COLUMNS[1:], *flow]:
        frame[column] = raw[column].astype("float64")
    return frame.sort_values("ts", kind="stable").drop_duplicates("ts", keep="last").reset_index(drop=True)


SYNTHETIC_QUOTE = "USDT"
SYNTHETIC_ROTATION_HOURS = 97
"""Candles each synthetic symbol is rotated by, times its number (a prime: no two rotations coincide)."""


def synthetic_symbol(number: int) -> str:
    """``SYN001/USDT`` for 1: the name of synthetic symbol ``number`` (1-based)."""
    return f"SYN{number:03d}/{SYNTHETIC_QUOTE}"


def synthetic_datasets(count: int, recorded: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``count`` SYNTHETIC symbols ``SYN001/USDT``.. derived from recorded candle frames, for scale runs.

    They are not markets of any exchange. Symbol ``k`` takes recorded series ``(k - 1) % len(recorded)``
    (in the given order) on the same open times, its candles rotated by ``k * 97`` positions (the
    candles rotated past the end wrap round to the start, rescaled so the join is continuous), its prices
    multiplied by ``10 ** -(k % 4)`` and its quote volume divided by ``k`` (``SYN001`` is the most liquid),
    so every symbol has a series of its own covering the whole recorded span. Order flow, if the recorded
    series has it, follows: base volumes scaled as the volume, quote volumes as price times volume, the
    number of trades divided by ``k``.
    """
    if count < 0 or count > 999:
        raise ValueError(f"synthetic symbols number 0..999, got {count}")
    sources = list(recorded.values())
    if count and not sources:
        raise ValueError("synthetic symbols need at least one recorded series")
    prices = ["open", "high", "low", "close"]
    datasets: dict[str, pd.DataFrame] = {}
    for number in range(1, count + 1):
        source = sources[(number - 1) % len(sources)]
        values = source[prices].to_numpy(dtype="float64")
        volume = source["volume"].to_numpy(dtype="float64")
        shift = number * SYNTHETIC_ROTATION_HOURS % len(source)
        wrapped = values[len(source) - shift :] * (values[0, 0] / values[-1, 3])  # ends where the head opens
        scale = 10.0 ** -(number % 4)
        frame = pd.DataFrame(np.vstack([wrapped, values[: len(source) - shift]]) * scale, columns=prices)
        frame["volume"] = np.concatenate([volume[len(source) - shift :], volume[: len(source) - shift]])
        frame["volume"] /= scale * number  # quote volume (price x volume) shrinks as 1 / number
        if all(column in source for column in ORDER_FLOW_COLUMNS):
            flow = source[ORDER_FLOW_COLUMNS].to_numpy(dtype="float64")
            flow = np.vstack([flow[len(source) - shift :], flow[: len(source) - shift]])
            flow[:shift, [0, 3]] *= values[0, 0] / values[-1, 3]  # quote volumes of the rescaled part
            flow /= np.array([number, number, scale * number, number])
            frame[ORDER_FLOW_COLUMNS] = flow
        frame.insert(0, "ts", source["ts"].reset_index(drop=True))
        datasets[synthetic_symbol(number)] = frame
    return datasets


@dataclass(frozen=True)
class ReplayData:
    """One symbol's recorded candles of one interval as arrays sorted by open time (epoch ms)."""

    open_ms: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    interval_ms: int
    flow: np.ndarray | None = None
    """Order flow per candle, columns ``ORDER_FLOW_COLUMNS`` (NaN: that candle has none); None: no file
    column."""

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> ReplayData:
        """Build from a frame with ``ts`` and ``open, high, low, close, volume`` columns (and optionally
        ``ORDER_FLOW_COLUMNS``)."""
        if frame.empty:
            raise ValueError("no candles to replay")
        ordered = frame.sort_values("ts", kind="stable").drop_duplicates("ts", keep="last")
        stamps = pd.DatetimeIndex(pd.to_datetime(ordered["ts"], utc=True, cache=False)).as_unit("ms")
        values = {c: ordered[c].to_numpy(dtype="float64") for c in ("open", "high", "low", "close", "volume")}
        open_ms = stamps.asi8.astype(np.int64)
        steps = np.diff(open_ms)
        interval_ms = int(pd.Series(steps).mode().min()) if len(steps) else 3_600_000  # the usual step
        has_flow = all(column in ordered for column in ORDER_FLOW_COLUMNS)
        flow = ordered[ORDER_FLOW_COLUMNS].to_numpy(dtype="float64") if has_flow else None
        return cls(open_ms=open_ms, **values, interval_ms=interval_ms, flow=flow)

    def aggregate(self, interval_ms: int) -> ReplayData:
        """The candles of a multiple of this interval, aligned to the epoch (midnight UTC); order flow
        summed, null for a period with a candle without it."""
        if interval_ms == self.interval_ms:
            return self
        if interval_ms % self.interval_ms:
            raise ValueError(f"{interval_ms} ms is not a multiple of the recorded {self.interval_ms} ms")
        flow = {} if self.flow is None else dict(zip(ORDER_FLOW_COLUMNS, self.flow.T, strict=True))
        groups = pd.DataFrame(
            {
                "period": self.open_ms // interval_ms * interval_ms,
                "open": self.open,
                "high": self.high,
                "low": self.low,
                "close": self.close,
                "volume": self.volume,
                **flow,
            }
        ).groupby("period", sort=True)
        merged = groups.agg(
            open=("open", "first"),
            high=("high", "max"),
            low=("low", "min"),
            close=("close", "last"),
            volume=("volume", "sum"),
        )
        values = {c: merged[c].to_numpy(dtype="float64") for c in ("open", "high", "low", "close", "volume")}
        summed = None
        if flow:
            complete = groups[ORDER_FLOW_COLUMNS].count() == groups.size().to_numpy()[:, None]
            summed = groups[ORDER_FLOW_COLUMNS].sum().where(complete).to_numpy(dtype="float64")
        return ReplayData(
            open_ms=merged.index.to_numpy(dtype=np.int64), **values, interval_ms=interval_ms, flow=summed
        )

    @classmethod
    def load_csv(cls, path: str | Path) -> ReplayData:
        """Build from a candles CSV / CSV.gz file (see :func:`load_candles_file`)."""
        return cls.from_frame(load_candles_file(path))

    @property
    def last_open_ms(self) -> int:
        """Open time of the last recorded candle."""
        return int(self.open_ms[-1])

    def ticker(self, market: str, now_ms: int) -> dict[str, Any]:
        """Binance ``/api/v3/ticker/24hr`` body of the 24 hours of candles closed by ``now_ms``: last close,
        base volume and quote volume (each candle's volume times its close)."""
        stop = int(np.searchsorted(self.open_ms, now_ms - self.interval_ms, side="right"))
        begin = int(np.searchsorted(self.open_ms, now_ms - self.interval_ms - 86_400_000, side="right"))
        window = slice(begin, stop)
        empty = stop <= begin
        first, last = (0.0, 0.0) if empty else (float(self.open[begin]), float(self.close[stop - 1]))
        volume = float(self.volume[window].sum())
        quote = float((self.volume[window] * self.close[window]).sum())
        return {
            "symbol": market,
            "priceChange": _fmt(last - first),
            "priceChangePercent": f"{(last / first - 1) * 100 if first else 0.0:.3f}",
            "weightedAvgPrice": _fmt(quote / volume if volume else 0.0),
            "prevClosePrice": _fmt(float(self.close[begin - 1]) if begin else first),
            "lastPrice": _fmt(last),
            "lastQty": "0.00000000",
            "bidPrice": _fmt(last),
            "bidQty": "0.00000000",
            "askPrice": _fmt(last),
            "askQty": "0.00000000",
            "openPrice": _fmt(first),
            "highPrice": _fmt(0.0 if empty else float(self.high[window].max())),
            "lowPrice": _fmt(0.0 if empty else float(self.low[window].min())),
            "volume": _fmt(volume),
            "quoteVolume": _fmt(quote),
            "openTime": now_ms - 86_400_000,
            "closeTime": now_ms,
            "firstId": -1,
            "lastId": -1,
            "count": 0,
        }

    def klines(self, now_ms: int, start_ms: int | None, end_ms: int | None, limit: int) -> list[list[Any]]:
        """Binance ``/api/v3/klines`` rows visible at ``now_ms`` (in-progress candle partial)."""
        upper = now_ms if end_ms is None else min(now_ms, end_ms)
        stop = int(np.searchsorted(self.open_ms, upper, side="right"))
        if start_ms is None:
            begin = max(0, stop - limit)
        else:
            begin = int(np.searchsorted(self.open_ms, start_ms, side="left"))
            stop = min(stop, begin + limit)
        return [self._row(i, now_ms) for i in range(begin, stop)]

    def _row(self, i: int, now_ms: int) -> list[Any]:
        """One 12-field kline; partial (interpolated toward the recorded close, order flow scaled like the
        volume) if still open; order flow null where the file has none."""
        opened = int(self.open_ms[i])
        first, high, low, close, volume = (
            float(self.open[i]),
            float(self.high[i]),
            float(self.low[i]),
            float(self.close[i]),
            float(self.volume[i]),
        )
        fraction = min((now_ms - opened) / self.interval_ms, 1.0)
        if fraction < 1.0:
            close = first + (close - first) * fraction
            high, low, volume = max(first, close), min(first, close), volume * fraction
        flow: list[Any] = [None] * len(ORDER_FLOW_COLUMNS)
        if self.flow is not None and not np.isnan(self.flow[i]).any():
            quote, trades, taker_base, taker_quote = (float(value) * fraction for value in self.flow[i])
            flow = [_fmt(quote), round(trades), _fmt(taker_base), _fmt(taker_quote)]
        return [
            opened,
            _fmt(first),
            _fmt(high),
            _fmt(low),
            _fmt(close),
            _fmt(volume),
            opened + self.interval_ms - 1,
            *flow,
            "0",
        ]


class SimClock:
    """Simulated epoch-ms clock; frozen when ``speed`` is 0, otherwise advancing ``speed``
    simulated seconds per real (monotonic) second since it was last set."""

    def __init__(self, now_ms: int, speed: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._anchor_ms = now_ms
        self._anchor_mono = time.monotonic()
        self._speed = speed

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed

    def now_ms(self) -> int:
        """Current simulated time in epoch milliseconds."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> int:
        return self._anchor_ms + int((time.monotonic() - self._anchor_mono) * self._speed * 1000)

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms``; with a non-zero speed, elapsed time counts from here."""
        with self._lock:
            self._anchor_ms, self._anchor_mono = now_ms, time.monotonic()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, if negative) by simulated seconds."""
        with self._lock:
            self._anchor_ms, self._anchor_mono = self._now_locked() + round(seconds * 1000), time.monotonic()

    def set_speed(self, speed: float) -> None:
        """Change speed without jumping: the current simulated time is kept."""
        with self._lock:
            self._anchor_ms, self._anchor_mono, self._speed = self._now_locked(), time.monotonic(), speed


@dataclass
class FaultRule:
    """How one fault kind fires: on the next ``count`` klines requests, else with probability ``rate``."""

    rate: float = 0.0
    count: int = 0

    @classmethod
    def parse(cls, kind: str, value: Any) -> FaultRule:
        """Validate a ``{"rate": 0..1, "count": n}`` object."""
        if not isinstance(value, dict) or set(value) - {"rate", "count"}:
            raise ValueError(f"fault {kind!r} must be an object with 'rate' and/or 'count'")
        rate, count = float(value.get("rate", 0.0)), value.get("count", 0)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault {kind!r}: rate must be within 0..1")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"fault {kind!r}: count must be a non-negative integer")
        return cls(rate=rate, count=count)


class FaultInjector:
    """Seeded fault state; callers hold the owning exchange's lock."""

    def __init__(self, seed: int = 0) -> None:
        self.default_seed = seed
        self.clear()

    def clear(self) -> None:
        """Switch every fault off, reset counters, settings and the RNG."""
        self.rules = {kind: FaultRule() for kind in FAULT_KINDS}
        self.fired = dict.fromkeys(FAULT_KINDS, 0)
        self.seed = self.default_seed
        self.slow_seconds = float(_FAULT_SETTINGS["slow_seconds"])
        self.retry_after = int(_FAULT_SETTINGS["retry_after"])
        self.rng = random.Random(self.seed)

    def configure(self, config: dict[str, Any]) -> None:
        """Merge a fault config: given kinds are replaced, others kept; ``seed`` reseeds the RNG."""
        unknown = set(config) - set(FAULT_KINDS) - set(_FAULT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown fault keys {sorted(unknown)}; kinds are {list(FAULT_KINDS)}")
        rules = {kind: FaultRule.parse(kind, config[kind]) for kind in FAULT_KINDS if kind in config}
        slow_seconds = float(config.get("slow_seconds", self.slow_seconds))
        retry_after = int(config.get("retry_after", self.retry_after))
        if slow_seconds < 0 or retry_after < 0:
            raise ValueError("slow_seconds and retry_after must be non-negative")
        self.rules.update(rules)
        self.slow_seconds, self.retry_after = slow_seconds, retry_after
        if "seed" in config:
            self.seed = int(config["seed"])
            self.rng = random.Random(self.seed)

    def snapshot(self) -> dict[str, Any]:
        """Current config (same shape as the POST body) and how often each kind fired."""
        config: dict[str, Any] = {"seed": self.seed, "slow_seconds": self.slow_seconds}
        config["retry_after"] = self.retry_after
        config.update({kind: {"rate": r.rate, "count": r.count} for kind, r in self.rules.items()})
        return {"config": config, "fired": dict(self.fired)}

    def fires(self, kind: str) -> bool:
        """Whether ``kind`` applies to this request (consumes a count, or draws from the RNG)."""
        rule = self.rules[kind]
        if rule.count > 0:
            rule.count -= 1
        elif not (rule.rate > 0 and self.rng.random() < rule.rate):
            return False
        self.fired[kind] += 1
        return True

    def corrupt(self, rows: list[list[Any]], limit: int, now_ms: int) -> None:
        """Apply whichever data faults fire to a klines page, in place (never beyond ``limit`` rows).

        ``missing`` leaves out an interior row of a page of 3 or more rows, and a closed row of a shorter
        page (an hourly run's page: the last closed candle and the one in progress)."""
        if rows and self.fires("malformed"):
            row = rows[self.rng.randrange(len(rows))]
            if self.rng.random() < 0.5:
                row[4] = "not-a-number"
            else:
                row[2] = _fmt(float(row[3]) * 0.99)  # high below low
        if rows and self.fires("duplicate"):
            i = self.rng.randrange(len(rows))
            rows.insert(i + 1, list(rows[i]))
            del rows[limit:]
        if rows and self.fires("missing"):
            if len(rows) >= 3:
                del rows[self.rng.randrange(1, len(rows) - 1)]
            else:
                closed = [i for i, row in enumerate(rows) if int(row[6]) < now_ms]
                if closed:
                    del rows[self.rng.choice(closed)]


@dataclass(frozen=True)
class _Market:
    symbol: str
    base: str
    quote: str
    data: ReplayData


class ReplayExchange:
    """Replay state shared by all request threads: datasets, simulated clock and faults."""

    def __init__(
        self,
        datasets: dict[str, pd.DataFrame],
        now: pd.Timestamp | str | int | None = None,
        speed: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not datasets:
            raise ValueError("the replay exchange needs at least one dataset")
        self._markets: dict[str, _Market] = {}
        for symbol, frame in datasets.items():
            base, _, quote = symbol.upper().partition("/")
            self._markets[market_id(symbol)] = _Market(
                symbol.upper(), base, quote, ReplayData.from_frame(frame)
            )
        if speed < 0:
            raise ValueError("speed must be non-negative")
        default_now = max(m.data.last_open_ms + m.data.interval_ms for m in self._markets.values())
        self.clock = SimClock(default_now if now is None else _ms(now), speed)
        self._lock = threading.Lock()
        self._faults = FaultInjector(seed)
        self._symbol_faults: dict[str, FaultInjector] = {}  # by market id
        self._aggregated: dict[tuple[str, int], ReplayData] = {}

    @property
    def symbols(self) -> list[str]:
        """Unified symbols served."""
        return [m.symbol for m in self._markets.values()]

    def set_now(self, now: pd.Timestamp | str | int) -> None:
        """Move the simulated clock to a timestamp, ISO string or epoch ms."""
        self.clock.set(_ms(now))

    def advance(self, seconds: float) -> None:
        """Move the simulated clock by ``seconds``."""
        self.clock.advance(seconds)

    def now_ms(self) -> int:
        """Simulated time in epoch milliseconds."""
        return self.clock.now_ms()

    def clock_state(self) -> dict[str, Any]:
        """``{"now": ISO, "now_ms": int, "speed": float}``."""
        now = self.now_ms()
        return {"now": _iso(now), "now_ms": now, "speed": self.clock.speed}

    def _market_id(self, symbol: str) -> str:
        """The market id of a served symbol (unified ``SYN001/USDT`` or id ``SYN001USDT``); ValueError if
        the exchange does not serve it."""
        mid = market_id(symbol) if "/" in symbol else symbol.upper()
        if mid not in self._markets:
            raise ValueError(f"the replay exchange serves no symbol {symbol!r}")
        return mid

    def set_faults(self, config: dict[str, Any], symbol: str | None = None) -> None:
        """Merge a fault config (see module docstring), exchange-wide or for one ``symbol``'s klines only
        (on top of the exchange-wide faults); raises ValueError if invalid."""
        with self._lock:
            if symbol is None:
                self._faults.configure(config)
                return
            mid = self._market_id(symbol)
            faults = self._symbol_faults.get(mid) or FaultInjector(self._faults.default_seed)
            faults.configure(config)
            self._symbol_faults[mid] = faults

    def clear_faults(self) -> None:
        """Switch all faults off (exchange-wide and per symbol) and reset counters."""
        with self._lock:
            self._faults.clear()
            self._symbol_faults.clear()

    def fault_counts(self, symbol: str | None = None) -> dict[str, int]:
        """How many times each fault kind fired: exchange-wide faults, or those of one ``symbol``."""
        with self._lock:
            if symbol is None:
                return dict(self._faults.fired)
            faults = self._symbol_faults.get(self._market_id(symbol))
            return dict(faults.fired) if faults else dict.fromkeys(FAULT_KINDS, 0)

    def fault_state(self) -> dict[str, Any]:
        """Fault config plus counters, as served by ``GET /_replay/faults``; ``symbols`` holds those of
        the symbols with faults of their own."""
        with self._lock:
            symbols = {self._markets[mid].symbol: f.snapshot() for mid, f in self._symbol_faults.items()}
            return {**self._faults.snapshot(), "symbols": symbols}

    def _injectors(self, symbol: str | None) -> list[FaultInjector]:
        """The fault injectors a klines request for ``symbol`` (a market id) goes through; caller locks."""
        own = self._symbol_faults.get(str(symbol).upper()) if symbol else None
        return [self._faults] if own is None else [self._faults, own]

    def draw_error_fault(self, symbol: str | None = None) -> tuple[str | None, float, int]:
        """For one klines request (for market id ``symbol``): the error fault that fires (first of
        ``ERROR_FAULTS``, exchange-wide before the symbol's own, or None), the seconds to stall first
        (``slow``), and the ``retry_after`` of the faults that fired."""
        with self._lock:
            for faults in self._injectors(symbol):
                error = next((kind for kind in ERROR_FAULTS if faults.fires(kind)), None)
                if error is not None:
                    return error, 0.0, faults.retry_after
            for faults in self._injectors(symbol):
                if faults.fires("slow"):
                    return None, faults.slow_seconds, faults.retry_after
            return None, 0.0, self._faults.retry_after

    def tickers(self, query: dict[str, str]) -> dict[str, Any] | list[dict[str, Any]]:
        """``/api/v3/ticker/24hr``: every market's 24 h ticker, or one market's (``symbol``) or some
        (``symbols``, a JSON list of ids)."""
        now_ms = self.now_ms()
        if "symbol" in query:
            market = self._markets.get(query["symbol"].upper())
            if market is None:
                raise ReplayError(400, -1121, "Invalid symbol.")
            return market.data.ticker(query["symbol"].upper(), now_ms)
        wanted = list(self._markets)
        if "symbols" in query:
            try:
                wanted = [str(mid).upper() for mid in json.loads(query["symbols"])]
            except (ValueError, TypeError):
                raise ReplayError(400, -1100, "Illegal characters found in parameter 'symbols'.") from None
            if any(mid not in self._markets for mid in wanted):
                raise ReplayError(400, -1121, "Invalid symbol.")
        return [self._markets[mid].data.ticker(mid, now_ms) for mid in wanted]

    def exchange_info(self) -> dict[str, Any]:
        """Spot ``/api/v3/exchangeInfo`` body."""
        return {
            "timezone": "UTC",
            "serverTime": self.now_ms(),
            "rateLimits": _RATE_LIMITS,
            "exchangeFilters": [],
            "symbols": [self._symbol_info(mid, m) for mid, m in self._markets.items()],
        }

    @staticmethod
    def _symbol_info(mid: str, market: _Market) -> dict[str, Any]:
        return {
            "symbol": mid,
            "status": "TRADING",
            "baseAsset": market.base,
            "baseAssetPrecision": 8,
            "quoteAsset": market.quote,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8,
            "orderTypes": _ORDER_TYPES,
            "icebergAllowed": True,
            "ocoAllowed": True,
            "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True,
            "cancelReplaceAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.01000000",
                    "maxPrice": "1000000.00000000",
                    "tickSize": "0.01000000",
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": "0.00001000",
                    "maxQty": "9000.00000000",
                    "stepSize": "0.00001000",
                },
                {
                    "filterType": "NOTIONAL",
                    "minNotional": "5.00000000",
                    "applyMinToMarket": True,
                    "maxNotional": "9000000.00000000",
                    "applyMaxToMarket": False,
                    "avgPriceMins": 5,
                },
            ],
            "permissions": ["SPOT"],
            "permissionSets": [["SPOT"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }

    def _interval_data(self, market: _Market, interval: str) -> ReplayData:
        """The market's candles at ``interval`` (aggregated once, then cached); -1120 if not servable."""
        try:
            interval_ms = timeframe_ms(interval)
            key = (market.symbol, interval_ms)
            with self._lock:
                if key not in self._aggregated:
                    self._aggregated[key] = market.data.aggregate(interval_ms)
                return self._aggregated[key]
        except ValueError:
            raise ReplayError(400, -1120, "Invalid interval.") from None

    def klines(self, query: dict[str, str]) -> list[list[Any]]:
        """``/api/v3/klines`` for a parsed query string, with data faults applied."""
        symbol, interval = query.get("symbol"), query.get("interval")
        for name, value in (("symbol", symbol), ("interval", interval)):
            if not value:
                raise ReplayError(
                    400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
                )
        market = self._markets.get(str(symbol).upper())
        if market is None:
            raise ReplayError(400, -1121, "Invalid symbol.")
        data = self._interval_data(market, str(interval))
        start, end, limit = (_int_param(query, name) for name in ("startTime", "endTime", "limit"))
        limit = DEFAULT_LIMIT if limit is None else limit
        if limit < 1:
            raise ReplayError(
                400, -1100, "Illegal characters found in parameter 'limit'; legal range is '1'."
            )
        limit = min(limit, MAX_LIMIT)
        now_ms = self.now_ms()
        rows = data.klines(now_ms, start, end, limit)
        with self._lock:
            for faults in self._injectors(str(symbol)):
                faults.corrupt(rows, limit, now_ms)
        return rows


def _int_param(query: dict[str, str], name: str) -> int | None:
    """An optional integer query parameter; Binance error -1100 if it is not an integer."""
    value = query.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ReplayError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None


_RATE_LIMIT_MSG = (
    "Too many requests; current limit of IP is 6000 requests per minute. "
    "Please use the websocket for live updates to avoid bans."
)
_EMPTY_FUTURES_INFO = {"timezone": "UTC", "rateLimits": [], "exchangeFilters": [], "symbols": []}


class _Handler(BaseHTTPRequestHandler):
    """Routes requests to the server's :class:`ReplayExchange`."""

    server: _ReplayHTTPServer
    server_version = "hourcast-replay/1"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request logging."""

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        is_text = isinstance(body, str)
        payload = (body if is_text else json.dumps(body, separators=(",", ":"))).encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/plain" if is_text else "application/json;charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (e.g. timed out during a slow fault)

    def _json_body(self) -> dict[str, Any]:
        # only JSON: a web page can POST text/plain cross-origin without a preflight, JSON it cannot
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise ReplayError(415, -1, "control requests need Content-Type: application/json")
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            body = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ReplayError(400, -1, f"invalid JSON body: {exc}") from None
        if not isinstance(body, dict):
            raise ReplayError(400, -1, "JSON body must be an object")
        return body

    def _dispatch(self, method: str) -> None:
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        exchange = self.server.exchange
        try:
            route = (method, parts.path.rstrip("/"))
            if route == ("GET", "/api/v3/klines"):
                self._klines(exchange, query)
            elif route == ("GET", "/api/v3/ping"):
                self._send(200, {})
            elif route == ("GET", "/api/v3/time"):
                self._send(200, {"serverTime": exchange.now_ms()})
            elif route == ("GET", "/api/v3/exchangeInfo"):
                self._send(200, exchange.exchange_info())
            elif route == ("GET", "/api/v3/ticker/24hr"):
                self._send(200, exchange.tickers(query))
            elif route in (("GET", "/fapi/v1/exchangeInfo"), ("GET", "/dapi/v1/exchangeInfo")):
                self._send(200, {**_EMPTY_FUTURES_INFO, "serverTime": exchange.now_ms()})
            elif route[1] == "/_replay/clock" and method in ("GET", "POST"):
                if method == "POST":
                    _apply_clock(exchange, self._json_body())
                self._send(200, exchange.clock_state())
            elif route[1] == "/_replay/faults" and method in ("GET", "POST", "DELETE"):
                if method == "POST":
                    body = self._json_body()
                    symbol = body.pop("symbol", None)
                    exchange.set_faults(body, None if symbol is None else str(symbol))
                elif method == "DELETE":
                    exchange.clear_faults()
                self._send(200, exchange.fault_state())
            else:
                self._send(404, {"code": -1, "msg": f"Unknown endpoint {method} {parts.path}"})
        except ReplayError as exc:
            self._send(exc.status, {"code": exc.code, "msg": exc.msg})
        except (ValueError, TypeError) as exc:
            self._send(400, {"code": -1, "msg": str(exc)})

    def _klines(self, exchange: ReplayExchange, query: dict[str, str]) -> None:
        error, stall, retry_after = exchange.draw_error_fault(query.get("symbol"))
        if error == "rate_limit":
            body = {"code": -1003, "msg": _RATE_LIMIT_MSG}
            self._send(429, body, {"Retry-After": str(retry_after)})
            return
        if error == "server_error":
            self._send(503, "Service Unavailable (replay fault)")
            return
        if stall:
            time.sleep(stall)
        self._send(200, exchange.klines(query))

    def do_GET(self) -> None:
        """Handle GET."""
        self._dispatch("GET")

    def do_POST(self) -> None:
        """Handle POST."""
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        """Handle DELETE."""
        self._dispatch("DELETE")


def _apply_clock(exchange: ReplayExchange, body: dict[str, Any]) -> None:
    """Apply a ``POST /_replay/clock`` body: ``now`` or ``advance_seconds``, optional ``speed``."""
    unknown = set(body) - {"now", "advance_seconds", "speed"}
    if unknown or ("now" in body and "advance_seconds" in body):
        raise ValueError("clock body takes 'now' or 'advance_seconds', and optionally 'speed'")
    if "speed" in body:
        speed = float(body["speed"])
        if speed < 0:
            raise ValueError("speed must be non-negative")
        exchange.clock.set_speed(speed)
    if "now" in body:
        exchange.set_now(body["now"])
    elif "advance_seconds" in body:
        exchange.advance(float(body["advance_seconds"]))


class _ReplayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, exchange: ReplayExchange, host: str, port: int) -> None:
        self.exchange = exchange
        super().__init__((host, port), _Handler)


class ReplayServer:
    """Runs a :class:`ReplayExchange` over HTTP in a daemon thread; usable as a context manager."""

    def __init__(self, exchange: ReplayExchange, host: str = "127.0.0.1", port: int = 0) -> None:
        self.exchange = exchange
        self._httpd = _ReplayHTTPServer(exchange, host, port)
        self._thread: threading.Thread | None = None
        bound_host, bound_port = self._httpd.server_address[:2]
        shown = "127.0.0.1" if bound_host in ("0.0.0.0", "") else bound_host
        self.url = f"http://{shown}:{bound_port}"

    def start(self) -> ReplayServer:
        """Start serving in the background; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._httpd.serve_forever, name="replay-exchange", daemon=True
            )
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join()
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def parse_data_option(value: str) -> tuple[str, Path]:
    """Parse ``SYMBOL=PATH`` such as ``BTC/USDT=data/btc.csv.gz`` into ``("BTC/USDT", Path)``."""
    symbol, sep, path = value.partition("=")
    symbol = symbol.strip().upper()
    try:
        market_id(symbol)  # a ValueError unless BASE/QUOTE
        well_formed = bool(sep and path.strip())
    except ValueError:
        well_formed = False
    if not well_formed:
        raise UsageError(f"--data {value!r} is not SYMBOL=PATH; write it like BTC/USDT=btc.csv.gz")
    return symbol, Path(path.strip())


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
