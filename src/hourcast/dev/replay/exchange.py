"""The replay exchange's state, shared by all requests: the markets and their candles, the simulated
clock and the faults (exchange-wide and per symbol), and the answers of the market-data endpoints.

May import: ``hourcast.timeframe`` and the replay's other modules but ``server``.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import pandas as pd

from hourcast.dev.replay import binance
from hourcast.dev.replay.binance import ReplayError, market_id
from hourcast.dev.replay.clock import SimClock, epoch_ms
from hourcast.dev.replay.faults import ERROR_FAULTS, FAULT_KINDS, FaultInjector
from hourcast.dev.replay.series import ReplayData
from hourcast.timeframe import timeframe_ms


@dataclass(frozen=True)
class _Market:
    symbol: str
    base: str
    quote: str
    data: ReplayData


class ReplayExchange:
    """Replay state shared by the HTTP server and its callers: datasets, simulated clock and faults."""

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
        self.clock = SimClock(default_now if now is None else epoch_ms(now), speed)
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
        self.clock.set(epoch_ms(now))

    def advance(self, seconds: float) -> None:
        """Move the simulated clock by ``seconds``."""
        self.clock.advance(seconds)

    def now_ms(self) -> int:
        """Simulated time in epoch milliseconds."""
        return self.clock.now_ms()

    def clock_state(self) -> dict[str, Any]:
        """``{"now": ISO, "now_ms": int, "speed": float}``."""
        return self.clock.state()

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
        markets = {mid: (market.base, market.quote) for mid, market in self._markets.items()}
        return binance.exchange_info(self.now_ms(), markets)

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
        start, end, limit = (binance.int_param(query, name) for name in ("startTime", "endTime", "limit"))
        limit = binance.DEFAULT_LIMIT if limit is None else limit
        if limit < 1:
            raise ReplayError(
                400, -1100, "Illegal characters found in parameter 'limit'; legal range is '1'."
            )
        limit = min(limit, binance.MAX_LIMIT)
        now_ms = self.now_ms()
        rows = data.klines(now_ms, start, end, limit)
        with self._lock:
            for faults in self._injectors(str(symbol)):
                faults.corrupt(rows, limit, now_ms)
        return rows
