"""The scoreboard: rolling metrics of the stored scores against persistence, and the dashboard's
Performance view.

* **Clock.** Windows end at the data clock (``newest_hour``), the newest stored hour (a 24 h window holds
  the 24 target hours up to it), so a replayed world is judged by its own time.
* **Rolling windows** (24 h, 7 d, 30 d by target time) per symbol and model tag, plus ``model="all"``
  (what was served, one answer per hour whatever the model: the hour's forecast of record when there is
  one): MAE, RMSE, directional accuracy, persistence's
  MAE, the MAE ratio (< 1 favours the model), the Diebold-Mariano p-value on absolute errors
  (``hourcast.model.metrics``), band coverage and the hours scored; and the direction of "the last move
  reverses" with McNemar's p of the model's direction against it, on the hours whose previous hour is
  scored too (its ``last_close`` is this hour's previous close).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from hourcast.data import store
from hourcast.model import metrics
from hourcast.monitor.scoring import SCORED, UNSCORABLE, read_scores, records_first
from hourcast.serving.schema import ScoreboardRow
from hourcast.settings import Settings

ALL_MODELS = "all"
"""The ``model`` of the rows that score what was served, whichever model answered."""
WINDOWS: dict[str, pd.Timedelta] = {
    "24h": pd.Timedelta(hours=24),
    "7d": pd.Timedelta(days=7),
    "30d": pd.Timedelta(days=30),
}
BOARD_COLUMNS = list(ScoreboardRow.model_fields)  # the one schema: the API answers these rows


def _none_if_nan(value: float) -> float | None:
    return None if value is None or not math.isfinite(value) else float(value)


def window_metrics(scores: pd.DataFrame) -> dict[str, Any]:
    """The scoreboard figures of some scores (None where a figure is undefined, e.g. under 2 hours)."""
    scored = scores.loc[scores["status"] == SCORED]
    out: dict[str, Any] = dict.fromkeys(BOARD_COLUMNS[3:])
    out["hours"] = len(scored)
    out["unscorable"] = int((scores["status"] == UNSCORABLE).sum())
    inside = scored["in_band"].dropna()
    out["coverage"] = float(inside.mean()) if len(inside) else None
    if len(scored) < 2:
        return out
    actual = scored["realised_close"].to_numpy(dtype="float64")
    predicted = scored["predicted_close"].to_numpy(dtype="float64")
    error = scored["error"].to_numpy(dtype="float64")
    baseline = scored["persistence_error"].to_numpy(dtype="float64")
    try:
        model = metrics.forecast_metrics(actual, predicted, scored["last_close"].to_numpy(dtype="float64"))
        out["directional_accuracy"] = model["directional_accuracy"]
    except ValueError:  # the close never moved: no direction to call
        model = {"mae": float(np.mean(np.abs(error))), "rmse": float(np.sqrt(np.mean(error * error)))}
    out["mae"], out["rmse"] = model["mae"], model["rmse"]
    out["persistence_mae"] = float(np.mean(np.abs(baseline)))
    if out["persistence_mae"] > 0:
        out["mae_ratio"] = out["mae"] / out["persistence_mae"]
    with contextlib.suppress(ValueError):  # a degenerate loss differential: the test is undefined
        out["dm_p_value"] = metrics.diebold_mariano(error, baseline)[1]
    known = scored.loc[scored["previous_close"].notna()]
    closes = ("realised_close", "predicted_close", "last_close", "previous_close")
    with contextlib.suppress(ValueError):  # under 2 hours with a previous close, or none moved
        direction = metrics.direction_versus_reversal(*(known[column] for column in closes))
        out["reversal_accuracy"] = direction["reversal_accuracy"]
        out["mcnemar_p_value"] = direction["mcnemar_p_value"]
    return out


def with_previous_close(scores: pd.DataFrame) -> pd.DataFrame:
    """``scores`` with ``previous_close``: the close one timeframe before each ``last_close``, i.e. the
    ``last_close`` of the same symbol's previous hour (whichever model forecast it); NaN where that hour has
    no score."""
    closes = scores[["symbol", "as_of", "last_close"]].drop_duplicates(["symbol", "as_of"])
    before = scores["as_of"] - (scores["target_time"] - scores["as_of"])
    wanted = pd.DataFrame({"symbol": scores["symbol"].to_numpy(), "as_of": before.array})  # keeps the dtype
    found = wanted.merge(closes.rename(columns={"last_close": "previous_close"}), how="left")
    return scores.assign(previous_close=found["previous_close"].to_numpy(dtype="float64"))


def served(scores: pd.DataFrame) -> pd.DataFrame:
    """One score per ``(symbol, as_of)`` whatever the model: the hour's forecast of record, else the first
    answered, in target-time order."""
    first = records_first(scores).drop_duplicates(["symbol", "as_of"])
    return first.sort_values(["symbol", "target_time"], kind="stable").reset_index(drop=True)


def scoreboard(
    scores: pd.DataFrame, now: pd.Timestamp, windows: Mapping[str, pd.Timedelta] = WINDOWS
) -> pd.DataFrame:
    """Rolling metrics per window, symbol and model tag, plus ``model="all"`` (what was served, one answer
    per hour), over the scores with ``now - window < target_time <= now``; columns ``BOARD_COLUMNS``."""
    rows: list[dict[str, Any]] = []
    symbols = sorted(scores["symbol"].unique())
    scores = with_previous_close(scores)
    for window, span in windows.items():
        recent = scores.loc[(scores["target_time"] > now - span) & (scores["target_time"] <= now)]
        for symbol in symbols:
            mine = recent.loc[recent["symbol"] == symbol].sort_values("target_time", kind="stable")
            rows.append(
                {"window": window, "symbol": symbol, "model": ALL_MODELS, **window_metrics(served(mine))}
            )
            for tag, model_rows in mine.groupby("model", sort=True):
                rows.append({"window": window, "symbol": symbol, "model": tag, **window_metrics(model_rows)})
    return pd.DataFrame(rows, columns=BOARD_COLUMNS)


def rolling_series(scores: pd.DataFrame, symbol: str, span: pd.Timedelta = WINDOWS["24h"]) -> pd.DataFrame:
    """Trailing MAE ratio to persistence and directional accuracy over ``span`` at every scored hour of
    ``symbol`` (what was served): columns ``target_time, model, mae_ratio, directional_accuracy, hours``."""
    mine = scores.loc[(scores["symbol"] == symbol) & (scores["status"] == SCORED)]
    rows = served(mine).set_index("target_time")
    hit = rows["direction_hit"].astype("float64")
    window = (
        pd.DataFrame(
            {
                "abs_error": rows["error"].abs(),
                "abs_persistence": rows["persistence_error"].abs(),
                "hits": hit,
                "calls": hit.notna().astype("float64"),
                "hours": 1.0,
            }
        )
        .rolling(span)
        .sum()
    )
    return pd.DataFrame(
        {
            "model": rows["model"],
            "mae_ratio": window["abs_error"] / window["abs_persistence"].where(window["abs_persistence"] > 0),
            "directional_accuracy": window["hits"] / window["calls"].where(window["calls"] > 0),
            "hours": window["hours"].astype("int64"),
        }
    ).reset_index()


def model_spans(scores: pd.DataFrame, symbol: str) -> pd.DataFrame:
    """When each model served ``symbol``: ``model, first, last`` (as_of hours), in order of first use."""
    rows = scores.loc[scores["symbol"] == symbol]
    spans = rows.groupby("model")["as_of"].agg(first="min", last="max").reset_index()
    return spans.sort_values("first").reset_index(drop=True)


def newest_hour(settings: Settings, symbols: list[str]) -> pd.Timestamp | None:
    """The data clock: open time of the newest stored candle of ``symbols`` (None if none is stored)."""
    newest = [
        store.last_stored(settings.candles_dir, store.Series(settings.exchange, symbol, settings.timeframe))
        for symbol in symbols
    ]
    known = [stamp for stamp in newest if stamp is not None]
    return max(known) if known else None


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as JSON-ready dicts: NaN and missing values become None."""
    return [
        {key: _none_if_nan(value) if isinstance(value, float) else value for key, value in row.items()}
        for row in frame.astype(object).where(frame.notna(), None).to_dict("records")
    ]


def _windows(window: str | None) -> dict[str, pd.Timedelta]:
    if window is None:
        return WINDOWS
    if window not in WINDOWS:
        raise ValueError(f"unknown window {window!r}: use one of {', '.join(WINDOWS)}")
    return {window: WINDOWS[window]}


def current_scoreboard(
    settings: Settings, symbol: str | None = None, window: str | None = None
) -> dict[str, Any]:
    """What ``GET /scoreboard?symbol=S&window=7d`` answers, from the scores dataset (no scoring, no log
    read): ``{"newest_hour", "production", "rows": [BOARD_COLUMNS records]}``. ``ValueError`` for an unknown
    window."""
    from hourcast.model import registry

    windows = _windows(window)
    scores = read_scores(settings.scores_dir)
    if symbol is not None:
        scores = scores.loc[scores["symbol"] == symbol]
    now = newest_hour(settings, [symbol] if symbol is not None else settings.symbols)
    board = scoreboard(scores, now, windows) if now is not None else pd.DataFrame(columns=BOARD_COLUMNS)
    return {
        "newest_hour": now.isoformat() if now is not None else None,
        "production": registry.production_tag(settings.registry_dir, settings.model_name),
        "rows": json_records(board),
    }


def performance(scores: pd.DataFrame, symbol: str, now: pd.Timestamp, hours: int) -> dict[str, pd.DataFrame]:
    """What the dashboard's Performance view draws for ``symbol`` over the ``hours`` up to ``now``:

    * ``history``: ``target_time, predicted_close, realised_close, band_low, band_high, model, source,
      status`` per served hour (the forecast of record when there is one);
    * ``rolling``: the trailing 24-hour MAE ratio and directional accuracy at each of those hours;
    * ``models``: when each model served (``model, first, last``), to mark promotions.
    """
    start = now - pd.Timedelta(hours=hours)
    mine = scores.loc[scores["symbol"] == symbol]
    recent = served(mine.loc[(mine["target_time"] > start) & (mine["target_time"] <= now)])
    columns = [
        *("target_time", "predicted_close", "realised_close", "band_low", "band_high"),
        *("model", "source", "status"),
    ]
    rolling = rolling_series(mine.loc[mine["target_time"] <= now], symbol)
    return {
        "history": recent[columns].reset_index(drop=True),
        "rolling": rolling.loc[rolling["target_time"] > start].reset_index(drop=True),
        "models": model_spans(mine, symbol),
    }
