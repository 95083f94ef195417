"""hourcast's prediction API: a thin BentoML service over ``hourcast.serving`` and ``hourcast.api``.

Run with ``bentoml serve bento_service.service:NextHour`` (or ``hourcast serve``); either way it binds
127.0.0.1:3000 unless ``--host``/``--port`` say otherwise. Importing this module only declares things:
the model is resolved and loaded in ``__init__``.
"""

from __future__ import annotations

import gc
from datetime import UTC, datetime

import bentoml
from fastapi import Query

from hourcast import api, schema, serving
from hourcast.prediction_log import PredictionLog
from hourcast.served_model import ProductionModel
from hourcast.settings import Settings

app = api.build_app("hourcast")


@bentoml.service(
    name="hourcast",
    http={"host": "127.0.0.1", "port": 3000},
    workers="cpu_count",
    traffic={"timeout": 10},
    logging={"access": {"enabled": False}},
)
@bentoml.asgi_app(app, path="/")
class NextHour:
    """Next-hour close forecasts from the production model and the freshest online features."""

    model_ref = ProductionModel()  # resolved in __init__; promotions are then followed live

    def __init__(self) -> None:
        self.settings = Settings()
        declared = str(self.model_ref.tag)  # resolved now (registry, model store), never at import
        self.predictor = serving.Predictor(self.settings, fallback_tag=declared)
        self.predictor.start()
        self.log = PredictionLog(self.settings.predictions_dir, self.settings.prediction_flush_seconds)
        self.log.start()
        gc.freeze()  # what start-up loaded lives forever: keep full collections from walking it per request

    @bentoml.on_shutdown
    def close(self) -> None:
        """Stop the background jobs and flush the prediction log."""
        self.predictor.stop()
        self.log.close()

    async def _answer(self, symbols: list[str], allow_stale: bool) -> list[schema.Prediction]:
        requested_at = datetime.now(UTC)
        predictions = await self.predictor.predict_async(symbols, allow_stale)
        self.log.record(requested_at, predictions)
        return predictions

    @app.post("/predict", responses=api.POST_ERRORS)
    async def predict(self, request: schema.PredictRequest) -> schema.Prediction:
        """Forecast the close of the next hour for one symbol (503 with the reason when it cannot)."""
        [prediction] = await self._answer([request.symbol], request.allow_stale)
        return prediction

    @app.post("/predict_batch", responses=api.POST_ERRORS)
    async def predict_batch(self, request: schema.PredictBatchRequest) -> list[schema.Prediction]:
        """Forecasts for up to 50 symbols in one call, one per distinct symbol in request order."""
        return await self._answer(request.symbols, request.allow_stale)

    @app.get("/history", responses=api.GET_ERRORS)
    def history(
        self,
        symbol: str = Query(pattern=schema.SYMBOL_PATTERN, description="Unified symbol, e.g. BTC/USDT"),
        hours: int = Query(12, ge=1, le=720, description="How many hourly candles."),
    ) -> schema.History:
        """The last ``hours`` closed candles of a symbol (what the dashboard draws)."""
        candles = self.predictor.history(symbol, hours)
        candles = candles.assign(ts=candles["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).drop(columns="symbol")
        return schema.History(symbol=symbol, candles=candles.to_dict(orient="records"))


NextHour.add_asgi_middleware(api.ErrorShape)
NextHour.add_asgi_middleware(api.BodyLimit, max_bytes=api.MAX_BODY_BYTES)
NextHour.add_asgi_middleware(
    api.ReadinessEndpoint, readiness=lambda: bentoml.get_current_service().predictor.readiness()
)
