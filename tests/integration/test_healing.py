"""Transient faults heal: a candle quarantined by a row rule is asked for again by later ingests (bounded
retries within recent days); served clean, it is stored and its quarantine entry marked ``resolved``, as
after a manual backfill; a candle that comes back bad every time stays quarantined, held once. Real ccxt
against the replay exchange with its fault injection, real GX, real Parquet."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from hourcast.cli.app import app
from hourcast.data import completeness, ledger, quarantine, store
from hourcast.data.ingest import make_ingestor
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from tests.support.data import replay_settings

BTC = store.Series("binance", "BTC/USDT", "1h")
VALUES = ["open", "high", "low", "close", "volume"]


def cli_json(home: Path, *args: str) -> list[dict]:
    """``hourcast ARGS --json`` as the user runs it, one object per line."""
    result = CliRunner().invoke(app, [*args, "--json"], env={"HOURCAST_HOME": str(home)})
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.stdout.splitlines()]


def assert_recorded(home: Path, recorded: pd.DataFrame) -> pd.DataFrame:
    """Every stored candle equals the recording's; returns them."""
    frame = store.load_candles(home / "candles", BTC)
    expected = recorded.set_index("ts").loc[frame["ts"]].reset_index()
    pd.testing.assert_frame_equal(frame[["ts", *VALUES]], expected[["ts", *VALUES]])
    return frame


def test_a_candle_malformed_once_is_stored_by_the_next_ingest_and_its_entry_resolved(
    tmp_path: Path, replay: ReplayServer, recorded_files: dict[str, pd.DataFrame]
) -> None:
    settings = replay_settings(tmp_path, replay, default_backfill_days=1)
    ingestor = make_ingestor(settings)
    replay.exchange.set_faults({"malformed": {"count": 1}, "seed": 3})  # one bad row, then clean pages
    [first] = ingestor.ingest()
    assert (first.status, first.quarantined, first.new) == ("quarantined", 1, 23)
    [entry] = quarantine.entries(settings.quarantine_dir)
    bad_hour = pd.Timestamp(entry.first)
    assert entry.state == "pending" and bad_hour not in set(
        assert_recorded(tmp_path, recorded_files["BTC/USDT"])["ts"]
    )
    [hole] = cli_json(tmp_path, "gaps")
    assert (hole["start"], hole["state"]) == (entry.first, "quarantined")

    replay.exchange.advance(3600)
    [healed] = ingestor.ingest()  # asks for the quarantined hour again beside the new one
    assert (healed.status, healed.new, healed.quarantined) == ("ok", 2, 0)
    frame = assert_recorded(tmp_path, recorded_files["BTC/USDT"])
    assert bad_hour in set(frame["ts"]) and len(frame) == 25
    [resolved] = quarantine.entries(settings.quarantine_dir)
    assert (resolved.id, resolved.state) == (entry.id, "resolved") and resolved.resolved is not None
    assert (
        cli_json(tmp_path, "gaps") == []
        and cli_json(tmp_path, "quarantine", "list", "--state", "pending") == []
    )
    assert completeness.read_state(settings.candles_dir, BTC).rejected == {}

    replay.exchange.advance(3600)
    [after] = ingestor.ingest()  # healed: nothing is asked for again
    assert (after.fetched, after.new, after.status) == (1, 1, "ok")
    assert replay.exchange.fault_counts()["malformed"] == 1


def test_a_manual_backfill_resolves_an_entry_too_old_to_be_asked_for_again(
    tmp_path: Path, replay: ReplayServer, recorded_files: dict[str, pd.DataFrame]
) -> None:
    settings = replay_settings(tmp_path, replay, default_backfill_days=1, gap_retry_days=0)
    ingestor = make_ingestor(settings)
    replay.exchange.set_faults({"malformed": {"count": 1}, "seed": 3})
    ingestor.ingest()
    [entry] = quarantine.entries(settings.quarantine_dir)
    replay.exchange.advance(3600)
    [hourly] = ingestor.ingest()  # outside the retry window: not asked for again
    assert (hourly.fetched, hourly.new) == (1, 1) and quarantine.entries(settings.quarantine_dir)[
        0
    ].state == "pending"

    bad_hour = pd.Timestamp(entry.first)
    [backfill] = ingestor.backfill(bad_hour - pd.Timedelta(hours=2))
    assert (backfill.new, backfill.status) == (1, "ok")
    assert bad_hour in set(assert_recorded(tmp_path, recorded_files["BTC/USDT"])["ts"])
    assert [e.state for e in quarantine.entries(settings.quarantine_dir)] == ["resolved"]


def test_a_candle_bad_every_time_is_asked_for_a_bounded_number_of_times_and_stays_quarantined(
    tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    feed = recorded_files["BTC/USDT"].copy()
    bad_hour = pd.Timestamp("2024-02-29 20:00", tz="UTC")
    feed.loc[feed["ts"] == bad_hour, "high"] = feed.loc[feed["ts"] == bad_hour, "low"] * 0.99  # high < low
    exchange = ReplayExchange({"BTC/USDT": feed}, now="2024-03-01T00:00:00Z")
    with ReplayServer(exchange) as server:
        settings = replay_settings(tmp_path, server, default_backfill_days=1, gap_retries=2)
        ingestor = make_ingestor(settings)
        runs = [ingestor.ingest()[0]]
        for _ in range(3):
            exchange.advance(3600)
            runs.append(ingestor.ingest()[0])
    assert [run.quarantined for run in runs] == [1, 1, 0, 0]  # judged twice, then left alone
    assert [run.entries != [] for run in runs] == [True, False, False, False], "held once"
    [entry] = quarantine.entries(settings.quarantine_dir)
    assert (entry.state, entry.first) == ("pending", "2024-02-29T20:00:00Z")
    assert completeness.read_state(settings.candles_dir, BTC).rejected == {
        int(bad_hour.value // 1_000_000): 2
    }
    [hole] = cli_json(tmp_path, "gaps")
    assert (hole["start"], hole["candles"], hole["state"]) == ("2024-02-29T20:00:00Z", 1, "quarantined")
    recorded = ledger.read(settings.ledger_dir)
    assert recorded["quarantined"].tolist() == [1, 1, 0, 0] and recorded["gaps"].tolist() == [0, 0, 0, 0]
