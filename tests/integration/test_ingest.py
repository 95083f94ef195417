"""Ingestion end to end: real ccxt against the replay exchange, real GX validation, real Parquet store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from hourcast import ledger, store
from hourcast.dev.replay import ReplayServer
from hourcast.ingest import make_ingestor
from tests.integration.conftest import replay_settings

JAN, MAR = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC")
BTC = store.Series("binance", "BTC/USDT", "1h")


def stored(home: Path) -> pd.DataFrame:
    return store.load_candles(home / "candles", BTC)


def assert_matches_recording(frame: pd.DataFrame, recorded: pd.DataFrame) -> None:
    """Every stored candle equals the recorded one, once each."""
    assert frame["ts"].is_unique and frame["ts"].is_monotonic_increasing
    expected = recorded.set_index("ts").loc[frame["ts"]].reset_index()
    pd.testing.assert_frame_equal(frame.drop(columns="symbol"), expected[frame.columns[1:]])


def test_backfill_then_ingest_is_exact_and_idempotent(
    tmp_path: Path, replay: ReplayServer, recorded_files: dict[str, pd.DataFrame]
) -> None:
    ingestor = make_ingestor(replay_settings(tmp_path, replay))
    [summary] = ingestor.backfill(JAN, MAR)
    assert (summary.fetched, summary.new, summary.duplicates, summary.status) == (1440, 1440, 0, "ok")
    assert summary.as_json()["first"] == "2024-01-01T00:00:00Z"
    assert summary.as_json()["last"] == "2024-02-29T23:00:00Z"

    latest = tmp_path / "validation" / "binance_BTC-USDT_1h_latest"
    assert json.loads(latest.with_suffix(".json").read_text())["success"] is True
    assert "<html" in latest.with_suffix(".html").read_text().lower()

    [again] = ingestor.ingest()
    assert (again.fetched, again.new) == (0, 0)

    replay.exchange.advance(5 * 3600 + 1800)  # 5.5 h: the candle in progress must not be stored
    [later] = ingestor.ingest()
    assert (later.new, later.gaps) == (5, [])
    frame = stored(tmp_path)
    assert len(frame) == 1445 and frame["ts"].iloc[-1] == pd.Timestamp("2024-03-01 04:00", tz="UTC")
    assert_matches_recording(frame, recorded_files["BTC/USDT"])

    [rerun] = ingestor.backfill(JAN, MAR)
    assert (rerun.new, rerun.duplicates) == (0, 1440)
    runs = ledger.read(tmp_path / "ledger" / "ingestion.parquet")
    assert runs["new"].tolist() == [1440, 0, 5, 0] and (runs["status"] == "ok").all()


def test_first_ingest_backfills_the_default_window(tmp_path: Path, replay: ReplayServer) -> None:
    [summary] = make_ingestor(replay_settings(tmp_path, replay, default_backfill_days=3)).ingest()
    assert summary.new == 72
    assert summary.last == pd.Timestamp("2024-02-29 23:00", tz="UTC")


@pytest.mark.parametrize(
    "fault",
    [
        {"rate_limit": {"count": 2}, "retry_after": 0},
        {"server_error": {"count": 3}},
        {"slow": {"count": 1}, "slow_seconds": 1.5},
    ],
    ids=["429", "5xx", "timeout"],
)
def test_transient_faults_are_retried_and_nothing_is_lost(
    tmp_path: Path, replay: ReplayServer, recorded_files: dict[str, pd.DataFrame], fault: dict
) -> None:
    ingestor = make_ingestor(replay_settings(tmp_path, replay))
    replay.exchange.set_faults(fault)
    [summary] = ingestor.backfill(JAN, MAR)
    assert summary.status == "ok" and summary.new == 1440
    assert ingestor.source.retries >= 1
    assert sum(replay.exchange.fault_counts().values()) >= 1
    assert_matches_recording(stored(tmp_path), recorded_files["BTC/USDT"])


@pytest.mark.parametrize("kind", ["malformed", "duplicate"])
def test_bad_batches_are_quarantined_then_recovered(
    tmp_path: Path, replay: ReplayServer, recorded_files: dict[str, pd.DataFrame], kind: str
) -> None:
    settings = replay_settings(tmp_path, replay, fetch_limit=500)
    ingestor = make_ingestor(settings)
    ingestor.backfill(JAN, JAN + pd.Timedelta(days=10))  # 240 good candles first
    replay.exchange.set_faults({kind: {"count": 1}, "seed": 3})
    [summary] = ingestor.ingest()
    assert summary.status == "quarantined" and summary.quarantined > 0 and summary.new == 0
    assert "quarantined in" in summary.message
    kept = list((tmp_path / "quarantine").rglob("*.parquet"))
    reports = list((tmp_path / "quarantine").rglob("*.json"))
    assert len(kept) == 1 and len(reports) == 1 and len(list((tmp_path / "quarantine").rglob("*.html"))) == 1
    assert len(pd.read_parquet(kept[0])) == summary.quarantined
    assert json.loads(reports[0].read_text())["success"] is False
    assert len(stored(tmp_path)) == 240, "a rejected batch must not be merged"

    [retry] = ingestor.ingest()  # the fault is spent: the same range now passes
    assert retry.status == "ok"
    frame = stored(tmp_path)
    assert len(frame) == 1440
    assert_matches_recording(frame, recorded_files["BTC/USDT"])


def test_missing_candles_are_recorded_as_gaps_not_invented(tmp_path: Path, replay: ReplayServer) -> None:
    ingestor = make_ingestor(replay_settings(tmp_path, replay))
    replay.exchange.set_faults({"missing": {"count": 1}, "seed": 1})
    [summary] = ingestor.backfill(JAN, MAR)
    assert summary.status == "ok" and summary.new == 1439 and summary.missing_candles == 1
    assert len(stored(tmp_path)) == 1439
    run = ledger.read(tmp_path / "ledger" / "ingestion.parquet").iloc[-1]
    assert run["gaps"] == 1 and run["gap_ranges"].endswith("+1")


def test_exhausted_retries_keep_what_was_stored_and_resume(
    tmp_path: Path, replay: ReplayServer, recorded_files: dict[str, pd.DataFrame]
) -> None:
    ingestor = make_ingestor(replay_settings(tmp_path, replay, fetch_limit=500, retry_attempts=3))
    original = ingestor.source.pages

    def fail_after_first_page(*args, **kwargs):  # the exchange goes down for good after one page
        for number, page in enumerate(original(*args, **kwargs)):
            yield page
            if number == 0:
                replay.exchange.set_faults({"server_error": {"rate": 1.0}})

    ingestor.source.pages = fail_after_first_page  # type: ignore[method-assign]
    [summary] = ingestor.backfill(JAN, MAR)
    assert summary.status == "failed" and "after 3 tries" in summary.message
    assert summary.new == 500 and len(stored(tmp_path)) == 500

    replay.exchange.clear_faults()
    ingestor.source.pages = original  # type: ignore[method-assign]
    [resumed] = ingestor.ingest()
    assert resumed.status == "ok" and resumed.new == 940
    assert_matches_recording(stored(tmp_path), recorded_files["BTC/USDT"])


def test_cli_json_lines_and_exit_codes(tmp_path: Path, replay: ReplayServer) -> None:
    env = {
        **os.environ,
        "HOURCAST_HOME": str(tmp_path),
        "HOURCAST_EXCHANGE_URL": replay.url,
        "HOURCAST_SYMBOLS": "BTC/USDT,ETH/USDT",
        "HOURCAST_RETRY_BASE_SECONDS": "0.01",
    }
    command = [sys.executable, "-m", "hourcast"]
    done = subprocess.run(
        [*command, "backfill", "--since", "2024-02-01", "--until", "2024-02-02", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    assert [line["symbol"] for line in lines] == ["BTC/USDT", "ETH/USDT"]
    assert {k for k in lines[0]} >= {
        "symbol",
        "fetched",
        "new",
        "duplicates",
        "gaps",
        "quarantined",
        "first",
        "last",
    }
    assert [line["new"] for line in lines] == [24, 24]

    failed = subprocess.run(
        [*command, "ingest", "--symbol", "DOGE/USDT", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert failed.returncode == 1
    assert "does not list symbol 'DOGE/USDT'" in failed.stderr
