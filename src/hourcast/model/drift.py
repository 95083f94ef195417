"""Feature drift: a reference distribution of each model input from the training window, and the Population
Stability Index (PSI) of served feature values against it (pure numpy/pandas, no I/O).

* The reference of a feature, per symbol, is its deciles over the training window (``edges``: the distinct
  10 %..90 % quantiles) and the share of training rows in each bin (``shares``; exactly 10 % each for a
  continuous feature, uneven when values tie). A bin holds the values ``edges[i-1] < x <= edges[i]``.
* ``PSI = sum((served - reference) * ln(served / reference))`` over the bins, with both shares floored at
  ``SHARE_FLOOR`` so an empty bin gives a large finite score. Conventional reading: below 0.1 stable,
  0.1-0.25 a moderate shift, above 0.25 a significant one. With ``n`` served rows and ``b`` bins, PSI of an
  unchanged distribution is about ``(b - 1) / n`` from sampling noise alone, so a score from few rows
  (e.g. 24 hours) reads high: judge drift on the 7-day window.
* The calendar features (hour of day, day of week) are left out: over a window of served hours their
  distribution is fixed by the calendar, not by the market.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from hourcast.features.compute import FEATURE_NAMES

DECILES = np.linspace(0.1, 0.9, 9)
SHARE_FLOOR = 1e-4
CALENDAR_FEATURES = ("hour_of_day", "day_of_week")
DRIFT_FEATURES: list[str] = [name for name in FEATURE_NAMES if name not in CALENDAR_FEATURES]
"""The features whose drift is measured."""


def _shares(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Share of ``values`` in each bin ``(edges[i-1], edges[i]]`` (plus the two open-ended bins)."""
    counts = np.bincount(np.searchsorted(edges, values, side="left"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def _finite(values: Any) -> np.ndarray:
    array = np.asarray(values, dtype="float64")
    return array[np.isfinite(array)]


def reference_of(values: Any) -> dict[str, list[float]]:
    """The decile edges and bin shares of one feature's training values."""
    finite = _finite(values)
    if finite.size == 0:
        raise ValueError("a drift reference needs at least one finite value")
    edges = np.unique(np.quantile(finite, DECILES))
    return {"edges": edges.tolist(), "shares": _shares(finite, edges).tolist()}


def feature_reference(frame: pd.DataFrame, features: list[str] = DRIFT_FEATURES) -> dict[str, Any]:
    """``{symbol: {feature: reference_of(values)}}`` over the rows of a training frame."""
    return {
        str(symbol): {name: reference_of(rows[name]) for name in features}
        for symbol, rows in frame.groupby("symbol", sort=True, observed=True)
    }


def psi(reference: dict[str, list[float]], values: Any) -> float:
    """Population Stability Index of ``values`` against a ``reference_of`` result (NaN if no values)."""
    finite = _finite(values)
    if finite.size == 0:
        return float("nan")
    expected = np.maximum(np.asarray(reference["shares"], dtype="float64"), SHARE_FLOOR)
    actual = np.maximum(_shares(finite, np.asarray(reference["edges"], dtype="float64")), SHARE_FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


DRIFT_COLUMNS = ["window", "symbol", "feature", "psi", "hours"]


def empty_table() -> pd.DataFrame:
    """A drift table with no rows."""
    return pd.DataFrame(columns=DRIFT_COLUMNS)


def drift_table(
    reference: dict[str, Any], served: pd.DataFrame, now: pd.Timestamp, windows: dict[str, pd.Timedelta]
) -> pd.DataFrame:
    """PSI per window, symbol and feature of the served feature rows with ``now - window < as_of <= now``.

    ``served`` holds one row per served hour (``symbol, as_of`` and the feature columns); symbols or
    features without a reference are skipped. Columns ``window, symbol, feature, psi, hours``, worst first
    within each window and symbol.
    """
    rows: list[dict[str, Any]] = []
    for window, span in windows.items():
        recent = served.loc[(served["as_of"] > now - span) & (served["as_of"] <= now)]
        for symbol, symbol_rows in recent.groupby("symbol", sort=True, observed=True):
            for feature, feature_reference_ in reference.get(str(symbol), {}).items():
                if feature not in symbol_rows.columns:
                    continue
                rows.append(
                    {
                        "window": window,
                        "symbol": str(symbol),
                        "feature": feature,
                        "psi": psi(feature_reference_, symbol_rows[feature]),
                        "hours": len(symbol_rows),
                    }
                )
    table = pd.DataFrame(rows, columns=DRIFT_COLUMNS)
    order = {name: index for index, name in enumerate(windows)}
    return table.sort_values(
        ["window", "symbol", "psi"],
        key=lambda c: c.map(order) if c.name == "window" else c,
        ascending=[True, True, False],
    ).reset_index(drop=True)
