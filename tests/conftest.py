"""Shared fixtures: the recorded candles bundled with hourcast (``hourcast.dev.samples``) and small real
frames built from them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest

from hourcast.dev.samples import sample_files

BTC_FILE = sample_files()["BTC/USDT"]
ETH_FILE = sample_files()["ETH/USDT"]


def read_recorded(path: Path) -> pd.DataFrame:
    """A recorded file as ``ts, open, high, low, close, volume`` (ts tz-aware UTC)."""
    frame = pd.read_csv(path)
    frame["ts"] = pd.to_datetime(frame.pop("timestamp"), utc=True).astype("datetime64[ms, UTC]")
    return frame[["ts", "open", "high", "low", "close", "volume"]]


@pytest.fixture(scope="session")
def btc_recorded() -> pd.DataFrame:
    """All 19,704 recorded BTC/USDT hourly candles."""
    return read_recorded(BTC_FILE)


def as_candle_frame(recorded: pd.DataFrame, symbol: str = "BTC/USDT") -> pd.DataFrame:
    """Recorded rows as a candle frame of the binance 1h series."""
    frame = recorded.copy()
    for column, value in (("timeframe", "1h"), ("symbol", symbol), ("exchange", "binance")):
        frame.insert(0, column, pd.Series([value] * len(frame), dtype="string"))
    return frame.reset_index(drop=True)


def kill_writer_when(script: str, folder: Path, written: Callable[[], bool], what: str) -> None:
    """Run the Python ``script`` (given ``folder``; it prints ``ready`` before it starts writing) in a child
    process and SIGKILL it as soon as ``written()`` holds: a writer killed mid-way."""
    from tests.integration.conftest import wait_for

    repo = Path(__file__).resolve().parents[1]
    writer = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)],
        cwd=repo,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == b"ready"
        wait_for(written, 60, what)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
