"""The ingestion ledger: one row per run and symbol, kept as one small Parquet file."""

from __future__ import annotations

import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa

from hourcast import atomic, store

logger = logging.getLogger(__name__)
STARTED_MESSAGE = "started; no outcome recorded yet (still running, or killed)"


@dataclass(frozen=True)
class LedgerEntry:
    """What one ingestion run did for one symbol.

    ``gaps``/``gap_ranges``: candles the exchange did not return; ``quarantined``/``quarantined_ranges``:
    candles it returned that validation set aside (``start+count`` runs of consecutive open times; an
    off-grid candle is a run of its own, and an hour holding only such a candle counts here, not as a gap,
    as in ``hourcast gaps``). Holes are re-requested by later runs (see ``completeness``);
    ``hourcast gaps`` shows which are still missing. ``status`` is ``started`` until the run records its
    outcome (``ok``, ``quarantined`` or ``failed``).
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


def _frame(entries: list[LedgerEntry]) -> pd.DataFrame:
    added = pd.DataFrame([asdict(entry) for entry in entries])
    for column in ("run_at", "first", "last"):
        added[column] = pd.to_datetime(added[column], utc=True).astype("datetime64[ms, UTC]")
    return added


def append(path: Path, entries: list[LedgerEntry]) -> None:
    """Add entries to the ledger (rewritten atomically; the ledger is small)."""
    if not entries:
        return
    frame = read(path)
    atomic.write_parquet(
        pd.concat([frame, _frame(entries)], ignore_index=True) if len(frame) else _frame(entries), path
    )


def record(path: Path, entry: LedgerEntry) -> None:
    """Write a run's entry: it replaces the entry of the same run (``run_at``, command, symbol), so a run
    records ``started`` first and its outcome at the end; a run killed in between stays ``started``."""
    record_many(path, [entry])


def record_many(path: Path, entries: list[LedgerEntry]) -> None:
    """``record`` for many symbols' entries in one rewrite, under the ledger's lock (runs in several
    processes, e.g. ingestion shards on Dask workers, never lose each other's entries)."""
    if not entries:
        return
    added = _frame(entries)
    with store.series_lock(path.parent):
        frame = read(path)
        if len(frame):
            keys = ["run_at", "command", "symbol"]
            same = pd.MultiIndex.from_frame(frame[keys]).isin(pd.MultiIndex.from_frame(added[keys]))
            frame = frame.loc[~same]
        atomic.write_parquet(pd.concat([frame, added], ignore_index=True) if len(frame) else added, path)


def read(path: Path) -> pd.DataFrame:
    """The whole ledger, oldest run first (empty frame if there is none yet).

    A ledger that cannot be read is never allowed to stop ingestion: it is renamed aside
    (``ingestion.parquet.damaged-<time>``, bytes untouched, with a warning) and a new one is started.
    """
    if not path.exists():
        return pd.DataFrame(columns=list(LedgerEntry.__dataclass_fields__))
    try:
        return pd.read_parquet(path)
    except pa.ArrowException as error:
        aside = path.with_name(f"{path.name}.damaged-{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%S%fZ}")
        os.replace(path, aside)
        logger.warning(
            "the ledger %s was damaged (%s): set aside as %s, a new ledger started", path, error, aside
        )
        return pd.DataFrame(columns=list(LedgerEntry.__dataclass_fields__))
