"""The forecast of record on the real hourly flow, with no client ever calling ``/predict``: a model trained
on the bundled candles and promoted in a temporary BentoML store; the ``ingest`` flow (Prefect server,
replay exchange, Redis, Feast) run hour after hour, and twice in the last hour; its ``record-forecasts``
task logs one forecast of record per symbol and hour; the ``monitor`` flow scores each one whose hour has
closed against the recorded candle; the API's scoreboard, Performance view and Prometheus gauges show them
from the first hour."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows.ingest import ingest
from flows.monitor import monitor
from hourcast.api import asgi
from hourcast.dev.replay.server import ReplayServer
from hourcast.monitor import scoring
from hourcast.serving.prediction_log import read_log
from tests.support.models import promote_a_model
from tests.support.prefect import finished_task_runs, flow_settings, run_id

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
START = pd.Timestamp("2024-03-01", tz="UTC")  # the replay clock of the `replay` fixture
HOUR = pd.Timedelta(hours=1)
HOURS = 4  # hourly runs after the first


@pytest.mark.usefixtures("prefect_server", "bentoml_store")
def test_every_ingest_hour_logs_one_record_per_symbol_and_the_monitor_scores_it_without_clients(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    replay: ReplayServer,
    redis_db: str,
    recorded_files: dict[str, pd.DataFrame],
) -> None:
    settings = flow_settings(monkeypatch, tmp_path, replay, redis_db, tuple(SYMBOLS), default_backfill_days=3)
    tag = promote_a_model(settings, recorded_files, SYMBOLS, START - 3 * 24 * HOUR)

    hours = []  # the as_of of each run: the newest closed candle
    for hour in range(HOURS + 1):
        if hour:
            replay.exchange.advance(3600)
        state = ingest(return_state=True)
        assert state.is_completed(), (hour, state.message)
        hours.append(START + (hour - 1) * HOUR)
        runs = finished_task_runs(run_id(state), ("materialize", "record-forecasts"))
        assert runs["record-forecasts"].state.is_completed()
        assert runs["materialize"].end_time <= runs["record-forecasts"].start_time  # after the materialize
    again = ingest(return_state=True)  # the same hour again: nothing more is logged
    assert again.is_completed(), again.message
    assert finished_task_runs(run_id(again), ("record-forecasts",))["record-forecasts"].state.is_completed()

    log = read_log(settings.predictions_dir)
    assert (log["source"] == "record").all()  # no client asked: only records
    assert (log["model"] == tag).all()
    assert sorted(zip(log["symbol"], log["as_of"], strict=True)) == [
        (symbol, hour) for symbol in SYMBOLS for hour in hours
    ]
    assert (log["target_time"] == log["as_of"] + HOUR).all()
    for row in log.itertuples():
        recorded = recorded_files[row.symbol]
        assert row.last_close == float(recorded.loc[recorded["ts"] == row.as_of, "close"].iloc[0])
        assert row.band_low < row.predicted_close < row.band_high

    state = monitor(return_state=True)
    assert state.is_completed(), state.message
    report = state.result()
    assert (report["added"], report["pending"]) == (len(SYMBOLS) * HOURS, len(SYMBOLS))  # the newest: open

    scores = scoring.read_scores(settings.scores_dir)
    assert sorted(zip(scores["symbol"], scores["as_of"], strict=True)) == [
        (symbol, hour) for symbol in SYMBOLS for hour in hours[:-1]
    ]
    assert (scores["source"] == "record").all() and (scores["status"] == scoring.SCORED).all()
    logged = log.set_index(["symbol", "as_of"])
    for row in scores.itertuples():
        recorded = recorded_files[row.symbol]
        realised = float(recorded.loc[recorded["ts"] == row.target_time, "close"].iloc[0])
        assert row.realised_close == realised
        assert row.error == logged.loc[(row.symbol, row.as_of), "predicted_close"] - realised

    # what the API shows from the scores, though nobody ever asked it for a forecast
    board = asgi.scoreboard_body(settings, "BTC/USDT", "24h")
    [served] = [row for row in board.rows if row.model == "all"]
    assert served.hours == HOURS
    view = asgi.performance_body(settings, "BTC/USDT", 168, tag)
    assert [hour.source for hour in view.history] == ["record"] * HOURS
    assert [pd.Timestamp(hour.target_time) for hour in view.history] == [as_of + HOUR for as_of in hours[:-1]]
    metrics = asgi.prometheus_body(settings, tag, {})
    assert f'hourcast_forecast_hours{{symbol="ETH/USDT",window="24h",model="all"}} {HOURS}' in metrics
