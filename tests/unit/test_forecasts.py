"""The in-memory forecasts of the API: what is kept, what an answer computes per request, staleness."""

from __future__ import annotations

import pandas as pd

from hourcast.serving.forecasts import CachedForecast, ForecastCache, is_stale
from hourcast.serving.schema import Band, Prediction

HOUR = pd.Timedelta(hours=1)


def cached(
    symbol: str = "BTC/USDT", as_of: str = "2024-02-29T23:00:00Z", model: str = "m:1"
) -> CachedForecast:
    stamp = pd.Timestamp(as_of)
    prediction = Prediction(
        symbol=symbol,
        as_of=as_of,
        target_time=(stamp + HOUR).strftime("%Y-%m-%dT%H:%M:%SZ"),
        last_close=100.0,
        predicted_close=101.0,
        predicted_return=0.00995,
        direction="up",
        persistence_close=100.0,
        model=model,
        features_age_seconds=0.0,
        stale=False,
        band=Band(low=99.0, high=103.0, quantiles=[0.05, 0.95]),
        p_up=0.6,
        clock="system",
    ).with_features({"ret_1": 0.01})
    return CachedForecast(prediction, stamp, (stamp + HOUR).timestamp())


def test_an_answer_fills_in_only_its_moment_and_keeps_the_features() -> None:
    forecast = cached()
    now = pd.Timestamp("2024-03-01T00:10:00Z").timestamp()
    age = forecast.age_seconds(now)
    answer = forecast.answer(age, False, "exchange")
    assert age == 600.0
    assert (answer.features_age_seconds, answer.stale, answer.clock) == (600.0, False, "exchange")
    moment = {"features_age_seconds", "stale", "clock"}
    assert answer.model_dump(exclude=moment) == forecast.prediction.model_dump(exclude=moment)
    assert answer.features == {"ret_1": 0.01}  # for the log
    assert forecast.prediction.features_age_seconds == 0.0  # the kept forecast is not changed


def test_the_cache_answers_only_the_current_models_forecasts() -> None:
    cache = ForecastCache()
    cache.put([cached("BTC/USDT"), cached("ETH/USDT", model="m:0")])
    assert set(cache.lookup(["BTC/USDT", "ETH/USDT", "SOL/USDT"], "m:1")) == {"BTC/USDT"}
    assert cache.is_current("BTC/USDT", pd.Timestamp("2024-02-29T23:00:00Z"), "m:1")
    assert not cache.is_current("BTC/USDT", pd.Timestamp("2024-03-01T00:00:00Z"), "m:1")
    assert not cache.is_current("ETH/USDT", pd.Timestamp("2024-02-29T23:00:00Z"), "m:1")


def test_an_older_hour_never_replaces_a_newer_one_of_the_same_model() -> None:
    cache = ForecastCache()
    cache.put([cached(as_of="2024-03-01T00:00:00Z")])
    cache.put([cached(as_of="2024-02-29T23:00:00Z")])  # a request's computation that lost the race
    assert cache.lookup(["BTC/USDT"], "m:1")["BTC/USDT"].prediction.as_of == "2024-03-01T00:00:00Z"
    cache.put([cached(as_of="2024-02-29T23:00:00Z", model="m:2")])  # another model: replaces
    assert cache.lookup(["BTC/USDT"], "m:2")["BTC/USDT"].prediction.as_of == "2024-02-29T23:00:00Z"
    cache.forget(["BTC/USDT"])
    assert cache.lookup(["BTC/USDT"], "m:2") == {}


def test_a_forecast_is_stale_once_its_hour_has_closed_or_past_the_limit() -> None:
    assert not is_stale(3599.0, 7200, HOUR)
    assert is_stale(3600.0, 7200, HOUR)  # the forecast hour has closed
    assert is_stale(1801.0, 1800, HOUR)  # over a limit shorter than the hour
