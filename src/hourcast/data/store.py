"""The candle store: a Hive-partitioned Parquet dataset with idempotent, atomic upserts.

Layout (readable as one dataset with ``pandas.read_parquet(HOURCAST_HOME / "candles")``)::

    candles/exchange=binance/symbol=BTC%2FUSDT/timeframe=1h/month=2024-01/data.parquet

Files hold ``ts, open, high, low, close, volume`` and the order flow ``quote_volume, trades,
taker_buy_base, taker_buy_quote`` (NaN where the exchange gave none; a file written before hourcast stored
order flow lacks those columns and reads as NaN); the rest comes from the path. An hourly append
rewrites only the current month's file, through a temporary file and a rename, under a lock per
series so two writers never interleave.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pyarrow as pa

from hourcast import atomic
from hourcast.data.candles import ORDER_FLOW_COLUMNS, PUBLIC_COLUMNS, VALUE_COLUMNS, with_order_flow
from hourcast.errors import DamagedFile

FILE_COLUMNS = ["ts", *VALUE_COLUMNS, *ORDER_FLOW_COLUMNS]
DATA_FILE = "data.parquet"
LAST_MONTH = "9999-99"
"""A month key after every real one: the open end of a month range."""
MONTH_PREFIX = "month="
_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


@dataclass(frozen=True)
class Series:
    """One candle series: exchange, symbol and timeframe."""

    exchange: str
    symbol: str
    timeframe: str

    def directory(self, root: Path) -> Path:
        """The series' folder under the dataset root (symbol URI-encoded, as Hive readers decode it)."""
        return (
            root
            / f"exchange={self.exchange}"
            / f"symbol={quote(self.symbol, safe='')}"
            / f"timeframe={self.timeframe}"
        )


@dataclass(frozen=True)
class UpsertResult:
    """What an upsert did: rows added and rows already present (left unchanged)."""

    new: int
    duplicates: int


def _month_key(stamps: pd.Series) -> pd.Series:
    return stamps.dt.strftime("%Y-%m")


def _month_file(directory: Path, month: str) -> Path:
    return directory / f"month={month}" / DATA_FILE


def _read_file(path: Path) -> pd.DataFrame:
    """A month file; ``DamagedFile`` (naming it and the repair command) if it cannot be read."""
    try:
        frame = pd.read_parquet(path, columns=FILE_COLUMNS)
    except (pa.ArrowException, OSError) as error:
        reason = " ".join(str(error).split())  # the library's whole sentence, on one line
        raise DamagedFile(
            f"candle file {path} is damaged ({reason}); it was left as it is: run "
            "`hourcast repair` to set it aside and fetch its month again from the exchange"
        ) from None
    frame["ts"] = frame["ts"].astype("datetime64[ms, UTC]")
    return frame


@contextmanager
def series_lock(directory: Path) -> Iterator[None]:
    """Hold the series' write lock (``<series folder>/.lock``): one writer of a series at a time."""
    with atomic.file_lock(directory / ".lock"):
        yield


def upsert(root: Path, series: Series, candles: pd.DataFrame) -> UpsertResult:
    """Merge validated candles of one series; rows whose ``ts`` is already stored are left as they are
    (a candle stored without order flow keeps none: re-ingesting never rewrites history). Candles without
    order-flow columns are stored with them null.

    Months are written oldest first, each atomically, so a writer killed part-way leaves a
    complete dataset up to its last finished month.
    """
    if candles.empty:
        return UpsertResult(0, 0)
    incoming = with_order_flow(candles)[FILE_COLUMNS].drop_duplicates("ts").sort_values("ts")
    directory = series.directory(root)
    new = 0
    with series_lock(directory):
        for month, rows in incoming.groupby(_month_key(incoming["ts"]), sort=True):
            path = _month_file(directory, str(month))
            if path.exists():
                atomic.remove_stale_temporaries(path.parent)
                stored = _read_file(path)
                rows = rows.loc[~rows["ts"].isin(stored["ts"])]
                if rows.empty:
                    continue
                merged = pd.concat([stored, rows]).sort_values("ts")
            else:
                merged = rows
            atomic.write_parquet(merged.reset_index(drop=True), path)
            new += len(rows)
    return UpsertResult(new=new, duplicates=len(candles) - new)


def _month_folders(directory: Path) -> list[tuple[str, bool]]:
    """``(name after month=, whether it is a folder named for a real month)`` of every ``month=`` entry of
    a series folder, in name order: one listing of the series folder."""
    try:
        with os.scandir(directory) as entries:
            found = [
                (entry.name.removeprefix(MONTH_PREFIX), entry.is_dir())
                for entry in entries
                if entry.name.startswith(MONTH_PREFIX)
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted((name, folder and _MONTH.fullmatch(name) is not None) for name, folder in found)


def months_in(directory: Path) -> list[str]:
    """The months (``YYYY-MM``) a series folder has a folder for, oldest first; a stray ``month=`` entry
    (not a folder, or not named for a month, e.g. ``month=bogus``) is no month of the store
    (``stray_months``)."""
    return [name for name, month in _month_folders(directory) if month]


def stray_months(root: Path, series: Series) -> list[Path]:
    """Every ``month=`` entry of a series that is no month of the store (``month=bogus/``, ``month=2024-13``,
    a file): ``hourcast repair`` sets them aside."""
    directory = series.directory(root)
    return [directory / f"{MONTH_PREFIX}{name}" for name, month in _month_folders(directory) if not month]


def _month_files(directory: Path, first: str = "", last: str = LAST_MONTH) -> list[tuple[str, Path]]:
    """``(month, file)`` pairs of a series with ``first <= month <= last``, oldest first.

    Only the months asked for are looked into, so a caller reading the newest months pays the same at 1 and
    at 12 months of history (a glob of ``month=*/data.parquet`` lists every month folder)."""
    files = [(month, _month_file(directory, month)) for month in months_in(directory)]
    return [(month, path) for month, path in files if first <= month <= last and path.is_file()]


def month_files(
    root: Path, series: Series, first: str = "", last: str = LAST_MONTH
) -> list[tuple[str, Path]]:
    """``(month, file)`` pairs of a series with ``first <= month <= last`` (``YYYY-MM``), oldest first."""
    return _month_files(series.directory(root), first, last)


def last_stored(root: Path, series: Series) -> pd.Timestamp | None:
    """Open time of the newest stored candle of a series, or ``None`` if it has none."""
    directory = series.directory(root)
    for month in reversed(months_in(directory)):
        path = _month_file(directory, month)
        if not path.is_file():
            continue
        stamps = _read_file(path)["ts"]
        if not stamps.empty:
            return stamps.max()
    return None


def load_candles(
    root: Path,
    series: Series,
    start: pd.Timestamp | None = None,
    end: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Stored candles of a series with ``start <= ts <= end`` as a typed frame.

    Columns ``symbol, ts, open, high, low, close, volume`` and ``ORDER_FLOW_COLUMNS`` (NaN where not
    stored); ``ts`` is tz-aware UTC, ascending.
    """
    first_month = start.strftime("%Y-%m") if start is not None else ""
    last_month = end.strftime("%Y-%m") if end is not None else LAST_MONTH
    parts = [_read_file(path) for _, path in _month_files(series.directory(root), first_month, last_month)]
    frame = pd.concat(parts, ignore_index=True) if parts else _read_file_schema()
    if start is not None:
        frame = frame.loc[frame["ts"] >= start]
    if end is not None:
        frame = frame.loc[frame["ts"] <= end]
    frame = frame.sort_values("ts").reset_index(drop=True)
    frame.insert(0, "symbol", pd.Series([series.symbol] * len(frame), dtype="string"))
    return frame[PUBLIC_COLUMNS]


def _read_file_schema() -> pd.DataFrame:
    columns = {column: pd.Series(dtype="float64") for column in FILE_COLUMNS[1:]}
    return pd.DataFrame({"ts": pd.Series(dtype="datetime64[ms, UTC]"), **columns})


def damaged_months(root: Path, series: Series) -> list[tuple[str, Path]]:
    """``(month, file)`` of every month file of a series that cannot be read, oldest first."""
    damaged = []
    for month, path in _month_files(series.directory(root)):
        try:
            _read_file(path)
        except DamagedFile:
            damaged.append((month, path))
    return damaged


def set_aside(root: Path, path: Path, aside_dir: Path) -> Path:
    """Move a (damaged) file of the store under ``aside_dir`` with the same relative path plus a time
    suffix, bytes untouched; returns where it went."""
    target = aside_dir / path.relative_to(root)
    target = target.with_name(f"{target.name}.{pd.Timestamp.now(tz='UTC'):%Y%m%dT%H%M%SZ}")
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(path, target)
    return target


def first_stored_month(root: Path, series: Series) -> pd.Timestamp | None:
    """Start (UTC) of the oldest stored month of a series, or ``None`` if it has none."""
    files = _month_files(series.directory(root))
    return pd.Timestamp(f"{files[0][0]}-01", tz="UTC") if files else None
