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


def prometheus_text(
    board: pd.DataFrame, production: str | None, feature_age_seconds: Mapping[str, float]
) -> str:
    """Prometheus text exposition (version 0.0.4) of the scoreboard rows of ``model="all"`` and the
    production model, the feature age per symbol and the production tag (``hourcast_model_info``).
    Undefined figures are left out rather than exported as NaN."""
    lines = []
    rows = board.loc[board["model"].isin([ALL_MODELS, production])]
    for column, help_text in GAUGES.items():
        name = f"hourcast_forecast_{column}"
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge"]
        for row in rows.itertuples():
            value = getattr(row, column)
            if value is None or not math.isfinite(float(value)):
                continue
            labels = f'symbol="{_label(row.symbol)}",window="{row.window}",model="{_label(row.model)}"'
            lines.append(f"{name}{{{labels}}} {float(value):.17g}")
    lines += [
        "# HELP hourcast_feature_age_seconds Age of the online features the API answers from.",
        "# TYPE hourcast_feature_age_seconds gauge",
    ]
    lines += [
        f'hourcast_feature_age_seconds{{symbol="{_label(symbol)}"}} {float(age):.17g}'
        for symbol, age in sorted(feature_age_seconds.items())
    ]
    lines += [
        "# HELP hourcast_model_info The production model (value 1).",
        "# TYPE hourcast_model_info gauge",
    ]
    if production is not None:
        lines.append(f'hourcast_model_info{{model="{_label(production)}"}} 1')
    return "\n".join(lines) + "\n"
