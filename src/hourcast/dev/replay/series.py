"""One symbol's candles as the replay exchange serves them: arrays sorted by open time, aggregated into
longer intervals, and cut into Binance kline rows and 24 h tickers as seen at a given clock reading (the
candle in progress partial, later ones hidden).

May import: ``hourcast.data.candles`` and the replay's ``binance`` and ``data`` modules.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hourcast.data.candles import ORDER_FLOW_COLUMNS
from hourcast.dev.replay.binance import decimal_text
from hourcast.dev.replay.data import load_candles_file


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
            "priceChange": decimal_text(last - first),
            "priceChangePercent": f"{(last / first - 1) * 100 if first else 0.0:.3f}",
            "weightedAvgPrice": decimal_text(quote / volume if volume else 0.0),
            "prevClosePrice": decimal_text(float(self.close[begin - 1]) if begin else first),
            "lastPrice": decimal_text(last),
            "lastQty": "0.00000000",
            "bidPrice": decimal_text(last),
            "bidQty": "0.00000000",
            "askPrice": decimal_text(last),
            "askQty": "0.00000000",
            "openPrice": decimal_text(first),
            "highPrice": decimal_text(0.0 if empty else float(self.high[window].max())),
            "lowPrice": decimal_text(0.0 if empty else float(self.low[window].min())),
            "volume": decimal_text(volume),
            "quoteVolume": decimal_text(quote),
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
            flow = [decimal_text(quote), round(trades), decimal_text(taker_base), decimal_text(taker_quote)]
        return [
            opened,
            decimal_text(first),
            decimal_text(high),
            decimal_text(low),
            decimal_text(close),
            decimal_text(volume),
            opened + self.interval_ms - 1,
            *flow,
            "0",
        ]
