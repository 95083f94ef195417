"""The Prefect flows end to end against the suite's Prefect server (one per run, shared by the workers), the
replay exchange, the real Redis, Feast and a temporary BentoML store: 48 simulated hours of `ingest` (one
quarantined), `backfill`, `retrain`, two `ingest` runs started at once, the writer limit and the published
artifacts.

The flows are called in-process; they build ``Settings()`` from the HOURCAST_* variables set here.
"""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any
from uuid import UUID

import pandas as pd
import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterFlowRunId,
    FlowRunFilter,
    FlowRunFilterParentFlowRunId,
)
from prefect.client.schemas.objects import State
from prefect.exceptions import ObjectNotFound

from flows.backfill import backfill
from flows.ingest import ingest
from flows.retention import retention
from flows.retrain import retrain
from hourcast.data import quarantine, store
from hourcast.dev.replay.server import ReplayServer
from hourcast.features import featurestore
from hourcast.model import registry
from hourcast.settings import Settings
from tests.support.prefect import finished_task_runs, run_id
from tests.support.prefect import flow_settings as configure

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
START = pd.Timestamp("2024-03-01", tz="UTC")  # the replay clock of the `replay` fixture
HOUR = pd.Timedelta(hours=1)
INGEST_KEYS = {"ingest-counts", "ingest-validation", "online-features"}


def stored(settings: Settings, symbol: str) -> pd.DataFrame:
    return store.load_candles(
        settings.candles_dir, store.Series(settings.exchange, symbol, settings.timeframe)
    )


def recorded_between(recorded: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> pd.Series:
    """Open times the exchange has for ``first <= ts <= last``."""
    return recorded.loc[(recorded["ts"] >= first) & (recorded["ts"] <= last), "ts"].reset_index(drop=True)


def assert_exact_candles(
    settings: Settings, server: ReplayServer, recorded: dict[str, pd.DataFrame], first: pd.Timestamp
) -> None:
    """Every recorded candle from ``first`` to the exchange's last closed one is stored once, nothing else."""
    last_closed = pd.Timestamp(server.exchange.clock_state()["now"]) - HOUR
    for symbol in SYMBOLS:
        candles = stored(settings, symbol)
        assert candles["ts"].is_unique, f"{symbol}: duplicate candles"
        assert candles["ts"].iloc[-1] == last_closed, symbol
        expected = recorded_between(recorded[symbol], first, last_closed)
        pd.testing.assert_series_equal(candles["ts"], expected, check_names=False)


def online_as_of(settings: Settings) -> dict[str, pd.Timestamp]:
    """``as_of`` (open time of the newest candle behind the features) served online per symbol."""
    feature_store = featurestore.open_store(settings)
    service = feature_store.get_feature_service(featurestore.SERVING_SERVICE)
    rows = feature_store.get_online_features(features=service, entity_rows=[{"symbol": s} for s in SYMBOLS])
    frame = rows.to_df().set_index("symbol")
    return {symbol: pd.Timestamp(frame.loc[symbol, "as_of"]) for symbol in SYMBOLS}


def artifacts(*flow_run_ids: UUID) -> dict[str, Any]:
    """The artifacts the given flow runs published, by key."""
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=list(flow_run_ids)))
        )
    return {artifact.key: artifact.data for artifact in found if artifact.key}


def subflow_ids(parent: UUID) -> list[UUID]:
    with get_client(sync_client=True) as client:
        children = client.read_flow_runs(
            flow_run_filter=FlowRunFilter(parent_flow_run_id=FlowRunFilterParentFlowRunId(any_=[parent]))
        )
    return [child.id for child in children]


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_server", "bentoml_store")
def test_48_hours_of_ingest_then_backfill_and_retrain(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    replay: ReplayServer,
    redis_db: str,
    recorded_files: dict[str, pd.DataFrame],
) -> None:
    # train_days small enough for the two weeks of data; a generous tolerance so the first model is promoted
    settings = configure(
        monkeypatch,
        tmp_path,
        replay,
        redis_db,
        default_backfill_days=3,
        train_days=9,
        promotion_tolerance=1.0,
    )
    exchange = replay.exchange
    first_stored = START - 3 * 24 * HOUR

    began = time.perf_counter()
    assert ingest(return_state=True).is_completed()  # into the empty store: the default 3 days
    assert_exact_candles(settings, replay, recorded_files, first_stored)
    first_run = time.perf_counter() - began

    durations: list[float] = []
    quarantine_hour = 20
    for hour in range(1, 49):
        exchange.advance(3600)
        if hour == quarantine_hour:  # corrupts BTC's one closed candle (seed 1 picks it, not the open one)
            exchange.set_faults({"seed": 1, "malformed": {"count": 1}})
        began = time.perf_counter()
        state = ingest(return_state=True)
        durations.append(time.perf_counter() - began)
        if hour != quarantine_hour:
            assert state.is_completed(), (hour, state.message)
            continue
        # a quarantined symbol fails the run, but only after the rest was stored, materialized and reported
        assert state.is_failed()
        error = str(state.result(raise_on_failure=False))
        assert error.startswith("BTC/USDT: quarantined: 1 of 1 candles quarantined"), error
        now = START + hour * HOUR
        assert stored(settings, "BTC/USDT")["ts"].iloc[-1] == now - 2 * HOUR
        assert online_as_of(settings)["ETH/USDT"] == now - HOUR
        published = artifacts(run_id(state))
        assert set(published) == INGEST_KEYS
        assert "**quarantined** 1 candles" in published["ingest-validation"]
        exchange.clear_faults()
    print(
        f"\ningest: first run {first_run:.2f} s; 48 hourly runs {sum(durations):.1f} s "
        f"(median {sorted(durations)[24]:.2f} s, max {max(durations):.2f} s)"
    )

    # 48 hours later: the exchange's candles, the newest online; the quarantined hour healed (the next
    # hourly run asked for it again and got it clean) and its entry is resolved
    last_closed = START + 47 * HOUR
    for symbol in SYMBOLS:
        expected = recorded_between(recorded_files[symbol], first_stored, last_closed)
        assert stored(settings, symbol)["ts"].tolist() == expected.tolist(), symbol
    assert online_as_of(settings) == dict.fromkeys(SYMBOLS, last_closed)
    [entry] = quarantine.entries(settings.quarantine_dir)
    assert (entry.first, entry.state) == (
        f"{START + (quarantine_hour - 1) * HOUR:%Y-%m-%dT%H:%M:%SZ}",
        "resolved",
    )
    published = artifacts(run_id(state))
    counts = pd.read_json(io.StringIO(published["ingest-counts"]))
    assert counts[["symbol", "status", "new", "duplicates"]].to_dict("records") == [
        {"symbol": s, "status": "ok", "new": 1, "duplicates": 0} for s in SYMBOLS
    ]
    assert "passed (1 candles)" in published["ingest-validation"]
    assert (
        str(settings.validation_dir.resolve() / "binance_BTC-USDT_1h_latest.html")
        in (published["ingest-validation"])
    )

    # more history on demand, then the weekly retrain
    began = time.perf_counter()
    state = backfill(since="2024-02-18", return_state=True)
    assert state.is_completed(), state.message
    assert_exact_candles(settings, replay, recorded_files, pd.Timestamp("2024-02-18", tz="UTC"))
    assert set(artifacts(run_id(state))) == {"backfill-counts", "backfill-validation", "online-features"}
    backfill_seconds = time.perf_counter() - began

    began = time.perf_counter()
    state = retrain(return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    tag = registry.production_tag(settings.registry_dir, settings.model_name)
    assert result["promoted"] and tag == result["tag"], result["reason"]
    assert result["window"]["end"] == str(last_closed)  # the last labelled hour closes with the last candle
    print(f"backfill {backfill_seconds:.1f} s; retrain {time.perf_counter() - began:.1f} s")

    published = artifacts(run_id(state))  # retention is a deployment of its own, not part of retrain
    assert set(published) == {"training-metrics", "promotion-decision"}
    assert f"**{tag}: promoted to production**" in published["promotion-decision"]
    assert "| persistence |" in published["training-metrics"]
    assert subflow_ids(run_id(state)) == []


@pytest.mark.usefixtures("prefect_server")
def test_two_ingest_runs_started_together_never_overlap(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    replay: ReplayServer,
    redis_db: str,
    recorded_files: dict[str, pd.DataFrame],
) -> None:
    settings = configure(monkeypatch, tmp_path, replay, redis_db, default_backfill_days=2)
    assert ingest(return_state=True).is_completed()
    replay.exchange.advance(3 * 3600)
    # whichever run gets the slot first holds it at least 2 s (its first page is slow)
    replay.exchange.set_faults({"slow": {"count": 1}, "slow_seconds": 2.0})

    start = threading.Barrier(2)
    states: list[State] = []

    def run() -> None:
        start.wait()
        states.append(ingest(return_state=True))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(states) == 2 and all(state.is_completed() for state in states)
    assert replay.exchange.fault_counts()["slow"] == 1

    # the guarded work (pull, report, materialize) of one run ends before the other's begins, although the
    # other run had already started: it waited for the slot
    first, second = sorted(guarded_span(run_id(state)) for state in states)
    assert first[1] <= second[0], (first, second)
    assert second[2] < first[1], (first, second)

    rows = [row for state in states for row in state.result()]
    new = {symbol: sum(row["new"] for row in rows if row["symbol"] == symbol) for symbol in SYMBOLS}
    assert new == dict.fromkeys(SYMBOLS, 3)  # one run stored the three hours, the other found nothing new
    assert_exact_candles(settings, replay, recorded_files, START - 2 * 24 * HOUR)


def guarded_span(flow_run_id: UUID) -> tuple[pd.Timestamp, pd.Timestamp, pd.Timestamp]:
    """First start and last end of a run's tasks inside the writer slot, and the start of the run itself."""
    guarded = finished_task_runs(flow_run_id, ("pull-candles", "publish-ingest-report", "materialize"))
    with get_client(sync_client=True) as client:
        started = client.read_flow_run(flow_run_id).start_time
    starts = [r.start_time for r in guarded.values() if r.start_time]
    ends = [r.end_time for r in guarded.values() if r.end_time]
    assert started is not None and len(starts) == len(ends) == len(guarded)
    return pd.Timestamp(min(starts)), pd.Timestamp(max(ends)), pd.Timestamp(started)


@pytest.mark.usefixtures("prefect_server")
def test_exchange_failures_are_retried_once_by_the_client_then_fail_the_run_after_materializing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, replay: ReplayServer, redis_db: str
) -> None:
    settings = configure(monkeypatch, tmp_path, replay, redis_db, default_backfill_days=2, retry_attempts=2)
    assert ingest(return_state=True).is_completed()
    exchange = replay.exchange

    exchange.advance(3600)
    exchange.set_faults({"server_error": {"count": 4}})  # both tries of each symbol's page
    state = ingest(return_state=True)
    assert state.is_failed() and exchange.fault_counts()["server_error"] == 4
    error = str(state.result(raise_on_failure=False))
    assert error.startswith("BTC/USDT: failed: binance klines failed after 2 tries"), error
    assert "\nETH/USDT: failed" in error
    tasks = finished_task_runs(run_id(state), ("pull-candles", "materialize"))
    assert tasks["pull-candles"].run_count == 1, "one retry layer: the exchange client's"
    assert tasks["materialize"].state_name == "Completed"
    assert set(artifacts(run_id(state))) == INGEST_KEYS

    # a permanent error is not retried at all: it fails at once, with a clear message
    state = ingest(symbols=["DOGE/USDT"], return_state=True)
    assert state.is_failed()
    assert "the exchange binance has no market 'DOGE/USDT'" in str(state.result(raise_on_failure=False))
    tasks = finished_task_runs(run_id(state), ("pull-candles",))
    assert tasks["pull-candles"].run_count == 1 and exchange.fault_counts()["server_error"] == 4

    exchange.clear_faults()
    assert ingest(return_state=True).is_completed()  # the next run catches up
    assert online_as_of(settings) == dict.fromkeys(SYMBOLS, START)


@pytest.mark.usefixtures("prefect_server")
def test_a_missing_writer_limit_is_created_and_a_loose_one_fails_the_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, replay: ReplayServer, redis_db: str
) -> None:
    limit = configure(monkeypatch, tmp_path, replay, redis_db).writer_limit
    with get_client(sync_client=True) as client:
        with pytest.raises(ObjectNotFound):
            client.read_global_concurrency_limit_by_name(limit)
        created = retention(return_state=True)
        assert created.is_completed()
        assert client.read_global_concurrency_limit_by_name(limit).limit == 1
        assert "| feature rows |" in artifacts(run_id(created))["retention-report"]

        client.update_global_concurrency_limit(limit, GlobalConcurrencyLimitUpdate(limit=2))
        state = retention(return_state=True)
    assert state.is_failed()
    assert "limit=2" in str(state.result(raise_on_failure=False))
