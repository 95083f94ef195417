"""The forecast of record: every hour, after the online features are materialized, the production model's
forecast for every configured symbol, logged whatever the traffic.

The hourly ingest makes it (``hourcast.ops.ingest_cycle``'s ``record`` step: the ``record-forecasts`` task
of the ``ingest`` and ``backfill`` flows, and `hourcast up`'s bootstrap) through the API's own path: the
online features of the serving feature service, the production model as the API loads it, and
``predictor.online_forecasts`` (the one predict path). The forecasts go to the prediction log marked
``source="record"`` (``prediction_log.write_records``: one file per hour, so making the record of an hour
twice logs it once); the monitor scores them like every logged answer, so the scoreboard starts with the
first hour even when no client ever calls ``/predict``. Their age, staleness and clock are those of the
moment they were made, by the system clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from hourcast.features import featurestore
from hourcast.model import registry
from hourcast.serving import prediction_log
from hourcast.serving.forecasts import is_stale
from hourcast.serving.predictor import load_model, online_forecasts
from hourcast.serving.schema import Prediction
from hourcast.settings import Settings
from hourcast.timeframe import timeframe_ms

if TYPE_CHECKING:
    from feast import FeatureStore


@dataclass(frozen=True)
class RecordSummary:
    """What one record step did: the model (None: no production model yet, nothing recorded), the
    forecasts made, the symbols without online features, and the log files written (none when the hour
    was already recorded)."""

    model: str | None
    forecasts: list[Prediction] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """One line for the run's log."""
        return {
            "model": self.model,
            "as_of": sorted({forecast.as_of for forecast in self.forecasts}),
            "symbols": len(self.forecasts),
            "missing": self.missing,
            "files": [path.name for path in self.files],
        }


def record_forecasts(
    settings: Settings, feature_store: FeatureStore | None = None, made_at: datetime | None = None
) -> RecordSummary:
    """Forecast every configured symbol from its online features with the production model and log the
    forecasts as their hour's record (an hour already recorded is left as it is). Nothing is recorded
    while no model is promoted. Raises ``OnlineStoreUnavailable`` if the online store does not answer."""
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
    made_at = made_at or datetime.now(UTC)
    forecasts = []
    for forecast in computed.values():
        if forecast is None:
            continue
        age = forecast.age_seconds(made_at.timestamp())
        stale = is_stale(age, settings.feature_age_limit_seconds, step)
        forecasts.append(forecast.answer(age, stale, "system"))
    files = prediction_log.write_records(settings.predictions_dir, made_at, forecasts)
    missing = [symbol for symbol, forecast in computed.items() if forecast is None]
    return RecordSummary(model=tag, forecasts=forecasts, missing=missing, files=files)
