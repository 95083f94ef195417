"""hourcast's prediction API: a thin BentoML service over ``hourcast.serving`` and ``hourcast.api``.

Run with ``bentoml serve bento_service.service:NextHour`` (or ``hourcast serve``); either way it binds
127.0.0.1:3000 unless ``--host``/``--port`` say otherwise. Importing this module only declares things:
the model is resolved and loaded in ``__init__``.
"""

from __future__ import annotations

import contextlib
import gc
from datetime import UTC, datetime

import bentoml
from fastapi import Query, Response
from fastapi.responses import PlainTextResponse
from pydantic import TypeAdapter

from hourcast.api import asgi
from hourcast.compat.typeguard import skip_feast_instrumentation
from hourcast.data.selection import resolved
from hourcast.model.served_model import ProductionModel
from hourcast.serving import predictor, schema
from hourcast.serving.prediction_log import PredictionLog
from hourcast.settings import Settings
from hourcast.warning_filters import quiet_known_deprecations

quiet_known_deprecations()  # a warnings filter: before Feast and BentoML warn in this process
skip_feast_instrumentation()  # before the service imports Feast (hourcast.compat.typeguard)
app = asgi.build_app("hourcast")


async def current_service() -> NextHour:
    """``bentoml.get_current_service`` as an async dependency. BentoML gives each route's ``self`` the sync
    one, which FastAPI would run in a worker thread on every request: a thread hop per forecast."""
    return bentoml.get_current_service()


app.dependency_overrides[bentoml.get_current_service] = current_service
PREDICTIONS_JSON = TypeAdapter(list[schema.Prediction])
SYMBOL_QUERY = {"pattern": schema.SYMBOL_PATTERN, "description": "Unified symbol, e.g. BTC/USDT"}


@bentoml.service(
    name="hourcast",
    http={"host": "127.0.0.1", "port": 3000},
    workers="cpu_count",
    traffic={"timeout": 10},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": asgi.HEALTH_URLS},
)
@bentoml.asgi_app(app, path="/")
class NextHour:
    """Next-hour close forecasts from the production model and the freshest online features."""

    model_ref = ProductionModel()  # resolved in __init__; promotions are then followed live

    def __init__(self) -> None:
        self.settings = resolved(Settings())  # all-usdt: the symbols ingest resolved, no exchange call
        declared = str(self.model_ref.tag)  # resolved now (registry, model store), never at import
        self.predictor = predictor.Predictor(self.settings, fallback_tag=declared)
        self.predictor.start()
        self.log = PredictionLog(self.settings.predictions_dir, self.settings.prediction_flush_seconds)
        self.log.start()
        self.feature_ages = asgi.FeatureAges()
        gc.freeze()  # what start-up loaded lives forever: keep full collections from walking it per request

    @bentoml.on_shutdown
    def close(self) -> None:
        """Stop the background jobs and flush the prediction log."""
        self.predictor.stop()
        self.log.close()

    async def answer(self, symbols: list[str], allow_stale: bool) -> list[schema.Prediction]:
        """The forecasts of ``symbols`` (``predictor.Unavailable`` when they cannot be answered), logged."""
        requested_at = datetime.now(UTC)
        predictions = await self.predictor.predict_async(symbols, allow_stale)
        self.log.record(requested_at, predictions)
        return predictions

    @app.get("/history", tags=[asgi.FORECASTS], responses=asgi.GET_ERRORS)
    def history(
        self,
        symbol: str = Query(**SYMBOL_QUERY),
        hours: int = Query(12, ge=1, le=720, description="How many hourly candles."),
    ) -> schema.History:
        """The last ``hours`` closed candles of a symbol (what the dashboard draws)."""
        candles = self.predictor.history(symbol, hours)
        candles = candles.assign(ts=candles["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ")).drop(columns="symbol")
        return schema.History(symbol=symbol, candles=candles.to_dict(orient="records"))

    @app.get("/model", tags=[asgi.FORECASTS], responses=asgi.MODEL_ERRORS)
    async def model(self) -> schema.ModelCard:
        """The model this worker serves: the window it was trained on and how it compared with persistence
        on its promotion gate (walk-forward MAE, persistence's, their ratio, Diebold-Mariano p)."""
        tag = self.predictor.model_tag
        return await asgi.off_loop(asgi.model_card_body, self.settings, tag, source="the model store")

    @app.get("/scoreboard", tags=[asgi.MONITORING], responses=asgi.MONITOR_ERRORS)
    async def scoreboard(
        self,
        symbol: str | None = Query(None, **SYMBOL_QUERY),
        window: schema.Window | None = Query(None, description="Rolling window (default: all three)."),
    ) -> schema.Scoreboard:
        """Rolling MAE, RMSE, directional accuracy, MAE ratio to persistence, Diebold-Mariano p-value and
        band coverage per window, symbol and model: the numbers `hourcast monitor` prints."""
        if symbol is not None:
            self.predictor.check_symbols([symbol])
        return await asgi.off_loop(asgi.scoreboard_body, self.settings, symbol, window)

    @app.get("/performance", tags=[asgi.MONITORING], responses=asgi.MONITOR_ERRORS)
    async def performance(
        self,
        symbol: str = Query(**SYMBOL_QUERY),
        hours: int = Query(168, ge=1, le=720, description="How many served hours, up to the newest stored."),
    ) -> schema.Performance:
        """Predicted vs realised close with the band per served hour, the trailing 24 h MAE ratio and
        directional accuracy, and when each model served (what the dashboard's Performance view draws)."""
        [symbol] = self.predictor.check_symbols([symbol])
        return await asgi.off_loop(
            asgi.performance_body, self.settings, symbol, hours, self.predictor.model_tag
        )

    @app.get(
        "/monitor/metrics",
        tags=[asgi.MONITORING],
        response_class=PlainTextResponse,
        responses=asgi.PROMETHEUS_RESPONSES,
    )
    async def monitor_metrics(self) -> PlainTextResponse:
        """Prometheus gauges per symbol: rolling MAE ratio, MAE, directional accuracy, band coverage and
        hours scored (24h, 7d, 30d), the online features' age and the model tag (`hourcast_model_info`).
        BentoML's own request metrics stay at `/metrics`."""
        # a fresh, bounded read while the store is up; else the last answer's age (/readyz says why)
        with contextlib.suppress(predictor.Unavailable):
            self.feature_ages.remember(await self.predictor.predict_async(self.settings.symbols, True))
        ages = self.feature_ages.ages(self.predictor.clock.now())
        text = await asgi.off_loop(asgi.prometheus_body, self.settings, self.predictor.model_tag, ages)
        return PlainTextResponse(text, media_type=asgi.PROMETHEUS_CONTENT_TYPE)


# The forecast routes are plain functions, not methods: FastAPI resolves a method's ``self`` through the
# dependency override above, which costs it a signature inspection per request (FastAPI 0.150), a tenth of
# an answer served from memory. Their answers are serialized by pydantic directly (``response_model``
# declares their schema): FastAPI would otherwise validate each answer it is handed, then encode it again.
@app.post("/predict", tags=[asgi.FORECASTS], responses=asgi.POST_ERRORS, response_model=schema.Prediction)
async def predict(request: schema.PredictRequest) -> Response:
    """Forecast the close of the next hour for one symbol (503 with the reason when it cannot)."""
    service: NextHour = bentoml.get_current_service()
    [prediction] = await service.answer([request.symbol], request.allow_stale)
    return Response(prediction.model_dump_json(), media_type="application/json")


@app.post(
    "/predict_batch",
    tags=[asgi.FORECASTS],
    responses=asgi.POST_ERRORS,
    response_model=list[schema.Prediction],
)
async def predict_batch(request: schema.PredictBatchRequest) -> Response:
    """Forecasts for up to 100 symbols in one call, one per distinct symbol in request order."""
    service: NextHour = bentoml.get_current_service()
    predictions = await service.answer(request.symbols, request.allow_stale)
    return Response(PREDICTIONS_JSON.dump_json(predictions), media_type="application/json")


# the first middleware added is the outermost of the service's own: health probes are answered before
# the others (and BentoML's tracing leaves them out, see the decorator)
NextHour.add_asgi_middleware(
    asgi.HealthEndpoints, readiness=lambda: bentoml.get_current_service().predictor.readiness()
)
NextHour.add_asgi_middleware(asgi.ErrorShape)
NextHour.add_asgi_middleware(asgi.OpenApiInfo, title="hourcast prediction API")
NextHour.add_asgi_middleware(asgi.BodyLimit, max_bytes=asgi.MAX_BODY_BYTES)
