"""Walk-forward evaluation reports: refit weekly on the trailing window, predict each following hour,
calibrate each week on the ``gate_weeks`` before it (as training calibrates the model it saves), and compare
with persistence: MAE ratio, Diebold-Mariano p, directional accuracy with its 95 % interval and McNemar's
test against "the last move reverses", band coverage, width and proper scores (pinball, interval score)
against persistence's band, Brier score of ``p_up`` against climatology, pooled and per symbol. Optionally
compares training windows, and extra inputs (cross-asset, order flow), on the same hours. Refuses a run
whose first folds would train on less history than the window asks for.

Writes ``reports/walk_forward_<time>.json`` (the document ``--json`` prints), a ``.png`` chart and
``walk_forward_<time>_forecasts.parquet``: every variant's per-hour forecasts, from which any figure of the
report can be recomputed without refitting (``estimator.summarise`` of one variant's rows)."""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hourcast import atomic
from hourcast.data.candles import ORDER_FLOW_COLUMNS
from hourcast.errors import UsageError
from hourcast.features import compute, dataset
from hourcast.model import estimator, metrics, training
from hourcast.settings import Settings
from hourcast.timeframe import timeframe_delta

SHORT_WINDOW_SLACK = pd.Timedelta(days=1)
"""How much less history than its window a fold may train on (a missing first day) before ``run`` refuses."""
FORECAST_COLUMNS = [
    "train_days",
    "inputs",
    "symbol",
    "event_timestamp",
    "as_of",
    "fold",
    "last_close",
    "previous_close",
    "next_close",
    "raw_return",
    "spread",
    "predicted_return",
    "predicted_close",
    "band_low",
    "band_high",
    "p_up",
    "persistence_close",
    "persistence_low",
    "persistence_high",
    "p_up_climatology",
]
"""The per-hour forecasts file: the variant (training window, inputs), the hour (``event_timestamp``, the
close time of candle ``as_of``), the closes (``next_close`` is the realised one), the model's forecast, band
and ``p_up``, and persistence's forecast, band and climatological ``p_up``."""


@dataclass(frozen=True)
class EvaluationReport:
    """A walk-forward run: its metrics, its folds and where the report files are."""

    weeks: int
    train_days: int
    calibration_weeks: int
    metrics: dict[str, Any]
    folds: list[dict[str, Any]]
    json_path: Path
    chart_path: Path
    forecasts_path: Path
    windows: list[dict[str, Any]]
    cross_asset: list[dict[str, Any]]
    order_flow: list[dict[str, Any]]

    def as_json(self) -> dict[str, Any]:
        """The report: the ``--json`` line and the saved ``walk_forward_<time>.json`` alike."""
        return {
            "weeks": self.weeks,
            "train_days": self.train_days,
            "calibration_weeks": self.calibration_weeks,
            "metrics": self.metrics,
            "windows": self.windows,
            "cross_asset": self.cross_asset,
            "order_flow": self.order_flow,
            "folds": self.folds,
            "report": str(self.json_path),
            "chart": str(self.chart_path),
            "forecasts": str(self.forecasts_path),
        }


def versus(result: estimator.WalkForward, reference: estimator.WalkForward) -> dict[str, Any]:
    """Two variants' forecasts on the same hours, head to head: the MAE ratio of ``result`` to
    ``reference`` and the Diebold-Mariano test of their errors (p below 0.05: a difference beyond noise)."""
    keys = ["symbol", "event_timestamp"]
    paired = result.predictions.merge(
        reference.predictions[[*keys, "predicted_close"]], on=keys, suffixes=("", "_reference")
    )
    if len(paired) != len(result.predictions) or len(paired) != len(reference.predictions):
        raise ValueError("the variants to compare did not predict the same hours")
    actual = paired["next_close"].to_numpy(dtype="float64")
    errors = paired["predicted_close"].to_numpy(dtype="float64") - actual
    reference_errors = paired["predicted_close_reference"].to_numpy(dtype="float64") - actual
    statistic, p_value = metrics.diebold_mariano(errors, reference_errors)
    ratios = [
        float(np.mean(np.abs(errors[rows])) / np.mean(np.abs(reference_errors[rows])))
        for rows in paired.groupby("symbol", sort=True).indices.values()
    ]
    return {
        "mae_ratio": float(np.mean(np.abs(errors)) / np.mean(np.abs(reference_errors))),
        "mae_ratio_by_symbol": dict(zip(sorted(paired["symbol"].astype(str).unique()), ratios, strict=True)),
        "dm_statistic": statistic,
        "dm_p_value": p_value,
    }


def window_row(days: int, result: estimator.WalkForward, inputs: str = "base") -> dict[str, Any]:
    """One line of a comparison: a training window's (and input set's) pooled and per-symbol headline
    figures."""

    def headline(scored: dict[str, Any]) -> dict[str, Any]:
        return {
            "mae_ratio": scored["comparison"]["mae_ratio"],
            "dm_p_value": scored["comparison"]["dm_p_value"],
            **{
                key: scored["model"][key]
                for key in ("directional_accuracy", "directional_low", "directional_high")
            },
            "reversal_accuracy": scored["direction"]["reversal_accuracy"],
            "mcnemar_p_value": scored["direction"]["mcnemar_p_value"],
            "coverage": scored["band"]["model"]["coverage"],
            "width_ratio": scored["band"]["width_ratio"],
            "interval_score_ratio": scored["band"]["interval_score_ratio"],
            "brier_skill": scored["p_up"]["brier_skill"],
        }

    return {
        "train_days": days,
        "inputs": inputs,
        "hours": result.metrics["model"]["n"],
        "first_hour": str(result.predictions["event_timestamp"].min()),
        "last_hour": str(result.predictions["event_timestamp"].max()),
        **headline(result.metrics),
        "fit_seconds": sum(fold["fit_seconds"] for fold in result.folds),
        "by_symbol": {symbol: headline(scored) for symbol, scored in result.metrics["by_symbol"].items()},
    }


def check_history(
    frame: pd.DataFrame,
    windows: list[int],
    weeks: int,
    calibration_weeks: int,
    warm_up: pd.Timedelta,
    step: pd.Timedelta = pd.Timedelta(days=7),
) -> None:
    """``UsageError`` if the first of the ``calibration_weeks + weeks`` weekly folds ending at the newest row
    of ``frame`` would train on less history than the longest of ``windows`` (days) asks for, by more than
    ``SHORT_WINDOW_SLACK``: the error says how many days it would get and what to do (fewer weeks, a
    shorter window, older candles: ``warm_up`` is how much candle history precedes the first row).
    Later folds start later, so the first one is the shortest."""
    stamps = frame["event_timestamp"]
    first, last = stamps.min(), stamps.max()
    folds = weeks + calibration_weeks
    start = last - folds * step
    window = pd.Timedelta(days=max(windows))
    if first <= start - window + SHORT_WINDOW_SLACK:
        return
    fitting = int((last - first - window + SHORT_WINDOW_SLACK) // step) - calibration_weeks
    raise UsageError(
        f"the first of {folds} weekly folds ({weeks} --weeks after {calibration_weeks} calibration "
        f"week(s)), from {start:%Y-%m-%d %H:%M}, would train on "
        f"{estimator.span_text(max(start - first, pd.Timedelta(0)))} of history, not the "
        f"{estimator.span_text(window)} HOURCAST_TRAIN_DAYS (or --windows) asks for: the rows start "
        f"{first:%Y-%m-%d %H:%M}; "
        + (f"give --weeks {fitting} or fewer, " if fitting >= 1 else "no --weeks fits; give ")
        + "a shorter window, or store older candles "
        f"(`hourcast backfill --since {start - window - warm_up:%Y-%m-%d}`)"
    )


def forecasts_table(variants: list[tuple[int, str, estimator.WalkForward]]) -> pd.DataFrame:
    """Every variant's per-hour forecasts in one frame (``FORECAST_COLUMNS``)."""
    return pd.concat(
        [
            result.predictions.assign(train_days=days, inputs=inputs)[FORECAST_COLUMNS]
            for days, inputs, result in variants
        ],
        ignore_index=True,
    )


def no_order_flow(settings: Settings) -> str:
    """Why ``--order-flow`` cannot compare: no stored candle carries order flow; and how to get it."""
    return (
        f"no stored candle of {', '.join(settings.symbols)} ({settings.exchange} {settings.timeframe}, "
        f"{settings.candles_dir}) carries order flow (quote volume, trades, taker-buy volume), so there is "
        "nothing to compare with and without it. Only Binance's klines have it, and the recorded candles "
        "bundled with hourcast do not: ingest or backfill from Binance (HOURCAST_EXCHANGE=binance, "
        "HOURCAST_EXCHANGE_URL unset) into a new HOURCAST_HOME, e.g. `hourcast backfill --since 2025-01-01` "
        "(candles stored before keep none), then run `hourcast evaluate --order-flow` again"
    )


def run(
    settings: Settings,
    weeks: int,
    windows: list[int] | None = None,
    cross_asset: bool = False,
    order_flow: bool = False,
) -> EvaluationReport:
    """Walk-forward over the last ``weeks`` weeks, each fold fitted on the trailing ``train_days`` and
    calibrated on the ``gate_weeks`` folds before it; with ``windows`` (days), the same hours are also
    predicted with each of those training windows and compared (``window_row``, and ``versus`` the
    default window: a DM test of the two on the same hours); with ``cross_asset``, with and without
    ``compute.CROSS_FEATURES`` as extra inputs (``versus_base``: the DM test of the two); with
    ``order_flow``, the same for each group of ``compute.ORDER_FLOW_SIGNALS`` and for all
    ``compute.ORDER_FLOW_FEATURES`` (``order flow (all)``), one row each after the base. Every run then
    uses only the hours where each compared input exists (the reference row, the order flow), so all
    compare the same hours. ``TrainingError`` if ``order_flow`` is asked for and no stored candle has
    any (``no_order_flow``); ``UsageError`` before any fit if a fold would train on less history than its
    window (``check_history``).

    The rows are the pure ``dataset.labelled_rows`` of the whole candle archive, not Feast's table, which
    keeps only ``feature_retention_days``; a test checks both give the same rows."""
    results: dict[int, estimator.WalkForward] = {}
    variants: list[tuple[int, str, estimator.WalkForward]] = []
    extras = {"cross-asset": compute.CROSS_FEATURES} if cross_asset else {}
    flow_groups = {**compute.ORDER_FLOW_SIGNALS, "all": compute.ORDER_FLOW_FEATURES} if order_flow else {}
    extras |= {f"order flow ({name})": columns for name, columns in flow_groups.items()}
    compared_inputs: dict[str, dict[str, Any]] = {}
    walk = partial(
        estimator.walk_forward,
        weeks=weeks,
        horizon=timeframe_delta(settings.timeframe),
        calibration_weeks=settings.gate_weeks,
    )
    try:
        candles = dataset.load_candles(settings)
        if order_flow and not candles[ORDER_FLOW_COLUMNS].notna().any(axis=None):
            raise training.TrainingError(no_order_flow(settings))
        frame = dataset.labelled_rows(candles, settings.timeframe)
        frame = frame.dropna(subset=[column for columns in extras.values() for column in columns])
        if not frame.empty:
            check_history(
                frame,
                [settings.train_days, *(windows or [])],
                weeks,
                settings.gate_weeks,
                warm_up=frame["event_timestamp"].min() - candles["ts"].min(),
            )
        for days in dict.fromkeys([settings.train_days, *(windows or [])]):
            results[days] = walk(frame, train_window=pd.Timedelta(days=days))
            variants.append((days, "base", results[days]))
        base = results[settings.train_days]
        for label, columns in extras.items():
            extra = walk(
                frame,
                train_window=pd.Timedelta(days=settings.train_days),
                fit_fn=partial(estimator.fit, inputs=[*estimator.MODEL_INPUTS, *columns]),
            )
            variants.append((settings.train_days, f"base + {label}", extra))
            compared_inputs[label] = window_row(settings.train_days, extra, f"base + {label}") | {
                "versus_base": versus(extra, base)
            }
    except dataset.NoCandles as error:
        raise training.TrainingError(f"cannot evaluate {weeks} weeks: {error}") from error
    except ValueError as error:  # the estimator's: too few rows for a fold
        raise training.TrainingError(
            f"cannot evaluate {weeks} weeks: {error}; give fewer --weeks or store more history "
            "(`hourcast backfill --since DATE`)"
        ) from error
    result = results[settings.train_days]
    base_row = [window_row(settings.train_days, result)]
    crossed = [*base_row, compared_inputs.pop("cross-asset")] if cross_asset else []
    flowed = [*base_row, *compared_inputs.values()] if order_flow else []
    compared = (
        [
            window_row(days, results[days]) | {"versus_default": versus(results[days], result)}
            for days in sorted(results)
        ]
        if windows
        else []
    )
    stamp = pd.Timestamp.now(tz="UTC").strftime("%Y%m%dT%H%M%SZ")
    horizon = timeframe_delta(settings.timeframe)
    folds = [
        {key: str(value) if isinstance(value, pd.Timestamp) else value for key, value in fold.items()}
        # the span of labels it trained on: the whole window unless the history is shorter
        | {"train_days": round((fold["start"] - fold["train_first"] + horizon) / pd.Timedelta(days=1), 2)}
        for fold in result.folds
    ]
    name = f"walk_forward_{stamp}"
    forecasts_path = atomic.write_parquet(
        forecasts_table(variants), settings.reports_dir / f"{name}_forecasts.parquet"
    )
    report = EvaluationReport(
        weeks=weeks,
        train_days=settings.train_days,
        calibration_weeks=settings.gate_weeks,
        metrics=result.metrics,
        folds=folds,
        json_path=settings.reports_dir / f"{name}.json",
        chart_path=write_chart(result.predictions, settings.reports_dir / f"{name}.png"),
        forecasts_path=forecasts_path,
        windows=compared,
        cross_asset=crossed,
        order_flow=flowed,
    )
    atomic.write_text(report.json_path, json.dumps(report.as_json(), indent=2))
    return report


def write_chart(predictions: pd.DataFrame, path: Path, candles: int = 168) -> Path:
    """Predicted vs actual close (persistence, and the model's band when calibrated) over the last
    ``candles`` of each symbol, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    symbols = list(dict.fromkeys(predictions["symbol"]))
    figure, axes = plt.subplots(len(symbols), 1, figsize=(12, 3.5 * len(symbols)), squeeze=False)
    for axis, symbol in zip(axes[:, 0], symbols, strict=True):
        rows = predictions.loc[predictions["symbol"] == symbol].tail(candles)
        target = rows["event_timestamp"]  # the forecast is for the candle that closes one step later
        if "band_low" in rows and rows["band_low"].notna().all():
            axis.fill_between(
                target, rows["band_low"], rows["band_high"], color="tab:blue", alpha=0.15, label="90 % band"
            )
        axis.plot(target, rows["next_close"], color="black", linewidth=1.2, label="actual close")
        axis.plot(target, rows["predicted_close"], color="tab:blue", linewidth=1, label="model")
        axis.plot(
            target,
            rows["persistence_close"],
            color="tab:orange",
            linewidth=0.8,
            alpha=0.7,
            label="persistence",
        )
        axis.set_title(f"{symbol}: next-candle close, last {len(rows)} walk-forward candles")
        axis.legend(loc="upper left")
        axis.grid(alpha=0.3)
    figure.tight_layout()
    image = io.BytesIO()
    figure.savefig(image, format="png", dpi=90)
    plt.close(figure)
    return atomic.write_bytes(path, image.getvalue())
