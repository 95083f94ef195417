"""Small real data for the tests: the recorded candles bundled with hourcast (``hourcast.dev.samples``),
candle frames built from them, stores filled with them, and settings aimed at a replay exchange."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hourcast.dev.replay.server import ReplayServer
from hourcast.dev.samples import sample_files
from hourcast.settings import Settings

BTC_FILE = sample_files()["BTC/USDT"]
ETH_FILE = sample_files()["ETH/USDT"]


def read_recorded(path: Path) -> pd.DataFrame:
    """A recorded file as ``ts, open, high, low, close, volume`` (ts tz-aware UTC)."""
    frame = pd.read_csv(path)
    frame["ts"] = pd.to_datetime(frame.pop("timestamp"), utc=True).astype("datetime64[ms, UTC]")
    return frame[["ts", "open", "high", "low", "close", "volume"]]


def as_candle_frame(recorded: pd.DataFrame, symbol: str = "BTC/USDT") -> pd.DataFrame:
    """Recorded rows as a candle frame of the binance 1h series."""
    frame = recorded.copy()
    for column, value in (("timeframe", "1h"), ("symbol", symbol), ("exchange", "binance")):
        frame.insert(0, column, pd.Series([value] * len(frame), dtype="string"))
    return frame.reset_index(drop=True)


def store_recorded(settings: Settings, recorded: dict[str, pd.DataFrame], days: int, end: str) -> None:
    """Put the recorded candles of the ``days`` before ``end`` straight into the settings' store."""
    from hourcast.data import store

    stop = pd.Timestamp(end, tz="UTC")
    for symbol in settings.symbols:
        frame = recorded[symbol]
        window = frame.loc[(frame["ts"] >= stop - pd.Timedelta(days=days)) & (frame["ts"] < stop)]
        store.upsert(
            settings.candles_dir,
            store.Series(settings.exchange, symbol, settings.timeframe),
            as_candle_frame(window, symbol),
        )


def replay_settings(home: Path, server: ReplayServer, **overrides: object) -> Settings:
    """Settings for a test: its own data home, ccxt aimed at the replay exchange, quick retries."""
    values: dict[str, object] = {
        "home": home,
        "exchange_url": server.url,
        "exchange_timeout_ms": 1000,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.05,
        "default_backfill_days": 2,
    }
    return Settings(**(values | overrides))
