"""The forecasts a Predictor keeps in memory, with a Redis of the test's own and a real model: answered
without touching the store, equal to a fresh computation, replaced when a newer hour is materialized or a
model is promoted (a new hour as soon as it is online, a model within the check interval), never served
as fresh once stale, and still answered while the store is frozen or stopped until they go stale."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
import redis
from catboost import CatBoostRegressor

from hourcast.dev.redis_server import RedisServer
from hourcast.features import featurestore
from hourcast.model import estimator, registry, training
from hourcast.serving import predictor
from hourcast.serving.schema import Prediction
from hourcast.settings import Settings
from tests.support.data import store_recorded
from tests.support.processes import wait_for

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
PER_REQUEST = {"features_age_seconds", "stale", "clock"}  # the only fields an answer computes itself


def fast_fit(frame: pd.DataFrame, params: dict | None = None) -> CatBoostRegressor:
    return estimator.fit(frame, {**(params or {}), "iterations": 20})


@dataclass
class Live:
    settings: Settings
    predictor: predictor.Predictor
    redis: RedisServer
    exchange_now: dict[str, pd.Timestamp]

    def set_clock(self, at: str) -> None:
        self.exchange_now["at"] = pd.Timestamp(at)
        self.predictor.clock.sync()

    def answer(self, symbol: str = "BTC/USDT", allow_stale: bool = False) -> Prediction:
        [prediction] = self.predictor.predict([symbol], allow_stale)
        return prediction

    def commands_processed(self) -> int:
        client = redis.Redis.from_url(self.redis.url)
        try:
            return int(client.info("stats")["total_commands_processed"])
        finally:
            client.close()


@pytest.fixture
def live(bentoml_store: Path, tmp_path: Path, recorded_files: dict) -> Iterator[Live]:
    """Features up to the 22:00 candle of 2024-02-29 in a Redis of the test's own, a trained model, and a
    Predictor (background jobs not started) whose exchange clock stands at 23:30 (its forecasts fresh)."""
    own_redis = RedisServer().start()
    settings = Settings(
        home=tmp_path / "data",
        symbols=SYMBOLS,
        online_store="redis",
        redis_url=own_redis.url,
        feature_repo=REPO / "feature_repo",
        train_days=10,
        model_refresh_seconds=0.3,
        _env_file=None,
    )
    store_recorded(settings, recorded_files, days=14, end="2024-02-29T23:00")
    featurestore.materialize(settings)
    trained = training.train(settings, fit_fn=fast_fit)
    registry.promote(settings.registry_dir, settings.model_name, trained.tag, "test")  # promoted or not
    exchange_now = {"at": pd.Timestamp("2024-02-29T23:30:00Z")}
    clock = predictor.ExchangeClock(lambda: int(exchange_now["at"].timestamp() * 1000))
    serving = predictor.Predictor(settings, clock=clock)
    try:
        yield Live(settings, serving, own_redis, exchange_now)
    finally:
        serving.stop()
        own_redis.stop()


def body(prediction: Prediction) -> dict:
    return prediction.model_dump(exclude=PER_REQUEST)


def test_cached_answers_equal_a_fresh_computation_and_read_nothing(live: Live) -> None:
    before = live.commands_processed()
    cached = live.predictor.predict(SYMBOLS)
    for _ in range(500):
        live.predictor.predict(SYMBOLS)
    assert live.commands_processed() - before <= 1  # INFO itself: not one store read for 1001 answers

    fresh_predictor = predictor.Predictor(live.settings, clock=live.predictor.clock)
    fresh_predictor.forecasts.forget(SYMBOLS)  # nothing cached: computed from the store now
    fresh = fresh_predictor.predict(SYMBOLS)
    assert [body(p) for p in cached] == [body(p) for p in fresh]
    assert [p.features for p in cached] == [p.features for p in fresh]  # what the log records
    assert cached[0].as_of == "2024-02-29T22:00:00Z" and cached[0].stale is False
    assert cached[0].features_age_seconds == pytest.approx(1800, abs=1)  # aged by the clock per answer


def test_a_new_hour_is_served_as_soon_as_it_is_materialized_and_nothing_stale_as_fresh(
    live: Live, recorded_files: dict
) -> None:
    # background jobs not started: only the request itself can see the new hour
    assert live.answer().as_of == "2024-02-29T22:00:00Z"
    store_recorded(live.settings, recorded_files, days=1, end="2024-03-01")  # the 23:00 candle closes
    live.set_clock("2024-03-01T00:05:00Z")  # the 22:00 forecast's hour (23:00) has closed
    with pytest.raises(predictor.Unavailable, match="has already closed"):  # re-read: still 22:00 online
        live.answer()
    assert live.answer(allow_stale=True).stale
    featurestore.materialize(live.settings)
    fresh = live.answer()  # no wait for the forecast check: a stale cached forecast is read again
    assert (fresh.as_of, fresh.stale) == ("2024-02-29T23:00:00Z", False)
    before = live.commands_processed()
    assert live.answer().as_of == fresh.as_of  # and cached again: no store read
    assert live.commands_processed() - before <= 1  # INFO itself
    late = live.answer("ETH/USDT")
    assert late.as_of == "2024-02-29T23:00:00Z" and not late.stale


def test_a_promoted_model_is_served_within_the_refresh_interval(live: Live) -> None:
    live.predictor.start()
    first = live.answer()
    newer = training.train(live.settings, fit_fn=lambda frame, params=None: fast_fit(frame, {"depth": 3}))
    registry.promote(live.settings.registry_dir, live.settings.model_name, newer.tag, "test promotion")
    promoted = pd.Timestamp.now()
    within = live.settings.model_refresh_seconds + 3
    wait_for(lambda: live.answer().model == newer.tag, within, "the new model to be served")
    assert (pd.Timestamp.now() - promoted).total_seconds() < within
    answer = live.answer()
    assert answer.model == newer.tag != first.model and answer.as_of == first.as_of
    assert answer.predicted_close != first.predicted_close


def cached_until_stale(live: Live, fault: Callable[[], None], repair: Callable[[], None]) -> None:
    """While the store is down (``fault``): not ready, cached fresh forecasts answered unchanged; once
    stale, refused at once naming the store, even with allow_stale."""
    live.predictor.start()
    before = live.answer()
    fault()
    try:
        wait_for(lambda: not live.predictor.readiness().ready, 5, "the store to be seen down")
        assert f"127.0.0.1:{live.redis.port}" in live.predictor.readiness().problems[0]
        assert body(live.answer()) == body(before) and live.answer().stale is False
        live.set_clock("2024-03-01T00:05:00Z")  # the cached forecast's hour has closed
        for allow_stale in (False, True):
            with pytest.raises(predictor.Unavailable, match=f"127.0.0.1:{live.redis.port}"):
                live.answer(allow_stale=allow_stale)
    finally:
        repair()
    wait_for(lambda: live.predictor.readiness().ready, 2, "the store to be seen up")


def test_a_frozen_store_changes_nothing_for_cached_forecasts_until_they_go_stale(live: Live) -> None:
    cached_until_stale(live, live.redis.freeze, live.redis.thaw)
    assert live.answer(allow_stale=True).stale is True  # the store answers again: flagged stale


def test_a_store_stopped_and_restarted_empty_is_answered_as_missing_then_healed(live: Live) -> None:
    cached_until_stale(live, live.redis.stop, live.redis.start)  # it restarts empty, on the same port
    live.set_clock("2024-02-29T23:30:00Z")

    def refused_as_missing() -> bool:
        try:
            live.answer()
        except predictor.Unavailable as refusal:
            return "no online features" in str(refusal)
        return False

    wait_for(refused_as_missing, predictor.FORECAST_CHECK_SECONDS + 3, "the lost row to be seen")
    featurestore.materialize(live.settings)  # heals the lost rows
    assert live.answer().as_of == "2024-02-29T22:00:00Z"
