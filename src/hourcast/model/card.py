"""What a saved model's metadata (``hourcast.model.training``) says about it, for people: the window it was
trained on and how it compared with persistence on its promotion gate (the walk-forward weeks scored before
the final fit). ``hourcast models list``, the bootstrap of `hourcast up` and the API's ``GET /model`` (the
dashboard) all word it here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from hourcast.timeframe import timeframe_delta


@dataclass(frozen=True)
class Gate:
    """The promotion gate's figures: the candidate's raw walk-forward MAE against persistence's on the same
    hours, their ratio (below 1: better than persistence) and the Diebold-Mariano p-value."""

    weeks: int
    hours: int
    mae: float
    persistence_mae: float
    mae_ratio: float
    dm_p_value: float | None

    def as_json(self) -> dict[str, Any]:
        """The figures as a JSON object."""
        return asdict(self)


def gate(metadata: dict[str, Any]) -> Gate | None:
    """The gate figures of a model's metadata; None for a model saved without them."""
    scored = metadata.get("walk_forward") or {}
    try:
        return Gate(
            weeks=int(scored["weeks"]),
            hours=int(scored["model"]["n"]),
            mae=float(scored["model"]["mae"]),
            persistence_mae=float(scored["persistence"]["mae"]),
            mae_ratio=float(scored["comparison"]["mae_ratio"]),
            dm_p_value=_number(scored["comparison"].get("dm_p_value")),
        )
    except (KeyError, TypeError, ValueError):
        return None


def training_days(metadata: dict[str, Any]) -> float | None:
    """Days the training window spans, its last candle included (365 for the default window); None when
    the metadata has no window."""
    window = metadata.get("training_window") or {}
    try:
        start, end = pd.Timestamp(window["start"]), pd.Timestamp(window["end"])
        step = timeframe_delta(metadata.get("timeframe", "1h"))
    except (KeyError, TypeError, ValueError):
        return None
    return round((end - start + step) / pd.Timedelta(days=1), 2)


def days_text(days: float) -> str:
    """``365 days``, ``12.5 days``, ``1 day``."""
    return f"{days:g} day{'' if days == 1 else 's'}"


def gate_text(figures: Gate) -> str:
    """``MAE 88.83 vs persistence 88.43 (ratio 1.0045, DM p 0.41) over 1 week (336 hours)``."""
    p_value = "" if figures.dm_p_value is None else f", DM p {figures.dm_p_value:.3f}"
    weeks = f"{figures.weeks} week{'' if figures.weeks == 1 else 's'}"
    return (
        f"MAE {figures.mae:.2f} vs persistence {figures.persistence_mae:.2f} "
        f"(ratio {figures.mae_ratio:.4f}{p_value}) over {weeks} ({figures.hours} hours)"
    )


def summary(metadata: dict[str, Any]) -> str:
    """One line: ``trained on 365 days; gate: MAE ... vs persistence ...`` (what the metadata holds)."""
    days, figures = training_days(metadata), gate(metadata)
    parts = [
        f"trained on {days_text(days)}" if days is not None else "training window unknown",
        f"gate: {gate_text(figures)}" if figures is not None else "no gate figures",
    ]
    return "; ".join(parts)


def _number(value: Any) -> float | None:
    """A float, or None for a missing or non-finite one (JSON metadata stores NaN as null)."""
    if value is None:
        return None
    number = float(value)
    return number if number == number and abs(number) != float("inf") else None
