"""Retention: bound the candle archive, the feature table and the prediction log by age.

Ages are measured against ``now``, which defaults to the newest stored candle (data time, so a replayed
world ages like a live one; the wall clock only when no candle is stored):

* candles: whole ``month=YYYY-MM`` partitions that end on or before ``now - candle_retention_days`` are
  deleted under the series' file lock (so never while a writer is rewriting them); the newest month of
  every series is always kept. ``candle_retention_days`` unset keeps everything.
* features: rows with ``event_timestamp <= now - feature_retention_days`` are dropped and the table is
  rewritten atomically. The default, 367 days, is ``train_days`` (365) plus two days of slack for the
  label (one candle) and the data's own time running ahead of the last training run (the table's rows are
  computed from the candles, with the 25-candle lookback).
* predictions: ``date=YYYY-MM-DD`` log folders whose whole day ends on or before
  ``now - prediction_retention_days`` are deleted.
* quarantine: entries (rows, report, entry file) whose newest candle opened on or before
  ``now - quarantine_retention_days`` are deleted, whatever their state.
* ingestion ledger: ``date=YYYY-MM-DD`` folders of runs whose whole day ends on or before
  ``now - ledger_retention_days`` are deleted.

Training (and its gate, which runs inside the training window) needs ``train_days`` of labelled
features: ``Settings`` refuses a ``feature_retention_days`` below ``train_days + 1`` and a
``candle_retention_days`` below ``feature_retention_days``, each with the variable to set.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pandas as pd

from hourcast.data import quarantine, store
from hourcast.data.store import months_in, series_lock
from hourcast.features import feature_table
from hourcast.settings import Settings

MONTH_PREFIX = "month="
DATE_PREFIX = "date="


@dataclass(frozen=True)
class RetentionReport:
    """What one retention pass removed, and the cutoffs it used."""

    now: pd.Timestamp
    candle_cutoff: pd.Timestamp | None
    feature_cutoff: pd.Timestamp
    prediction_cutoff: pd.Timestamp
    partitions_removed: list[str]
    feature_rows_removed: int
    feature_rows_kept: int
    files_removed: int
    bytes_removed: int
    quarantine_entries_removed: int = 0
    ledger_cutoff: pd.Timestamp | None = None
    ledger_files_removed: int = 0

    def as_json(self) -> dict[str, Any]:
        """The report as plain JSON types (times ISO-8601 UTC; partitions relative to the candle root)."""
        return {
            "now": self.now.isoformat(),
            "candle_cutoff": self.candle_cutoff.isoformat() if self.candle_cutoff is not None else None,
            "feature_cutoff": self.feature_cutoff.isoformat(),
            "prediction_cutoff": self.prediction_cutoff.isoformat(),
            "partitions_removed": self.partitions_removed,
            "feature_rows_removed": self.feature_rows_removed,
            "feature_rows_kept": self.feature_rows_kept,
            "files_removed": self.files_removed,
            "bytes_removed": self.bytes_removed,
            "quarantine_entries_removed": self.quarantine_entries_removed,
            "ledger_cutoff": self.ledger_cutoff.isoformat() if self.ledger_cutoff is not None else None,
            "ledger_files_removed": self.ledger_files_removed,
        }


def expired_months(months: list[str], cutoff: pd.Timestamp) -> list[str]:
    """The ``YYYY-MM`` months that end on or before ``cutoff``, never the newest one, oldest first."""
    ordered = sorted(months)
    return [
        month
        for month in ordered[:-1]
        if pd.Timestamp(f"{month}-01", tz="UTC") + pd.offsets.MonthBegin(1) <= cutoff
    ]


def expired_days(days: list[str], cutoff: pd.Timestamp) -> list[str]:
    """The ``YYYY-MM-DD`` days that end on or before ``cutoff``, oldest first."""
    return [day for day in sorted(days) if pd.Timestamp(day, tz="UTC") + pd.Timedelta(days=1) <= cutoff]


def apply_retention(settings: Settings, now: pd.Timestamp | None = None) -> RetentionReport:
    """Delete what is older than the retention windows (see the module docstring); returns what went."""
    if now is None:
        now = newest_candle(settings.candles_dir)
    if now is None:  # nothing stored yet: only the prediction log can have aged
        now = pd.Timestamp.now(tz="UTC")
    candle_cutoff = (
        now - pd.Timedelta(days=settings.candle_retention_days)
        if settings.candle_retention_days is not None
        else None
    )
    feature_cutoff = now - pd.Timedelta(days=settings.feature_retention_days)
    prediction_cutoff = now - pd.Timedelta(days=settings.prediction_retention_days)

    partitions, partition_bytes = (
        _prune_candles(settings.candles_dir, candle_cutoff) if candle_cutoff is not None else ([], 0)
    )
    removed_rows, kept_rows, feature_bytes = _trim_feature_table(settings, feature_cutoff)
    files, file_bytes = _prune_days(settings.predictions_dir, prediction_cutoff)
    quarantine_cutoff = now - pd.Timedelta(days=settings.quarantine_retention_days)
    entries, quarantine_bytes = _prune_quarantine(settings.quarantine_dir, quarantine_cutoff)
    ledger_cutoff = now - pd.Timedelta(days=settings.ledger_retention_days)
    ledger_files, ledger_bytes = _prune_days(settings.ledger_dir, ledger_cutoff)
    return RetentionReport(
        now=now,
        candle_cutoff=candle_cutoff,
        feature_cutoff=feature_cutoff,
        prediction_cutoff=prediction_cutoff,
        partitions_removed=partitions,
        feature_rows_removed=removed_rows,
        feature_rows_kept=kept_rows,
        files_removed=files,
        bytes_removed=partition_bytes + feature_bytes + file_bytes + quarantine_bytes + ledger_bytes,
        quarantine_entries_removed=entries,
        ledger_cutoff=ledger_cutoff,
        ledger_files_removed=ledger_files,
    )


def _series(root: Path) -> list[store.Series]:
    """Every candle series stored under ``root`` (from the Hive folder names)."""
    return [
        store.Series(
            exchange=directory.parent.parent.name.removeprefix("exchange="),
            symbol=unquote(directory.parent.name.removeprefix("symbol=")),
            timeframe=directory.name.removeprefix("timeframe="),
        )
        for directory in sorted(root.glob("exchange=*/symbol=*/timeframe=*"))
        if directory.is_dir()
    ]


def newest_candle(root: Path) -> pd.Timestamp | None:
    """Open time of the newest candle stored in any series under ``root`` (None if there is none)."""
    stamps = [stamp for series in _series(root) if (stamp := store.last_stored(root, series)) is not None]
    return max(stamps) if stamps else None


def _size(path: Path) -> int:
    """Bytes of a file, or of every file under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(item.stat().st_size for item in path.rglob("*") if item.is_file())


def _month_folders(directory: Path) -> dict[str, Path]:
    """The series' month folders by month (a stray ``month=bogus`` is left to ``hourcast repair``)."""
    return {month: directory / f"{MONTH_PREFIX}{month}" for month in months_in(directory)}


def _prune_candles(root: Path, cutoff: pd.Timestamp) -> tuple[list[str], int]:
    """Delete expired month partitions of every series; returns them (relative to ``root``) and bytes."""
    removed: list[str] = []
    freed = 0
    for series in _series(root):
        directory = series.directory(root)
        if not expired_months(list(_month_folders(directory)), cutoff):
            continue
        with series_lock(directory):  # decided again under the lock: a writer may have added a month
            folders = _month_folders(directory)
            for month in expired_months(list(folders), cutoff):
                freed += _size(folders[month])
                shutil.rmtree(folders[month])
                removed.append(str(folders[month].relative_to(root)))
    return removed, freed


def _trim_feature_table(settings: Settings, cutoff: pd.Timestamp) -> tuple[int, int, int]:
    """Drop expired feature rows; returns ``(rows removed, rows kept, bytes freed)``."""
    return feature_table.trim(settings, cutoff)


def _prune_days(directory: Path, cutoff: pd.Timestamp) -> tuple[int, int]:
    """Delete the ``date=YYYY-MM-DD`` folders of expired days (prediction log, ledger); returns ``(files
    removed, bytes freed)``."""
    folders = {
        folder.name.removeprefix(DATE_PREFIX): folder
        for folder in directory.glob(f"{DATE_PREFIX}*")
        if folder.is_dir()
    }
    files = freed = 0
    for day in expired_days(list(folders), cutoff):
        contents = [item for item in folders[day].rglob("*") if item.is_file()]
        files += len(contents)
        freed += sum(item.stat().st_size for item in contents)
        shutil.rmtree(folders[day])
    return files, freed


def _prune_quarantine(root: Path, cutoff: pd.Timestamp) -> tuple[int, int]:
    """Delete the quarantine entries whose newest candle opened on or before ``cutoff`` (all their files:
    rows, report, entry); returns ``(entries removed, bytes freed)``."""
    removed = freed = 0
    for entry in quarantine.entries(root):
        newest = entry.last or entry.created
        if pd.Timestamp(newest) > cutoff:
            continue
        freed += quarantine.delete(root, entry)
        removed += 1
    return removed, freed
