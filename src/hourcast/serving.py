"""The prediction core behind the API: production model, online features, staleness, hot reload.

``Predictor`` is built once per server process; requests only read the online store and call
CatBoost on one row. A background refresher swaps in a newly promoted model (one atomic reference
assignment, so no request ever sees a half-loaded model) and keeps the exchange clock in sync.
"""

from __future__ import annotations

import contextlib
import math
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pandas as pd

from hourcast import featurestore, registry, store
from hourcast.candles import timeframe_ms
from hourcast.features import FEATURE_NAMES
from hourcast.settings import Settings

if TYPE_CHECKING:
    from catboost import CatBoostRegressor
    from feast import FeatureStore

BAND_QUANTILES = ("0.05", "0.95")


class UnknownSymbol(LookupError):
    """The symbol is not one the service is configured for."""


class Unavailable(RuntimeError):
    """The service cannot answer right now (no model, online store down, stale features)."""


@dataclass(frozen=True)
class Prediction:
    """One next-hour forecast, as the API returns it."""

    symbol: str
    as_of: str
    target_time: str
    last_close: float
    predicted_close: float
    predicted_return: float
    direction: str
    persistence_close: float
    model: str
    features_age_seconds: float
    stale: bool
    band: dict[str, Any]
    features: dict[str, float] = field(repr=False, compare=False)

    def as_dict(self) -> dict[str, Any]:
        """The JSON body (the feature values go to the prediction log, not the response)."""
        body = asdict(self)
        del body["features"]
        return body


@dataclass(frozen=True)
class LoadedModel:
    """The production model as loaded: its tag, the CatBoost model and the walk-forward error band."""

    tag: str
    model: CatBoostRegressor
    band: tuple[float, float]


def _iso(stamp: datetime) -> str:
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ExchangeClock:
    """ "Now" for staleness: the exchange's clock when one is configured by URL (a replayed world is
    judged by its own time), else the system clock. The offset to the exchange is refreshed by
    ``sync()``; between syncs it runs on the local clock."""

    def __init__(self, fetch_exchange_ms: Callable[[], int] | None) -> None:
        self._fetch = fetch_exchange_ms
        self._offset_seconds = 0.0

    def sync(self) -> None:
        """Re-read the exchange clock (no-op on the system clock)."""
        if self._fetch is not None:
            self._offset_seconds = self._fetch() / 1000 - time.time()

    def now(self) -> datetime:
        """The current time."""
        return datetime.fromtimestamp(time.time() + self._offset_seconds, tz=UTC)


def exchange_clock(settings: Settings) -> ExchangeClock:
    """The clock for the settings: the exchange's when ``exchange_url`` points at one."""
    if not settings.exchange_url:
        return ExchangeClock(None)
    from hourcast.exchange import CandleSource, RetryPolicy, make_client

    source = CandleSource(make_client(settings), retry=RetryPolicy(attempts=2, base_seconds=0.1))
    clock = ExchangeClock(source.now_ms)
    clock.sync()
    return clock


def load_model(settings: Settings, tag: str) -> LoadedModel:
    """A stored model and its band of walk-forward return errors (5% and 95% quantiles)."""
    try:
        tag, model, metadata = registry.load_model(settings.model_name, tag)
    except LookupError as error:
        raise Unavailable(str(error)) from error
    quantiles = metadata.get("return_error_quantiles", {})
    band = (float(quantiles.get(BAND_QUANTILES[0], 0.0)), float(quantiles.get(BAND_QUANTILES[1], 0.0)))
    return LoadedModel(tag, model, band)


class Predictor:
    """Answers next-hour forecasts from the online store and the production model."""

    def __init__(
        self,
        settings: Settings,
        feature_store: FeatureStore | None = None,
        clock: ExchangeClock | None = None,
        fallback_tag: str | None = None,
    ) -> None:
        """``fallback_tag``: the model to serve while the registry names no production model (e.g. the
        one packaged in a Bento running without the registry folder)."""
        self.settings = settings
        self.fallback_tag = fallback_tag
        self.feature_store = feature_store or featurestore.open_store(settings)
        self._service = self.feature_store.get_feature_service(featurestore.SERVING_SERVICE)
        self.clock = clock or exchange_clock(settings)
        self._loaded: LoadedModel | None = None
        self._step = pd.Timedelta(milliseconds=timeframe_ms(settings.timeframe))
        self._stop = threading.Event()
        self._refresher: threading.Thread | None = None
        self.refresh()

    @property
    def model_tag(self) -> str | None:
        """Tag of the model in use (None until one is promoted)."""
        return self._loaded.tag if self._loaded else None

    def refresh(self) -> bool:
        """Load the production model if it changed and re-sync the clock; True if the model changed."""
        with contextlib.suppress(Exception):  # an unreachable exchange clock must not stop serving
            self.clock.sync()
        tag = (
            registry.production_tag(self.settings.registry_dir, self.settings.model_name) or self.fallback_tag
        )
        if tag is None or (self._loaded is not None and tag == self._loaded.tag):
            return False
        self._loaded = load_model(self.settings, tag)
        return True

    def start(self) -> None:
        """Refresh in the background every ``model_refresh_seconds`` until ``stop()``."""

        def loop() -> None:
            while not self._stop.wait(self.settings.model_refresh_seconds):
                try:
                    self.refresh()
                except Exception:  # keep serving the current model; try again next period
                    continue

        self._refresher = threading.Thread(target=loop, name="hourcast-refresh", daemon=True)
        self._refresher.start()

    def stop(self) -> None:
        """Stop the background refresher."""
        self._stop.set()
        if self._refresher is not None:
            self._refresher.join(timeout=5)

    def check_symbol(self, symbol: str) -> str:
        """The symbol if the service is configured for it, else ``UnknownSymbol``."""
        if symbol not in self.settings.symbols:
            raise UnknownSymbol(
                f"unknown symbol {symbol!r}; this service forecasts {', '.join(self.settings.symbols)}"
            )
        return symbol

    def _online(self, symbols: list[str]) -> dict[str, list[Any]]:
        try:
            with featurestore.online_store_errors(self.settings):
                rows = self.feature_store.get_online_features(
                    features=self._service, entity_rows=[{"symbol": s} for s in symbols]
                )
                return rows.to_dict()
        except featurestore.OnlineStoreUnavailable as error:
            raise Unavailable(str(error)) from error

    def predict(self, symbols: list[str], allow_stale: bool = False) -> list[Prediction]:
        """Forecasts for ``symbols`` (validated); ``Unavailable`` if any cannot be answered."""
        loaded = self._loaded
        if loaded is None:
            raise Unavailable(
                f"no production model {self.settings.model_name!r} yet: run `hourcast train` (or promote one)"
            )
        for symbol in symbols:
            self.check_symbol(symbol)
        values = self._online(symbols)
        now = self.clock.now()
        limit = self.settings.feature_age_limit_seconds
        predictions = []
        for index, symbol in enumerate(symbols):
            as_of = values["as_of"][index]
            if as_of is None:
                raise Unavailable(f"no online features for {symbol}: run `hourcast materialize`")
            known_at = as_of + self._step
            age = (now - known_at).total_seconds()
            if age > limit and not allow_stale:
                raise Unavailable(
                    f"features for {symbol} are {age / 3600:.1f} h old (as of {_iso(as_of)}), "
                    f"over the {limit / 3600:.1f} h limit; ingestion may have stopped "
                    "(send allow_stale=true to get an answer flagged stale)"
                )
            features = {name: values[name][index] for name in FEATURE_NAMES}
            predicted_return = float(loaded.model.predict([[symbol, *features.values()]])[0])
            last_close = float(values["last_close"][index])
            predicted_close = last_close * math.exp(predicted_return)
            predictions.append(
                Prediction(
                    symbol=symbol,
                    as_of=_iso(as_of),
                    target_time=_iso(known_at),
                    last_close=last_close,
                    predicted_close=predicted_close,
                    predicted_return=predicted_return,
                    direction="up" if predicted_return >= 0 else "down",
                    persistence_close=last_close,
                    model=loaded.tag,
                    features_age_seconds=round(age, 3),
                    stale=age > limit,
                    band={
                        "low": predicted_close * math.exp(loaded.band[0]),
                        "high": predicted_close * math.exp(loaded.band[1]),
                        "quantiles": [float(q) for q in BAND_QUANTILES],
                    },
                    features=features,
                )
            )
        return predictions

    def history(self, symbol: str, hours: int) -> pd.DataFrame:
        """The last ``hours`` stored candles of a symbol (what the dashboard draws)."""
        self.check_symbol(symbol)
        series = store.Series(self.settings.exchange, symbol, self.settings.timeframe)
        newest = store.last_stored(self.settings.candles_dir, series)
        if newest is None:
            return store.load_candles(self.settings.candles_dir, series)
        return store.load_candles(self.settings.candles_dir, series, start=newest - self._step * (hours - 1))
