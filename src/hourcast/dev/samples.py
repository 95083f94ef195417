"""The recorded candles bundled with hourcast (see ``data/README.md`` beside this module).

Real Binance spot BTC/USDT and ETH/USDT hourly candles, 2024-01-01 .. 2026-03-31 (open times, UTC), as
``timestamp,open,high,low,close,volume`` gzipped CSV: what the replay exchange serves by default.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

SAMPLE_FILES = {
    "BTC/USDT": "binance_btc_usdt_1h.csv.gz",
    "ETH/USDT": "binance_eth_usdt_1h.csv.gz",
}
"""Bundled file per unified symbol."""


def sample_files() -> dict[str, Path]:
    """Path of each bundled recorded file, by unified symbol."""
    folder = resources.files("hourcast.dev") / "data"
    return {symbol: Path(str(folder / name)) for symbol, name in SAMPLE_FILES.items()}
