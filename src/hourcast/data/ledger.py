"""The ingestion ledger: one row per run and symbol, a folder of small Parquet files, one per run.

Layout: ``<ledger folder>/date=YYYY-MM-DD/<run_at>-<command>-<symbols digest>.parquet`` (the day of the
run's start, UTC). A run writes only its own rows, so its cost stays flat however long the history is; each
write is atomic (a temporary dot file renamed over the target), so a run killed at any point leaves the
file's previous version or its new one, never a partial file a reader sees. A run writes its ``started``
entries first and replaces that same file with its outcome at the end; shards of one run (several
processes, e.g. Dask workers) hold different symbols, hence different files, and never lose each other's
entries. Retention deletes whole day folders (``retention``).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hourcast import atomic

STARTED_MESSAGE = "started; no outcome recorded yet (still running, or killed)"
DAY_PREFIX = "date="


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


_STAMP = pa.timestamp("ms", tz="UTC")
_ARROW_TYPES = {"str": pa.string(), "int": pa.int64(), "float": pa.float64(), "pd.Timestamp": _STAMP}
SCHEMA = pa.schema(
    [(field.name, _ARROW_TYPES[field.type.removesuffix(" | None")]) for field in fields(LedgerEntry)]
)
"""A ledger file's columns (built with pyarrow: a run's rows in a millisecond, not a pandas frame's ten)."""


def table(entries: list[LedgerEntry]) -> pa.Table:
    """Entries as the rows of a ledger file."""
    return pa.Table.from_pydict(
        {name: [getattr(entry, name) for entry in entries] for name in SCHEMA.names}, schema=SCHEMA
    )


def run_file(folder: Path, run_at: pd.Timestamp, command: str, symbols: Iterable[str]) -> Path:
    """The file holding one run's entries for ``symbols`` (the same file for its ``started`` entries and
    its outcome; a digest of the symbols tells shards of one run apart)."""
    digest = hashlib.sha1("\n".join(sorted(symbols)).encode()).hexdigest()[:12]
    stamp = pd.Timestamp(run_at).tz_convert("UTC")
    return folder / f"{DAY_PREFIX}{stamp:%Y-%m-%d}" / f"{stamp:%Y%m%dT%H%M%S%fZ}-{command}-{digest}.parquet"


def record_many(folder: Path, entries: list[LedgerEntry]) -> None:
    """Write runs' entries, one file per run (``run_at``, command): the run's ``started`` entries first,
    then its outcome, which replaces them (a run killed in between stays ``started``). Only the run's
    own rows are written, atomically; no lock, as no two writers share a file."""
    if not entries:
        return
    runs: dict[tuple[pd.Timestamp, str], list[LedgerEntry]] = {}
    for entry in entries:
        runs.setdefault((entry.run_at, entry.command), []).append(entry)
    for (run_at, command), run in runs.items():
        sink = pa.BufferOutputStream()
        pq.write_table(table(run), sink)
        path = run_file(folder, run_at, command, [entry.symbol for entry in run])
        atomic.write_bytes(path, sink.getvalue().to_pybytes())


def parts(folder: Path) -> list[Path]:
    """The ledger's files, one per run, oldest run first (temporary files of an unfinished write are never
    among them)."""
    return list(_newest_first(folder))[::-1]


def _newest_first(folder: Path) -> Iterator[Path]:
    """``parts`` newest first, listing a day folder only when the previous ones have been consumed."""
    if folder.is_dir():
        days = sorted((day for day in folder.iterdir() if day.name.startswith(DAY_PREFIX)), reverse=True)
        for day in days:
            names = sorted((name for name in os.listdir(day) if _is_run_file(name)), reverse=True)
            yield from (day / name for name in names)


def _is_run_file(name: str) -> bool:
    return name.endswith(".parquet") and not name.startswith(".")


def read(folder: Path, last: int | None = None) -> pd.DataFrame:
    """The ledger's rows, oldest run first (an empty frame if there are none); ``last``: only the latest
    ``last`` rows, reading only the newest files that hold them.

    A file that cannot be read never stops ingestion or its readers: it is renamed aside
    (``<name>.damaged-<time>``, bytes untouched, with a warning) and the rest is read.
    """
    tables: list[pa.Table] = []
    rows = 0
    for path in _newest_first(folder):
        if last is not None and rows >= last:
            break
        part = _read_part(path)
        if part is not None:
            tables.append(part)
            rows += part.num_rows
    frame = pa.concat_tables([SCHEMA.empty_table(), *tables[::-1]], promote_options="permissive").to_pandas()
    return frame.tail(last).reset_index(drop=True) if last is not None else frame


def _read_part(path: Path) -> pa.Table | None:
    """One ledger file as read, or None if it is gone or was damaged (then set aside, see ``read``)."""
    try:
        return pq.read_table(path)
    except FileNotFoundError:  # deleted by retention while being read
        return None
    except pa.ArrowException as error:
        atomic.set_aside_damaged(path, error, "the ledger is read without it")
        return None
