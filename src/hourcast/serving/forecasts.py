"""The current forecast of each symbol, kept in memory by each API worker.

A forecast changes only when a newer hour of online features lands or another model is promoted, so the
predictor computes it then (``Predictor.check_forecasts``) and every request answers from here: what
depends on the request's moment (``features_age_seconds``, ``stale``, ``clock``) is filled in per answer
from the cached ``as_of`` and the clock, never cached. No I/O here.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

import pandas as pd

from hourcast.serving.schema import Clock, Prediction


@dataclass(frozen=True)
class CachedForecast:
    """One symbol's forecast as computed: the answer's body (its age, staleness and clock are filled in
    per request), the ``as_of`` of the features it came from and when the forecast's hour began (the
    close of the ``as_of`` candle, in epoch seconds: what its age counts from)."""

    prediction: Prediction
    as_of: pd.Timestamp
    target_seconds: float

    @property
    def model(self) -> str:
        """Tag of the model that computed it."""
        return self.prediction.model

    def age_seconds(self, now_seconds: float) -> float:
        """How old its features are at ``now_seconds`` (epoch), counted from the close of their candle."""
        return now_seconds - self.target_seconds

    def answer(self, age_seconds: float, stale: bool, clock: Clock) -> Prediction:
        """The answer at one moment (the feature values travel along, for the log)."""
        update = {"features_age_seconds": round(age_seconds, 3), "stale": stale, "clock": clock}
        return self.prediction.model_copy(update=update)


class ForecastCache:
    """The current ``CachedForecast`` per symbol. Reads take no lock (one dict lookup); writes never put an
    older hour of the same model in place of a newer one (a request's own computation can race the
    background check)."""

    def __init__(self) -> None:
        self._entries: dict[str, CachedForecast] = {}
        self._lock = threading.Lock()

    def lookup(self, symbols: list[str], model: str) -> dict[str, CachedForecast]:
        """The cached forecasts of ``symbols`` computed by ``model`` (symbols without one are left out)."""
        entries = self._entries
        found = {}
        for symbol in symbols:
            entry = entries.get(symbol)
            if entry is not None and entry.model == model:
                found[symbol] = entry
        return found

    def is_current(self, symbol: str, as_of: pd.Timestamp, model: str) -> bool:
        """Whether the cached forecast of ``symbol`` is ``model``'s from the features of ``as_of``."""
        entry = self._entries.get(symbol)
        return entry is not None and entry.model == model and entry.as_of == as_of

    def put(self, forecasts: Iterable[CachedForecast]) -> None:
        """Keep ``forecasts`` (one per symbol), unless the same model's newer hour is already kept."""
        with self._lock:
            for forecast in forecasts:
                symbol = forecast.prediction.symbol
                kept = self._entries.get(symbol)
                if kept is None or kept.model != forecast.model or kept.as_of <= forecast.as_of:
                    self._entries[symbol] = forecast

    def forget(self, symbols: Iterable[str]) -> None:
        """Drop the forecasts of ``symbols`` (their online rows are gone)."""
        with self._lock:
            for symbol in symbols:
                self._entries.pop(symbol, None)


def is_stale(age_seconds: float, limit_seconds: float, step: pd.Timedelta) -> bool:
    """Whether a forecast from features ``age_seconds`` old (counted from the close of their last candle)
    is stale: over the age limit, or its target candle (the next one) has already closed."""
    return age_seconds > limit_seconds or age_seconds >= step.total_seconds()
