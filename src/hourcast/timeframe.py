"""Timeframes: the length of a candle, the ones hourcast runs end to end, and the ingest schedule each
implies.

The one place a timeframe string (``1h``, ``15m``) becomes a duration or a cron: settings, the data layer, the
feature store's TTL and ``prefect.yaml``'s schedules all derive from here. Imports nothing of hourcast.
"""

from __future__ import annotations

import re

import pandas as pd

_TIMEFRAME = re.compile(r"^(\d+)([mhdw])$")
_UNIT_MS = {"m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
SUPPORTED_TIMEFRAMES = ("15m", "30m", "1h", "2h", "4h", "1d")
"""Timeframes hourcast runs end to end (ingestion, features, labels, Feast TTL, schedules): each divides a
day, so candles align to midnight UTC as exchanges align them."""
INGEST_DELAY_MINUTES = 5
"""Minutes after a candle closes that the scheduled ingest runs (the exchange has published it by then)."""


def timeframe_ms(timeframe: str) -> int:
    """Length of a ccxt timeframe such as ``1h`` or ``15m`` in milliseconds."""
    match = _TIMEFRAME.match(timeframe)
    if not match:
        raise ValueError(f"unsupported timeframe {timeframe!r} (expected e.g. 1m, 15m, 1h, 4h, 1d)")
    return int(match.group(1)) * _UNIT_MS[match.group(2)]


def check_timeframe(timeframe: str) -> str:
    """``timeframe`` if hourcast supports it, else ``ValueError`` naming the supported ones."""
    if timeframe not in SUPPORTED_TIMEFRAMES:
        raise ValueError(
            f"timeframe {timeframe!r} is not supported: use one of {', '.join(SUPPORTED_TIMEFRAMES)}"
        )
    return timeframe


def cron_for(timeframe: str) -> str:
    """The cron schedule (UTC) of the ingest flow for ``timeframe``: ``INGEST_DELAY_MINUTES`` after every
    candle closes, e.g. ``5 * * * *`` for 1h, ``5 */4 * * *`` for 4h, ``5,20,35,50 * * * *`` for 15m."""
    minutes = timeframe_ms(check_timeframe(timeframe)) // 60_000
    if minutes < 60:
        marks = ",".join(str(m + INGEST_DELAY_MINUTES) for m in range(0, 60, minutes))
        return f"{marks} * * * *"
    hours = minutes // 60
    if hours < 24:
        return f"{INGEST_DELAY_MINUTES} {'*' if hours == 1 else f'*/{hours}'} * * *"
    return f"{INGEST_DELAY_MINUTES} 0 * * *"


def timeframe_delta(timeframe: str) -> pd.Timedelta:
    """Length of a ccxt timeframe as a ``pd.Timedelta``."""
    return pd.Timedelta(milliseconds=timeframe_ms(timeframe))
