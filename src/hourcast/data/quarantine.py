"""The quarantine: candles validation set aside, kept with their report until a user looks at them.

Layout under ``HOURCAST_HOME/quarantine``, one folder per series (named like the candle store's)::

    <series>/<stem>.parquet      the rows set aside, exactly as received (all candle columns)
    <series>/<stem>.json|.html   the validation report (GX result as JSON, GX's Data Docs page)
    <series>/<stem>.entry.json   the entry: id, kind, rows, first/last ts, reasons, state

An entry's ``kind`` is ``rows`` (rows failing a row rule; the rest of their batch was stored and the run
went on) or ``batch`` (a batch rule failed: nothing of the page was stored and the run stopped there, so
the next run fetches the same range again). Its ``state`` is ``pending`` until a user either releases it
(re-validated, then merged into the store) or marks it ``reviewed`` (kept aside for good), or until a
later run (an ``ingest`` asking for the candles again, or a ``backfill``) stores every one of its candles
from a clean answer of the exchange: then it is ``resolved`` (a transient fault healed; rows or a page).

A file here that cannot be read never stops ingestion: it is set aside as ``<name>.damaged-<time>`` with
one warning line and skipped (an entry without its rows holds nothing).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow as pa

from hourcast import atomic
from hourcast.data import store
from hourcast.data.candles import CANDLE_COLUMNS
from hourcast.errors import DamagedFile, HourcastError
from hourcast.timeframe import timeframe_ms

if TYPE_CHECKING:
    from hourcast.data.validation import ValidationReport

ROWS, BATCH = "rows", "batch"
PENDING, RELEASED, REVIEWED, RESOLVED = "pending", "released", "reviewed", "resolved"
HELD = (PENDING, REVIEWED)
"""The states of an entry whose candles are still kept out of the store."""
ENTRY_SUFFIX = ".entry.json"


class QuarantineError(HourcastError):
    """A quarantine entry cannot be found or cannot be released."""


def iso(stamp: pd.Timestamp | None) -> str | None:
    """``2024-01-01T05:00:00Z`` (seconds kept: off-hour candles show as such), or None."""
    return None if stamp is None or pd.isna(stamp) else stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Entry:
    """One quarantined set of rows and what became of it."""

    id: str
    exchange: str
    symbol: str
    timeframe: str
    kind: str
    rows: int
    first: str | None
    last: str | None
    reasons: list[str]
    state: str
    created: str
    resolved: str | None = None
    note: str = ""

    @property
    def series(self) -> store.Series:
        """The candle series the rows belong to."""
        return store.Series(self.exchange, self.symbol, self.timeframe)

    def stem(self, root: Path) -> Path:
        """Path of the entry's files without their suffixes."""
        return self.series.directory(root) / self.id

    def as_json(self) -> dict[str, Any]:
        """The entry as plain JSON types."""
        return asdict(self)


def _entry_id(series: store.Series, run_at: pd.Timestamp, first: pd.Timestamp | None) -> str:
    symbol = series.symbol.replace("/", "-")
    start = f"{first:%Y%m%dT%H%M}" if first is not None else "unknown"
    return f"{series.exchange}-{symbol}-{series.timeframe}-{run_at:%Y%m%dT%H%M%SZ}-{start}"


def _stamps(rows: pd.DataFrame) -> pd.Series:
    if "ts" not in rows or not pd.api.types.is_datetime64_any_dtype(rows["ts"]):
        return pd.Series(dtype="datetime64[ms, UTC]")
    return rows["ts"].dropna()


def _write_entry(root: Path, entry: Entry) -> Entry:
    path = entry.stem(root).with_name(entry.id + ENTRY_SUFFIX)
    atomic.write_text(path, json.dumps(entry.as_json(), indent=2))
    return entry


def put(
    root: Path,
    series: store.Series,
    rows: pd.DataFrame,
    report: ValidationReport,
    run_at: pd.Timestamp,
    kind: str,
) -> Entry:
    """Set ``rows`` aside with the validation ``report`` as a new pending entry; returns it."""
    from hourcast.data.validation import write_report

    stamps = _stamps(rows)
    first = stamps.min() if not stamps.empty else None
    entry = Entry(
        id=_entry_id(series, run_at, first),
        exchange=series.exchange,
        symbol=series.symbol,
        timeframe=series.timeframe,
        kind=kind,
        rows=len(rows),
        first=iso(first),
        last=iso(stamps.max()) if not stamps.empty else None,
        reasons=list(report.failures),
        state=PENDING,
        created=iso(run_at) or "",
    )
    stem = entry.stem(root)
    atomic.write_parquet(rows.reset_index(drop=True), stem.with_suffix(".parquet"))
    write_report(report, stem.parent, entry.id)
    return _write_entry(root, entry)


def entries(root: Path, series: store.Series | None = None) -> list[Entry]:
    """Every entry (of one series, if given), oldest first."""
    base = series.directory(root) if series is not None else root
    if not base.exists():
        return []
    found = [entry for path in base.rglob(f"*{ENTRY_SUFFIX}") if (entry := _read_entry(path)) is not None]
    return sorted(found, key=lambda entry: (entry.created, entry.id))


def _read_entry(path: Path) -> Entry | None:
    """An entry file, or None if it is gone or damaged (then set aside, with a warning)."""
    try:
        return Entry(**json.loads(path.read_text()))
    except FileNotFoundError:  # deleted by retention while listed
        return None
    except (ValueError, TypeError) as error:
        atomic.set_aside_damaged(path, error, "the quarantine is read without this entry")
        return None


def find(root: Path, entry_id: str) -> Entry:
    """The entry with this id; ``QuarantineError`` if there is none."""
    for entry in entries(root):
        if entry.id == entry_id:
            return entry
    raise QuarantineError(f"no quarantine entry {entry_id!r}; see `hourcast quarantine list` for the ids")


def held_rows(root: Path, entry: Entry) -> pd.DataFrame | None:
    """The rows of an entry as they were received, or None if its rows file is gone or damaged (then set
    aside, with a warning)."""
    path = entry.stem(root).with_suffix(".parquet")
    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        return None
    except (pa.ArrowException, OSError) as error:
        atomic.set_aside_damaged(path, error, f"quarantine entry {entry.id} is read as holding no rows")
        return None


def read_rows(root: Path, entry: Entry) -> pd.DataFrame:
    """The rows of an entry, as they were received; ``DamagedFile`` if its rows file is gone or damaged."""
    rows = held_rows(root, entry)
    if rows is None:
        raise DamagedFile(
            f"the rows file of quarantine entry {entry.id} is missing or damaged (a damaged one is set "
            "aside as <name>.damaged-<time>); nothing to show or release: mark it reviewed with "
            f"`hourcast quarantine release {entry.id} --reviewed`"
        )
    return rows


def examined_until(root: Path, series: store.Series) -> pd.Timestamp | None:
    """Open time (on the timeframe's grid) of the newest candle a row entry of the series holds, or None.

    Ingestion resumes after it as after the last stored candle: rows set aside were fetched and judged;
    the candles among them are asked for again one by one, as the completeness state's retries.
    """
    lasts = [pd.Timestamp(e.last) for e in entries(root, series) if e.kind == ROWS and e.last]
    if not lasts:
        return None
    step = pd.Timedelta(milliseconds=timeframe_ms(series.timeframe))
    return max(lasts).floor(step)


def already_held(root: Path, series: store.Series, rows: pd.DataFrame, kind: str = ROWS) -> pd.Series:
    """Which of ``rows`` (all candle columns equal) some entry of that kind of the series already holds.

    A page failing a batch rule again (the next run fetches it again) is held once, not once per run.
    """
    if kind == BATCH:
        pages = (held_rows(root, e) for e in entries(root, series) if e.kind == BATCH and e.state == PENDING)
        same = any(page is not None and page.equals(rows.reset_index(drop=True)) for page in pages)
        return pd.Series(same, index=rows.index)
    held = [
        held for e in entries(root, series) if e.kind == ROWS and (held := held_rows(root, e)) is not None
    ]
    if not held or rows.empty:
        return pd.Series(False, index=rows.index)
    known = set(pd.util.hash_pandas_object(pd.concat(held)[CANDLE_COLUMNS], index=False))
    hashes = pd.util.hash_pandas_object(rows[CANDLE_COLUMNS], index=False)
    return pd.Series(hashes.isin(known).to_numpy(), index=rows.index)


def supersede(root: Path, latest: Entry) -> list[str]:
    """Delete the pending batch entries of ``latest``'s series that start where it starts and hold no row it
    does not hold; returns their ids. A page that stays blocked grows by a candle per hourly run: it is
    kept once, as its latest copy, not once per run."""
    if latest.kind != BATCH:
        return []
    rows = held_rows(root, latest)
    if rows is None:
        return []
    hashes = set(pd.util.hash_pandas_object(rows, index=False))
    removed = []
    for entry in entries(root, latest.series):
        same_page = entry.kind == BATCH and entry.state == PENDING and entry.first == latest.first
        earlier = held_rows(root, entry) if entry.id != latest.id and same_page else None
        if earlier is None:
            continue
        if set(pd.util.hash_pandas_object(earlier, index=False)) <= hashes:
            delete(root, entry)
            removed.append(entry.id)
    return removed


def delete(root: Path, entry: Entry) -> int:
    """Delete an entry's files (rows, report, page; the entry file last, so a half-deleted entry is still
    listed); returns the bytes freed."""
    stem = entry.stem(root)
    freed = 0
    for path in sorted(stem.parent.glob(f"{stem.name}.*"), key=lambda path: path.name.endswith(ENTRY_SUFFIX)):
        freed += path.stat().st_size
        path.unlink()
    return freed


def resolve_stored(
    root: Path, candles_dir: Path, series: store.Series, start: pd.Timestamp, end: pd.Timestamp
) -> list[str]:
    """Mark ``resolved`` every pending entry of ``series`` (rows or a whole page) with a candle in
    ``start..end`` whose candles (their exact open times) are all stored now: the exchange served them
    clean since (a later ingest asked for them again, or a backfill did). Returns their ids."""
    resolved = []
    for entry in entries(root, series):
        if entry.state != PENDING or entry.first is None or entry.last is None:
            continue
        first, last = pd.Timestamp(entry.first), pd.Timestamp(entry.last)
        if last < start or first > end:
            continue
        rows = held_rows(root, entry)
        if rows is None or len(_stamps(rows)) < len(rows):  # a row without a usable open time
            continue
        stored = set(store.load_candles(candles_dir, series, first, last)["ts"])
        if set(rows["ts"]) <= stored:
            now = iso(pd.Timestamp.now(tz="UTC"))
            note = "its candles were stored since from a clean answer of the exchange"
            _write_entry(root, replace(entry, state=RESOLVED, resolved=now, note=note))
            resolved.append(entry.id)
    return resolved


def mark_reviewed(root: Path, entry_id: str, note: str = "") -> Entry:
    """Keep a pending entry aside for good, recording that a user looked at it."""
    entry = find(root, entry_id)
    if entry.state != PENDING:
        raise QuarantineError(f"quarantine entry {entry_id} is already {entry.state}; nothing to do")
    resolved = iso(pd.Timestamp.now(tz="UTC"))
    return _write_entry(root, replace(entry, state=REVIEWED, resolved=resolved, note=note))


def release(
    root: Path,
    candles_dir: Path,
    entry_id: str,
    validate: Callable[[pd.DataFrame], ValidationReport],
    note: str = "",
) -> tuple[Entry, store.UpsertResult]:
    """Re-validate a pending or reviewed entry's rows and, only if every rule passes, merge them.

    The merge is the store's idempotent upsert (a candle already stored stays as it is), so releasing
    never duplicates a candle. ``QuarantineError`` (with the failures) if the rows still fail.
    """
    entry = find(root, entry_id)
    if entry.state in (RELEASED, RESOLVED):
        raise QuarantineError(
            f"quarantine entry {entry_id} was already {entry.state} on {entry.resolved}; nothing to do"
        )
    rows = read_rows(root, entry)
    report = validate(rows)
    if not report.success:
        raise QuarantineError(
            f"quarantine entry {entry_id} still fails validation, nothing merged: "
            + "; ".join(report.failures)
            + "; fix its rows, or keep it aside as reviewed with --reviewed"
        )
    result = store.upsert(candles_dir, entry.series, rows)
    resolved = iso(pd.Timestamp.now(tz="UTC"))
    return _write_entry(root, replace(entry, state=RELEASED, resolved=resolved, note=note)), result
