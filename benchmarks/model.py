"""Features and model benchmark on the shared BTC/USDT + ETH/USDT files (all 19,704 hours each).

Measures, in one run:
- `materialize` of both symbols into Redis (db 12, flushed), after imports, vs the bare Feast
  `FeatureStore.materialize` of the same window into a fresh database;
- training on the last 30 days (Feast point-in-time join + walk-forward gate + final fit + BentoML save)
  vs the bare CatBoost `fit` on the same frame;
- a 52-week walk-forward (weekly refits on the trailing 30 days, each week calibrated on the one before:
  53 fits) vs the sum of its bare fits;
and prints the walk-forward result table (model vs persistence, direction with its 95 % interval, band
coverage and width against persistence's band, Brier score of p_up against climatology) the README shows.

Run: uv run python benchmarks/model.py   (needs Redis on 127.0.0.1:6379)
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
BENTOML_HOME = tempfile.mkdtemp(prefix="hourcast-bench-bentoml-")
os.environ["BENTOML_HOME"] = BENTOML_HOME

import pandas as pd  # noqa: E402
import redis  # noqa: E402
from _common import REPO, timed, write_results  # noqa: E402

from hourcast import evaluation, featurestore, model, store, training  # noqa: E402
from hourcast.dev.replay import load_candles_file  # noqa: E402
from hourcast.dev.samples import sample_files  # noqa: E402
from hourcast.settings import Settings  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/12"


def main() -> None:
    import feast  # noqa: F401 - imported up front: the figures are "after import"

    figures: dict = {}
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(
            home=Path(home),
            symbols=list(sample_files()),
            online_store="redis",
            redis_url=REDIS_URL,
            feature_repo=REPO / "feature_repo",
        )
        for symbol, path in sample_files().items():
            frame = load_candles_file(path)
            frame.insert(0, "symbol", symbol)
            for column, value in (("exchange", "binance"), ("timeframe", "1h")):
                frame[column] = value
            store.upsert(settings.candles_dir, store.Series("binance", symbol, "1h"), frame)

        client = redis.Redis.from_url(REDIS_URL)
        client.flushdb()
        project_s, summary = timed(lambda: featurestore.materialize(settings))
        feature_store = featurestore.open_store(settings)
        view = feature_store.get_feature_view(featurestore.FEATURE_VIEW)
        client.flushdb()
        started = time.perf_counter()
        feature_store.materialize(
            start_date=(summary.end - view.ttl).to_pydatetime(),
            end_date=summary.end.to_pydatetime(),
            feature_views=[featurestore.FEATURE_VIEW],
        )
        bare_s = time.perf_counter() - started
        client.flushdb()
        figures["materialize_redis_both_symbols"] = {
            "feature_rows": summary.feature_rows,
            "project_s": round(project_s, 2),
            "bare_feast_materialize_s": round(bare_s, 2),
            "ratio": round(project_s / bare_s, 1),
            "target_s": 5,
        }

        settings = settings.model_copy(update={"online_store": "sqlite"})
        featurestore.materialize(settings)
        project_s, result = timed(lambda: training.train(settings))
        frame = training.load_training_frame(settings, feature_store)
        frame = frame.loc[frame["event_timestamp"] > frame["event_timestamp"].max() - pd.Timedelta(days=30)]
        bare_s, _ = timed(lambda: model.fit(frame))
        figures["train_30_days"] = {
            "rows": result.rows,
            "project_s": round(project_s, 2),
            "bare_catboost_fit_s": round(bare_s, 2),
            "ratio": round(project_s / bare_s, 1),
            "target_s": 10,
            "promoted": result.promoted,
            "mae_ratio": result.metrics["mae_ratio"],
        }

        project_s, report = timed(lambda: evaluation.run(settings, weeks=52))
        fits = sum(fold["fit_seconds"] for fold in report.folds)
        figures["walk_forward_52_weeks"] = {
            "project_s": round(project_s, 1),
            "sum_of_bare_fits_s": round(fits, 1),
            "ratio": round(project_s / fits, 2),
            "target_s": 300,
            "first_fold": report.folds[0]["start"],
            "last_fold_end": report.folds[-1]["end"],
        }
        figures["walk_forward_result"] = {
            scope: {
                forecast: {k: round(v, 4) for k, v in values[forecast].items()}
                | (
                    {
                        "mae_ratio": round(values["comparison"]["mae_ratio"], 4),
                        "dm_p_value": round(values["comparison"]["dm_p_value"], 4),
                    }
                    if forecast == "model"
                    else {}
                )
                for forecast in ("model", "persistence")
            }
            | {
                "band": {
                    "coverage": round(values["band"]["model"]["coverage"], 4),
                    "width_pct": round(values["band"]["model"]["width_pct"], 4),
                    "persistence_coverage": round(values["band"]["persistence"]["coverage"], 4),
                    "persistence_width_pct": round(values["band"]["persistence"]["width_pct"], 4),
                    "width_ratio": round(values["band"]["width_ratio"], 4),
                },
                "p_up": {key: round(value, 5) for key, value in values["p_up"].items()},
            }
            for scope, values in [("all", report.metrics), *report.metrics["by_symbol"].items()]
        }
    write_results("model", figures)


if __name__ == "__main__":
    main()
