"""A small real model for the tests: CatBoost fitted on the bundled candles, saved with the metadata
training writes and promoted in the settings' registry (a BentoML store must be set up: the
``bentoml_store`` fixture)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from hourcast.features.compute import compute_features, next_hour_targets
from hourcast.model import drift, estimator, registry
from hourcast.serving import predictor
from hourcast.settings import Settings


def promote_a_model(
    settings: Settings, recorded: dict[str, pd.DataFrame], symbols: list[str], end: pd.Timestamp
) -> str:
    """Fit on the 20 days of ``symbols`` before ``end``, save with the metadata training writes, promote;
    returns the tag."""
    candles = pd.concat(
        [
            recorded[s]
            .loc[(recorded[s]["ts"] >= end - pd.Timedelta(days=21)) & (recorded[s]["ts"] < end)]
            .assign(symbol=s)
            for s in symbols
        ],
        ignore_index=True,
    )
    frame = compute_features(candles).merge(next_hour_targets(candles), on=["symbol", "event_timestamp"])
    fitted = estimator.fit(frame, {"iterations": 40})
    errors = np.log(
        frame["next_close"]
        / estimator.to_close(frame["last_close"], estimator.predict_returns(fitted, frame))
    )
    metadata = {
        "return_error_quantiles": {q: float(np.quantile(errors, float(q))) for q in predictor.BAND_QUANTILES},
        "feature_reference": drift.feature_reference(frame),
        "training_window": {"start": str(frame["event_timestamp"].min()), "end": str(end)},
    }
    tag = registry.save_candidate(
        fitted, settings.model_name, settings.registry_dir, labels={}, metadata=metadata
    )
    registry.promote(settings.registry_dir, settings.model_name, tag, "test")
    return tag
