"""A complete, honest archive: holes are re-requested or confirmed, every gap of a window is counted,
``hourcast gaps`` reads the store and agrees with the ledger, backfills resume, killed runs leave a trace,
two writers of the completeness state at once lose nothing. Real ccxt against the replay exchange, real GX,
real Parquet, real processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from hourcast.cli.app import app
from hourcast.data import completeness, ledger, quarantine, store
from hourcast.data.ingest import make_ingestor
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from tests.support.data import replay_settings
from tests.support.processes import wait_for

BTC = store.Series("binance", "BTC/USDT", "1h")
HOUR = pd.Timedelta(hours=1)
HOURCAST = str(Path(sys.executable).with_name("hourcast"))
HOUR_MS = 3_600_000


def stored(home: Path) -> pd.DataFrame:
    return store.load_candles(home / "candles", BTC)


def gaps_cli(home: Path) -> list[dict]:
    """``hourcast gaps --json`` as the user runs it."""
    with_env = CliRunner().invoke(app, ["gaps", "--json"], env={"HOURCAST_HOME": str(home)})
    assert with_env.exit_code == 0, with_env.output
    return [json.loads(line) for line in with_env.output.splitlines()]


def test_an_hour_left_out_once_is_asked_for_again_and_filled(tmp_path: Path, replay: ReplayServer) -> None:
    settings = replay_settings(tmp_path, replay, default_backfill_days=1)
    ingestor = make_ingestor(settings)
    ingestor.ingest()  # 24 h of history, then hourly runs
    html = tmp_path / "validation" / "binance_BTC-USDT_1h_latest.html"
    rendered = html.stat().st_mtime_ns

    replay.exchange.advance(3600)
    replay.exchange.set_faults({"missing": {"count": 1}})  # the hourly page leaves its one closed hour out
    [hourly] = ingestor.ingest()
    lost = pd.Timestamp("2024-03-01 00:00", tz="UTC")
    assert (hourly.new, hourly.missing_candles, hourly.status) == (0, 1, "ok")
    assert replay.exchange.fault_counts()["missing"] == 1
    assert ledger.read(settings.ledger_dir).iloc[-1]["gap_ranges"] == "2024-03-01T00:00:00Z+1"
    assert gaps_cli(tmp_path) == [
        {
            "symbol": "BTC/USDT",
            "timeframe": "1h",
            "start": "2024-03-01T00:00:00Z",
            "end": "2024-03-01T00:00:00Z",
            "candles": 1,
            "state": "re-requested",
        }
    ]

    replay.exchange.advance(3600)
    [next_run] = ingestor.ingest()
    assert (next_run.new, next_run.gaps) == (2, [])  # the hole and the new hour
    assert lost in set(stored(tmp_path)["ts"]) and gaps_cli(tmp_path) == []
    assert html.stat().st_mtime_ns == rendered, "the same outcome does not render the GX page again"


def test_an_hour_the_exchange_never_serves_becomes_a_confirmed_gap(
    tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    feed = recorded_files["BTC/USDT"]
    hole = pd.Timestamp("2024-02-29 20:00", tz="UTC")
    exchange = ReplayExchange({"BTC/USDT": feed.loc[feed["ts"] != hole]}, now="2024-03-01T00:00:00Z")
    with ReplayServer(exchange) as server:
        settings = replay_settings(tmp_path, server, default_backfill_days=1, gap_retries=3)
        ingestor = make_ingestor(settings)
        runs = [ingestor.ingest()[0]]
        for _ in range(3):
            exchange.advance(3600)
            runs.append(ingestor.ingest()[0])
    assert [run.missing_candles for run in runs] == [1, 1, 1, 0]  # asked 3 times, then no more
    state = completeness.read_state(settings.candles_dir, BTC)
    assert state.confirmed == {int(hole.value // 1_000_000)} and state.tries == {}
    [entry] = gaps_cli(tmp_path)
    assert (entry["start"], entry["candles"], entry["state"]) == ("2024-02-29T20:00:00Z", 1, "confirmed")
    recorded = ledger.read(settings.ledger_dir)
    assert recorded["gaps"].tolist() == [1, 1, 1, 0] and (recorded["status"] == "ok").all()


def test_gaps_at_both_ends_and_an_outage_are_counted_and_listed(
    tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    feed = recorded_files["BTC/USDT"]
    since, until = pd.Timestamp("2024-01-10 05:00", tz="UTC"), pd.Timestamp("2024-01-20", tz="UTC")
    outage = (feed["ts"] >= "2024-01-14") & (feed["ts"] < pd.Timestamp("2024-01-14", tz="UTC") + 75 * HOUR)
    head = (feed["ts"] >= since) & (feed["ts"] < since + 8 * HOUR)
    tail = (feed["ts"] >= until - 8 * HOUR) & (feed["ts"] < until)
    exchange = ReplayExchange({"BTC/USDT": feed.loc[~(outage | head | tail)]}, now="2024-03-01T00:00:00Z")
    with ReplayServer(exchange) as server:
        settings = replay_settings(tmp_path, server, fetch_limit=100)
        [summary] = make_ingestor(settings).backfill(since, until)
    assert summary.missing_candles == 8 + 75 + 8 and len(stored(tmp_path)) == 240 - 5 - 91
    [run] = ledger.read(settings.ledger_dir).to_dict("records")
    assert (
        run["gap_ranges"] == ("2024-01-10T05:00:00Z+8, 2024-01-14T00:00:00Z+75, 2024-01-19T16:00:00Z+8")
        and run["gaps"] == 91
    )
    listed = gaps_cli(tmp_path)  # old hours the exchange left out: confirmed at once
    assert [(g["start"], g["candles"], g["state"]) for g in listed] == [
        ("2024-01-10T05:00:00Z", 8, "confirmed"),
        ("2024-01-14T00:00:00Z", 75, "confirmed"),
        ("2024-01-19T16:00:00Z", 8, "confirmed"),
    ]


def test_a_killed_backfill_leaves_a_trace_and_the_rerun_resumes(
    tmp_path: Path, replay: ReplayServer, recorded_files: dict[str, pd.DataFrame]
) -> None:
    settings = replay_settings(tmp_path, replay, fetch_limit=1000)
    replay.exchange.set_faults({"slow": {"rate": 1.0}, "slow_seconds": 0.1})
    env = {
        **os.environ,
        "HOURCAST_HOME": str(tmp_path),
        "HOURCAST_EXCHANGE_URL": replay.url,
        "HOURCAST_FETCH_LIMIT": "50",
    }
    args = [HOURCAST, "backfill", "--since", "2024-01-01", "--until", "2024-03-01"]
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: len(stored(tmp_path)) >= 200, 60, "the backfill to store 200 candles")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    before = len(stored(tmp_path))
    assert before < 1440
    [trace] = ledger.read(settings.ledger_dir).to_dict("records")
    assert trace["status"] == "started" and trace["message"] == ledger.STARTED_MESSAGE

    replay.exchange.clear_faults()
    [rerun] = make_ingestor(settings).backfill(
        pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC")
    )
    assert rerun.status == "ok" and rerun.new == 1440 - before
    assert rerun.fetched == 1440 - before, "only what the killed run did not store is fetched again"
    frame = stored(tmp_path)
    expected = recorded_files["BTC/USDT"].set_index("ts").loc[frame["ts"]].reset_index()
    assert len(frame) == 1440 and frame["ts"].is_unique
    pd.testing.assert_frame_equal(frame[expected.columns], expected)
    shown = CliRunner().invoke(app, ["ledger", "--json"], env={"HOURCAST_HOME": str(tmp_path)})
    assert [row["status"] for row in json.loads(shown.output)] == ["started", "ok"]


def test_an_hour_holding_only_an_off_hour_candle_is_quarantined_in_the_ledger_and_in_gaps(
    tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    feed = recorded_files["BTC/USDT"]
    off, lost = pd.Timestamp("2024-02-29 20:00", tz="UTC"), pd.Timestamp("2024-02-29 10:00", tz="UTC")
    moved = feed.loc[feed["ts"] == off].assign(ts=off + pd.Timedelta(minutes=30))  # published at 20:30
    feed = pd.concat([feed.loc[~feed["ts"].isin([off, lost])], moved]).sort_values("ts")
    exchange = ReplayExchange({"BTC/USDT": feed}, now="2024-03-01T00:00:00Z")
    with ReplayServer(exchange) as server:
        settings = replay_settings(tmp_path, server, default_backfill_days=1)
        ingestor = make_ingestor(settings)
        [first] = ingestor.ingest()
        exchange.advance(3600)
        [hourly] = ingestor.ingest()
        [backfill] = ingestor.backfill(off - 2 * HOUR, off + 2 * HOUR)
    # the exchange answered for 20:00 (with an off-hour candle, set aside): quarantined, not a gap;
    # 10:00 it left out: a gap, asked for again
    assert (first.missing_candles, first.quarantined, first.status) == (1, 1, "quarantined")
    assert (hourly.missing_candles, hourly.quarantined) == (1, 1)  # 10:00 and 20:00 asked again
    assert hourly.entries == []  # 20:00's answer is the off-hour candle again: already held
    assert (backfill.fetched, backfill.missing_candles, backfill.quarantined) == (1, 0, 1)  # asked again
    assert backfill.entries == []  # already held: not held twice
    assert [entry.last for entry in quarantine.entries(settings.quarantine_dir)] == ["2024-02-29T20:30:00Z"]
    runs = ledger.read(settings.ledger_dir)
    assert runs["gap_ranges"].tolist() == ["2024-02-29T10:00:00Z+1", "2024-02-29T10:00:00Z+1", ""]
    assert runs["quarantined_ranges"].tolist() == ["2024-02-29T20:30:00Z+1"] * 3
    listed = gaps_cli(tmp_path)
    assert [(g["start"], g["candles"], g["state"]) for g in listed] == [
        ("2024-02-29T10:00:00Z", 1, "re-requested"),
        ("2024-02-29T20:00:00Z", 1, "quarantined"),
    ]
    # the ledger's counts agree with `hourcast gaps`: its open gaps are the holes not quarantined
    shown = CliRunner().invoke(app, ["ledger", "--json"], env={"HOURCAST_HOME": str(tmp_path)})
    assert [row["open_gaps"] for row in json.loads(shown.output)] == [1, 1, 0]
    assert sum(g["candles"] for g in listed if g["state"] != "quarantined") == runs["gaps"].iloc[-2]


RACE_WRITER = """
import sys
from pathlib import Path

from hourcast.data import completeness, store

root, first, count = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
series = store.Series("binance", "BTC/USDT", "1h")
print("ready", flush=True)
sys.stdin.readline()  # both writers start together
for slot in range(first, first + 2 * count * 3_600_000, 2 * 3_600_000):
    completeness.update_state(root, series, lambda state: state.record((slot, slot), [slot], set(), 0, 10))
"""


def test_two_processes_saving_the_completeness_state_at_once_lose_nothing(tmp_path: Path) -> None:
    """Two writers (say a backfill and the hourly ingest) each save 100 answers as fast as they can, at
    the same time: every answer of both is in the state file."""
    count = 100
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", RACE_WRITER, str(tmp_path), str(first * HOUR_MS), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for first in (0, 1)  # even hours and odd hours
    ]
    try:
        assert [writer.stdout.readline() for writer in writers] == ["ready\n", "ready\n"]  # type: ignore[union-attr]
        for writer in writers:
            writer.stdin.write("go\n")  # type: ignore[union-attr]
            writer.stdin.flush()  # type: ignore[union-attr]
        assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    finally:
        for writer in writers:
            writer.kill()
            writer.wait()
    state = completeness.read_state(tmp_path, BTC)
    assert state.tries == {slot * HOUR_MS: 1 for slot in range(2 * count)}
    assert (state.start, state.end) == (0, (2 * count - 1) * HOUR_MS)
