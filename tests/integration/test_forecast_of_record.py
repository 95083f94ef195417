"""The forecast of record on the real hourly flow, with no client ever calling ``/predict``: a model trained
on the bundled candles and promoted in a temporary BentoML store; the ``ingest`` flow (Prefect server,
replay exchange, Redis, Feast) run hour after hour, and twice in the last hour; its ``record-forecasts``
task logs one forecast of record per symbol and hour; the ``monitor`` flow scores each one whose hour has
closed against the recorded candle; the API's scoreboard, Performance view and Prometheus gauges show them
from the first hour. And the hour of a run that never reached its record step (a killed run): the next run
records it late, exactly as it would have been, and the monitor scores it."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from flows import ingest_tasks
from flows.ingest import ingest
from flows.monitor import monitor
from hourcast.api import asgi
from hourcast.dev.replay.server import ReplayServer
from hourcast.features import featurestore
from hourcast.features.compute import FEATURE_NAMES
from hourcast.monitor import scoring
from hourcast.serving import record
from hourcast.serving.prediction_log import read_log
from hourcast.serving.predictor import load_model, online_forecasts
from hourcast.settings import Settings
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


def online_forecasts_now(settings: Settings, tag: str) -> dict[str, dict[str, object]]:
    """What the record step would log now: the production model's forecast of each symbol from the online
    features, through the one predict path (the answer's fields and its features)."""
    feature_store = featurestore.open_store(settings)
    values = feature_store.get_online_features(
        features=feature_store.get_feature_service(featurestore.SERVING_SERVICE),
        entity_rows=[{"symbol": symbol} for symbol in SYMBOLS],
    ).to_dict()
    computed = online_forecasts(load_model(settings, tag), SYMBOLS, values, HOUR)
    return {
        symbol: forecast.prediction.model_dump() | forecast.prediction.features
        for symbol, forecast in computed.items()
        if forecast is not None
    }


@pytest.mark.usefixtures("prefect_server", "bentoml_store")
def test_the_hour_of_a_run_killed_before_its_record_is_recorded_late_by_the_next_run_and_scored(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    replay: ReplayServer,
    redis_db: str,
    recorded_files: dict[str, pd.DataFrame],
) -> None:
    settings = flow_settings(monkeypatch, tmp_path, replay, redis_db, tuple(SYMBOLS), default_backfill_days=3)
    tag = promote_a_model(settings, recorded_files, SYMBOLS, START - 3 * 24 * HOUR)
    on_time, missed = START - HOUR, START
    assert ingest(return_state=True).is_completed()  # the record of on_time

    replay.exchange.advance(3600)
    with monkeypatch.context() as killed:  # the run stops after its materialize, as a SIGKILLed one does
        killed.setattr(ingest_tasks, "record_forecasts", lambda settings: None)
        assert ingest(return_state=True).is_completed()
    would_have_been = online_forecasts_now(settings, tag)
    assert {forecast["as_of"] for forecast in would_have_been.values()} == {f"{missed:%Y-%m-%dT%H:%M:%SZ}"}
    assert set(read_log(settings.predictions_dir)["as_of"]) == {on_time}

    for _ in range(2):  # the next run records its own hour and the missed one; one more closes its target
        replay.exchange.advance(3600)
        state = ingest(return_state=True)
        assert state.is_completed(), state.message
        assert finished_task_runs(run_id(state), ("record-forecasts",))[
            "record-forecasts"
        ].state.is_completed()
    hours = [on_time, missed, START + HOUR, START + 2 * HOUR]
    assert record.record_forecasts(settings).files == []  # made again: logged once

    log = read_log(settings.predictions_dir)
    assert (log["source"] == "record").all() and (log["model"] == tag).all()
    assert sorted(zip(log["symbol"], log["as_of"], strict=True)) == [
        (symbol, hour) for symbol in SYMBOLS for hour in hours
    ]
    late = log.loc[log["as_of"] == missed].set_index("symbol").sort_index()
    expected = pd.DataFrame.from_dict(would_have_been, orient="index").sort_index()
    expected = expected.assign(
        band_low=expected["band"].str["low"], band_high=expected["band"].str["high"], p_up=expected["p_up"]
    )
    same = ["last_close", "predicted_close", "predicted_return", "direction", "band_low", "band_high"]
    pd.testing.assert_frame_equal(  # computed exactly as the missed run would have
        late[[*same, "p_up", *FEATURE_NAMES]].astype({"p_up": "float64"}),
        expected[[*same, "p_up", *FEATURE_NAMES]].astype(
            {"p_up": "float64", **dict.fromkeys(FEATURE_NAMES, "float64")}
        ),
        check_dtype=False,
        check_names=False,
    )
    assert (late["target_time"] == missed + HOUR).all()
    # and says it was made late: an hour after its target closed by the replay clock, stale
    assert late["stale"].all() and (late["features_age_seconds"] == 3600).all()
    assert (late["clock"] == "exchange").all()
    others = log.loc[log["as_of"] != missed]
    assert not others["stale"].any() and (others["features_age_seconds"] == 0).all()
    made = log.groupby("as_of")["requested_at"].min()
    assert made[missed] > made[START + HOUR] - pd.Timedelta(seconds=1) > made[on_time]  # with the next hour

    state = monitor(return_state=True)
    assert state.is_completed(), state.message
    scores = scoring.read_scores(settings.scores_dir)
    assert sorted(zip(scores["symbol"], scores["as_of"], strict=True)) == [
        (symbol, hour) for symbol in SYMBOLS for hour in hours[:-1]
    ]
    assert (scores["source"] == "record").all() and (scores["status"] == scoring.SCORED).all()
    assert sorted(scores.loc[scores["stale"], "as_of"].unique()) == [missed]  # the monitor tells it was late
    board = asgi.scoreboard_body(settings, "BTC/USDT", "24h")
    [served] = [row for row in board.rows if row.model == "all"]
    assert served.hours == len(hours) - 1
