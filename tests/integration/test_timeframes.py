"""A non-hourly timeframe end to end: the replay exchange serves 4h candles aggregated from the recorded 1h
files (and 15m candles from a synthetic 15m file), ingested through ccxt, materialized through Feast,
trained walk-forward with the timeframe's own leakage rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostRegressor

from hourcast.data import store
from hourcast.data.ingest import make_ingestor
from hourcast.dev.replay.data import FILE_COLUMNS, load_candles_file
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.features import dataset, featurestore
from hourcast.model import estimator, training
from hourcast.timeframe import timeframe_delta
from tests.support.data import replay_settings

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
START, END = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-02-10", tz="UTC")
VALUES = ["open", "high", "low", "close", "volume"]


def four_hourly(hourly: pd.DataFrame) -> pd.DataFrame:
    """What an exchange serves as 4h candles: periods from midnight UTC aggregated from the 1h ones."""
    rules = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}
    return hourly.resample("4h", on="ts").agg(rules).reset_index()


def quarter_hourly(hourly: pd.DataFrame, path: Path) -> pd.DataFrame:
    """A synthetic 15m file: each hour split into four consistent candles walking from open to close."""
    quarters = []
    for k in range(4):
        start = hourly["open"] + (hourly["close"] - hourly["open"]) * k / 4
        end = hourly["open"] + (hourly["close"] - hourly["open"]) * (k + 1) / 4
        quarters.append(
            pd.DataFrame(
                {
                    "timestamp": (hourly["ts"] + pd.Timedelta(minutes=15 * k)).dt.strftime(
                        "%Y-%m-%dT%H:%M:%SZ"
                    ),
                    "open": start,
                    "high": np.maximum(start, end) + k,
                    "low": np.minimum(start, end) - k,
                    "close": end,
                    "volume": hourly["volume"] / 4,
                }
            )
        )
    frame = pd.concat(quarters).sort_values("timestamp")[FILE_COLUMNS]
    frame.to_csv(path, index=False)
    return load_candles_file(path)


def fast_fit(frame: pd.DataFrame, params: dict | None = None) -> CatBoostRegressor:
    return estimator.fit(frame, {**(params or {}), "iterations": 40})


@pytest.mark.usefixtures("bentoml_store")
@pytest.mark.parametrize("timeframe", ["4h", "15m"])
def test_a_timeframe_runs_end_to_end(
    tmp_path: Path, recorded_files: dict[str, pd.DataFrame], timeframe: str
) -> None:
    step = timeframe_delta(timeframe)
    days = 40 if timeframe == "4h" else 10
    hourly = {
        s: f.loc[(f["ts"] >= END - pd.Timedelta(days=days)) & (f["ts"] < END)]
        for s, f in recorded_files.items()
    }
    if timeframe == "4h":
        served, expected = hourly, {s: four_hourly(f) for s, f in hourly.items()}
    else:
        served = expected = {s: quarter_hourly(f, tmp_path / f"{s[:3]}_15m.csv") for s, f in hourly.items()}
    exchange = ReplayExchange(served, now=END)
    with ReplayServer(exchange) as server:
        settings = replay_settings(
            tmp_path / "home",
            server,
            timeframe=timeframe,
            symbols=SYMBOLS,
            feature_repo=REPO / "feature_repo",
            train_days=days - 2,
            feature_retention_days=days,
        )
        summaries = make_ingestor(settings).backfill(END - pd.Timedelta(days=days))
    assert [(s.status, s.new, s.missing_candles) for s in summaries] == [
        ("ok", days * 86400 // int(step.total_seconds()), 0)
    ] * 2
    for symbol in SYMBOLS:
        candles = store.load_candles(settings.candles_dir, store.Series("binance", symbol, timeframe))
        pd.testing.assert_frame_equal(
            candles[["ts", *VALUES]], expected[symbol][["ts", *VALUES]], check_dtype=False
        )

    # features and labels one candle apart; Feast's point-in-time rows equal the pure rows
    featurestore.materialize(settings)
    table = pd.read_parquet(settings.feature_table_path)
    assert (table["event_timestamp"] == table["as_of"] + step).all()
    candles = dataset.load_candles(settings)
    labels = dataset.labels(candles, timeframe)
    through_feast = featurestore.training_frame(featurestore.open_store(settings), labels)
    pure = dataset.labelled_rows(candles, timeframe)
    assert len(pure) > 100 and len(through_feast) == len(pure)
    assert (through_feast["event_timestamp"] == through_feast["as_of"] + step).all()
    np.testing.assert_array_equal(
        through_feast.sort_values(["event_timestamp", "symbol"])["target_return"], pure["target_return"]
    )

    # training: every fold learns from the labels realised by its start, one timeframe being the label's span
    trained: list[pd.DataFrame] = []

    def recording_fit(frame: pd.DataFrame, params: dict | None = None) -> CatBoostRegressor:
        trained.append(frame)
        return fast_fit(frame, params)

    result = training.train(settings, fit_fn=recording_fit)
    walk, final = trained[0], trained[-1]
    gate_start = final["event_timestamp"].max() - pd.Timedelta(days=7)
    assert walk["event_timestamp"].max() == gate_start - step  # the last label realised at the gate's start
    assert result.rows == len(final) and np.isfinite(result.metrics["mae"])
