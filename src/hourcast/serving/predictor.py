"""The prediction core behind the API: production model, online features, staleness, hot reload.

``Predictor`` is built once per server process. Each symbol's forecast is computed once per new hour of
online features or new model (``check_forecasts``, every ``FORECAST_CHECK_SECONDS``: one small read of
the online ``as_of``) and kept in memory (``forecasts``); requests answer from it, ageing it by the clock.
Only a symbol without a cached forecast, or whose cached one is stale (a newer hour may have landed
since the last check), reads the online store on the request path: its reads run in a small thread
pool with a tight socket timeout and no retries, and a circuit remembers that the store is down, so
while it is down such requests are refused at once (503) and only background jobs touch the store until
it answers again. Background jobs (model reload, exchange clock
sync, store probe, forecast check) are ``Periodic`` loops that log every failure; ``readiness()`` reports
what is unusable.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hourcast.background import Circuit, Periodic
from hourcast.data import store
from hourcast.errors import HourcastError
from hourcast.features import featurestore
from hourcast.features.compute import FEATURE_COLUMNS, FEATURE_NAMES
from hourcast.model import registry
from hourcast.serving.forecasts import CachedForecast, ForecastCache, is_stale
from hourcast.serving.schema import Band, Clock, Prediction, Readiness
from hourcast.settings import Settings
from hourcast.timeframe import timeframe_ms

if TYPE_CHECKING:
    from catboost import CatBoostRegressor
    from feast import FeatureStore

    from hourcast.model.estimator import Calibration

BAND_QUANTILES = ("0.05", "0.95")
ONLINE_READ_SECONDS = 0.15  # Redis connect/reply bound for the API: a slower store is answered 503
REQUEST_DEADLINE_SECONDS = 1.0  # backstop for a request's whole off-loop work (read + model)
PROBE_SECONDS = 0.25  # how often the online store is probed (recovery is seen within this)
FORECAST_CHECK_SECONDS = 2.0  # how often a worker looks for a newer hour online (served within this)
CLOCK_TIMEOUT_MS = 2000  # one exchange clock request
ONLINE_THREADS = 4

logger = logging.getLogger("hourcast.serving.predictor")


class UnknownSymbol(HourcastError):
    """The symbol is not one the service is configured for."""


class Unavailable(HourcastError):
    """The service cannot answer right now (no model, online store down, stale features)."""


@dataclass(frozen=True)
class LoadedModel:
    """The production model as loaded: its tag, the CatBoost model, the walk-forward error band and the
    out-of-sample calibration (shrinkage, conformal band, ``p_up``; None for models saved before it)."""

    tag: str
    model: CatBoostRegressor
    band: tuple[float, float]
    calibration: Calibration | None = None


def _iso(stamp: datetime) -> str:
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class ExchangeClock:
    """ "Now" for staleness: the exchange's clock when one is configured by URL (a replayed world is
    judged by its own time), else the system clock. ``sync()`` re-reads the offset to the exchange;
    while the exchange is unreachable the last known offset is used (the system clock if it was never
    reached), and ``source`` says which."""

    def __init__(self, fetch_exchange_ms: Callable[[], int] | None) -> None:
        self._fetch = fetch_exchange_ms
        self._offset_seconds = 0.0
        self._synced = False
        self._failing = False

    def sync(self) -> None:
        """Re-read the exchange clock (no-op on the system clock); raises if the exchange does not answer."""
        if self._fetch is None:
            return
        try:
            exchange_ms = self._fetch()
        except Exception:
            self._failing = True
            raise
        self._offset_seconds = exchange_ms / 1000 - datetime.now(UTC).timestamp()
        self._synced, self._failing = True, False

    @property
    def source(self) -> Clock:
        """Which clock ``now()`` follows."""
        if not self._synced:
            return "system"
        return "last_known_exchange" if self._failing else "exchange"

    def now(self) -> datetime:
        """The current time."""
        return datetime.fromtimestamp(datetime.now(UTC).timestamp() + self._offset_seconds, tz=UTC)


def exchange_clock(settings: Settings) -> ExchangeClock:
    """The clock for the settings (not yet synced): the exchange's when ``exchange_url`` points at one,
    asked with a short timeout and no retries (the sync loop asks again)."""
    if not settings.exchange_url:
        return ExchangeClock(None)
    from hourcast.data.exchange import CandleSource, RetryPolicy, make_client

    quick = settings.model_copy(
        update={"exchange_timeout_ms": min(settings.exchange_timeout_ms, CLOCK_TIMEOUT_MS)}
    )
    return ExchangeClock(CandleSource(make_client(quick), retry=RetryPolicy(attempts=1)).now_ms)


def bentoml_config_overrides(settings: Settings) -> dict[str, Any]:
    """BentoML configuration (``BENTOML_CONFIG_OVERRIDES``, JSON) carrying the settings' worker count, access
    log and request instrumentation to the service (its decorator declares only defaults: nothing is read
    when BentoML imports it)."""
    service: dict[str, Any] = {
        "workers": settings.serve_workers or "cpu_count",
        "logging": {"access": {"enabled": settings.serve_access_log}},
    }
    if not settings.serve_request_instrumentation:
        service |= {"tracing": {"excluded_urls": [".*"]}, "metrics": {"enabled": False}}
    return {"services": {"hourcast": service}}


def load_model(settings: Settings, tag: str) -> LoadedModel:
    """A stored model and its band of walk-forward return errors (5% and 95% quantiles)."""
    try:
        tag, model, metadata = registry.load_model(settings.model_name, tag)
    except registry.RegistryError as error:
        raise Unavailable(str(error)) from error
    quantiles = metadata.get("return_error_quantiles", {})
    band = (float(quantiles.get(BAND_QUANTILES[0], 0.0)), float(quantiles.get(BAND_QUANTILES[1], 0.0)))
    from hourcast.model.estimator import Calibration

    stored = metadata.get("calibration")
    return LoadedModel(tag, model, band, Calibration.from_metadata(stored) if stored else None)


def forecast_frame(loaded: LoadedModel, rows: pd.DataFrame) -> pd.DataFrame:
    """``estimator.forecast`` (the one predict path of training, evaluation and serving) for ``rows``
    (``symbol``, the model inputs, ``last_close``) with the loaded model's calibration."""
    from hourcast.model import estimator

    return estimator.forecast(loaded.model, rows, loaded.calibration)


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
        one packaged in a Bento running without the registry folder). Never raises for an unreachable
        exchange or a model that cannot load: both are logged and reported by ``readiness()``."""
        self.settings = settings
        self.fallback_tag = fallback_tag
        self.feature_store = feature_store or featurestore.open_serving_store(settings, ONLINE_READ_SECONDS)
        featurestore.fail_fast(self.feature_store)
        self._service = self.feature_store.get_feature_service(featurestore.SERVING_SERVICE)
        self.clock = clock or exchange_clock(settings)
        self.circuit = Circuit(logger, f"online store {featurestore.describe_online_store(settings)}")
        self._loaded: LoadedModel | None = None
        self.forecasts = ForecastCache()
        self._step = pd.Timedelta(milliseconds=timeframe_ms(settings.timeframe))
        self._executor = ThreadPoolExecutor(ONLINE_THREADS, thread_name_prefix="hourcast-online")
        period = settings.model_refresh_seconds
        self._jobs = [
            Periodic("model reload", period, self.refresh, logger),
            Periodic(
                "exchange clock sync (staleness by the last known or system clock)",
                period,
                self.clock.sync,
                logger,
            ),
            Periodic("online store probe", PROBE_SECONDS, self.probe, logger),
            Periodic("forecast check", FORECAST_CHECK_SECONDS, self.check_forecasts, logger),
        ]
        self._reload, self._clock_sync, _, self._forecast_check = self._jobs
        self._clock_sync.run_once()
        self._reload.run_once()
        self._forecast_check.run_once()

    @property
    def model_tag(self) -> str | None:
        """Tag of the model in use (None until one is promoted)."""
        return self._loaded.tag if self._loaded else None

    def refresh(self) -> bool:
        """Load the production model if it changed; True if the model changed."""
        tag = (
            registry.production_tag(self.settings.registry_dir, self.settings.model_name) or self.fallback_tag
        )
        if tag is None or (self._loaded is not None and tag == self._loaded.tag):
            return False
        self._loaded = load_model(self.settings, tag)
        logger.warning("serving model %s", tag)
        return True

    def probe(self) -> None:
        """One bounded online read: closes the circuit if the store answers, opens it if not."""
        try:
            self._online(self.settings.symbols[:1])
        except Unavailable:
            return
        self.circuit.close()

    def start(self) -> None:
        """Start the background jobs (reload, clock sync, store probe, forecast check) until ``stop()``."""
        for job in self._jobs:
            job.start()

    def stop(self) -> None:
        """Stop the background jobs and the read threads."""
        for job in self._jobs:
            job.stop(timeout=5)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def readiness(self) -> Readiness:
        """Whether this process can answer (in memory only: never touches the store)."""
        problems = []
        if self._loaded is None:
            problems.append(
                self._reload.last_error
                or f"no production model {self.settings.model_name!r} yet: run `hourcast train` "
                "(or promote one)"
            )
        if self.circuit.reason:
            problems.append(self.circuit.reason)
        return Readiness(
            ready=not problems,
            model=self.model_tag,
            online_store="up" if self.circuit.reason is None else f"down: {self.circuit.reason}",
            model_reload_error=self._reload.last_error,
            clock=self.clock.source,
            problems=problems,
        )

    def check_symbols(self, symbols: list[str]) -> list[str]:
        """The distinct symbols in request order, each one the service is configured for (else
        ``UnknownSymbol``)."""
        distinct = list(dict.fromkeys(symbols))
        for symbol in distinct:
            if symbol not in self.settings.symbols:
                raise UnknownSymbol(
                    f"unknown symbol {symbol!r}; this service forecasts {', '.join(self.settings.symbols)}"
                )
        return distinct

    def _require_model(self) -> LoadedModel:
        loaded = self._loaded
        if loaded is None:
            raise Unavailable(self.readiness().problems[0])
        return loaded

    def _online(self, symbols: list[str], features: Any = None) -> dict[str, list[Any]]:
        """One bounded online read of ``features`` (default: the serving service) for ``symbols``; opens
        the circuit and raises ``Unavailable`` if the store does not answer."""
        try:
            with featurestore.online_store_errors(self.settings):
                rows = self.feature_store.get_online_features(
                    features=features or self._service, entity_rows=[{"symbol": s} for s in symbols]
                )
                return rows.to_dict()
        except featurestore.OnlineStoreUnavailable as error:
            self.circuit.open(str(error))
            raise Unavailable(str(error)) from error

    def check_forecasts(self) -> None:
        """The version check behind the cached forecasts: one small bounded read of every symbol's online
        ``as_of``; a symbol whose features are newer (or whose forecast is another model's) is computed
        again, one whose online row is gone is forgotten (answered as missing)."""
        loaded = self._loaded
        if loaded is None:
            return
        symbols = list(self.settings.symbols)
        stamps = self._online(symbols, [f"{featurestore.FEATURE_VIEW}:as_of"])["as_of"]
        self.circuit.close()
        self.forecasts.forget(symbol for symbol, stamp in zip(symbols, stamps, strict=True) if stamp is None)
        due = [
            symbol
            for symbol, stamp in zip(symbols, stamps, strict=True)
            if stamp is not None and not self.forecasts.is_current(symbol, pd.Timestamp(stamp), loaded.tag)
        ]
        if due:
            self.forecasts.put(forecast for forecast in self._compute(loaded, due).values() if forecast)

    def _compute(self, loaded: LoadedModel, symbols: list[str]) -> dict[str, CachedForecast | None]:
        """The forecasts of ``symbols`` from their online features (None: no online row), through the
        one predict path (``online_forecasts``)."""
        return online_forecasts(loaded, symbols, self._online(symbols), self._step)

    async def predict_async(self, symbols: list[str], allow_stale: bool = False) -> list[Prediction]:
        """``predict``: from memory when every symbol's forecast is cached, else off the event loop,
        bounded in time and refused at once while the store is down."""
        loaded = self._require_model()
        symbols = self.check_symbols(symbols)
        cached = self.forecasts.lookup(symbols, loaded.tag)
        if not self._due(symbols, cached):
            return self._answers(symbols, cached, allow_stale)
        if self.circuit.reason:
            raise Unavailable(self.circuit.reason)
        loop = asyncio.get_running_loop()
        work = loop.run_in_executor(self._executor, self.predict, symbols, allow_stale)
        try:
            return await asyncio.wait_for(work, REQUEST_DEADLINE_SECONDS)
        except TimeoutError:
            reason = (
                f"online store {featurestore.describe_online_store(self.settings)} did not answer "
                f"within {REQUEST_DEADLINE_SECONDS:g} s"
            )
            self.circuit.open(reason)
            raise Unavailable(reason) from None

    def predict(self, symbols: list[str], allow_stale: bool = False) -> list[Prediction]:
        """Forecasts for the distinct ``symbols``, from the cached forecasts; a symbol without one (or
        whose cached one is stale) is computed (and cached) from the online store now. ``Unavailable``
        if any cannot be answered."""
        loaded = self._require_model()
        symbols = self.check_symbols(symbols)
        cached = self.forecasts.lookup(symbols, loaded.tag)
        missing = self._due(symbols, cached)
        if missing:
            if self.circuit.reason:
                raise Unavailable(self.circuit.reason)
            for symbol, forecast in self._compute(loaded, missing).items():
                if forecast is None:
                    raise Unavailable(
                        f"no online features for {symbol}: the online store has no row for it (restarted "
                        "empty or flushed?); the next `hourcast ingest` or `hourcast materialize` rewrites it"
                    )
                cached[symbol] = forecast
            self.forecasts.put(cached[symbol] for symbol in missing)
        return self._answers(symbols, cached, allow_stale)

    def _due(self, symbols: list[str], cached: dict[str, CachedForecast]) -> list[str]:
        """The symbols to compute from the online store now: those without a cached forecast, and those
        whose cached one is stale (a newer hour may have landed since the last forecast check)."""
        now_seconds, limit = self.clock.now().timestamp(), self.settings.feature_age_limit_seconds
        return [
            symbol
            for symbol in symbols
            if symbol not in cached or is_stale(cached[symbol].age_seconds(now_seconds), limit, self._step)
        ]

    def _answers(
        self, symbols: list[str], forecasts: dict[str, CachedForecast], allow_stale: bool
    ) -> list[Prediction]:
        """The answers now: each forecast aged by the clock. A stale one is refused unless allowed, and
        refused while the store is down (a newer hour may be there, unseen)."""
        now, clock = self.clock.now(), self.clock.source
        now_seconds, limit = now.timestamp(), self.settings.feature_age_limit_seconds
        answers = []
        for symbol in symbols:
            forecast = forecasts[symbol]
            age = forecast.age_seconds(now_seconds)
            stale = is_stale(age, limit, self._step)
            if stale and (self.circuit.reason or not allow_stale):
                raise Unavailable(self.circuit.reason or self._stale_reason(forecast, age, clock))
            answers.append(forecast.answer(age, stale, clock))
        return answers

    def _stale_reason(self, forecast: CachedForecast, age: float, clock: Clock) -> str:
        as_of, limit = forecast.as_of, self.settings.feature_age_limit_seconds
        by_clock = f"by the {clock.replace('_', ' ')} clock"
        why = (
            f"over the {limit / 3600:.1f} h limit; ingestion may have stopped"
            if age > limit
            else f"so the hour it forecasts ({_iso(as_of + self._step)}) has already closed "
            f"{by_clock}; the next candle is not in the online store yet"
        )
        return (
            f"features for {forecast.prediction.symbol} are {age / 3600:.1f} h old (as of {_iso(as_of)}, "
            f"{by_clock}), {why} (send allow_stale=true to get an answer flagged stale)"
        )

    def history(self, symbol: str, hours: int) -> pd.DataFrame:
        """The last ``hours`` stored candles of a symbol (what the dashboard draws)."""
        [symbol] = self.check_symbols([symbol])
        series = store.Series(self.settings.exchange, symbol, self.settings.timeframe)
        newest = store.last_stored(self.settings.candles_dir, series)
        if newest is None:
            return store.load_candles(self.settings.candles_dir, series)
        return store.load_candles(self.settings.candles_dir, series, start=newest - self._step * (hours - 1))


def online_forecasts(
    loaded: LoadedModel, symbols: list[str], values: dict[str, list[Any]], step: pd.Timedelta
) -> dict[str, CachedForecast | None]:
    """The forecasts of ``symbols`` from ``values``, their online read's columns (the serving feature
    service; None where a symbol has no online row), through the one predict path (``forecast_frame``):
    each ``loaded``'s answer for the hour after its ``as_of`` (``step`` later), carrying its features.
    Shared by the API (``Predictor``) and the hourly forecast of record (``hourcast.serving.record``)."""
    present = [index for index, stamp in enumerate(values["as_of"]) if stamp is not None]
    forecasts: dict[str, CachedForecast | None] = dict.fromkeys(symbols)
    if not present:
        return forecasts
    names = [symbols[index] for index in present]
    values = {name: [column[index] for index in present] for name, column in values.items()}
    frame = forecast_frame(loaded, model_rows(names, values))
    forecast = {name: frame[name].to_numpy() for name in frame.columns}  # scalars read cheaply below
    low, high = loaded.band
    calibrated = loaded.calibration is not None
    for index, symbol in enumerate(names):
        as_of, last_close = pd.Timestamp(values["as_of"][index]), float(values["last_close"][index])
        predicted_close = float(forecast["predicted_close"][index])
        predicted_return = float(forecast["predicted_return"][index])
        prediction = Prediction(
            symbol=symbol,
            as_of=_iso(as_of),
            target_time=_iso(as_of + step),
            last_close=last_close,
            predicted_close=predicted_close,
            predicted_return=predicted_return,
            direction="up" if predicted_return >= 0 else "down",
            persistence_close=last_close,
            model=loaded.tag,
            features_age_seconds=0.0,  # per answer (CachedForecast.answer)
            stale=False,
            band=Band(
                low=float(forecast["band_low"][index])
                if calibrated
                else float(forecast_band(predicted_close, low)),
                high=float(forecast["band_high"][index])
                if calibrated
                else float(forecast_band(predicted_close, high)),
                quantiles=[float(q) for q in BAND_QUANTILES],
            ),
            p_up=float(forecast["p_up"][index]) if calibrated else None,
            clock="system",
        ).with_features({name: values[name][index] for name in FEATURE_NAMES})
        target = (as_of + step).timestamp()
        forecasts[symbol] = CachedForecast(prediction, as_of, target)
    return forecasts


def model_rows(symbols: list[str], values: dict[str, list[Any]]) -> pd.DataFrame:
    """The rows ``forecast_frame`` takes (``symbol``, the features, ``last_close``) from an online read's
    columns, built as one float block: a column-by-column frame of 60-odd columns costs pandas about as
    much as the online read itself."""
    # null (no reference row, no order flow): NaN
    numbers = [*FEATURE_COLUMNS, "last_close"]
    block = np.array([values[name] for name in numbers], dtype="float64").T  # None -> NaN
    rows = pd.DataFrame(block, columns=numbers)
    rows.insert(0, "symbol", symbols)
    return rows


def forecast_band(predicted_close: float, return_error: float) -> float:
    """A band edge: the predicted close moved by a walk-forward log-return error quantile."""
    from hourcast.model import estimator

    return float(estimator.to_close(predicted_close, return_error))
