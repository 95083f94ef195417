"""Retention: the pure cutoff rules, passes over a Parquet store, feature table and prediction log."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from hourcast import atomic
from hourcast.data import quarantine, store
from hourcast.data.store import series_lock
from hourcast.features import feature_table
from hourcast.ops import retention
from hourcast.settings import Settings
from tests.support.processes import wait_for

UTC = "UTC"


def hourly_candles(start: str, end: str) -> pd.DataFrame:
    """Synthetic hourly candles with open times in ``[start, end]``, in the store's file layout."""
    ts = pd.date_range(start, end, freq="h", tz=UTC).astype("datetime64[ms, UTC]")
    close = 100 + np.arange(len(ts), dtype="float64")
    return pd.DataFrame(
        {"ts": ts, "open": close, "high": close + 1, "low": close - 1, "close": close, "volume": 1.0}
    )


def series(symbol: str) -> store.Series:
    return store.Series("binance", symbol, "1h")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """A store with BTC and ETH from January to 2024-03-10 23:00, a stale DOGE series (January only),
    an hourly feature table over the same span and a prediction log of two days."""
    settings = Settings(
        home=tmp_path,
        candle_retention_days=35,
        feature_retention_days=32,
        train_days=30,
        prediction_retention_days=90,
    )
    for symbol in ("BTC/USDT", "ETH/USDT"):
        store.upsert(settings.candles_dir, series(symbol), hourly_candles("2024-01-01", "2024-03-10 23:00"))
    store.upsert(settings.candles_dir, series("DOGE/USDT"), hourly_candles("2024-01-01", "2024-01-20"))
    stamps = pd.date_range("2024-01-02", "2024-03-11", freq="h", tz=UTC).astype("datetime64[ms, UTC]")
    table = pd.DataFrame({"symbol": "BTC/USDT", "event_timestamp": stamps, "ret_1h": 0.0})
    feature_table.write(settings.feature_table_path, table)
    for day in ("2023-11-01", "2024-03-09"):
        log = pd.DataFrame({"requested_at": [pd.Timestamp(day, tz=UTC)], "predicted_close": [1.0]})
        atomic.write_parquet(log, settings.predictions_dir / f"date={day}" / "part-1.parquet")
    return settings


def test_settings_refuse_retention_shorter_than_the_training_window() -> None:
    with pytest.raises(ValidationError, match=r"keeps 30 days of features.*FEATURE_RETENTION_DAYS >= 31"):
        Settings(train_days=30, feature_retention_days=30, _env_file=None)
    with pytest.raises(ValidationError, match=r"HOURCAST_FEATURE_RETENTION_DAYS >= 401"):
        Settings(train_days=400, _env_file=None)  # the default retention follows no longer window
    with pytest.raises(ValidationError, match=r"CANDLE_RETENTION_DAYS=20 is shorter than the 367 days"):
        Settings(candle_retention_days=20, _env_file=None)
    fitted = Settings(train_days=30, feature_retention_days=31, candle_retention_days=31, _env_file=None)
    assert fitted.feature_retention_days == 31


def test_the_default_retention_keeps_the_default_training_window() -> None:
    defaults = Settings(_env_file=None)
    assert defaults.train_days == 365
    assert defaults.feature_retention_days >= defaults.train_days + 1
    assert defaults.candle_retention_days is None  # every candle is kept


def test_a_month_expires_only_when_it_ended_before_the_cutoff_and_is_not_the_newest() -> None:
    months = ["2024-03", "2024-01", "2024-02"]
    assert retention.expired_months(months, pd.Timestamp("2024-01-31 23:00", tz=UTC)) == []
    assert retention.expired_months(months, pd.Timestamp("2024-02-01", tz=UTC)) == ["2024-01"]
    assert retention.expired_months(months, pd.Timestamp("2024-03-01", tz=UTC)) == ["2024-01", "2024-02"]
    assert retention.expired_months(months, pd.Timestamp("2030-01-01", tz=UTC)) == ["2024-01", "2024-02"]
    assert retention.expired_months(["2024-01"], pd.Timestamp("2030-01-01", tz=UTC)) == []


def test_days_and_feature_rows_expire_strictly_before_the_cutoff() -> None:
    cutoff = pd.Timestamp("2024-03-02 12:00", tz=UTC)
    assert retention.expired_days(["2024-03-02", "2024-03-01", "2024-02-28"], cutoff) == [
        "2024-02-28",
        "2024-03-01",
    ]
    table = pd.DataFrame(
        {"event_timestamp": pd.date_range("2024-03-02 11:00", periods=3, freq="h", tz=UTC), "x": [1, 2, 3]}
    )
    assert feature_table.rows_after(table, cutoff)["x"].tolist() == [3]


def test_retention_removes_old_months_feature_rows_and_log_days(settings: Settings) -> None:
    report = retention.apply_retention(settings)

    now = pd.Timestamp("2024-03-10 23:00", tz=UTC)  # the newest stored candle
    assert report.now == now
    assert report.candle_cutoff == now - pd.Timedelta(days=35)
    assert sorted(report.partitions_removed) == [
        "exchange=binance/symbol=BTC%2FUSDT/timeframe=1h/month=2024-01",
        "exchange=binance/symbol=ETH%2FUSDT/timeframe=1h/month=2024-01",
    ]
    for symbol in ("BTC/USDT", "ETH/USDT"):
        kept = store.load_candles(settings.candles_dir, series(symbol))
        assert kept["ts"].iloc[0] == pd.Timestamp("2024-02-01", tz=UTC) and kept["ts"].iloc[-1] == now
    stale = store.load_candles(settings.candles_dir, series("DOGE/USDT"))
    assert len(stale) == 19 * 24 + 1  # its newest month is kept, however old

    features = pd.read_parquet(settings.feature_table_path)
    assert features["event_timestamp"].min() == now - pd.Timedelta(days=32) + pd.Timedelta(hours=1)
    assert report.feature_rows_kept == len(features) and report.feature_rows_removed > 0
    assert len(features) >= 24 * (settings.train_days + 1)

    assert report.files_removed == 1
    assert [p.name for p in settings.predictions_dir.iterdir()] == ["date=2024-03-09"]
    assert report.bytes_removed > 0
    assert report.as_json()["partitions_removed"] == report.partitions_removed

    again = retention.apply_retention(settings)
    removed = ("partitions_removed", "feature_rows_removed", "files_removed", "bytes_removed")
    assert [again.as_json()[key] for key in removed] == [[], 0, 0, 0]


def test_keep_everything_by_default_and_an_explicit_now(settings: Settings) -> None:
    keep_all = settings.model_copy(update={"candle_retention_days": None})
    report = retention.apply_retention(keep_all, now=pd.Timestamp("2024-02-20", tz=UTC))
    assert report.candle_cutoff is None and report.partitions_removed == []
    assert report.files_removed == 1  # 2023-11-01 is 111 days before the given now, 2024-03-09 after it
    oldest = pd.read_parquet(settings.feature_table_path)["event_timestamp"].min()
    assert oldest == pd.Timestamp("2024-01-19 01:00", tz=UTC)  # rows after now - 32 days


def test_an_empty_home_has_nothing_to_remove(tmp_path: Path) -> None:
    report = retention.apply_retention(Settings(home=tmp_path))
    assert report.partitions_removed == [] and report.feature_rows_removed == 0 and report.files_removed == 0


def blocked_on(lock_file: Path) -> bool:
    """Whether some process or thread is blocked waiting for the flock on ``lock_file`` (/proc/locks)."""
    inode = f":{lock_file.stat().st_ino} "
    return any("->" in line and inode in line for line in Path("/proc/locks").read_text().splitlines())


def test_retention_waits_for_a_writer_holding_the_series_lock(settings: Settings) -> None:
    directory = series("BTC/USDT").directory(settings.candles_dir)
    reports: list[retention.RetentionReport] = []
    with series_lock(directory):  # a writer is rewriting the series
        pruning = threading.Thread(target=lambda: reports.append(retention.apply_retention(settings)))
        pruning.start()
        wait_for(lambda: blocked_on(directory / ".lock"), 10, "retention to wait for the series lock")
        assert (directory / "month=2024-01").exists() and not reports
    pruning.join(10)
    [report] = reports
    assert len(report.partitions_removed) == 2 and not (directory / "month=2024-01").exists()


def quarantined(root: Path, entry_id: str, last: str) -> Path:
    """A quarantine entry on disk as ``quarantine.put`` lays it out (rows, report, page, entry)."""
    stem = series("BTC/USDT").directory(root) / entry_id
    atomic.write_parquet(hourly_candles(last, last), stem.with_suffix(".parquet"))
    for suffix, text in ((".json", "{}"), (".html", "<html></html>")):
        atomic.write_text(stem.with_suffix(suffix), text)
    entry = {
        "id": entry_id, "exchange": "binance", "symbol": "BTC/USDT", "timeframe": "1h", "kind": "rows",
        "rows": 1, "first": last, "last": last, "reasons": ["high >= open"], "state": "pending",
        "created": "2026-11-23T10:00:00Z",
    }  # fmt: skip
    atomic.write_text(stem.with_name(entry_id + ".entry.json"), json.dumps(entry))
    return stem


def test_retention_applies_to_the_quarantine(settings: Settings) -> None:
    old = quarantined(settings.quarantine_dir, "old", "2023-11-30T05:00:00Z")
    recent = quarantined(settings.quarantine_dir, "recent", "2024-03-01T05:00:00Z")
    report = retention.apply_retention(settings.model_copy(update={"quarantine_retention_days": 90}))
    assert report.quarantine_entries_removed == 1  # its newest candle is > 90 days before 2024-03-10 23:00
    assert not list(old.parent.glob("old.*")) and len(list(recent.parent.glob("recent.*"))) == 4
    assert [entry.id for entry in quarantine.entries(settings.quarantine_dir)] == ["recent"]
