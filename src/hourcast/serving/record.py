"""The forecast of record: every hour, after the online features are materialized, the production model's
forecast for every configured symbol, logged whatever the traffic.

The hourly ingest makes it (``hourcast.ops.ingest_cycle``'s ``record`` step: the ``record-forecasts`` task
of the ``ingest`` and ``backfill`` flows, and `hourcast up`'s bootstrap) through the API's own path: the
online features of the serving feature service, the production model as the API loads it, and
``predictor.online_forecasts`` (the one predict path). The forecasts go to the prediction log marked
``source="record"`` (``prediction_log.write_records``: one file per hour, so making the record of an hour
twice logs it once); the monitor scores them like every logged answer, so the scoreboard starts with the
first hour even when no client ever calls ``/predict``.

**Hours a run missed.** A run killed (or failed) before its record step leaves its hour without a record; the
next run catches the hour's candle up, and its record step also makes the records each symbol is owed
(``owed_hours``: the hours after its newest record, within ``CATCH_UP`` of the newest hour online; none
before its first record, so nothing before the first production model), from the feature table's rows of
that hour (what the online store was materialized with then) through the same ``online_forecasts``, with
the production model. Such a record is made late and says so like any answer: ``requested_at`` is when it
was made, ``features_age_seconds`` is at least one timeframe and ``stale`` is true.

``requested_at`` is the system clock's, as for the API's answers; age, staleness and ``clock`` are by the
exchange clock as the API judges them (a replayed world by its own time; the system clock while the
exchange does not answer).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hourcast.data.exchange import ExchangeFailure
from hourcast.features import feature_table, featurestore
from hourcast.features.compute import FEATURE_COLUMNS
from hourcast.model import registry
from hourcast.serving import prediction_log
from hourcast.serving.forecasts import CachedForecast, is_stale
from hourcast.serving.predictor import (
    ExchangeClock,
    LoadedModel,
    exchange_clock,
    load_model,
    online_forecasts,
)
from hourcast.serving.schema import Clock, Prediction
from hourcast.settings import Settings
from hourcast.timeframe import timeframe_ms

if TYPE_CHECKING:
    from feast import FeatureStore

CATCH_UP = pd.Timedelta(days=1)
"""How far before the newest hour online a record step makes the records of hours a run missed (23 hours
at 1h, none at 1d). Shorter than the monitor's rescan of the log (``monitor.scoring.RESCAN``, two days), so
every late record is scored."""
ONLINE_COLUMNS = ["as_of", "last_close", *FEATURE_COLUMNS]
"""The serving feature service's columns ``online_forecasts`` reads."""

logger = logging.getLogger("hourcast.serving.record")


@dataclass(frozen=True)
class RecordSummary:
    """What one record step did: the model (None: no production model yet, nothing recorded), the
    forecasts made (those of hours a run missed included), the hours among them recorded late (``as_of``),
    the symbols without online features, and the log files written (none when every hour was already
    recorded)."""

    model: str | None
    forecasts: list[Prediction] = field(default_factory=list)
    late: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """One line for the run's log."""
        return {
            "model": self.model,
            "as_of": sorted({forecast.as_of for forecast in self.forecasts}),
            "symbols": len({forecast.symbol for forecast in self.forecasts}),
            "late": self.late,
            "missing": self.missing,
            "files": [path.name for path in self.files],
        }


def record_forecasts(
    settings: Settings, feature_store: FeatureStore | None = None, clock: ExchangeClock | None = None
) -> RecordSummary:
    """Forecast every configured symbol from its online features with the production model, and each
    hour a symbol is owed (``owed_hours``) from the feature table, and log the forecasts as their hours'
    records (an hour already recorded is left as it is). Nothing is recorded while no model is promoted.
    Raises ``OnlineStoreUnavailable`` if the online store does not answer."""
    tag = registry.production_tag(settings.registry_dir, settings.model_name)
    if tag is None:
        return RecordSummary(model=None)
    loaded = load_model(settings, tag)
    feature_store = feature_store or featurestore.open_store(settings)
    symbols = list(settings.symbols)
    service = feature_store.get_feature_service(featurestore.SERVING_SERVICE)
    with featurestore.online_store_errors(settings):
        values = feature_store.get_online_features(
            features=service, entity_rows=[{"symbol": symbol} for symbol in symbols]
        ).to_dict()
    step = pd.Timedelta(milliseconds=timeframe_ms(settings.timeframe))
    computed = online_forecasts(loaded, symbols, values, step)
    newest = {
        symbol: pd.Timestamp(forecast.prediction.as_of)  # UTC, whatever the online store returns
        for symbol, forecast in computed.items()
        if forecast is not None
    }
    late = _missed_forecasts(settings, loaded, newest, step)
    made_at = datetime.now(UTC)
    now, source = _now(clock or exchange_clock(settings))
    forecasts = []
    for forecast in [*late, *(forecast for forecast in computed.values() if forecast is not None)]:
        age = forecast.age_seconds(now.timestamp())
        stale = is_stale(age, settings.feature_age_limit_seconds, step)
        forecasts.append(forecast.answer(age, stale, source))
    files = prediction_log.write_records(settings.predictions_dir, made_at, forecasts)
    missing = [symbol for symbol, forecast in computed.items() if forecast is None]
    hours = sorted({forecast.prediction.as_of for forecast in late})
    return RecordSummary(model=tag, forecasts=forecasts, late=hours, missing=missing, files=files)


def owed_hours(
    last_recorded: pd.Timestamp | None,
    newest: pd.Timestamp,
    step: pd.Timedelta,
    window: pd.Timedelta = CATCH_UP,
) -> list[pd.Timestamp]:
    """The hours (``as_of``) before ``newest`` (the symbol's newest hour online) whose forecast of record a
    symbol is still owed, oldest first: those after ``last_recorded`` (its newest recorded hour) and less
    than ``window`` before ``newest``. None while it has no record within ``window`` (its first record,
    so nothing before the first production model, or the stack was down longer than that)."""
    if last_recorded is None:
        return []
    hours = (newest - back * step for back in range(int(window / step) - 1, 0, -1))
    return [hour for hour in hours if hour > last_recorded]


def hour_values(table: pd.DataFrame, as_of: pd.Timestamp, symbols: list[str]) -> dict[str, list[Any]]:
    """What an online read of ``symbols`` returned while ``as_of`` was their newest hour: their feature
    table rows of that hour (``ONLINE_COLUMNS``; None where a value is null, every column None for a symbol
    without a row), the columns ``online_forecasts`` takes."""
    rows = table.loc[table["as_of"] == as_of].drop_duplicates("symbol").set_index("symbol")
    rows = rows.reindex(symbols)[ONLINE_COLUMNS].astype(object)
    rows = rows.where(rows.notna(), None)
    return {name: rows[name].tolist() for name in ONLINE_COLUMNS}


def _missed_forecasts(
    settings: Settings, loaded: LoadedModel, newest: dict[str, pd.Timestamp], step: pd.Timedelta
) -> list[CachedForecast]:
    """The forecasts of the hours each symbol is owed (``owed_hours`` against its records in the log) from
    the feature table's rows of each hour, through ``online_forecasts``; a symbol without a row that hour
    is left out."""
    if not newest:
        return []
    stamps = newest.values()
    logged = prediction_log.recorded(settings.predictions_dir, min(stamps) - CATCH_UP, max(stamps))
    last = logged.groupby("symbol")["as_of"].max()
    owed: dict[pd.Timestamp, list[str]] = {}
    for symbol, as_of in newest.items():
        for hour in owed_hours(last.get(symbol), as_of, step):
            owed.setdefault(hour, []).append(symbol)
    if not owed:
        return []
    table = feature_table.read(
        settings.feature_table_path,
        columns=["symbol", *ONLINE_COLUMNS],
        since_day=f"{min(owed) + step:%Y-%m-%d}",
    )
    return [
        forecast
        for hour, symbols in sorted(owed.items())
        for forecast in online_forecasts(loaded, symbols, hour_values(table, hour, symbols), step).values()
        if forecast is not None
    ]


def _now(clock: ExchangeClock) -> tuple[datetime, Clock]:
    """Now by ``clock`` after one sync (the last known or system clock if the exchange does not answer),
    and which clock that was."""
    try:
        clock.sync()
    except ExchangeFailure as error:
        logger.warning(
            "forecast of record: the exchange clock did not answer (%s); ages by the %s clock",
            error,
            clock.source,
        )
    return clock.now(), clock.source
