"""Shared fixtures: the recorded candles in ../shared/data and small real frames built from them."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
BTC_FILE = SHARED_DATA / "binance_btc_usdt_1h.csv.gz"
ETH_FILE = SHARED_DATA / "binance_eth_usdt_1h.csv.gz"


def read_recorded(path: Path) -> pd.DataFrame:
    """A shared recorded file as ``ts, open, high, low, close, volume`` (ts tz-aware UTC)."""
    frame = pd.read_csv(path)
    frame["ts"] = pd.to_datetime(frame.pop("timestamp"), utc=True).astype("datetime64[ms, UTC]")
    return frame[["ts", "open", "high", "low", "close", "volume"]]


@pytest.fixture(scope="session")
def btc_recorded() -> pd.DataFrame:
    """All 19,704 recorded BTC/USDT hourly candles."""
    assert BTC_FILE.exists(), f"the shared data must sit beside the checkout: {BTC_FILE} is missing"
    return read_recorded(BTC_FILE)


def as_candle_frame(recorded: pd.DataFrame, symbol: str = "BTC/USDT") -> pd.DataFrame:
    """Recorded rows as a candle frame of the binance 1h series."""
    frame = recorded.copy()
    for column, value in (("timeframe", "1h"), ("symbol", symbol), ("exchange", "binance")):
        frame.insert(0, column, pd.Series([value] * len(frame), dtype="string"))
    return frame.reset_index(drop=True)
