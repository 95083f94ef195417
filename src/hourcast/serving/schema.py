"""The prediction API's contract: request, answer, error and readiness bodies.

One definition, used by the service (validation and its OpenAPI document), the prediction log (its columns)
and the dashboard (what it accepts from the API). Requests are strict: no coercion ("yes" is not a
boolean, 42 is not a symbol) and no unknown fields.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

SYMBOL_PATTERN = r"^[A-Z0-9]{1,15}/[A-Z0-9]{1,15}$"
MAX_BATCH_SYMBOLS = 100  # a batch of 100 symbols is what benchmarks/scale.py times over HTTP
Symbol = Annotated[
    str, Field(pattern=SYMBOL_PATTERN, description="Unified symbol, e.g. BTC/USDT", examples=["BTC/USDT"])
]
Clock = Literal["exchange", "last_known_exchange", "system"]
Source = Literal["record", "request"]
"""Where a logged forecast came from: ``record``, the hour's forecast of record (made by the hourly ingest
after each materialize, whatever the traffic), or ``request``, an answer to a client."""


class PredictRequest(BaseModel):
    """Body of ``POST /predict``."""

    model_config = ConfigDict(extra="forbid", strict=True)
    symbol: Symbol
    allow_stale: bool = Field(False, description="Answer from stale features (flagged stale) instead of 503.")


class PredictBatchRequest(BaseModel):
    """Body of ``POST /predict_batch``: up to 100 symbols; repeats are answered once."""

    model_config = ConfigDict(extra="forbid", strict=True)
    symbols: list[Symbol] = Field(min_length=1, max_length=MAX_BATCH_SYMBOLS)
    allow_stale: bool = Field(False, description="Answer from stale features (flagged stale) instead of 503.")


class Band(BaseModel):
    """Uncertainty band of the predicted close, from walk-forward error quantiles."""

    low: float
    high: float
    quantiles: list[float]


class Prediction(BaseModel):
    """One next-hour forecast, as the API answers it (the feature values travel privately, to the log)."""

    model_config = ConfigDict(frozen=True)
    symbol: str
    as_of: str = Field(description="Open time of the last closed candle used (UTC).")
    target_time: str = Field(description="Open time of the candle whose close is predicted (UTC).")
    last_close: float
    predicted_close: float
    predicted_return: float = Field(description="Predicted log return of the next hour.")
    direction: Literal["up", "down"]
    persistence_close: float = Field(description="The naive forecast: the last close.")
    model: str = Field(description="Tag of the model that answered.")
    features_age_seconds: float = Field(description="How old the features are, by `clock`.")
    stale: bool = Field(description="Features older than the service's limit (only with allow_stale).")
    band: Band
    p_up: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Probability that the next close is above the last, calibrated on walk-forward "
        "residuals (null for a model saved without a calibration).",
    )
    clock: Clock = Field(
        description="What 'now' was for the age: the exchange's clock, its last known offset (the "
        "exchange is unreachable), or the system clock (never reached)."
    )
    _features: dict[str, float] = PrivateAttr(default_factory=dict)

    @property
    def features(self) -> dict[str, float]:
        """The model inputs this forecast was computed from."""
        return self._features

    def with_features(self, features: dict[str, float]) -> Prediction:
        """This prediction carrying its feature values (not part of the JSON body)."""
        self._features = features
        return self


class Candle(BaseModel):
    """One closed hourly candle; ``ts`` is its open time (UTC)."""

    ts: str
    open: float
    high: float
    low: float
    close: float
    volume: float


class History(BaseModel):
    """``GET /history``: the last closed candles of a symbol, oldest first."""

    symbol: str
    candles: list[Candle]


class ErrorBody(BaseModel):
    """Every error the API answers, whatever the path or status."""

    error: str = Field(description="What went wrong, for a person.")
    status: int = Field(description="The HTTP status, repeated.")


class Readiness(BaseModel):
    """``GET /readyz``: whether this worker can answer, and why not."""

    ready: bool
    model: str | None = Field(description="Tag of the model in use.")
    online_store: str = Field(description="'up', or why the online store is considered down.")
    model_reload_error: str | None = Field(description="The last failed model reload, if any.")
    clock: Clock
    problems: list[str] = Field(description="Why the worker is not ready (empty when ready).")


Window = Literal["24h", "7d", "30d"]


class ScoreboardRow(BaseModel):
    """Rolling forecast metrics of one window, symbol and model tag (``all``: what was served, one answer
    per hour whatever the model). A figure is null where it is undefined (e.g. under 2 scored hours)."""

    window: Window
    symbol: str
    model: str = Field(description="Model tag, or 'all'.")
    hours: int = Field(description="Hours scored in the window.")
    unscorable: int = Field(description="Predictions whose target hour is missing from the store.")
    mae: float | None = Field(description="Mean absolute error of the predicted close.")
    rmse: float | None
    directional_accuracy: float | None = Field(description="Share of hours whose direction was right.")
    persistence_mae: float | None = Field(description="MAE of the naive forecast (the last close).")
    mae_ratio: float | None = Field(description="mae / persistence_mae: below 1 beats persistence.")
    dm_p_value: float | None = Field(description="Diebold-Mariano p-value on absolute errors.")
    coverage: float | None = Field(description="Share of realised closes inside the served band.")
    reversal_accuracy: float | None = Field(
        description="Directional accuracy of 'the last move reverses' on the same hours (those whose "
        "previous hour was scored too)."
    )
    mcnemar_p_value: float | None = Field(
        description="McNemar's p-value: the model's direction against 'the last move reverses'."
    )


class Scoreboard(BaseModel):
    """``GET /scoreboard``: the same rolling metrics as ``hourcast monitor``, from the scores dataset."""

    newest_hour: str | None = Field(description="The data clock: the newest stored hour the windows end at.")
    production: str | None = Field(description="Tag of the production model.")
    rows: list[ScoreboardRow]


class ScoredHour(BaseModel):
    """One hour of the Performance view: its forecast of record (else the first answer served) and what then
    closed."""

    target_time: str = Field(description="Open time of the predicted candle (UTC).")
    predicted_close: float
    realised_close: float | None = Field(description="Null when the candle is missing (unscorable).")
    band_low: float | None
    band_high: float | None
    model: str
    source: Source = Field(
        "request", description="'record': the hour's forecast of record; 'request': a client's answer."
    )


class RollingPoint(BaseModel):
    """Trailing 24-hour figures at one scored hour."""

    target_time: str
    model: str
    mae_ratio: float | None
    directional_accuracy: float | None
    hours: int = Field(description="Scored hours in the trailing 24 hours.")


class ModelSpan(BaseModel):
    """When a model served a symbol (as-of hours, UTC): ``first`` is when it took over."""

    model: str
    first: str
    last: str


class Performance(BaseModel):
    """``GET /performance``: what the dashboard's Performance view draws for one symbol."""

    symbol: str
    newest_hour: str | None
    production: str | None
    history: list[ScoredHour]
    rolling: list[RollingPoint]
    models: list[ModelSpan]


class GateFigures(BaseModel):
    """How a model compared with persistence on its promotion gate: the walk-forward weeks scored before its
    final fit (``hourcast.model.card.Gate``)."""

    weeks: int
    hours: int = Field(description="Hours scored (all symbols).")
    mae: float = Field(description="The model's walk-forward MAE (before calibration).")
    persistence_mae: float = Field(description="Persistence's MAE on the same hours.")
    mae_ratio: float = Field(description="mae / persistence_mae: below 1 beats persistence.")
    dm_p_value: float | None = Field(description="Diebold-Mariano p-value on absolute errors.")


class ModelCard(BaseModel):
    """``GET /model``: the model this worker serves, the window it was trained on and its gate figures."""

    model: str = Field(description="Tag of the model in use.")
    trained_from: str | None = Field(description="First labelled hour of the training window.")
    trained_until: str | None = Field(description="Last labelled hour of the training window.")
    training_days: float | None = Field(description="Days the training window spans (365 by default).")
    training_rows: int | None
    gate: GateFigures | None = Field(description="Null for a model saved without its gate figures.")
    summary: str = Field(description="The same in one line, as `hourcast models list` prints it.")
