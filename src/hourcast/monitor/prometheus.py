"""The Prometheus text exposition of the monitor: the rolling scoreboard, the feature age per symbol and
the production tag as gauges (what ``GET /monitor/metrics`` answers)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import pandas as pd

from hourcast.monitor.scoreboard import ALL_MODELS


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


GAUGES = {
    "mae_ratio": "Rolling MAE of the forecast divided by persistence's (below 1: better than persistence).",
    "mae": "Rolling mean absolute error of the forecast close (quote currency).",
    "directional_accuracy": "Rolling share of hours whose direction the forecast called right.",
    "coverage": "Rolling share of realised closes inside the served band.",
    "hours": "Hours scored in the window.",
}
FEATURE_AGE = "hourcast_feature_age_seconds"
MODEL_INFO = "hourcast_model_info"


def forecast_gauge(column: str) -> str:
    """The metric name of the scoreboard column ``column`` (a key of ``GAUGES``)."""
    return f"hourcast_forecast_{column}"


def metric_names() -> list[str]:
    """Every metric name the exposition carries: the forecast-quality gauges (one per ``GAUGES`` column),
    the feature age and the production tag (what a dashboard may query)."""
    return [*(forecast_gauge(column) for column in GAUGES), FEATURE_AGE, MODEL_INFO]


def prometheus_text(
    board: pd.DataFrame, production: str | None, feature_age_seconds: Mapping[str, float]
) -> str:
    """Prometheus text exposition (version 0.0.4) of the scoreboard rows of ``model="all"`` and the
    production model, the feature age per symbol and the production tag (``hourcast_model_info``).
    Undefined figures are left out rather than exported as NaN."""
    lines = []
    rows = board.loc[board["model"].isin([ALL_MODELS, production])]
    for column, help_text in GAUGES.items():
        name = forecast_gauge(column)
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for row in rows.itertuples():
            value = getattr(row, column)
            if value is None or not math.isfinite(float(value)):
                continue
            labels = f'symbol="{_label(row.symbol)}",window="{row.window}",model="{_label(row.model)}"'
            lines.append(f"{name}{{{labels}}} {float(value):.17g}")
    lines += [
        f"# HELP {FEATURE_AGE} Age of the online features the API answers from.",
        f"# TYPE {FEATURE_AGE} gauge",
    ]
    lines += [
        f'{FEATURE_AGE}{{symbol="{_label(symbol)}"}} {float(age):.17g}'
        for symbol, age in sorted(feature_age_seconds.items())
    ]
    lines += [f"# HELP {MODEL_INFO} The production model (value 1).", f"# TYPE {MODEL_INFO} gauge"]
    if production is not None:
        lines.append(f'{MODEL_INFO}{{model="{_label(production)}"}} 1')
    return "\n".join(lines) + "\n"
