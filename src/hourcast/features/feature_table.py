"""The feature table Feast reads: every configured symbol's feature rows over the last
``feature_retention_days``, kept up to date incrementally from the candle store.

Layout (under ``HOURCAST_HOME/features``)::

    next_hour.parquet/          a Parquet dataset: a folder Feast's FileSource, DuckDB and pandas read whole
        2025-11-23.parquet      the rows whose event_timestamp falls on that UTC day (by time, symbol):
        ...                     the days of the oldest month (the retention trims them day by day)
        2025-12.parquet         one file per month in between (a file costs every reader ~1 ms to open)
        ...
        2026-11-22.parquet      and the days of the newest month (the hourly cycle rewrites only today's)
    next_hour.state.parquet     what the table was computed from (below)
    .next_hour.lock             one writer at a time

``update`` costs time in the candles that changed, not in the stored history. The state holds, per symbol,
the fingerprint (inode, size, mtime) of every candle month file inside the window and, per UTC day, the
count and a digest of its candles (order flow included). A month file whose fingerprint is unchanged is not
read; a changed one (the current month every hour, a hole filled later, a repaired month) is read and
compared day by day: candles appended after the day's known ones change only from the first new candle,
anything else (an insertion, a changed or removed candle) the whole day. A changed candle at ``t`` changes
the rows of ``[t, t + LOOKBACK - 1 candles]`` of its symbol and, through the cross-asset inputs, the rows of
the symbols it is the reference of at the same hours; only those rows are recomputed (from the last
``LOOKBACK`` candles before them), only their files rewritten, each atomically, and rows older than the
retention dropped; once a month the month just closed is compacted into one file and the month the retention
enters split into days. The state is written last, so a run killed part-way is redone by the next one;
re-running changes nothing. A new definition of the features (their code, the timeframe, the retention) or a
symbol no longer configured rebuilds the table in a new folder, swapped in.

``build`` is the same table computed from scratch: a test checks ``update`` keeps the folder equal to it,
bit for bit, hour after hour.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from hourcast import atomic
from hourcast.data import store
from hourcast.data.candles import ORDER_FLOW_COLUMNS, VALUE_COLUMNS, ts_ms
from hourcast.features import compute, dataset
from hourcast.features.compute import FEATURE_COLUMNS, LOOKBACK, ROW_COLUMNS, feature_rows
from hourcast.settings import Settings
from hourcast.timeframe import timeframe_delta

TABLE_COLUMNS = [*ROW_COLUMNS, *FEATURE_COLUMNS]
DAY_MS = 86_400_000
_STATE_KEY = b"hourcast.features.feature_table"
_LAYOUT = 3
"""Version of the state's layout; a state of another version (or none) makes the table rebuild."""

Interval = tuple[int, int]
"""Closed ``[first, last]`` range of epoch milliseconds (candle open times, or rows' ``as_of``)."""


def state_path(path: Path) -> Path:
    """The state file beside the table folder ``path``."""
    return path.with_name(f"{path.name.removesuffix('.parquet')}.state.parquet")


def window_start(newest_candle: pd.Timestamp, settings: Settings) -> pd.Timestamp:
    """The oldest candle the table is computed from: ``feature_retention_days`` and a lookback (and one
    more candle) before the newest candle of any symbol."""
    step = timeframe_delta(settings.timeframe)
    return newest_candle - pd.Timedelta(days=settings.feature_retention_days) - (LOOKBACK + 1) * step


def _kept(
    rows: pd.DataFrame, newest_event: pd.Timestamp, start: pd.Timestamp, settings: Settings
) -> pd.Series:
    """Which rows the table keeps: within ``feature_retention_days`` of its newest row, and computed from
    candles at or after ``start`` (``as_of`` at least a lookback after it)."""
    step = timeframe_delta(settings.timeframe)
    retention = pd.Timedelta(days=settings.feature_retention_days)
    return (rows["event_timestamp"] > newest_event - retention) & (
        rows["as_of"] >= start + (LOOKBACK - 1) * step
    )


def _ordered(rows: pd.DataFrame) -> pd.DataFrame:
    """Rows in table order: by ``event_timestamp``, then ``symbol``."""
    return rows.sort_values(["event_timestamp", "symbol"], kind="stable").reset_index(drop=True)


def build(candles: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """The whole table from ``candles`` (of the configured symbols), from scratch: ``feature_rows`` of the
    candles inside ``window_start``, those within ``feature_retention_days`` of the newest row, in
    (event_timestamp, symbol) order."""
    if candles.empty:
        return _ordered(feature_rows(candles, settings.timeframe))
    start = window_start(candles["ts"].max(), settings)
    rows = feature_rows(candles.loc[candles["ts"] >= start], settings.timeframe)
    if rows.empty:
        return _ordered(rows)
    return _ordered(rows.loc[_kept(rows, rows["event_timestamp"].max(), start, settings)])


def files(path: Path) -> list[tuple[str, Path]]:
    """``(key, file)`` of the table folder in table order (none if it does not exist): a key is a day
    ``YYYY-MM-DD`` or, for a month compacted into one file, ``YYYY-MM``."""
    if not path.is_dir():
        return []
    found = [*path.glob("????-??-??.parquet"), *path.glob("????-??.parquet")]
    return sorted((file.stem, file) for file in found)


def _last_day(key: str) -> str:
    """The last day a file key covers."""
    if len(key) == 10:
        return key
    return f"{_month_range(key)[1] - pd.Timedelta(days=1):%Y-%m-%d}"


def _empty_rows() -> pd.DataFrame:
    return _empty_table().copy()


@functools.cache
def _empty_table() -> pd.DataFrame:
    """A table with no rows and the table's columns and dtypes."""
    candles = pd.DataFrame(
        {
            "symbol": pd.Series(dtype="string"),
            "ts": pd.Series(dtype="datetime64[ms, UTC]"),
            **{column: pd.Series(dtype="float64") for column in [*VALUE_COLUMNS, *ORDER_FLOW_COLUMNS]},
        }
    )
    return _ordered(feature_rows(candles))


def read(path: Path, columns: list[str] | None = None, since_day: str = "") -> pd.DataFrame:
    """The table (its files holding days from ``since_day`` on), in table order."""
    parts = [
        pd.read_parquet(file, columns=columns) for key, file in files(path) if _last_day(key) >= since_day
    ]
    table = pd.concat(parts, ignore_index=True) if parts else _empty_rows()
    return table[columns] if columns else table


def write(path: Path, table: pd.DataFrame) -> None:
    """Replace the table folder's contents with ``table`` (one file per day, each written atomically)."""
    days = _day_keys(table["event_timestamp"])
    wanted = {str(day): rows for day, rows in table.groupby(days, sort=True)}
    for key, file in files(path):
        if key not in wanted:
            file.unlink()
    for day, rows in wanted.items():
        atomic.write_parquet(_ordered(rows), path / f"{day}.parquet")


def newest_rows(path: Path, symbols: list[str]) -> dict[str, pd.Timestamp]:
    """The newest ``event_timestamp`` of each symbol's rows (symbols without a row are left out), read
    from the newest files back."""
    found: dict[str, pd.Timestamp] = {}
    for _, file in reversed(files(path)):
        rows = pd.read_parquet(file, columns=["symbol", "event_timestamp"])
        for symbol, stamp in rows.groupby("symbol")["event_timestamp"].max().items():
            found.setdefault(str(symbol), stamp)
        if all(symbol in found for symbol in symbols):
            break
    return {symbol: found[symbol] for symbol in symbols if symbol in found}


def _day_keys(stamps: pd.Series) -> pd.Series:
    return stamps.dt.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class Update:
    """What ``update`` did."""

    rows: pd.DataFrame  # the rows written (new or recomputed), in table order
    recomputed: dict[str, list[Interval]]  # per symbol, the as_of ranges recomputed (epoch ms)
    total_rows: int
    removed_rows: int  # replaced by recomputation or past the retention
    newest_event: pd.Timestamp | None
    rebuilt: bool


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with atomic.file_lock(path.parent / f".{path.name.removesuffix('.parquet')}.lock"):
        yield


def _definition(settings: Settings) -> str:
    """What the table's rows depend on besides the candles: the features' code, columns and windows."""
    source = inspect.getsource(compute)
    key = [source, TABLE_COLUMNS, settings.exchange, settings.timeframe, settings.feature_retention_days]
    return hashlib.sha256(json.dumps(key).encode()).hexdigest()


@dataclass
class _State:
    """Per symbol: month rows (``day == ""``: the file's fingerprint) and day rows (count, digest, newest
    candle) of the candles inside the window; the window's start; the rows of each day file."""

    frame: pd.DataFrame  # symbol, month, day, n, digest, last_ms, fingerprint
    start_ms: int | None
    counts: dict[str, int] = field(default_factory=dict)  # rows of each day file of the table

    @staticmethod
    def empty() -> _State:
        columns = {
            "symbol": str,
            "month": str,
            "day": str,
            "n": "int64",
            "digest": "uint64",
            "last_ms": "int64",
        }
        frame = pd.DataFrame({name: pd.Series(dtype=dtype) for name, dtype in columns.items()})
        return _State(frame.assign(fingerprint=pd.Series(dtype=str)), None)


def _read_state(path: Path, definition: str) -> _State | None:
    """The state, or None if there is none or it describes another definition or layout; a state file
    that cannot be read is set aside as ``<name>.damaged-<time>`` (one warning line) and the table
    rebuilt from the candles."""
    file = state_path(path)
    if not file.exists() or not path.is_dir():
        return None
    try:
        table = pq.read_table(file)
        meta = json.loads((table.schema.metadata or {}).get(_STATE_KEY, b"{}"))
    except (pa.ArrowException, ValueError) as error:
        atomic.set_aside_damaged(file, error, "the feature table is rebuilt from the candles")
        return None
    if meta.get("layout") != _LAYOUT or meta.get("definition") != definition:
        return None  # written by another version of this module: rebuild
    return _State(table.to_pandas(), meta["start_ms"], meta["counts"])


def _write_state(path: Path, state: _State, definition: str) -> None:
    meta = {"layout": _LAYOUT, "definition": definition, "start_ms": state.start_ms, "counts": state.counts}
    table = pa.Table.from_pandas(state.frame.reset_index(drop=True), preserve_index=False)
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), _STATE_KEY: json.dumps(meta)})
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    atomic.write_bytes(state_path(path), sink.getvalue().to_pybytes())


def _fingerprint(file: Path) -> str:
    stat = file.stat()
    return f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}"


def _month_range(month: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    start = pd.Timestamp(f"{month}-01", tz="UTC")
    return start, start + pd.offsets.MonthBegin(1)


@dataclass
class _Scan:
    """One symbol's candles against the state: their new state rows and the changed candle ranges."""

    rows: list[pd.DataFrame]
    changed: list[Interval]
    newest_ms: int | None
    read: dict[str, pd.DataFrame] = field(default_factory=dict)  # the month files read, by month


def _scan(settings: Settings, series: store.Series, old: pd.DataFrame, since_ms: int | None) -> _Scan:
    """Compare a symbol's month files (those ending after ``since_ms``) with its state rows ``old``."""
    scan = _Scan([], [], None)
    old_months = old.loc[old["day"] == ""].set_index("month")
    old_days = old.loc[old["day"] != ""]
    seen: set[str] = set()
    first = "" if since_ms is None else f"{pd.Timestamp(since_ms, unit='ms', tz='UTC'):%Y-%m}"
    for month, file in store.month_files(settings.candles_dir, series, first):  # each ends after since_ms
        start, end = _month_range(month)
        seen.add(month)
        fingerprint = _fingerprint(file)  # before reading: a file replaced meanwhile is read again next time
        if month in old_months.index and old_months.at[month, "fingerprint"] == fingerprint:
            scan.rows.append(old.loc[old["month"] == month])
            if old_months.at[month, "n"]:
                scan.newest_ms = _newest(scan.newest_ms, int(old_months.at[month, "last_ms"]))
            continue
        candles = store.load_candles(
            settings.candles_dir, series, start=start, end=end - pd.Timedelta(1, "ms")
        )
        scan.read[month] = candles
        stamps = ts_ms(candles).to_numpy()
        hashes = pd.util.hash_pandas_object(
            candles[["ts", *VALUE_COLUMNS, *ORDER_FLOW_COLUMNS]], index=False
        ).to_numpy()
        rows = [
            dict(
                month=month,
                day="",
                n=len(stamps),
                digest=0,
                last_ms=int(stamps[-1]) if len(stamps) else -1,
                fingerprint=fingerprint,
            )
        ]
        if len(stamps):
            scan.newest_ms = _newest(scan.newest_ms, int(stamps[-1]))
        previous = old_days.loc[old_days["month"] == month].set_index("day")
        bounds = np.flatnonzero(np.diff(stamps // DAY_MS)) + 1
        for first, stop in zip(np.r_[0, bounds], np.r_[bounds, len(stamps)], strict=True):
            if first == stop:
                continue
            count = int(stop - first)
            day = pd.Timestamp(int(stamps[first]), unit="ms").strftime("%Y-%m-%d")
            sums = np.cumsum(hashes[first:stop], dtype="uint64")
            rows.append(
                dict(
                    month=month,
                    day=day,
                    n=count,
                    digest=sums[-1],
                    last_ms=int(stamps[stop - 1]),
                    fingerprint="",
                )
            )
            if day not in previous.index:
                scan.changed.append((int(stamps[first]), int(stamps[stop - 1])))
                continue
            known, digest = int(previous.at[day, "n"]), previous.at[day, "digest"]
            if known == count and sums[-1] == digest:
                continue
            if known < count and sums[known - 1] == digest:  # candles appended after the known ones
                scan.changed.append((int(stamps[first + known]), int(stamps[stop - 1])))
            else:
                scan.changed.append(_whole_day(day))
        days = {row["day"] for row in rows}
        scan.changed += [_whole_day(day) for day in previous.index if day not in days]
        scan.rows.append(pd.DataFrame(rows))
    for day in old_days.loc[~old_days["month"].isin(seen), "day"]:  # months gone from the store
        scan.changed.append(_whole_day(day))
    return scan


def _ms(stamp: pd.Timestamp) -> int:
    return stamp.value // 1_000_000


def _newest(current: int | None, value: int) -> int:
    return value if current is None else max(current, value)


def _whole_day(day: str) -> Interval:
    start = _ms(pd.Timestamp(day, tz="UTC"))
    return start, start + DAY_MS - 1


def _merge(intervals: list[Interval]) -> list[Interval]:
    """Sorted, overlapping or touching ranges joined."""
    merged: list[Interval] = []
    for first, last in sorted(intervals):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def _in_ranges(rows: pd.DataFrame, ranges: dict[str, list[Interval]]) -> np.ndarray:
    """Which ``rows`` have their ``as_of`` inside their symbol's ``ranges``."""
    inside = np.zeros(len(rows), dtype=bool)
    depth = max((len(intervals) for intervals in ranges.values()), default=0)
    if rows.empty or not depth:
        return inside
    codes, symbols = pd.factorize(rows["symbol"].astype(str))
    at = rows["as_of"].dt.as_unit("ms").astype("int64").to_numpy()
    for k in range(depth):  # the k-th range of every symbol at once
        first = np.full(len(symbols), np.iinfo("int64").max)
        last = np.full(len(symbols), np.iinfo("int64").min)
        for code, symbol in enumerate(symbols):
            intervals = ranges.get(symbol, [])
            if len(intervals) > k:
                first[code], last[code] = intervals[k]
        inside |= (at >= first[codes]) & (at <= last[codes])
    return inside


def update(settings: Settings) -> Update:
    """Bring the table up to date with the stored candles (see the module docstring); ``dataset.NoCandles``
    if a configured symbol has none."""
    path = settings.feature_table_path
    definition = _definition(settings)
    with _locked(path):
        state = _read_state(path, definition)
        if state is not None and set(state.frame["symbol"]) <= set(settings.symbols):
            done = _update(settings, path, state)
            if done is not None:
                result, new_state = done
                _write_state(path, new_state, definition)
                return result
        return _rebuild(settings, path, definition)


def _rebuild(settings: Settings, path: Path, definition: str) -> Update:
    """Compute the whole table into a new folder and swap it in."""
    fresh = path.with_name(f".{path.name}.{os.getpid()}.new")
    shutil.rmtree(fresh, ignore_errors=True)
    fresh.mkdir(parents=True)
    done = _update(settings, fresh, _State.empty())
    assert done is not None  # an empty state has no window to move back from
    result, new_state = done
    retired = path.with_name(f".{path.name}.{os.getpid()}.old")
    if path.exists():
        os.replace(path, retired)
    os.replace(fresh, path)
    if retired.is_dir():
        shutil.rmtree(retired)
    else:
        retired.unlink(missing_ok=True)
    _write_state(path, new_state, definition)
    return Update(result.rows, result.recomputed, result.total_rows, 0, result.newest_event, rebuilt=True)


def _update(settings: Settings, path: Path, state: _State) -> tuple[Update, _State] | None:
    """The incremental update of the folder ``path`` from ``state``; None if the window moved back (the
    newest candle is older than before: the caller rebuilds)."""
    scans = _scan_all(settings, state)
    start = window_start(
        pd.Timestamp(max(s.newest_ms for s in scans.values() if s.newest_ms), unit="ms", tz="UTC"), settings
    )
    if state.start_ms is not None and _ms(start) < state.start_ms:
        return None
    recomputed, needed = _to_recompute(settings, scans, _ms(start))
    rows = _recompute(settings, scans, recomputed, needed, _ms(start))
    counts, removed = _write_rows(path, rows, recomputed, state.counts, start, settings)
    newest_event = _newest_event(path)
    if newest_event is not None:
        counts, trimmed = _trim_to_window(path, newest_event, start, settings, counts)
        removed += trimmed
        rows = rows.loc[_kept(rows, newest_event, start, settings)]
        counts = _lay_out(path, newest_event, counts)
    new_state = _next_state(scans, start, counts)
    result = Update(
        rows=_ordered(rows),
        recomputed={symbol: intervals for symbol, intervals in recomputed.items() if intervals},
        total_rows=sum(new_state.counts.values()),
        removed_rows=removed,
        newest_event=newest_event,
        rebuilt=False,
    )
    return result, new_state


def _step_ms(settings: Settings) -> int:
    return int(timeframe_delta(settings.timeframe) / pd.Timedelta(1, "ms"))


def _series(settings: Settings, symbol: str) -> store.Series:
    return store.Series(settings.exchange, symbol, settings.timeframe)


def _scan_all(settings: Settings, state: _State) -> dict[str, _Scan]:
    """Every configured symbol's candles against ``state`` (``_scan``); ``dataset.NoCandles`` if a symbol
    has none."""
    old = dict(tuple(state.frame.groupby("symbol")))
    scans = {
        symbol: _scan(
            settings, _series(settings, symbol), old.get(symbol, _State.empty().frame), state.start_ms
        )
        for symbol in settings.symbols
    }
    missing = [symbol for symbol, scan in scans.items() if scan.newest_ms is None]
    if missing:
        raise dataset.no_candles(settings, missing)
    return scans


def _to_recompute(
    settings: Settings, scans: dict[str, _Scan], start_ms: int
) -> tuple[dict[str, list[Interval]], dict[str, list[Interval]]]:
    """What to recompute, per symbol (``as_of`` ranges): the rows whose lookback holds a changed candle,
    and the rows referring to them; and the rows needed to compute them (those, and their references')."""
    reach = (LOOKBACK - 1) * _step_ms(settings)
    affected = {
        symbol: _merge(
            [(max(first, start_ms), last + reach) for first, last in scan.changed if last >= start_ms]
        )
        for symbol, scan in scans.items()
    }
    recomputed = dict(affected)
    for symbol in settings.symbols:
        reference = compute.reference_of(symbol)
        if reference != symbol and affected.get(reference):
            recomputed[symbol] = _merge(recomputed[symbol] + affected[reference])
    needed = dict(recomputed)
    for symbol in settings.symbols:
        reference = compute.reference_of(symbol)
        if reference in needed and recomputed[symbol]:
            needed[reference] = _merge(needed[reference] + recomputed[symbol])
    return recomputed, needed


def _recompute(
    settings: Settings,
    scans: dict[str, _Scan],
    recomputed: dict[str, list[Interval]],
    needed: dict[str, list[Interval]],
    start_ms: int,
) -> pd.DataFrame:
    """The ``recomputed`` rows, computed from the candles of the ``needed`` ones (and their lookback)."""
    reach = (LOOKBACK - 1) * _step_ms(settings)
    candles = [
        _candles(
            settings,
            _series(settings, symbol),
            scans[symbol],
            max(intervals[0][0] - reach, start_ms),
            intervals[-1][1],
        )
        for symbol, intervals in needed.items()
        if intervals
    ]
    if candles:
        own = compute.compute_features(pd.concat(candles, ignore_index=True), settings.timeframe)
        rows = compute.with_reference(own.loc[_in_ranges(own, needed)], how="left")
    else:
        rows = _empty_rows()
    return rows.loc[_in_ranges(rows, recomputed)].assign(symbol=lambda frame: frame["symbol"].astype(str))


def _write_rows(
    path: Path,
    rows: pd.DataFrame,
    recomputed: dict[str, list[Interval]],
    known_counts: dict[str, int],
    start: pd.Timestamp,
    settings: Settings,
) -> tuple[dict[str, int], int]:
    """Replace the ``recomputed`` rows of the table's files by ``rows``, rewriting only the files they
    touch; returns the rows of each file and the rows removed."""
    step = _step_ms(settings)
    existing = dict(files(path))
    compacted = {key for key in existing if len(key) == 7}
    if not existing and not rows.empty:  # a new table: written in its final layout at once (see _lay_out)
        newest = rows["event_timestamp"].max()
        kept = rows.loc[_kept(rows, newest, start, settings), "event_timestamp"]
        if not kept.empty:
            months = pd.date_range(f"{kept.min():%Y-%m}-01", f"{newest:%Y-%m}-01", freq="MS").strftime(
                "%Y-%m"
            )
            compacted = set(months[1:-1])
    days = _day_keys(rows["event_timestamp"])
    by_key = dict(tuple(rows.groupby(days.where(~days.str[:7].isin(compacted), days.str[:7]))))
    touched = set(by_key) | {
        day[:7] if day[:7] in compacted else day
        for intervals in recomputed.values()
        for first, last in intervals
        for day in _days(first + step, last + step)
    }
    counts = {  # a file written by a run killed before its state: counted from its footer
        key: known_counts[key] if key in known_counts else pq.read_metadata(file).num_rows
        for key, file in existing.items()
    }
    removed = 0
    for key in sorted(touched):
        if key not in existing and key not in by_key:
            continue
        before = pd.read_parquet(existing[key]) if key in existing else _empty_rows()
        stale = _in_ranges(before, recomputed)
        fresh = by_key.get(key, _empty_rows())
        removed += int(stale.sum())
        counts[key] = _replace_file(path, key, pd.concat([before.loc[~stale], fresh], ignore_index=True))
    return counts, removed


def _trim_to_window(
    path: Path, newest_event: pd.Timestamp, start: pd.Timestamp, settings: Settings, counts: dict[str, int]
) -> tuple[dict[str, int], int]:
    """Drop the rows past the retention (``_kept``) from the oldest files; returns the rows of each file
    and the rows removed."""
    counts = dict(counts)
    removed = 0
    oldest_kept = max(
        newest_event - pd.Timedelta(days=settings.feature_retention_days),
        start + LOOKBACK * timeframe_delta(settings.timeframe),
    )
    for key, file in files(path):
        if key > oldest_kept.strftime("%Y-%m-%d"):
            break
        table = pd.read_parquet(file)
        kept = table.loc[_kept(table, newest_event, start, settings)]
        if len(kept) < len(table):
            removed += len(table) - len(kept)
        counts[key] = _replace_file(path, key, kept) if len(kept) < len(table) else len(table)
    return counts, removed


def _next_state(scans: dict[str, _Scan], start: pd.Timestamp, counts: dict[str, int]) -> _State:
    """The state after the update: the scans' rows inside the window starting at ``start``, and the rows of
    each file of the table."""
    frame = pd.concat(
        [part.assign(symbol=symbol) for symbol, scan in scans.items() for part in scan.rows],
        ignore_index=True,
    )
    month_end = frame["month"].map({month: _ms(_month_range(month)[1]) for month in frame["month"].unique()})
    frame = frame.loc[
        ((frame["day"] == "") & (month_end > _ms(start))) | (frame["day"] >= start.strftime("%Y-%m-%d"))
    ]
    return _State(
        frame[_State.empty().frame.columns].astype({"n": "int64", "digest": "uint64", "last_ms": "int64"}),
        _ms(start),
        {day: count for day, count in counts.items() if count},
    )


def _days(first_ms: int, last_ms: int) -> list[str]:
    """The UTC days ``YYYY-MM-DD`` from the one holding ``first_ms`` to the one holding ``last_ms``."""
    return [
        f"{day:%Y-%m-%d}"
        for day in pd.date_range(
            pd.Timestamp(first_ms // DAY_MS * DAY_MS, unit="ms"), pd.Timestamp(last_ms, unit="ms"), freq="D"
        )
    ]


def _candles(settings: Settings, series: store.Series, scan: _Scan, first: int, last: int) -> pd.DataFrame:
    """A symbol's candles opening in ``[first, last]`` (epoch ms): from the month files its scan read if
    they hold them all, else from the store."""
    start, end = pd.Timestamp(first, unit="ms", tz="UTC"), pd.Timestamp(last, unit="ms", tz="UTC")
    months = [f"{month:%Y-%m}" for month in pd.date_range(start.floor("D").replace(day=1), end, freq="MS")]
    if all(month in scan.read for month in months):
        frame = pd.concat([scan.read[month] for month in months], ignore_index=True)
        return frame.loc[frame["ts"].between(start, end)]
    return store.load_candles(settings.candles_dir, series, start=start, end=end)


def _lay_out(path: Path, newest_event: pd.Timestamp, counts: dict[str, int]) -> dict[str, int]:
    """Keep every month strictly between the table's oldest and newest months in one file, the others in
    day files (so the table holds a few dozen files whatever its retention, the hourly cycle rewrites one
    day file, and the trim one): the month just closed is compacted, the month the retention enters is
    split, once a month each. A month file is written before its day files are removed (and the other
    way round), so a run killed in between leaves both; the month file wins then."""
    keys = files(path)
    if not keys:
        return counts
    oldest, newest = keys[0][0][:7], f"{newest_event:%Y-%m}"
    counts = dict(counts)
    for month in sorted({key[:7] for key, _ in keys}):
        days = [(key, file) for key, file in keys if len(key) == 10 and key[:7] == month]
        whole = path / f"{month}.parquet"
        if whole.exists() and days:  # a compaction or a split killed part-way: the month file holds all
            for key, file in days:
                file.unlink()
                counts.pop(key, None)
            days = []
        if oldest < month < newest and days:
            counts[month] = _replace_file(
                path, month, pd.concat([pd.read_parquet(file) for _, file in days], ignore_index=True)
            )
            for key, file in days:
                file.unlink()
                counts.pop(key, None)
        elif not oldest < month < newest and whole.exists():
            table = pd.read_parquet(whole)
            for day, rows in table.groupby(_day_keys(table["event_timestamp"])):
                counts[str(day)] = _replace_file(path, str(day), rows)
            whole.unlink()
            counts.pop(month, None)
    return counts


def _replace_file(path: Path, key: str, rows: pd.DataFrame) -> int:
    """Write a file of the table atomically (remove it if ``rows`` is empty); returns its rows."""
    file = path / f"{key}.parquet"
    if rows.empty:
        file.unlink(missing_ok=True)
    else:
        atomic.write_parquet(_ordered(rows.assign(symbol=rows["symbol"].astype(str))), file)
    return len(rows)


def _newest_event(path: Path) -> pd.Timestamp | None:
    for _, file in reversed(files(path)):
        stamps = pd.read_parquet(file, columns=["event_timestamp"])["event_timestamp"]
        if not stamps.empty:
            return stamps.max()
    return None


def rows_after(table: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """The feature rows with ``event_timestamp > cutoff``, in their original order."""
    return table.loc[table["event_timestamp"] > cutoff].reset_index(drop=True)


def trim(settings: Settings, cutoff: pd.Timestamp) -> tuple[int, int, int]:
    """Drop the rows with ``event_timestamp <= cutoff`` (whole day files, and the rows of the day holding
    ``cutoff``); returns ``(rows removed, rows kept, bytes freed)``."""
    path = settings.feature_table_path
    removed = freed = 0
    with _locked(path):
        definition = _definition(settings)
        state = _read_state(path, definition)
        for key, file in files(path):
            if pd.Timestamp(key, tz="UTC") > cutoff:
                break
            size = file.stat().st_size
            table = pd.read_parquet(file)
            kept = rows_after(table, cutoff)
            if len(kept) < len(table):
                removed += len(table) - len(kept)
                if _replace_file(path, key, kept) == 0 and state is not None:
                    state.counts.pop(key, None)
                elif state is not None:
                    state.counts[key] = len(kept)
                freed += size - (file.stat().st_size if file.exists() else 0)
        if state is not None and removed:
            _write_state(path, state, definition)
        total = (
            sum(pq.read_metadata(file).num_rows for _, file in files(path))
            if state is None
            else sum(state.counts.values())
        )
    return removed, total, max(0, freed)
