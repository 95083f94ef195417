"""The ingestion ledger: one row per run and symbol, kept as one small Parquet file."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd

from hourcast import atomic


@dataclass(frozen=True)
class LedgerEntry:
    """What one ingestion run did for one symbol.

    ``gaps``/``gap_ranges``: candles the exchange did not return; ``quarantined``/``quarantined_ranges``:
    candles it returned that validation set aside (``start+count`` runs of consecutive open times; an
    off-grid candle is a run of its own). Neither is ever filled in.
    """

    run_at: pd.Timestamp
    command: str
    exchange: str
    symbol: str
    timeframe: str
    fetched: int
    new: int
    duplicates: int
    gaps: int
    gap_ranges: str
    quarantined: int
    quarantined_ranges: str
    first: pd.Timestamp | None
    last: pd.Timestamp | None
    duration_seconds: float
    status: str
    message: str


def append(path: Path, entries: list[LedgerEntry]) -> None:
    """Add entries to the ledger (rewritten atomically; the ledger is small)."""
    if not entries:
        return
    added = pd.DataFrame([asdict(entry) for entry in entries])
    for column in ("run_at", "first", "last"):
        added[column] = pd.to_datetime(added[column], utc=True).astype("datetime64[ms, UTC]")
    frame = pd.concat([read(path), added], ignore_index=True) if path.exists() else added
    atomic.write_parquet(frame, path)


def read(path: Path) -> pd.DataFrame:
    """The whole ledger, oldest run first (empty frame if there is none yet)."""
    if not path.exists():
        return pd.DataFrame(columns=list(LedgerEntry.__dataclass_fields__))
    return pd.read_parquet(path)
