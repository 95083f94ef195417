"""The CatBoost next-hour return model: fitting, prediction, a leakage-free split and walk-forward evaluation.

One model serves every symbol: ``symbol`` is a categorical input beside ``FEATURE_NAMES`` and the target
is ``target_return`` = log(next_close / last_close). Rows are fed in time order with ``has_time=True``,
so CatBoost's ordered statistics never use a later row to encode an earlier one.

Every forecast goes through ``forecast``, the one predict path of training, evaluation and serving: the
raw CatBoost return shrunk toward persistence by the model's ``Calibration`` (fitted out of sample, on
walk-forward predictions only), a conformal band from walk-forward residuals scaled by the recent
volatility, and ``p_up``, the probability that the next close is above the last, read off the same
residual distribution.

Leakage rule: the label of a row stamped ``event_timestamp`` (close time of its last candle) is the close
one timeframe later (``horizon``), so a row may train a model used at time ``t`` only if
``event_timestamp + horizon <= t``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import catboost
import numpy as np
import numpy.typing as npt
import pandas as pd

from hourcast.features.compute import FEATURE_NAMES
from hourcast.model import metrics

# Hourly returns are close to unpredictable: a heavily regularised model with an MAE loss stays near
# "no change" unless the features say otherwise. Over 8 walk-forward weeks of BTC+ETH it scored an MAE
# ratio to persistence of 1.003 (RMSE loss, depth 6, 300 iterations: 1.035, significantly worse).
DEFAULT_PARAMS: dict = {
    "loss_function": "MAE",
    "iterations": 200,
    "depth": 4,
    "learning_rate": 0.03,
    "l2_leaf_reg": 20.0,
    "random_seed": 0,
    "thread_count": 2,
    "has_time": True,
    "verbose": False,
    "allow_writing_files": False,
}
MODEL_INPUTS: list[str] = ["symbol", *FEATURE_NAMES]
CATEGORICAL_INPUTS = ["symbol"]
SMALL_POOL_ROWS = 256  # up to this many rows a pool is built from an object array (see ``_pool``)
TARGET = "target_return"
MIN_ROWS = 48
SHRINK_GRID = tuple(
    round(0.05 * step, 2) for step in range(1, 21)
)  # never 0: the direction stays the model's
RESIDUAL_LEVELS = tuple(round(0.01 * step, 2) for step in range(1, 100))
BAND_LEVELS = (0.05, 0.95)  # the served band: a central 90 % interval
SCALE_FEATURE = "volatility_24h"
MIN_SCALE = 1e-5  # hourly log-return volatility floor (a flat day would otherwise give a zero-width band)

FitFn = Callable[..., catboost.CatBoostRegressor]


def _pool(frame: pd.DataFrame, inputs: list[str], label: pd.Series | None = None) -> catboost.Pool:
    """The ``inputs`` of ``frame`` as a CatBoost pool (symbol as a plain-str categorical). A frame of a
    few rows (a served request) goes in as one object array: CatBoost's per-column DataFrame handling
    costs milliseconds whatever the row count, about a hundred times the prediction; same values, same
    pool."""
    missing = [column for column in inputs if column not in frame.columns]
    if missing:
        raise ValueError(f"frame lacks model inputs: {missing}")
    if len(frame) <= SMALL_POOL_ROWS:
        data = frame[inputs].to_numpy(dtype=object)
        return catboost.Pool(data, label=label, cat_features=CATEGORICAL_INPUTS, feature_names=list(inputs))
    return catboost.Pool(
        frame[inputs].astype({"symbol": object}), label=label, cat_features=CATEGORICAL_INPUTS
    )


def _time_ordered(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values(["event_timestamp", "symbol"], kind="stable").reset_index(drop=True)


def fit(
    frame: pd.DataFrame, params: dict | None = None, inputs: list[str] | None = None
) -> catboost.CatBoostRegressor:
    """A CatBoost regressor of ``target_return`` on ``inputs`` (default ``MODEL_INPUTS``; ``symbol`` first),
    trained on the rows in time order; the model remembers its inputs.

    ``params`` override ``DEFAULT_PARAMS``. Raises ``ValueError`` for fewer than ``MIN_ROWS`` rows or a
    missing or non-finite target.
    """
    if len(frame) < MIN_ROWS:
        raise ValueError(f"need at least {MIN_ROWS} training rows, got {len(frame)}")
    if TARGET not in frame.columns:
        raise ValueError(f"training frame lacks the target column {TARGET!r}")
    ordered = _time_ordered(frame)
    target = ordered[TARGET].astype("float64")
    if not np.isfinite(target.to_numpy()).all():
        raise ValueError(
            f"{TARGET} has {int((~np.isfinite(target.to_numpy())).sum())} missing or non-finite values"
        )
    model = catboost.CatBoostRegressor(**{**DEFAULT_PARAMS, **(params or {})})
    model.fit(_pool(ordered, inputs or MODEL_INPUTS, target))
    return model


def predict_returns(model: catboost.CatBoostRegressor, frame: pd.DataFrame) -> np.ndarray:
    """Predicted next-hour log returns for the rows of ``frame`` (which must hold the model's inputs), in
    row order."""
    pool = _pool(frame, list(model.feature_names_))
    return np.asarray(model.predict(pool), dtype="float64")


def to_close(last_close: npt.ArrayLike, predicted_return: npt.ArrayLike) -> np.ndarray:
    """The close implied by a predicted log return: ``last_close * exp(predicted_return)``."""
    return np.asarray(last_close, dtype="float64") * np.exp(np.asarray(predicted_return, dtype="float64"))


def fit_shrink(last_close: npt.ArrayLike, raw_return: npt.ArrayLike, next_close: npt.ArrayLike) -> float:
    """The factor ``k`` of ``SHRINK_GRID`` (toward 0: persistence, 1: the raw model) whose forecasts
    ``last_close * exp(k * raw_return)`` have the smallest MAE against ``next_close`` (the smallest such
    ``k`` on ties). Fit it on out-of-sample predictions only: in sample it rewards overfitting."""
    last, raw, actual = (
        np.asarray(values, dtype="float64") for values in (last_close, raw_return, next_close)
    )
    errors = [float(np.mean(np.abs(to_close(last, k * raw) - actual))) for k in SHRINK_GRID]
    return SHRINK_GRID[int(np.argmin(errors))]


@dataclass(frozen=True)
class Calibration:
    """Out-of-sample corrections of a model, fitted on its walk-forward predictions (``calibrate``).

    ``shrink`` multiplies the raw predicted return; ``quantiles`` are the ``RESIDUAL_LEVELS`` quantiles of
    the scaled residuals ``(actual return - shrunk return) / scale``; ``persistence_quantiles`` per symbol
    the ``BAND_LEVELS`` quantiles of its actual return (persistence's band of the same nominal coverage, for
    evaluation);
    ``up_rate`` the share of those hours that closed up (the climatological ``p_up``)."""

    shrink: float
    quantiles: tuple[float, ...]
    persistence_quantiles: dict[str, tuple[float, float]]
    up_rate: float
    hours: int

    def as_metadata(self) -> dict:
        """A JSON-safe dict for the model metadata."""
        return {
            "shrink": self.shrink,
            "levels": list(RESIDUAL_LEVELS),
            "quantiles": list(self.quantiles),
            "persistence_quantiles": {
                symbol: list(pair) for symbol, pair in self.persistence_quantiles.items()
            },
            "up_rate": self.up_rate,
            "hours": self.hours,
        }

    @classmethod
    def from_metadata(cls, stored: dict) -> Calibration:
        """The calibration ``as_metadata`` wrote."""
        if [round(level, 2) for level in stored["levels"]] != list(RESIDUAL_LEVELS):
            raise ValueError("stored calibration has other residual levels than this code")
        return cls(
            shrink=float(stored["shrink"]),
            quantiles=tuple(float(q) for q in stored["quantiles"]),
            persistence_quantiles={
                symbol: (float(low), float(high))
                for symbol, (low, high) in stored["persistence_quantiles"].items()
            },
            up_rate=float(stored["up_rate"]),
            hours=int(stored["hours"]),
        )


def scale(frame: pd.DataFrame) -> np.ndarray:
    """Per-row scale of the residuals: the recent hourly volatility, floored at ``MIN_SCALE``."""
    return np.maximum(frame[SCALE_FEATURE].to_numpy(dtype="float64"), MIN_SCALE)


def calibrate(predictions: pd.DataFrame) -> Calibration:
    """Shrink factor, scaled residual quantiles and climatology from walk-forward ``predictions`` (columns
    ``last_close, next_close, raw_return, spread`` as ``predictions_frame`` writes them)."""
    if len(predictions) < MIN_ROWS:
        raise ValueError(
            f"need at least {MIN_ROWS} walk-forward predictions to calibrate, got {len(predictions)}"
        )
    last = predictions["last_close"].to_numpy(dtype="float64")
    actual = predictions["next_close"].to_numpy(dtype="float64")
    raw = predictions["raw_return"].to_numpy(dtype="float64")
    shrink = fit_shrink(last, raw, actual)
    realised = np.log(actual / last)
    residuals = (realised - shrink * raw) / predictions["spread"].to_numpy(dtype="float64")
    return Calibration(
        shrink=shrink,
        quantiles=tuple(float(q) for q in np.quantile(residuals, RESIDUAL_LEVELS)),
        persistence_quantiles={
            str(symbol): tuple(float(q) for q in np.quantile(realised[rows], BAND_LEVELS))
            for symbol, rows in predictions.groupby("symbol", sort=True).indices.items()
        },
        up_rate=float(np.mean(actual > last)),
        hours=len(predictions),
    )


def calibrated(
    raw_return: np.ndarray, last_close: np.ndarray, spread: np.ndarray, calibration: Calibration | None
) -> pd.DataFrame:
    """The served forecast from raw predicted returns, last closes and residual scales (``scale``):
    ``predicted_return``, ``predicted_close``, ``band_low``, ``band_high`` and ``p_up``. Without a
    calibration the raw forecast, with NaN band and ``p_up``."""
    raw_return = np.asarray(raw_return, dtype="float64")
    last = np.asarray(last_close, dtype="float64")
    spread = np.asarray(spread, dtype="float64")
    if calibration is None:
        nan = np.full(len(raw_return), np.nan)
        return pd.DataFrame(
            {
                "predicted_return": raw_return,
                "predicted_close": to_close(last, raw_return),
                "band_low": nan,
                "band_high": nan,
                "p_up": nan,
            }
        )
    predicted = calibration.shrink * raw_return
    levels, quantiles = np.asarray(RESIDUAL_LEVELS), np.asarray(calibration.quantiles)
    low, high = (float(np.interp(level, levels, quantiles)) for level in BAND_LEVELS)
    # P(predicted + spread * z > 0) = 1 - F(-predicted / spread), F the residuals' interpolated CDF
    p_up = 1.0 - np.interp(-predicted / spread, quantiles, levels, left=levels[0], right=levels[-1])
    return pd.DataFrame(
        {
            "predicted_return": predicted,
            "predicted_close": to_close(last, predicted),
            "band_low": to_close(last, predicted + spread * low),
            "band_high": to_close(last, predicted + spread * high),
            "p_up": p_up,
        }
    )


def forecast(
    model: catboost.CatBoostRegressor, frame: pd.DataFrame, calibration: Calibration | None
) -> pd.DataFrame:
    """The one predict path: ``calibrated`` applied to the model's raw returns for ``frame``'s rows."""
    raw = predict_returns(model, frame)
    return calibrated(raw, frame["last_close"].to_numpy(dtype="float64"), scale(frame), calibration)


def span_text(span: pd.Timedelta) -> str:
    """A duration as people write it: ``365 days``, ``1 day``, ``12.5 days``, ``6 hours``."""
    days = span / pd.Timedelta(days=1)
    if days < 1:
        hours = span / pd.Timedelta(hours=1)
        return f"{hours:g} hour" if hours == 1 else f"{hours:.3g} hours"
    return "1 day" if days == 1 else f"{days:.1f} days".replace(".0 days", " days")


@dataclass(frozen=True)
class WalkForward:
    """Walk-forward results: one prediction per test row, one record per fold, pooled metrics."""

    predictions: pd.DataFrame
    folds: list[dict]
    metrics: dict


def band_scores(
    actual_close: np.ndarray, low: pd.Series, high: pd.Series, last_close: np.ndarray
) -> dict[str, float]:
    """Proper scores of a ``BAND_LEVELS`` band, in percent of the last close (so that pairs of different
    prices pool): the pinball loss at its low and high quantile and the interval (Winkler) score."""
    percent = 100.0 / last_close
    actual = actual_close * percent
    lows, highs = low.to_numpy(dtype="float64") * percent, high.to_numpy(dtype="float64") * percent
    return {
        "pinball_low": metrics.pinball_loss(actual, lows, BAND_LEVELS[0]),
        "pinball_high": metrics.pinball_loss(actual, highs, BAND_LEVELS[1]),
        "interval_score": metrics.interval_score(actual, lows, highs, BAND_LEVELS[0] + 1.0 - BAND_LEVELS[1]),
    }


def evaluate(predictions: pd.DataFrame) -> dict:
    """Model and persistence metrics and their comparison for a predictions frame (columns as in
    ``WalkForward.predictions``), and ``direction``: the model's direction against "the last move reverses"
    on the same hours (McNemar); calibrated predictions also get ``band`` (the model's band, its coverage,
    width and proper scores, and those of persistence's band of the same nominal coverage) and ``p_up``
    (Brier scores of ``p_up`` and of the climatological rate)."""
    actual = predictions["next_close"].to_numpy(dtype="float64")
    predicted = predictions["predicted_close"].to_numpy(dtype="float64")
    persistence = predictions["persistence_close"].to_numpy(dtype="float64")
    model_metrics = metrics.forecast_metrics(actual, predicted, persistence)
    baseline_metrics = metrics.persistence_metrics(
        actual, persistence, predictions["previous_close"].to_numpy(dtype="float64")
    )
    dm = metrics.diebold_mariano(predicted - actual, persistence - actual)
    scored = {
        "model": model_metrics,
        "persistence": baseline_metrics,
        "comparison": metrics.comparison(model_metrics, baseline_metrics, dm),
        "direction": metrics.direction_versus_reversal(
            actual, predicted, persistence, predictions["previous_close"].to_numpy(dtype="float64")
        ),
    }
    if "p_up" not in predictions or predictions["p_up"].isna().any():
        return scored
    model_band = metrics.interval_metrics(
        actual, predictions["band_low"], predictions["band_high"], persistence
    )
    baseline_band = metrics.interval_metrics(
        actual, predictions["persistence_low"], predictions["persistence_high"], persistence
    )
    model_band |= band_scores(actual, predictions["band_low"], predictions["band_high"], persistence)
    baseline_band |= band_scores(
        actual, predictions["persistence_low"], predictions["persistence_high"], persistence
    )
    up = (actual > persistence).astype("float64")
    brier = metrics.brier_score(predictions["p_up"], up)
    climatology = metrics.brier_score(predictions["p_up_climatology"], up)
    scored["band"] = {
        "nominal": BAND_LEVELS[1] - BAND_LEVELS[0],
        "levels": list(BAND_LEVELS),
        "model": model_band,
        "persistence": baseline_band,
        "width_ratio": model_band["width_pct"] / baseline_band["width_pct"],
        "interval_score_ratio": model_band["interval_score"] / baseline_band["interval_score"],
    }
    scored["p_up"] = {
        "brier": brier,
        "brier_climatology": climatology,
        "brier_skill": 1.0 - brier / climatology,
        "up_rate": float(np.mean(up)),
    }
    return scored


def with_calibration(predictions: pd.DataFrame, calibration: Calibration) -> pd.DataFrame:
    """Raw walk-forward ``predictions`` as the calibrated model serves them, with persistence's band of
    the same nominal coverage and the climatological ``p_up`` beside."""
    last = predictions["last_close"].to_numpy(dtype="float64")
    served = calibrated(
        predictions["raw_return"].to_numpy(dtype="float64"),
        last,
        predictions["spread"].to_numpy(dtype="float64"),
        calibration,
    )
    missing = set(predictions["symbol"].astype(str)) - set(calibration.persistence_quantiles)
    if missing:
        raise ValueError(f"the calibration hours have no row of {sorted(missing)}")
    band = predictions["symbol"].astype(str).map(calibration.persistence_quantiles)
    return predictions.assign(
        **{column: served[column].to_numpy() for column in served.columns},
        persistence_low=to_close(last, [low for low, _ in band]),
        persistence_high=to_close(last, [high for _, high in band]),
        p_up_climatology=calibration.up_rate,
    )


def predictions_frame(
    model: catboost.CatBoostRegressor,
    rows: pd.DataFrame,
    fold: int = 0,
    calibration: Calibration | None = None,
) -> pd.DataFrame:
    """The model's and persistence's forecasts for labelled ``rows``, in the layout ``evaluate`` scores
    (``raw_return`` and ``spread`` beside the forecast, for calibrating it later)."""
    raw = predict_returns(model, rows) if len(rows) else np.empty(0)
    raw_frame = pd.DataFrame(
        {
            "symbol": rows["symbol"],
            "event_timestamp": rows["event_timestamp"],
            "as_of": rows["as_of"],
            "last_close": rows["last_close"],
            "next_close": rows["next_close"],
            "raw_return": raw,
            "spread": scale(rows),
            "predicted_return": raw,
            "predicted_close": to_close(rows["last_close"], raw),
            "persistence_close": rows["last_close"],
            "previous_close": rows["last_close"] * np.exp(-rows["ret_1h"]),
            "fold": fold,
        }
    )
    return raw_frame if calibration is None else with_calibration(raw_frame, calibration)


def recalibrated(predictions: pd.DataFrame, calibration_weeks: int) -> pd.DataFrame:
    """Each fold from ``calibration_weeks`` on, calibrated on the ``calibration_weeks`` folds before it
    (out of sample, as the gate calibrates the model it saves); the earlier folds are dropped."""
    parts = []
    for fold in sorted(predictions["fold"].unique()):
        if fold < calibration_weeks:
            continue
        history = predictions.loc[predictions["fold"].between(fold - calibration_weeks, fold - 1)]
        rows = predictions.loc[predictions["fold"] == fold]
        parts.append(with_calibration(rows, calibrate(history)))
    return pd.concat(parts, ignore_index=True)


def walk_forward(
    frame: pd.DataFrame,
    weeks: int,
    train_window: pd.Timedelta,
    params: dict | None = None,
    *,
    horizon: pd.Timedelta,
    step: pd.Timedelta = pd.Timedelta(days=7),
    fit_fn: FitFn = fit,
    calibration_weeks: int = 0,
) -> WalkForward:
    """Refit every ``step`` on the trailing ``train_window`` and predict each row of the following step.

    The folds are the last ``weeks + calibration_weeks`` steps ending at ``max(event_timestamp)``; fold
    ``(start, end]`` predicts the rows with ``start < event_timestamp <= end`` using
    ``fit_fn(train, params)`` fitted on the rows with ``start - train_window < event_timestamp`` and
    ``event_timestamp + horizon <= start`` (only labels realised at ``start``; ``horizon`` is one
    timeframe, the label's distance). ``metrics`` is ``summarise`` of the predictions (pooled and per
    symbol: pooled MAE in quote currency is dominated by the priciest pair). With ``calibration_weeks``,
    the predictions and metrics are those of the last ``weeks`` folds, each calibrated
    (``recalibrated``) on the folds just before it; ``folds`` lists every fold, ``scored`` saying which.
    Raises ``ValueError`` if a fold has fewer than ``MIN_ROWS`` training rows.
    """
    if weeks < 1:
        raise ValueError(f"weeks must be at least 1, got {weeks}")
    if calibration_weeks < 0:
        raise ValueError(f"calibration_weeks must be at least 0, got {calibration_weeks}")
    ordered = _time_ordered(frame)
    stamps = ordered["event_timestamp"]
    last = stamps.max()
    folds: list[dict] = []
    predicted: list[pd.DataFrame] = []
    total = weeks + calibration_weeks
    for fold in range(total):
        start = last - (total - fold) * step
        end = start + step
        train = ordered.loc[(stamps > start - train_window) & (stamps + horizon <= start)]
        test = ordered.loc[(stamps > start) & (stamps <= end)]
        if len(train) < MIN_ROWS:
            raise ValueError(
                f"fold {fold} ({start} .. {end}) has {len(train)} training rows in the trailing "
                f"{span_text(train_window)}, need at least {MIN_ROWS}; use fewer weeks or provide more "
                "history"
            )
        began = time.perf_counter()
        model = fit_fn(train, params)
        fit_seconds = time.perf_counter() - began
        predicted.append(predictions_frame(model, test, fold))
        folds.append(
            {
                "fold": fold,
                "start": start,
                "end": end,
                "train_first": train["event_timestamp"].min(),
                "train_last": train["event_timestamp"].max(),
                "train_rows": len(train),
                "test_rows": len(test),
                "fit_seconds": fit_seconds,
                "scored": fold >= calibration_weeks,
            }
        )
    predictions = pd.concat(predicted, ignore_index=True)
    if calibration_weeks:
        predictions = recalibrated(predictions, calibration_weeks)
    return WalkForward(predictions=predictions, folds=folds, metrics=summarise(predictions))


def summarise(predictions: pd.DataFrame) -> dict:
    """``evaluate`` over all ``predictions`` plus ``by_symbol``, the same per symbol."""
    summary = evaluate(predictions)
    summary["by_symbol"] = {
        str(symbol): evaluate(rows)
        for symbol, rows in predictions.groupby("symbol", sort=True, observed=True)
    }
    return summary
