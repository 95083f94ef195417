"""hourcast's prediction API: a thin BentoML service over ``hourcast.serving``.

Run with ``bentoml serve bento_service.service:NextHour`` (or ``hourcast serve``).
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime
from typing import Annotated

import bentoml
from fastapi import FastAPI, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from hourcast import registry, serving
from hourcast.prediction_log import PredictionLog
from hourcast.settings import Settings

SYMBOL = r"^[A-Z0-9]{1,15}/[A-Z0-9]{1,15}$"
history_app = FastAPI(title="hourcast history")


class PredictRequest(BaseModel):
    """Body of ``POST /predict``."""

    model_config = ConfigDict(extra="forbid")
    symbol: str = Field(pattern=SYMBOL, description="Unified symbol, e.g. BTC/USDT", examples=["BTC/USDT"])
    allow_stale: bool = Field(False, description="Answer from stale features (flagged stale) instead of 503.")


class PredictBatchRequest(BaseModel):
    """Body of ``POST /predict_batch``."""

    model_config = ConfigDict(extra="forbid")
    symbols: list[Annotated[str, Field(pattern=SYMBOL)]] = Field(min_length=1, max_length=50)
    allow_stale: bool = False


class Band(BaseModel):
    """Uncertainty band of the predicted close, from walk-forward error quantiles."""

    low: float
    high: float
    quantiles: list[float]


class PredictionResponse(BaseModel):
    """One next-hour forecast."""

    symbol: str
    as_of: str = Field(description="Open time of the last closed candle used (UTC).")
    target_time: str = Field(description="Open time of the candle whose close is predicted (UTC).")
    last_close: float
    predicted_close: float
    predicted_return: float
    direction: str
    persistence_close: float
    model: str
    features_age_seconds: float
    stale: bool
    band: Band


def _model_reference() -> bentoml.models.BentoModel:
    """The model this service is built with: production if one is promoted, else the newest stored."""
    settings = Settings()
    tag = registry.production_tag(settings.registry_dir, settings.model_name)
    return bentoml.models.BentoModel(tag or f"{settings.model_name}:latest")


def _serving_options() -> dict:
    """Worker count and access logging from the settings (read when BentoML loads this module)."""
    settings = Settings()
    return {
        "workers": settings.serve_workers or "cpu_count",
        "logging": {"access": {"enabled": settings.serve_access_log}},
    }


@bentoml.service(name="hourcast", traffic={"timeout": 10}, **_serving_options())
@bentoml.asgi_app(history_app, path="/")
class NextHour:
    """Next-hour close forecasts from the production model and the freshest online features."""

    model_ref = _model_reference()

    def __init__(self) -> None:
        self.settings = Settings()
        packaged = str(self.model_ref.tag)
        self.predictor = serving.Predictor(
            self.settings, fallback_tag=None if packaged.endswith(":latest") else packaged
        )
        self.predictor.start()
        self.log = PredictionLog(self.settings.predictions_dir, self.settings.prediction_flush_seconds)
        self.log.start()
        gc.freeze()  # what start-up loaded lives forever: keep full collections from walking it per request

    def __is_ready__(self) -> bool:
        return self.predictor.model_tag is not None

    @bentoml.on_shutdown
    def close(self) -> None:
        """Stop the model refresher and flush the prediction log."""
        self.predictor.stop()
        self.log.close()

    def _answer(self, symbols: list[str], allow_stale: bool) -> list[PredictionResponse] | JSONResponse:
        """The forecasts, or a 503 that says why (BentoML would mask a raised 5xx's message)."""
        requested_at = datetime.now(UTC)
        try:
            predictions = self.predictor.predict(symbols, allow_stale)
        except serving.UnknownSymbol as error:
            raise bentoml.exceptions.NotFound(str(error)) from None
        except serving.Unavailable as error:
            return JSONResponse({"error": str(error)}, status_code=503)
        self.log.record(requested_at, predictions)
        return [PredictionResponse(**p.as_dict()) for p in predictions]

    # The endpoints are async though the work is not: it is about a millisecond of CPU (one Redis read
    # and one CatBoost row), cheaper on the event loop than a hop through the thread pool.
    @bentoml.api(input_spec=PredictRequest)
    async def predict(self, symbol: str, allow_stale: bool = False) -> PredictionResponse:
        """Forecast the close of the next hour for one symbol (503 with the reason when it cannot)."""
        answer = self._answer([symbol], allow_stale)
        return answer if isinstance(answer, JSONResponse) else answer[0]  # a Response passes through as is

    @bentoml.api(input_spec=PredictBatchRequest)
    async def predict_batch(self, symbols: list[str], allow_stale: bool = False) -> list[PredictionResponse]:
        """Forecasts for several symbols in one call (503 with the reason when any cannot be answered)."""
        return self._answer(symbols, allow_stale)

    @history_app.get("/history")
    def history(self, symbol: str = Query(pattern=SYMBOL), hours: int = Query(12, ge=1, le=720)) -> dict:
        """The last ``hours`` closed candles of a symbol (what the dashboard draws)."""
        from fastapi import HTTPException

        try:
            candles = self.predictor.history(symbol, hours)
        except serving.UnknownSymbol as error:
            raise HTTPException(404, str(error)) from None
        candles = candles.assign(ts=candles["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).drop(columns="symbol")
        return {"symbol": symbol, "candles": candles.to_dict(orient="records")}
