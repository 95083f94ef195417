"""Forecast monitoring: every logged prediction scored against the candle that then closed, rolling
metrics against persistence, feature drift, and the decision to ask for a retrain.

* **Scoring.** A prediction made ``as_of`` hour T forecasts the close of the candle opening at
  ``target_time`` (T + 1 timeframe). Once that candle is stored it is scored: the realised close, the
  model's error (predicted - realised), persistence's error (last close - realised), whether the direction
  from the last close was right (undefined when the close did not move) and whether the realised close fell
  inside the served band. A target hour missing from the store while later candles are stored is a gap:
  the prediction is recorded as ``unscorable``, never guessed. A target not stored yet is left for a
  later run.
* **Duplicates.** The API may answer the same hour thousands of times: predictions are keyed by
  ``(symbol, as_of, model)`` and the first answer of a key is the one scored, once.
* **The scores dataset** ``HOURCAST_HOME/scores/date=YYYY-MM-DD/scores.parquet`` (by the target's day)
  holds one row per key; a run adds only keys it does not hold yet, rewriting each touched day file
  atomically under a lock, so re-running adds nothing and a run killed part-way loses nothing (what it
  did not write is scored again next time).
* **Clock.** Windows end at the data clock, the newest stored hour (a 24 h window holds the 24 target
  hours up to it), so a replayed world is judged by its own time.
* **Rolling windows** (24 h, 7 d, 30 d by target time) per symbol and model tag, plus ``model="all"``
  (what was served, one answer per hour whatever the model): MAE, RMSE, directional accuracy, persistence's
  MAE, the MAE ratio (< 1 favours the model), the Diebold-Mariano p-value on absolute errors
  (``hourcast.model.metrics``), band coverage and the hours scored.
* **Drift**: see ``hourcast.model.drift`` (PSI of served features against the production model's training
  deciles).
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow.dataset as pads

from hourcast import atomic
from hourcast.data import store
from hourcast.model import drift, metrics
from hourcast.settings import Settings

KEY = ["symbol", "as_of", "model"]
SCORED, UNSCORABLE = "scored", "unscorable"
ALL_MODELS = "all"
"""The ``model`` of the rows that score what was served, whichever model answered."""
WINDOWS: dict[str, pd.Timedelta] = {
    "24h": pd.Timedelta(hours=24),
    "7d": pd.Timedelta(days=7),
    "30d": pd.Timedelta(days=30),
}
DRIFT_WINDOWS: dict[str, pd.Timedelta] = {"24h": WINDOWS["24h"], "7d": WINDOWS["7d"]}
JUDGED_WINDOW = "7d"
"""The window whose MAE ratio and drift decide whether the model is degraded."""
LOG_COLUMNS = [
    "requested_at",
    "symbol",
    "as_of",
    "target_time",
    "last_close",
    "predicted_close",
    "model",
    "stale",
    "band_low",
    "band_high",
]
"""What scoring reads from the prediction log (the band is absent from logs written before it was)."""
SCORE_COLUMNS = [
    "symbol",
    "as_of",
    "model",
    "target_time",
    "requested_at",
    "status",
    "last_close",
    "predicted_close",
    "realised_close",
    "error",
    "persistence_error",
    "direction_hit",
    "band_low",
    "band_high",
    "in_band",
    "stale",
]
BOARD_COLUMNS = [
    "window",
    "symbol",
    "model",
    "hours",
    "unscorable",
    "mae",
    "rmse",
    "directional_accuracy",
    "persistence_mae",
    "mae_ratio",
    "dm_p_value",
    "coverage",
]
SCORES_FILE = "scores.parquet"
RESCAN = pd.Timedelta(days=2)
"""How far before each symbol's newest scored hour a run re-reads the log. Keys logged for older hours are
already scored (or unscorable), except answers that reach the log more than this late with a model never
scored for that hour (stale answers after a promotion): those are not scored."""
_TIME = "datetime64[ms, UTC]"


def _times(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame.astype({column: _TIME for column in columns if column in frame.columns})


def distinct_predictions(log: pd.DataFrame) -> pd.DataFrame:
    """One row per ``(symbol, as_of, model)``: the earliest answer of each key (log in request order)."""
    frame = log.sort_values("requested_at", kind="stable").drop_duplicates(KEY, keep="first")
    return _times(frame.reset_index(drop=True), ["as_of", "target_time"])


def empty_scores() -> pd.DataFrame:
    """A scores frame with no rows and the dataset's columns."""
    frame = pd.DataFrame({column: pd.Series(dtype="float64") for column in SCORE_COLUMNS})
    frame = frame.astype({"symbol": object, "model": object, "status": object})
    frame = frame.astype({"direction_hit": "boolean", "in_band": "boolean", "stale": "boolean"})
    return _times(frame.astype({"requested_at": _TIME}), ["as_of", "target_time"])


def score_predictions(predictions: pd.DataFrame, candles: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score distinct predictions against stored candles: ``(scores, pending)``.

    ``candles`` holds ``symbol, ts, close`` of every stored candle of the predictions' symbols from their
    first target hour on, up to the newest stored one. ``scores`` has ``SCORE_COLUMNS`` with status
    ``scored``, or ``unscorable`` when the target hour is missing although a later candle is stored (a gap);
    ``pending`` holds the predictions whose target candle is not stored yet.
    """
    if predictions.empty:
        return empty_scores(), predictions
    realised = candles[["symbol", "ts", "close"]].astype({"symbol": object})
    realised = _times(
        realised.rename(columns={"ts": "target_time", "close": "realised_close"}), ["target_time"]
    )
    frame = predictions.astype({"symbol": object}).merge(realised, on=["symbol", "target_time"], how="left")
    newest = _times(
        realised.groupby("symbol")["target_time"].max().rename("newest").reset_index(), ["newest"]
    )
    frame = frame.merge(newest, on="symbol", how="left")
    found = frame["realised_close"].notna().to_numpy()
    gap = ~found & (frame["target_time"] < frame["newest"]).fillna(False).to_numpy(dtype=bool)
    pending = predictions.loc[~(found | gap)].reset_index(drop=True)
    done = frame.loc[found | gap].reset_index(drop=True)
    for column in ("band_low", "band_high"):
        if column not in done.columns:
            done[column] = np.nan
    if "stale" not in done.columns:
        done["stale"] = pd.NA

    actual = done["realised_close"].to_numpy(dtype="float64")
    last = done["last_close"].to_numpy(dtype="float64")
    predicted = done["predicted_close"].to_numpy(dtype="float64")
    low, high = done["band_low"].to_numpy(dtype="float64"), done["band_high"].to_numpy(dtype="float64")
    moved = np.isfinite(actual) & (actual != last)
    banded = np.isfinite(actual) & np.isfinite(low) & np.isfinite(high)
    hit = pd.array(np.sign(predicted - last) == np.sign(actual - last), dtype="boolean")
    inside = pd.array((low <= actual) & (actual <= high), dtype="boolean")
    hit[~moved] = pd.NA
    inside[~banded] = pd.NA
    scores = done.assign(
        status=np.where(np.isfinite(actual), SCORED, UNSCORABLE),
        error=predicted - actual,
        persistence_error=last - actual,
        direction_hit=hit,
        in_band=inside,
        stale=done["stale"].astype("boolean"),
    )
    return scores.astype({"requested_at": _TIME})[SCORE_COLUMNS], pending


def read_scores(directory: Path) -> pd.DataFrame:
    """Every stored score, one row per key (empty frame if none)."""
    files = sorted(str(path) for path in directory.glob(f"date=*/{SCORES_FILE}"))
    if not files:
        return empty_scores()
    frame = pads.dataset(files, format="parquet").to_table().to_pandas()
    frame = frame.astype({"direction_hit": "boolean", "in_band": "boolean", "stale": "boolean"})
    frame = _times(frame.astype({"requested_at": _TIME}), ["as_of", "target_time"])
    return frame.drop_duplicates(KEY, keep="first").reset_index(drop=True)[SCORE_COLUMNS]


def write_scores(directory: Path, scores: pd.DataFrame) -> int:
    """Add the rows whose key is not stored yet, per target day (each day file replaced atomically,
    under the dataset's lock); returns how many rows were added."""
    if scores.empty:
        return 0
    added = 0
    with store.series_lock(directory):
        for day, rows in scores.groupby(scores["target_time"].dt.strftime("%Y-%m-%d"), sort=True):
            path = directory / f"date={day}" / SCORES_FILE
            if path.exists():
                atomic.remove_stale_temporaries(path.parent)
                stored = pd.read_parquet(path)
                stored = _times(stored.astype({"requested_at": _TIME}), ["as_of", "target_time"])
                stored_keys = pd.MultiIndex.from_frame(stored[KEY])
                rows = rows.loc[~pd.MultiIndex.from_frame(rows[KEY]).isin(stored_keys)]
                if rows.empty:
                    continue
                rows = pd.concat([stored, rows], ignore_index=True)
                new = len(rows) - len(stored)
            else:
                new = len(rows)
            atomic.write_parquet(rows.sort_values(["target_time", "symbol"]).reset_index(drop=True), path)
            added += new
    return added


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
    return out


def served(scores: pd.DataFrame) -> pd.DataFrame:
    """One score per ``(symbol, as_of)`` whatever the model: the first answered, in target-time order."""
    first = scores.sort_values("requested_at", kind="stable").drop_duplicates(["symbol", "as_of"])
    return first.sort_values(["symbol", "target_time"], kind="stable").reset_index(drop=True)


def scoreboard(
    scores: pd.DataFrame, now: pd.Timestamp, windows: Mapping[str, pd.Timedelta] = WINDOWS
) -> pd.DataFrame:
    """Rolling metrics per window, symbol and model tag, plus ``model="all"`` (what was served, one answer
    per hour), over the scores with ``now - window < target_time <= now``; columns ``BOARD_COLUMNS``."""
    rows: list[dict[str, Any]] = []
    symbols = sorted(scores["symbol"].unique())
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


def degradation(
    board: pd.DataFrame,
    drift_scores: pd.DataFrame,
    model: str | None,
    max_mae_ratio: float,
    min_hours: int,
    max_psi: float,
) -> list[str]:
    """Why the production ``model`` counts as degraded (empty: it does not).

    Per symbol: its 7-day MAE ratio over at least ``min_hours`` scored hours above ``max_mae_ratio``; or the
    worst 7-day PSI of a feature over at least ``min_hours`` served hours above ``max_psi``.
    """
    reasons = []
    if model is not None:
        judged = board.loc[(board["window"] == JUDGED_WINDOW) & (board["model"] == model)]
        for row in judged.itertuples():
            if row.hours >= min_hours and row.mae_ratio is not None and row.mae_ratio > max_mae_ratio:
                reasons.append(
                    f"{row.symbol}: 7-day MAE ratio to persistence {row.mae_ratio:.4f} > {max_mae_ratio:g} "
                    f"over {row.hours} hours of {model}"
                )
    drifted = drift_scores.loc[
        (drift_scores["window"] == JUDGED_WINDOW)
        & (drift_scores["hours"] >= min_hours)
        & (drift_scores["psi"] > max_psi)
    ]
    for symbol, rows in drifted.groupby("symbol", sort=True):
        worst = rows.sort_values("psi", ascending=False).iloc[0]
        reasons.append(
            f"{symbol}: feature {worst['feature']} drifted, 7-day PSI {worst['psi']:.3f} > {max_psi:g} "
            f"({len(rows)} features over the threshold)"
        )
    return reasons


def retrain_due(
    reasons: list[str], last_request: pd.Timestamp | None, now: pd.Timestamp, cooldown: pd.Timedelta
) -> bool:
    """Whether to ask for a retrain: the model is degraded and the last request is at least ``cooldown``
    old (data time)."""
    return bool(reasons) and (last_request is None or now - last_request >= cooldown)


def last_retrain_request(path: Path) -> pd.Timestamp | None:
    """Data time of the last retrain request recorded at ``path`` (None if never)."""
    if not path.exists():
        return None
    return pd.Timestamp(json.loads(path.read_text(encoding="utf-8"))["at"])


def record_retrain_request(path: Path, at: pd.Timestamp, model: str | None, reasons: list[str]) -> None:
    """Record (atomically) that a retrain was asked for at data time ``at``."""
    body = {"at": at.isoformat(), "model": model, "reasons": reasons}
    atomic.write_text(path, json.dumps(body, indent=2) + "\n")


def newest_hour(settings: Settings, symbols: list[str]) -> pd.Timestamp | None:
    """The data clock: open time of the newest stored candle of ``symbols`` (None if none is stored)."""
    newest = [
        store.last_stored(settings.candles_dir, store.Series(settings.exchange, symbol, settings.timeframe))
        for symbol in symbols
    ]
    known = [stamp for stamp in newest if stamp is not None]
    return max(known) if known else None


def production_reference(settings: Settings) -> tuple[str | None, dict[str, Any]]:
    """The production model's tag and the drift reference in its metadata (empty if it has none).

    A model's metadata never changes, so the reference is kept as JSON under ``HOURCAST_HOME/monitor/``
    after the first read (BentoML parses the whole model YAML, about 0.4 s).
    """
    from hourcast.model import registry

    tag = registry.production_tag(settings.registry_dir, settings.model_name)
    if tag is None:
        return None, {}
    cached = settings.monitor_state_path.parent / "reference" / f"{tag.replace(':', '-')}.json"
    if cached.exists():
        return tag, json.loads(cached.read_text(encoding="utf-8"))
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        reference = dict(bentoml.models.get(tag).info.metadata).get("feature_reference", {})
    except NotFound:
        return tag, {}
    atomic.write_text(cached, json.dumps(reference))
    return tag, reference


@dataclass
class MonitorReport:
    """What one monitor run scored, the rolling scoreboard, drift and the verdict on the production model."""

    now: pd.Timestamp | None
    added: int
    pending: int
    newly_unscorable: pd.DataFrame
    scores: pd.DataFrame
    scoreboard: pd.DataFrame
    drift: pd.DataFrame
    production: str | None
    degraded: list[str] = field(default_factory=list)

    def worst_drift(self, per_symbol: int = 5) -> pd.DataFrame:
        """The ``per_symbol`` most drifted features per window and symbol."""
        return self.drift.groupby(["window", "symbol"], sort=False).head(per_symbol).reset_index(drop=True)

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        unscorable = self.scores.loc[self.scores["status"] == UNSCORABLE]
        return {
            "now": self.now.isoformat() if self.now is not None else None,
            "added": self.added,
            "scored": int((self.scores["status"] == SCORED).sum()),
            "unscorable": [
                {
                    "symbol": row.symbol,
                    "as_of": row.as_of.isoformat(),
                    "target_time": row.target_time.isoformat(),
                    "model": row.model,
                }
                for row in unscorable.itertuples()
            ],
            "pending": self.pending,
            "production": self.production,
            "degraded": self.degraded,
            "scoreboard": json_records(self.scoreboard),
            "drift": json_records(self.worst_drift()),
        }


def json_records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as JSON-ready dicts: NaN and missing values become None."""
    return [
        {key: _none_if_nan(value) if isinstance(value, float) else value for key, value in row.items()}
        for row in frame.astype(object).where(frame.notna(), None).to_dict("records")
    ]


def _not_scored(predictions: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The predictions whose key the scores dataset does not hold yet."""
    if predictions.empty or stored.empty:
        return predictions
    done = pd.MultiIndex.from_frame(stored[KEY])
    return predictions.loc[~pd.MultiIndex.from_frame(predictions[KEY]).isin(done)].reset_index(drop=True)


def _target_candles(settings: Settings, predictions: pd.DataFrame) -> pd.DataFrame:
    """Stored candles of each predicted symbol from its first target hour on."""
    frames = [
        store.load_candles(
            settings.candles_dir,
            store.Series(settings.exchange, str(symbol), settings.timeframe),
            start=rows["target_time"].min(),
        )
        for symbol, rows in predictions.groupby("symbol", sort=True)
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["symbol", "ts", "close"])


def _log_since(stored: pd.DataFrame, symbols: list[str]) -> pd.Timestamp | None:
    """Where the log needs reading from: ``RESCAN`` before the oldest of the symbols' newest scored hours
    (None, everything, while a symbol has no score yet)."""
    newest = stored.groupby("symbol")["as_of"].max()
    if stored.empty or any(symbol not in newest.index for symbol in symbols):
        return None
    return newest.loc[symbols].min() - RESCAN


def run(settings: Settings) -> MonitorReport:
    """Score every logged prediction whose target candle is stored (adding only new keys to the scores
    dataset), then compute the scoreboard and drift at the data clock and judge the production model."""
    from hourcast.serving.prediction_log import read_log

    stored = read_scores(settings.scores_dir)
    since = _log_since(stored, settings.symbols)
    predictions = distinct_predictions(read_log(settings.predictions_dir, columns=LOG_COLUMNS, since=since))
    fresh = _not_scored(predictions, stored)
    scored, pending = score_predictions(fresh, _target_candles(settings, fresh))
    added = write_scores(settings.scores_dir, scored)  # keys a concurrent run wrote meanwhile are skipped
    scores = pd.concat([stored, scored], ignore_index=True).drop_duplicates(KEY) if added else stored
    now = newest_hour(settings, sorted({*settings.symbols, *predictions["symbol"].astype(str)}))
    production, reference = production_reference(settings)
    board = scoreboard(scores, now) if now is not None else pd.DataFrame(columns=BOARD_COLUMNS)
    drifted = drift.empty_table()
    if now is not None and reference:
        columns = [*KEY, "target_time", *drift.DRIFT_FEATURES]
        recent = now - max(DRIFT_WINDOWS.values())
        answered = distinct_predictions(read_log(settings.predictions_dir, columns=columns, since=recent))
        drifted = drift.drift_table(reference, served(answered), now, DRIFT_WINDOWS)  # one row per hour
    reasons = degradation(
        board,
        drifted,
        production,
        settings.monitor_max_mae_ratio,
        settings.monitor_min_hours,
        settings.monitor_max_psi,
    )
    return MonitorReport(
        now=now,
        added=added,
        pending=len(pending),
        newly_unscorable=scored.loc[scored["status"] == UNSCORABLE].reset_index(drop=True),
        scores=scores,
        scoreboard=board,
        drift=drifted,
        production=production,
        degraded=reasons,
    )


def request_retrain_if_due(settings: Settings, report: MonitorReport, emit: Any) -> bool:
    """Call ``emit(report)`` and record the request if the model is degraded and the cool-down has passed
    (on the data clock); returns whether it did. The request is recorded only after ``emit`` succeeded."""
    path = settings.monitor_state_path
    if report.now is None or not retrain_due(
        report.degraded,
        last_retrain_request(path),
        report.now,
        pd.Timedelta(hours=settings.retrain_cooldown_hours),
    ):
        return False
    emit(report)
    record_retrain_request(path, report.now, report.production, report.degraded)
    return True


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


def performance(scores: pd.DataFrame, symbol: str, now: pd.Timestamp, hours: int) -> dict[str, pd.DataFrame]:
    """What the dashboard's Performance view draws for ``symbol`` over the ``hours`` up to ``now``:

    * ``history``: ``target_time, predicted_close, realised_close, band_low, band_high, model, status`` per
      served hour;
    * ``rolling``: the trailing 24-hour MAE ratio and directional accuracy at each of those hours;
    * ``models``: when each model served (``model, first, last``), to mark promotions.
    """
    start = now - pd.Timedelta(hours=hours)
    mine = scores.loc[scores["symbol"] == symbol]
    recent = served(mine.loc[(mine["target_time"] > start) & (mine["target_time"] <= now)])
    columns = ["target_time", "predicted_close", "realised_close", "band_low", "band_high", "model", "status"]
    rolling = rolling_series(mine.loc[mine["target_time"] <= now], symbol)
    return {
        "history": recent[columns].reset_index(drop=True),
        "rolling": rolling.loc[rolling["target_time"] > start].reset_index(drop=True),
        "models": model_spans(mine, symbol),
    }
