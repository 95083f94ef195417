"""Ingestion end to end: real ccxt against the replay exchange, real GX validation, real Parquet store."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hourcast.cli.app import app
from hourcast.data import ledger, quarantine, store
from hourcast.data.candles import ORDER_FLOW_COLUMNS, to_ms
from hourcast.data.exchange import ExchangeFailure
from hourcast.data.ingest import Ingestor, make_ingestor
from hourcast.data.validation import CandleValidator
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.features.compute import LOOKBACK, compute_features
from tests.support.data import replay_settings

JAN, MAR = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC")
BTC = store.Series("binance", "BTC/USDT", "1h")
HOUR = pd.Timedelta(hours=1)


def stored(home: Path) -> pd.DataFrame:
    return store.load_candles(home / "candles", BTC)


def assert_matches_recording(frame: pd.DataFrame, recorded: pd.DataFrame) -> None:
    """Every stored candle equals the recorded one, once each."""
    assert frame["ts"].is_unique and frame["ts"].is_monotonic_increasing
    expected = recorded.set_index("ts").loc[frame["ts"]].reset_index()
    pd.testing.assert_frame_equal(frame[expected.columns], expected)
    assert frame[ORDER_FLOW_COLUMNS].isna().all(axis=None)  # the recording has none: none is invented


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

    [rerun] = ingestor.backfill(JAN, MAR)  # stored and complete: nothing is fetched again
    assert (rerun.fetched, rerun.new, rerun.duplicates) == (0, 0, 0)
    runs = ledger.read(tmp_path / "ledger")
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


def test_a_bad_row_is_quarantined_the_rest_stored_and_its_hour_stays_a_gap(
    tmp_path: Path, replay: ReplayServer, recorded_files: dict[str, pd.DataFrame]
) -> None:
    settings = replay_settings(tmp_path, replay, fetch_limit=500)
    ingestor = make_ingestor(settings)
    ingestor.backfill(JAN, JAN + pd.Timedelta(days=10))  # 240 good candles first
    replay.exchange.set_faults({"malformed": {"count": 1}, "seed": 3})
    [summary] = ingestor.ingest()
    assert (summary.status, summary.quarantined, summary.new) == ("quarantined", 1, 1199)
    [entry] = quarantine.entries(settings.quarantine_dir)
    assert (entry.kind, entry.rows, entry.state) == ("rows", 1, "pending") and summary.entries == [entry.id]
    bad_hour = pd.Timestamp(entry.first)
    stem = entry.stem(settings.quarantine_dir)
    assert json.loads(stem.with_suffix(".json").read_text())["success"] is False
    assert "<html" in stem.with_suffix(".html").read_text().lower()
    frame = stored(tmp_path)
    assert len(frame) == 1439 and bad_hour not in set(frame["ts"]), "a rejected row is never merged"
    assert_matches_recording(frame, recorded_files["BTC/USDT"])
    run = ledger.read(settings.ledger_dir).iloc[-1]
    assert run["quarantined_ranges"] == f"{bad_hour:%Y-%m-%dT%H:%M:%SZ}+1" and run["gaps"] == 0

    # the features treat the quarantined hour as a gap: no window crosses it
    table = compute_features(frame)
    assert not ((table["as_of"] >= bad_hour) & (table["as_of"] < bad_hour + LOOKBACK * HOUR)).any()
    assert len(table) == len(frame) - 2 * (LOOKBACK - 1)  # two runs of candles, split by the hour

    [again] = ingestor.ingest()  # resumes after what was judged: nothing is quarantined twice
    assert (again.fetched, again.status) == (0, "ok") and len(
        quarantine.entries(settings.quarantine_dir)
    ) == 1

    # a user repairs the rows file from another source, then releases it: re-validated and merged, once
    right = recorded_files["BTC/USDT"].set_index("ts").loc[[bad_hour]].reset_index()
    rows = quarantine.read_rows(settings.quarantine_dir, entry)
    rows[["open", "high", "low", "close", "volume"]] = right[["open", "high", "low", "close", "volume"]]
    rows.to_parquet(stem.with_suffix(".parquet"), index=False)
    cli = CliRunner()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HOURCAST_HOME", str(tmp_path))
        released = cli.invoke(app, ["quarantine", "release", entry.id, "--note", "fixed by hand"])
        assert released.exit_code == 0 and "1 candles merged" in released.output, released.output
        twice = cli.invoke(app, ["quarantine", "release", entry.id])
        assert twice.exit_code == 1 and "already released" in twice.output
    assert_matches_recording(stored(tmp_path), recorded_files["BTC/USDT"])
    assert len(stored(tmp_path)) == 1440
    [rerun] = ingestor.backfill(JAN, MAR)  # stored and complete: nothing to fetch
    assert (rerun.fetched, rerun.new, rerun.status) == (0, 0, "ok")


def test_an_exact_duplicate_is_one_candle(
    tmp_path: Path, replay: ReplayServer, recorded_files: dict[str, pd.DataFrame]
) -> None:
    ingestor = make_ingestor(replay_settings(tmp_path, replay, fetch_limit=500))
    replay.exchange.set_faults({"duplicate": {"count": 1}, "seed": 3})
    [summary] = ingestor.backfill(JAN, MAR)
    assert (summary.status, summary.new, summary.duplicates, summary.quarantined) == ("ok", 1440, 1, 0)
    assert_matches_recording(stored(tmp_path), recorded_files["BTC/USDT"])


def dirty_feed(recorded: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame, list[str]]:
    """100 days of the recorded BTC feed made dirty as real ones are: a 10-hour halt with off-hour candles
    published after it, more off-hour candles beside on-hour ones, shorter outages, a zero-volume candle.

    Returns the feed, its 43 off-hour rows and the gap ranges the ledger must report (the halt's hours hold
    their off-hour candles: quarantined, not gaps).
    """
    feed = recorded.iloc[: 100 * 24].reset_index(drop=True)
    feed.loc[1200, ["open", "high", "low", "close"]] = feed.loc[1199, "close"]
    feed.loc[1200, "volume"] = 0.0  # a flat, zero-volume hour: a valid candle
    halt = list(range(2000, 2010))
    off_hour = pd.concat(
        [
            feed.loc[halt].assign(ts=feed.loc[halt, "ts"] + pd.Timedelta(minutes=30)),  # after the halt
            feed.loc[900:932].assign(ts=feed.loc[900:932, "ts"] + pd.Timedelta(minutes=15)),  # beside
        ]
    )
    dropped = [*range(300, 305), 1500, *halt]
    gaps = [f"{feed.loc[i, 'ts']:%Y-%m-%dT%H:%M:%SZ}+{n}" for i, n in ((300, 5), (1500, 1))]
    feed = pd.concat([feed.drop(index=dropped), off_hour]).astype({"ts": "datetime64[ms, UTC]"})
    off_hour = off_hour.astype({"ts": "datetime64[ms, UTC]"}).sort_values("ts").reset_index(drop=True)
    return feed.sort_values("ts").reset_index(drop=True), off_hour, gaps


def test_a_dirty_feed_backfills_to_the_end(tmp_path: Path, btc_recorded: pd.DataFrame) -> None:
    feed, off_hour, gaps = dirty_feed(btc_recorded)
    on_hour = feed.loc[feed["ts"].dt.minute == 0].reset_index(drop=True)
    exchange = ReplayExchange({"BTC/USDT": feed}, now=on_hour["ts"].iloc[-1] + HOUR)
    with ReplayServer(exchange) as server:
        settings = replay_settings(tmp_path, server)
        [summary] = make_ingestor(settings).backfill(feed["ts"].iloc[0])
        assert summary.status == "quarantined" and summary.last == on_hour["ts"].iloc[-1]
        assert (summary.new, summary.quarantined, summary.missing_candles) == (len(on_hour), 43, 6)

        # stored: exactly the valid on-hour rows, the zero-volume candle among them
        frame = stored(tmp_path)
        pd.testing.assert_frame_equal(frame[on_hour.columns], on_hour)
        assert (frame["volume"] == 0.0).sum() == 1
        # the ledger reports every hour left out; the quarantine holds exactly the off-hour rows
        [run] = ledger.read(settings.ledger_dir).to_dict("records")
        assert run["gap_ranges"] == ", ".join(gaps) and run["gaps"] == 6 and run["quarantined"] == 43
        beside, after = off_hour["ts"].iloc[0], off_hour["ts"].iloc[33]  # 33 at :15, then 10 at :30
        assert run["quarantined_ranges"] == f"{beside:%Y-%m-%dT%H:%M:%SZ}+33, {after:%Y-%m-%dT%H:%M:%SZ}+10"
        held = quarantine.entries(settings.quarantine_dir)
        assert {entry.kind for entry in held} == {"rows"}
        rows = pd.concat([quarantine.read_rows(settings.quarantine_dir, e) for e in held])
        kept = rows.sort_values("ts").reset_index(drop=True)[off_hour.columns]
        pd.testing.assert_frame_equal(kept, off_hour, check_dtype=False)
        assert all(reason.startswith("ts is aligned to 1h") for e in held for reason in e.reasons)
        # features: no window crosses a missing hour
        table = compute_features(frame)
        present = set(frame["ts"])
        assert all(all(as_of - k * HOUR in present for k in range(LOOKBACK)) for as_of in table["as_of"])

        # a re-run resumes: only the halt's hours (not stored, their off-hour candles held) are asked for
        # again; nothing is stored or held twice
        [again] = make_ingestor(settings).backfill(feed["ts"].iloc[0])
        assert (again.fetched, again.new, again.quarantined, again.entries) == (10, 0, 10, [])
        assert len(quarantine.entries(settings.quarantine_dir)) == len(held)

        cli = CliRunner()
        with pytest.MonkeyPatch.context() as env:
            env.setenv("HOURCAST_HOME", str(tmp_path))
            listed = [
                json.loads(line)
                for line in cli.invoke(app, ["quarantine", "list", "--json"]).output.splitlines()
            ]
            assert [line["id"] for line in listed] == [e.id for e in held]
            assert sum(line["rows"] for line in listed) == 43
            shown = json.loads(cli.invoke(app, ["quarantine", "show", held[0].id, "--json"]).output)
            assert len(shown["candles"]) == held[0].rows and shown["reasons"] == held[0].reasons
            refused = cli.invoke(app, ["quarantine", "release", held[0].id])
            assert refused.exit_code == 1 and "still fails validation" in refused.output
            reviewed = cli.invoke(app, ["quarantine", "release", held[0].id, "--reviewed"])
            assert reviewed.exit_code == 0
            pending = cli.invoke(app, ["quarantine", "list", "--state", "pending", "--json"]).output
            assert len(pending.splitlines()) == len(held) - 1
        pd.testing.assert_frame_equal(stored(tmp_path)[on_hour.columns], on_hour)


def test_missing_candles_are_recorded_as_gaps_not_invented(tmp_path: Path, replay: ReplayServer) -> None:
    ingestor = make_ingestor(replay_settings(tmp_path, replay))
    replay.exchange.set_faults({"missing": {"count": 1}, "seed": 1})
    [summary] = ingestor.backfill(JAN, MAR)
    assert summary.status == "ok" and summary.new == 1439 and summary.missing_candles == 1
    assert len(stored(tmp_path)) == 1439
    run = ledger.read(tmp_path / "ledger").iloc[-1]
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
    assert "the exchange binance has no market 'DOGE/USDT'" in failed.stderr


def test_a_permanent_error_fails_at_once_and_is_never_retried(tmp_path: Path, replay: ReplayServer) -> None:
    source = make_ingestor(replay_settings(tmp_path, replay)).source
    source.load_markets()
    with pytest.raises(ExchangeFailure, match="the exchange binance has no market for that symbol"):
        next(source.pages("DOGE/USDT", "1h", to_ms(JAN), to_ms(MAR), 1000))
    assert source.retries == 0


def test_a_failing_batch_rule_stops_the_run_and_the_next_run_fetches_the_page_again(
    tmp_path: Path, replay: ReplayServer, recorded_files: dict[str, pd.DataFrame]
) -> None:
    settings = replay_settings(tmp_path, replay)
    right = make_ingestor(settings)
    # a validator expecting 4h candles: "timeframe is 4h", a batch rule, fails for the whole page
    wrong = Ingestor(settings, right.source, partial(CandleValidator, "4h"))
    [summary] = wrong.backfill(JAN, MAR)
    assert (summary.status, summary.new, summary.quarantined) == ("quarantined", 0, 1000)
    assert "the run stopped before it" in summary.message and "timeframe is 4h" in summary.message
    [entry] = quarantine.entries(settings.quarantine_dir)
    assert (entry.kind, entry.rows) == ("batch", 1000) and stored(tmp_path).empty
    [twice] = wrong.backfill(JAN, MAR)  # the same page failing again is held once
    assert "(already held)" in twice.message and len(quarantine.entries(settings.quarantine_dir)) == 1

    [again] = right.ingest()  # a batch entry is not a judged range: the same page is fetched again
    assert (again.status, again.new) == ("ok", 48) and again.as_json()["first"] == "2024-02-28T00:00:00Z"


def test_hourly_runs_quarantine_an_off_hour_candle_published_in_the_last_hour(
    tmp_path: Path, btc_recorded: pd.DataFrame
) -> None:
    """Live, an off-hour candle (10:30) is judged with its hour's period, never skipped between two runs."""
    feed, off_hour, _ = dirty_feed(btc_recorded)
    first = off_hour["ts"].iloc[33]  # the first off-hour candle published after the halt
    exchange = ReplayExchange({"BTC/USDT": feed}, now=first + pd.Timedelta(minutes=35))  # its period closed
    with ReplayServer(exchange) as server:
        ingestor = make_ingestor(replay_settings(tmp_path, server))
        runs = [ingestor.ingest()[0]]
        for _ in range(2):
            exchange.advance(3600)
            runs.append(ingestor.ingest()[0])
    # each run judges its new hour's off-hour candle, and asks again for the earlier ones (bounded
    # retries of quarantined hours): they come back off-hour, held once
    assert [(run.quarantined, run.new) for run in runs] == [(1, 48 - 1), (2, 0), (3, 0)]
    held = quarantine.entries(tmp_path / "quarantine")
    rows = pd.concat([quarantine.read_rows(tmp_path / "quarantine", entry) for entry in held])
    # each was served still in progress the first time (the replay serves an off-hour candle whose
    # 60 minutes have not passed as partial), so its final values are held again when asked again
    assert sorted(set(rows["ts"])) == off_hour["ts"].iloc[33:36].tolist()


def test_a_page_blocked_hour_after_hour_is_kept_once(tmp_path: Path, replay: ReplayServer) -> None:
    settings = replay_settings(tmp_path, replay)
    right = make_ingestor(settings)
    right.ingest()
    wrong = Ingestor(settings, right.source, partial(CandleValidator, "4h"))
    for hour in range(1, 4):  # the blocked page grows by one candle per run
        replay.exchange.advance(3600)
        [run] = wrong.ingest()
        assert (run.status, run.quarantined) == ("quarantined", hour)
    [entry] = quarantine.entries(settings.quarantine_dir)
    assert (entry.kind, entry.rows, entry.first) == ("batch", 3, "2024-03-01T00:00:00Z")
    assert len(list(entry.stem(settings.quarantine_dir).parent.glob("*"))) == 4  # rows, report, page, entry
    [healed] = right.ingest()  # the page read right at last: stored, its entry resolved
    assert (healed.status, healed.new) == ("ok", 3)
    assert [e.state for e in quarantine.entries(settings.quarantine_dir)] == ["resolved"]
