"""Monitor benchmark: 30 days of hourly predictions for BTC/USDT and ETH/USDT with 100 answers per hour in
the prediction log (144,000 rows, one Parquet file per hour, written by ``PredictionLog`` and then named and
filed for the time a live API would have written it), real recorded candles in the store, and a production
model with its drift reference in a temporary BentoML store.

Measures, in one warm process (imports done):
- ``monitor_run.run`` scoring the whole log into an empty scores dataset (1,440 distinct predictions),
  with the rolling scoreboard and drift;
- the steady state: one more hour of answers, then ``monitor_run.run`` (adds 2 scores);
- the bare pandas work on the same rows: read the log's scoring columns and the candles with
  ``pandas.read_parquet``, drop duplicate answers, join on (symbol, target time) and take the errors.

Run: uv run python benchmarks/monitor.py
"""

from __future__ import annotations

import os
import shutil
import tempfile
from datetime import UTC
from pathlib import Path

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="hourcast-bench-bentoml-")

import numpy as np
import pandas as pd
from _common import argument_parser, summarize, timed, write_results

from hourcast.data import store
from hourcast.dev.replay.data import load_candles_file
from hourcast.dev.samples import sample_files
from hourcast.features.compute import FEATURE_NAMES, compute_features, next_hour_targets
from hourcast.model import drift, estimator, registry
from hourcast.monitor import run as monitor_run
from hourcast.serving.prediction_log import PredictionLog
from hourcast.serving.schema import Band, Prediction
from hourcast.settings import Settings

DAYS = 30
ANSWERS = 100
START = pd.Timestamp("2025-06-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)
RUNS = 5


def store_until(settings: Settings, candles: dict[str, pd.DataFrame], last: pd.Timestamp) -> None:
    """Store each symbol's recorded candles up to open time ``last``."""
    for symbol, frame in candles.items():
        store.upsert(
            settings.candles_dir, store.Series("binance", symbol, "1h"), frame.loc[frame["ts"] <= last]
        )


def prepare(settings: Settings) -> tuple[dict[str, pd.DataFrame], dict[str, pd.DataFrame]]:
    """Promote a model with its drift reference; returns the candles and the feature rows by hour."""
    features, candles = {}, {}
    training = []
    for symbol, path in sample_files().items():
        frame = load_candles_file(path)
        frame = frame.loc[
            (frame["ts"] >= START - pd.Timedelta(days=31)) & (frame["ts"] <= START + (DAYS + 1) * 24 * HOUR)
        ]
        frame = frame.assign(symbol=symbol, exchange="binance", timeframe="1h")
        candles[symbol] = frame
        computed = compute_features(frame)
        features[symbol] = computed.set_index("as_of")
        past = frame.loc[frame["ts"] < START]
        training.append(
            compute_features(past).merge(next_hour_targets(past), on=["symbol", "event_timestamp"])
        )
    frame = pd.concat(training, ignore_index=True)
    fitted = estimator.fit(frame, {"iterations": 50})
    tag = registry.save_candidate(
        fitted,
        settings.model_name,
        settings.registry_dir,
        labels={},
        metadata={"feature_reference": drift.feature_reference(frame)},
    )
    registry.promote(settings.registry_dir, settings.model_name, tag, "benchmark")
    return candles, features


def log_hour(log: PredictionLog, features: dict[str, pd.DataFrame], as_of: pd.Timestamp, tag: str) -> None:
    """``ANSWERS`` answers per symbol for one hour (a minute apart each), flushed as one file."""
    rng = np.random.default_rng(int(as_of.timestamp()))
    predictions = []
    for symbol, rows in features.items():
        row = rows.loc[as_of]
        last = float(row["last_close"])
        predicted_return = float(rng.normal(0, 0.002))
        close = last * float(np.exp(predicted_return))
        predictions.append(
            Prediction(
                symbol=symbol,
                as_of=f"{as_of:%Y-%m-%dT%H:%M:%SZ}",
                target_time=f"{as_of + HOUR:%Y-%m-%dT%H:%M:%SZ}",
                last_close=last,
                predicted_close=close,
                predicted_return=predicted_return,
                direction="up" if predicted_return >= 0 else "down",
                persistence_close=last,
                model=tag,
                features_age_seconds=30.0,
                stale=False,
                band=Band(low=close * 0.99, high=close * 1.01, quantiles=[0.05, 0.95]),
                clock="exchange",
            ).with_features({name: float(row[name]) for name in FEATURE_NAMES})
        )
    for answer in range(ANSWERS):
        requested = as_of + HOUR + pd.Timedelta(seconds=30 * answer)
        log.record(requested.to_pydatetime().astimezone(UTC), predictions)
    written = log.flush()
    # named (and filed by day) for when a live API would have written it, after the hour's last answer
    flushed = as_of + HOUR + pd.Timedelta(minutes=50)
    live = log.directory / f"date={flushed:%Y-%m-%d}" / f"part-{flushed:%Y%m%dT%H%M%S%f}-0-0.parquet"
    live.parent.mkdir(parents=True, exist_ok=True)
    os.replace(written, live)


def bare_join(settings: Settings) -> pd.DataFrame:
    """The same rows scored with plain pandas: read, de-duplicate, join, subtract."""
    log = pd.read_parquet(
        settings.predictions_dir,
        columns=["requested_at", "symbol", "as_of", "target_time", "model", "last_close", "predicted_close"],
    )
    log = log.sort_values("requested_at").drop_duplicates(["symbol", "as_of", "model"])
    candles = pd.read_parquet(settings.candles_dir, columns=["symbol", "ts", "close"])
    candles["symbol"] = candles["symbol"].astype(str)
    candles["ts"] = candles["ts"].astype("datetime64[ns, UTC]")
    log["target_time"] = log["target_time"].astype("datetime64[ns, UTC]")
    joined = log.astype({"symbol": str}).merge(
        candles.rename(columns={"ts": "target_time", "close": "realised"}), on=["symbol", "target_time"]
    )
    joined["error"] = joined["predicted_close"] - joined["realised"]
    joined["persistence_error"] = joined["last_close"] - joined["realised"]
    return joined


def main() -> None:
    parser = argument_parser(__doc__, "monitor")
    parser.add_argument(
        "--runs", type=int, default=RUNS, help="timed monitor runs of each kind (default: %(default)s)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), symbols=list(sample_files()))
        candles, features = prepare(settings)
        tag = registry.production_tag(settings.registry_dir, settings.model_name)
        log = PredictionLog(settings.predictions_dir)
        hours = [START + step * HOUR for step in range(DAYS * 24)]
        store_until(settings, candles, hours[-1])  # the last hour's targets are not closed yet
        for as_of in hours:
            log_hour(log, features, as_of, tag)
        rows = ANSWERS * 2 * len(hours)
        log_files = len(list(settings.predictions_dir.rglob("*.parquet")))

        full = []
        for _ in range(args.runs):
            shutil.rmtree(settings.scores_dir, ignore_errors=True)
            seconds, report = timed(lambda: monitor_run.run(settings))
            full.append(seconds)
        assert report.added == 2 * len(hours) - 2 and report.pending == 2, (report.added, report.pending)
        bare = [timed(lambda: bare_join(settings))[0] for _ in range(args.runs)]
        joined = bare_join(settings)
        assert len(joined) == report.added, (len(joined), report.added)

        hourly = []
        for step in range(args.runs):
            as_of = hours[-1] + (step + 1) * HOUR
            store_until(settings, candles, as_of)  # the hour closes (an ingest) and is answered
            log_hour(log, features, as_of, tag)
            seconds, report = timed(lambda: monitor_run.run(settings))
            assert report.added == 2, report.added
            hourly.append(seconds)

        board = report.scoreboard.loc[report.scoreboard["model"] == "all"]
        figures = {
            "log_rows": rows,
            "log_files": log_files,
            "distinct_predictions": 2 * len(hours),
            "monitor_full_run": summarize(full),
            "monitor_hourly_run": summarize(hourly),
            "bare_pandas_join": summarize(bare),
            "ratio_full_vs_bare": round(float(np.median(full) / np.median(bare)), 2),
            "ratio_hourly_vs_bare": round(float(np.median(hourly) / np.median(bare)), 2),
            "scoreboard_30d": board.loc[board["window"] == "30d"].to_dict("records"),
        }
        write_results(args.output, figures)


if __name__ == "__main__":
    main()
