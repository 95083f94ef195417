"""The monitor end to end on real parts: a CatBoost model trained on the bundled candles and promoted in a
temporary BentoML store answers 58 simulated hours (three identical answers per hour) through the serving
module's predict path into a real ``PredictionLog``; the candle store receives one recorded candle per hour,
with one BTC/USDT hour missing (a gap). The monitor scores in-process, again (nothing added), after a
restart of the log writer, and in a fresh ``hourcast monitor --json`` process; every score is checked
against the recorded candle itself."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from hourcast.data import store
from hourcast.features.compute import compute_features
from hourcast.model import drift, estimator, registry
from hourcast.monitor import run as monitor_run
from hourcast.monitor import scoring
from hourcast.serving import predictor
from hourcast.serving.prediction_log import PredictionLog, read_log
from hourcast.serving.schema import Band, Prediction
from hourcast.settings import Settings
from tests.support.data import as_candle_frame
from tests.support.models import promote_a_model
from tests.support.processes import wait_for

REPO = Path(__file__).resolve().parents[2]

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
HOUR = pd.Timedelta(hours=1)
START = pd.Timestamp("2024-03-01", tz="UTC")
GAP = START + 30 * HOUR  # BTC/USDT's candle of this hour is never stored
STEPS = 58  # simulated hours: the newest stored candle is START + k hours at step k
ANSWERS = 3


def candle(recorded: pd.DataFrame, stamp: pd.Timestamp) -> pd.DataFrame:
    return recorded.loc[recorded["ts"] == stamp]


def store_hours(
    settings: Settings, recorded: dict[str, pd.DataFrame], first: pd.Timestamp, last: pd.Timestamp
) -> None:
    for symbol in SYMBOLS:
        frame = recorded[symbol]
        rows = frame.loc[(frame["ts"] >= first) & (frame["ts"] <= last)]
        if symbol == "BTC/USDT":
            rows = rows.loc[rows["ts"] != GAP]
        series = store.Series(settings.exchange, symbol, settings.timeframe)
        store.upsert(settings.candles_dir, series, as_candle_frame(rows, symbol))


def answer(settings: Settings, loaded: predictor.LoadedModel, log: PredictionLog, now: pd.Timestamp) -> int:
    """What the API answers at ``now`` for each symbol whose features exist, logged ``ANSWERS`` times."""
    rows = []
    for symbol in SYMBOLS:
        series = store.Series(settings.exchange, symbol, settings.timeframe)
        recent = store.load_candles(settings.candles_dir, series, start=now - 30 * HOUR)
        features = compute_features(recent)
        rows.append(features.loc[features["as_of"] == now])
    rows = pd.concat(rows, ignore_index=True)
    if rows.empty:
        return 0
    forecast = predictor.forecast_frame(loaded, rows)  # the serving path's forecast of these rows
    returns, closes = forecast["predicted_return"].to_numpy(), forecast["predicted_close"].to_numpy()
    predictions = []
    for index, row in rows.iterrows():
        close = float(closes[index])
        predictions.append(
            Prediction(
                symbol=row["symbol"],
                as_of=f"{now:%Y-%m-%dT%H:%M:%SZ}",
                target_time=f"{now + HOUR:%Y-%m-%dT%H:%M:%SZ}",
                last_close=float(row["last_close"]),
                predicted_close=close,
                predicted_return=float(returns[index]),
                direction="up" if returns[index] >= 0 else "down",
                persistence_close=float(row["last_close"]),
                model=loaded.tag,
                features_age_seconds=60.0,
                stale=False,
                band=Band(
                    low=predictor.forecast_band(close, loaded.band[0]),
                    high=predictor.forecast_band(close, loaded.band[1]),
                    quantiles=[0.05, 0.95],
                ),
                clock="exchange",
            ).with_features({name: float(row[name]) for name in drift.DRIFT_FEATURES})
        )
    for answer_index in range(ANSWERS):
        requested = (now + HOUR + pd.Timedelta(minutes=1 + answer_index)).to_pydatetime()
        log.record(requested.astimezone(UTC), predictions)
    log.flush()
    return len(predictions)


def assert_exact(scores: pd.DataFrame, recorded: dict[str, pd.DataFrame], log: pd.DataFrame) -> None:
    """Every score equals what the recorded candles and the first logged answer of its key give."""
    first = log.sort_values("requested_at", kind="stable").drop_duplicates(["symbol", "as_of", "model"])
    first = first.assign(as_of=first["as_of"].astype("datetime64[ms, UTC]")).set_index(["symbol", "as_of"])
    for row in scores.itertuples():
        logged = first.loc[(row.symbol, row.as_of)]
        frame = recorded[row.symbol]
        target = row.as_of + HOUR
        last = float(frame.loc[frame["ts"] == row.as_of, "close"].iloc[0])
        assert row.last_close == last == logged["last_close"]
        assert row.predicted_close == logged["predicted_close"]
        if row.status == scoring.UNSCORABLE:
            assert (row.symbol, target) == ("BTC/USDT", GAP) and np.isnan(row.realised_close)
            continue
        realised = float(frame.loc[frame["ts"] == target, "close"].iloc[0])
        assert row.realised_close == realised
        assert row.error == logged["predicted_close"] - realised
        assert row.persistence_error == last - realised
        assert row.in_band == (logged["band_low"] <= realised <= logged["band_high"])
        if realised != last:
            assert row.direction_hit == ((logged["predicted_close"] > last) == (realised > last))


@pytest.mark.usefixtures("bentoml_store")
def test_predictions_are_scored_exactly_once_across_runs_and_restarts(
    tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    settings = Settings(home=tmp_path / "home", symbols=SYMBOLS)
    store_hours(settings, recorded_files, START - pd.Timedelta(days=3), START)
    tag = promote_a_model(settings, recorded_files, SYMBOLS, START)
    loaded = predictor.load_model(settings, tag)

    log = PredictionLog(settings.predictions_dir)
    answered = {}
    for step in range(21):
        now = START + step * HOUR
        store_hours(settings, recorded_files, now, now)
        answered[now] = answer(settings, loaded, log, now)
    first = monitor_run.run(settings)
    assert first.added == 2 * 20 and first.pending == 2  # each symbol's last answer waits for its candle
    assert first.now == START + 20 * HOUR and first.production == tag
    again = monitor_run.run(settings)
    assert again.added == 0 and again.pending == 2  # re-running adds nothing
    pd.testing.assert_frame_equal(again.scores, scoring.read_scores(settings.scores_dir))

    log.close()  # the service restarts: a new log writer
    log = PredictionLog(settings.predictions_dir)
    for step in range(21, STEPS):
        now = START + step * HOUR
        store_hours(settings, recorded_files, now, now)
        answered[now] = answer(settings, loaded, log, now)
    log.close()
    # no features while BTC's lookback crosses the gap: the API would have nothing fresh to answer
    assert [answered[START + k * HOUR] for k in (29, 30, 54, 55)] == [2, 1, 1, 2]

    env = {**os.environ, "HOURCAST_HOME": str(settings.home), "HOURCAST_SYMBOLS": ",".join(SYMBOLS)}
    result = subprocess.run(
        [sys.executable, "-m", "hourcast", "monitor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    logged = read_log(settings.predictions_dir)
    assert len(logged) == ANSWERS * sum(answered.values())  # nothing lost across the restart
    btc_predictions, eth_predictions = 30 + 3, STEPS
    assert report["scored"] == (btc_predictions - 2) + (eth_predictions - 1)
    assert report["unscorable"] == [
        {
            "symbol": "BTC/USDT",
            "as_of": "2024-03-02T05:00:00+00:00",
            "target_time": GAP.isoformat(),
            "model": tag,
        }
    ]
    assert report["pending"] == 2 and report["degraded"] == []
    board = {(r["window"], r["symbol"], r["model"]): r for r in report["scoreboard"]}
    assert board[("30d", "BTC/USDT", "all")]["hours"] == btc_predictions - 2
    assert board[("30d", "BTC/USDT", "all")]["unscorable"] == 1
    assert board[("24h", "ETH/USDT", tag)]["hours"] == 24
    scores = scoring.read_scores(settings.scores_dir)
    assert len(scores) == report["scored"] + 1 and not scores.duplicated(scoring.KEY).any()
    assert_exact(scores, recorded_files, logged)
    day = scores.loc[(scores["symbol"] == "ETH/USDT") & (scores["target_time"] > START + 33 * HOUR)]
    eth_day = board[("24h", "ETH/USDT", "all")]
    assert eth_day["mae"] == pytest.approx(day["error"].abs().mean())
    assert eth_day["mae_ratio"] == pytest.approx(
        day["error"].abs().sum() / day["persistence_error"].abs().sum()
    )
    assert {(r["window"], r["symbol"]) for r in report["drift"]} == {
        (window, symbol) for window in ("24h", "7d") for symbol in SYMBOLS
    }

    # the next candle arrives: the two waiting predictions are scored, nothing else changes
    store_hours(settings, recorded_files, START + STEPS * HOUR, START + STEPS * HOUR)
    last = monitor_run.run(settings)
    assert last.added == 2 and last.pending == 0
    assert_exact(scoring.read_scores(settings.scores_dir), recorded_files, logged)
    assert monitor_run.run(settings).added == 0


def sabotaged_fit(frame: pd.DataFrame, params: dict | None = None) -> Any:
    """A model fitted hard to shuffled labels, scaled up: it forecasts confident noise."""
    shuffled = np.random.default_rng(0).permutation(frame["target_return"].to_numpy())
    noisy = {"loss_function": "RMSE", "learning_rate": 0.3, "l2_leaf_reg": 1.0, "depth": 6, "iterations": 80}
    return estimator.fit(frame.assign(target_return=20 * shuffled), {**(params or {}), **noisy})


def degraded_events() -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter

    from flows.monitor_tasks import DEGRADED_EVENT

    with get_client(sync_client=True) as client:
        page = client.read_events(EventFilter(event=EventNameFilter(name=[DEGRADED_EVENT])), limit=50)
    return page.events


def flow_run_artifacts(flow_run_id: Any) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id]))
        )
    return {artifact.key: artifact.data for artifact in found if artifact.key}


def triggered_retrain_runs(deployment_id: Any) -> list[Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterId

    with get_client(sync_client=True) as client:
        return client.read_flow_runs(
            deployment_filter=DeploymentFilter(id=DeploymentFilterId(any_=[deployment_id]))
        )


@pytest.mark.usefixtures("prefect_server", "bentoml_store")
def test_a_sabotaged_model_is_detected_the_event_triggers_retrain_and_the_gate_restores_a_good_one(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    import yaml
    from prefect.events import DeploymentTriggerTypes
    from pydantic import TypeAdapter

    from flows.monitor import monitor as monitor_flow
    from flows.retrain import retrain
    from hourcast.features import featurestore
    from hourcast.model import training
    from tests.support.data import store_recorded

    variables = {
        "HOME": tmp_path / "home",
        "SYMBOLS": ",".join(SYMBOLS),
        "FEATURE_REPO": REPO / "feature_repo",
        "TRAIN_DAYS": 21,
        "MONITOR_MIN_HOURS": 24,
        "MONITOR_MAX_PSI": 1000,  # March 2024 left February's volatility far behind: judge on errors only
    }
    for name, value in variables.items():
        monkeypatch.setenv(f"HOURCAST_{name}", str(value))
    settings = Settings()
    store_recorded(settings, recorded_files, days=40, end=str(START))
    featurestore.materialize(settings)

    # the retrain deployment with prefect.yaml's trigger, registered on the server as `prefect deploy` would
    spec = next(
        d
        for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
        if d["name"] == "retrain"
    )
    trigger_specs = [TypeAdapter(DeploymentTriggerTypes).validate_python(t) for t in spec["triggers"]]
    deployment_id = retrain.to_deployment(name="retrain", triggers=trigger_specs).apply()

    # a model trained on shuffled labels, rejected by the gate, promoted by hand
    sabotaged = training.train(settings, fit_fn=sabotaged_fit)
    registry.promote(settings.registry_dir, settings.model_name, sabotaged.tag, "promoted by hand (sabotage)")
    loaded = predictor.load_model(settings, sabotaged.tag)

    log = PredictionLog(settings.predictions_dir)
    detected_at = None
    for step in range(48):
        now = START + step * HOUR
        store_hours(settings, recorded_files, now, now)
        answer(settings, loaded, log, now)
        if step < 22 and step != 12:  # the monitor catches up on what it did not score yet
            continue
        state = monitor_flow(return_state=True)
        result = state.result()
        assert step >= 24 or not result["degraded"], step  # not judged before 24 hours are scored
        if result["retrain_requested"]:
            detected_at = step
            assert any(reason.startswith("BTC/USDT: 7-day MAE ratio") for reason in result["degraded"])
            published = flow_run_artifacts(state.state_details.flow_run_id)
            assert set(published) == {"monitor-scoreboard", "monitor-drift"}
            assert "**degraded**" in published["monitor-drift"]
            board = json.loads(published["monitor-scoreboard"])
            assert {(row["window"], row["symbol"], row["model"]) for row in board} >= {
                ("7d", "BTC/USDT", sabotaged.tag)
            }
            break
    # detected as soon as 24 hours are scored (hour 24 scores 24 targets), within a bound
    assert detected_at is not None and detected_at <= 26, detected_at
    wait_for(lambda: len(degraded_events()) == 1, 30, "the hourcast.model.degraded event")
    event = degraded_events()[0]
    assert event.resource.id == f"hourcast.model.{settings.model_name}"
    assert event.payload["model"] == sabotaged.tag

    # Prefect's own trigger turns the event into a retrain run
    wait_for(lambda: len(triggered_retrain_runs(deployment_id)) == 1, 60, "a retrain run from the trigger")

    # still degraded for the next hours, but inside the cool-down: no second event
    for step in range(detected_at + 1, detected_at + 4):
        now = START + step * HOUR
        store_hours(settings, recorded_files, now, now)
        answer(settings, loaded, log, now)
        result = monitor_flow()
        assert result["degraded"] and not result["retrain_requested"]
    log.close()
    assert len(degraded_events()) == 1 and len(triggered_retrain_runs(deployment_id)) == 1

    # the triggered retrain (run here in-process, as the worker would): the gate restores a good model
    featurestore.materialize(settings)
    outcome = retrain()
    production = registry.production_tag(settings.registry_dir, settings.model_name)
    assert outcome["promoted"] and production == outcome["tag"] != sabotaged.tag, outcome["reason"]
    assert outcome["metrics"]["mae_ratio"] <= 1 + settings.promotion_tolerance
    assert outcome["production"]["candidate"]["mae"] < outcome["production"]["production"]["mae"]
