"""Training: the point-in-time training set, a CatBoost fit, a walk-forward check against persistence and
the production model, the BentoML model store, and the promotion gate.

The gate's walk-forward predictions (never the training rows) also calibrate the saved model: the shrink
factor toward persistence, the conformal band and ``p_up`` (``estimator.Calibration``, in the metadata).

A new model is saved whatever happens (versioned, auditable) and becomes production only if its raw
walk-forward MAE is no worse than the production model's on the same hours and no worse than
persistence by more than ``promotion_tolerance``.
"""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

import hourcast
from hourcast.errors import HourcastError
from hourcast.features import dataset, featurestore
from hourcast.features.compute import FEATURE_NAMES
from hourcast.model import drift, estimator, registry
from hourcast.settings import Settings
from hourcast.timeframe import timeframe_delta

if TYPE_CHECKING:
    from feast import FeatureStore

ERROR_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
MIN_PRODUCTION_HOURS = 24
"""Fewest unseen hours on which the production model is scored against a candidate."""


class TrainingError(HourcastError):
    """Training cannot run on the data at hand; the production model is left as it is."""


def load_training_frame(
    settings: Settings, feature_store: FeatureStore, start: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Labels from the stored candles joined point-in-time with the ``next_hour_v1`` features.

    ``start`` bounds the labels' ``event_timestamp`` from below (None: all history).
    """
    try:
        candles = dataset.load_candles(settings)
    except dataset.NoCandles as error:
        raise TrainingError(str(error)) from None
    labels = dataset.labels(candles, settings.timeframe)
    if start is not None:
        labels = labels.loc[labels["event_timestamp"] > start]
    if labels.empty:
        raise TrainingError(
            "no labelled hours in the training window; store more candles (`hourcast ingest`, or "
            "`hourcast backfill --since DATE` for older ones) and train again"
        )
    return featurestore.training_frame(feature_store, labels)


def promotion_decision(
    candidate_mae: float,
    persistence_mae: float,
    versus_production: tuple[float, float] | None,
    tolerance: float,
) -> tuple[bool, str]:
    """The gate: ``(promote, reason)``.

    ``candidate_mae`` and ``persistence_mae`` are walk-forward MAEs on the same hours;
    ``versus_production`` is ``(candidate MAE, production MAE)`` on the hours production never saw.
    """
    limit = persistence_mae * (1 + tolerance)
    if candidate_mae > limit:
        return False, (
            f"walk-forward MAE {candidate_mae:.4f} is worse than persistence {persistence_mae:.4f} "
            f"by more than {tolerance:.1%} (limit {limit:.4f})"
        )
    if versus_production is None:
        return True, (
            f"walk-forward MAE {candidate_mae:.4f}, persistence {persistence_mae:.4f}; "
            "no production model to compare on hours it has not seen"
        )
    mine, theirs = versus_production
    if mine > theirs:
        return False, f"MAE {mine:.4f} is worse than the production model's {theirs:.4f} on the same hours"
    return True, (
        f"MAE {mine:.4f} vs production {theirs:.4f} on the same hours; "
        f"walk-forward MAE {candidate_mae:.4f}, persistence {persistence_mae:.4f}"
    )


@dataclass
class TrainingResult:
    """What one training run produced and decided."""

    tag: str
    promoted: bool
    reason: str
    window: dict[str, str]
    rows: int
    metrics: dict[str, Any]
    baseline: dict[str, Any]
    production: dict[str, Any] | None = None
    pruned: list[str] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` line."""
        return {
            "tag": self.tag,
            "promoted": self.promoted,
            "reason": self.reason,
            "window": self.window,
            "rows": self.rows,
            "metrics": self.metrics,
            "baseline": self.baseline,
            "production": self.production,
            "pruned": self.pruned,
        }


def fingerprint(frame: pd.DataFrame) -> str:
    """SHA-256 of a training frame's content (rows and columns), to tell training sets apart."""
    digest = hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    digest.update(",".join(frame.columns).encode())
    return digest.hexdigest()


def code_version() -> str:
    """The package version, plus the git commit when run from a checkout."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except OSError:
        commit = ""
    return f"{hourcast.__version__}+{commit}" if commit else hourcast.__version__


def _score(predictions: pd.DataFrame) -> dict[str, Any]:
    scored = estimator.evaluate(predictions)
    return {
        "model": scored["model"],
        "persistence": scored["persistence"],
        "comparison": scored["comparison"],
    }


def train(
    settings: Settings,
    feature_store: FeatureStore | None = None,
    fit_fn: estimator.FitFn = estimator.fit,
    params: dict[str, Any] | None = None,
) -> TrainingResult:
    """Train on the last ``train_days`` of data, check it walk-forward, save it, and apply the gate."""
    feature_store = feature_store or featurestore.open_store(settings)
    everything = load_training_frame(settings, feature_store)
    end = everything["event_timestamp"].max()
    start = end - pd.Timedelta(days=settings.train_days)
    frame = everything.loc[everything["event_timestamp"] > start].reset_index(drop=True)
    gate_span = pd.Timedelta(days=7 * settings.gate_weeks)
    try:
        checked = estimator.walk_forward(
            frame,
            weeks=settings.gate_weeks,
            train_window=pd.Timedelta(days=settings.train_days) - gate_span,
            params=params,
            horizon=timeframe_delta(settings.timeframe),
            fit_fn=fit_fn,
        )
    except ValueError as error:
        raise TrainingError(
            f"too little data to train and check a model: {error}; store more history "
            "(`hourcast backfill --since DATE`) or lower HOURCAST_TRAIN_DAYS or HOURCAST_GATE_WEEKS"
        ) from error
    candidate = checked.metrics
    calibration = estimator.calibrate(checked.predictions)
    production = _versus_production(settings, frame, checked.predictions)
    promote, reason = promotion_decision(
        candidate["model"]["mae"],
        candidate["persistence"]["mae"],
        (production["candidate"]["mae"], production["production"]["mae"]) if production else None,
        settings.promotion_tolerance,
    )
    final = fit_fn(frame, params)
    served = estimator.with_calibration(checked.predictions, calibration)
    errors = np.log(served["next_close"] / served["predicted_close"])
    metadata = {
        "feature_service": featurestore.TRAINING_SERVICE,
        "features": FEATURE_NAMES,
        "inputs": estimator.MODEL_INPUTS,
        "symbols": settings.symbols,
        "timeframe": settings.timeframe,
        "training_window": {"start": str(frame["event_timestamp"].min()), "end": str(end)},
        "training_rows": len(frame),
        "data_fingerprint": fingerprint(frame),
        "params": {**estimator.DEFAULT_PARAMS, **(params or {})},
        "walk_forward": {"weeks": settings.gate_weeks, **candidate},
        "calibration": calibration.as_metadata(),
        "return_error_quantiles": {str(q): float(np.quantile(errors, q)) for q in ERROR_QUANTILES},
        "feature_reference": drift.feature_reference(frame),
        "production_at_training": production,
        "code_version": code_version(),
    }
    labels = {"timeframe": settings.timeframe, "feature_service": featurestore.TRAINING_SERVICE}
    tag = registry.save_candidate(
        final, settings.model_name, settings.registry_dir, labels=labels, metadata=metadata
    )
    if promote:
        registry.promote(settings.registry_dir, settings.model_name, tag, reason)
    else:
        registry.reject(settings.registry_dir, settings.model_name, tag, reason)
    pruned = registry.prune(settings.registry_dir, settings.model_name, settings.keep_models)
    return TrainingResult(
        tag=tag,
        promoted=promote,
        reason=reason,
        window=metadata["training_window"],
        rows=len(frame),
        metrics=candidate["model"]
        | {key: candidate["comparison"][key] for key in ("mae_ratio", "dm_p_value")}
        | _versus_reversal(candidate)
        | {"shrink": calibration.shrink, "by_symbol": _per_symbol(candidate)},
        baseline=candidate["persistence"],
        production=production,
        pruned=pruned,
    )


def _versus_reversal(scored: dict[str, Any]) -> dict[str, float]:
    """The direction of "the last move reverses" on the same hours and McNemar's p against it."""
    return {key: scored["direction"][key] for key in ("reversal_accuracy", "mcnemar_p_value")}


def _per_symbol(scored: dict[str, Any]) -> dict[str, Any]:
    """Per symbol: MAE ratio, DM p, directional accuracy with its 95 % interval and McNemar's p against
    "the last move reverses"."""
    return {
        symbol: {
            **{key: values["comparison"][key] for key in ("mae_ratio", "dm_p_value")},
            **{
                key: values["model"][key]
                for key in ("directional_accuracy", "directional_low", "directional_high")
            },
            **_versus_reversal(values),
        }
        for symbol, values in scored["by_symbol"].items()
    }


def _versus_production(
    settings: Settings, frame: pd.DataFrame, checked: pd.DataFrame
) -> dict[str, Any] | None:
    """The production model, as it is, and the candidate scored on the same checked hours, restricted to
    hours the production model did not train on (a model scored in-sample would win unfairly).

    None when there is no production model or fewer than ``MIN_PRODUCTION_HOURS`` such hours.
    """
    try:
        tag, production, metadata = registry.load_production(settings.registry_dir, settings.model_name)
    except registry.RegistryError:
        return None
    trained_until = pd.Timestamp(metadata["training_window"]["end"])
    unseen = checked.loc[checked["event_timestamp"] > trained_until].reset_index(drop=True)
    if len(unseen) < MIN_PRODUCTION_HOURS:
        return None
    rows = unseen[["symbol", "event_timestamp"]].merge(frame, on=["symbol", "event_timestamp"])
    return {
        "tag": tag,
        "hours": len(unseen),
        "production": _score(estimator.predictions_frame(production, rows))["model"],
        "candidate": _score(unseen)["model"],
    }
