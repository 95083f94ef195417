"""Features and model benchmark on the shared BTC/USDT + ETH/USDT files (all 19,704 hours each), with the
default settings (training window ``Settings().train_days``, 365 days) and the embedded SQLite online store:
no Redis at all (the machine's is never touched).

Measures, in one run:
- `materialize` of both symbols (after imports) vs the bare Feast `FeatureStore.materialize` of the same
  window into the same online store;
- training on the default window (Feast point-in-time join + walk-forward gate + final fit + BentoML save)
  vs the bare CatBoost fit of the same frame;
- the 52-week walk-forward of `hourcast evaluate` (weekly refits on the trailing window, each week
  calibrated on the one before: 53 fits, then predictions, metrics, the JSON report and the chart) vs bare
  CatBoost fits of exactly the same training rows, fold by fold, in the same run;
and prints the walk-forward result table (model vs persistence, direction with its 95 % interval, band
coverage and width against persistence's band, Brier score of p_up against climatology) the README shows.

Run: uv run python benchmarks/model.py
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import catboost
import pandas as pd
from _common import REPO, argument_parser, timed, write_results

from hourcast.data import store
from hourcast.dev.replay.data import load_candles_file
from hourcast.dev.samples import sample_files
from hourcast.features import dataset, featurestore
from hourcast.model import estimator, evaluation, training
from hourcast.settings import Settings

WEEKS = 52


def bare_fit(rows: pd.DataFrame) -> float:
    """Seconds of the bare CatBoost work of one fit: the pool of the rows (in time order) and ``fit``."""
    ordered = rows.sort_values(["event_timestamp", "symbol"], kind="stable")
    started = time.perf_counter()
    pool = catboost.Pool(
        ordered[estimator.MODEL_INPUTS].astype({"symbol": object}),
        label=ordered[estimator.TARGET],
        cat_features=estimator.CATEGORICAL_INPUTS,
    )
    catboost.CatBoostRegressor(**estimator.DEFAULT_PARAMS).fit(pool)
    return time.perf_counter() - started


def main() -> None:
    parser = argument_parser(__doc__, "model")
    parser.add_argument(
        "--weeks", type=int, default=WEEKS, help="weeks of the walk-forward evaluation (default: %(default)s)"
    )
    args = parser.parse_args()
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="hourcast-bench-bentoml-")  # before bentoml's import
    import feast  # noqa: F401 - imported up front: the figures are "after import"

    figures: dict = {}
    with tempfile.TemporaryDirectory() as home:
        settings = Settings(
            home=Path(home),
            symbols=list(sample_files()),
            online_store="sqlite",
            feature_repo=REPO / "feature_repo",
            _env_file=None,
        )
        for symbol, path in sample_files().items():
            frame = load_candles_file(path)
            frame.insert(0, "symbol", symbol)
            for column, value in (("exchange", "binance"), ("timeframe", "1h")):
                frame[column] = value
            store.upsert(settings.candles_dir, store.Series("binance", symbol, "1h"), frame)

        project_s, summary = timed(lambda: featurestore.materialize(settings))
        feature_store = featurestore.open_store(settings)
        view = feature_store.get_feature_view(featurestore.FEATURE_VIEW)
        started = time.perf_counter()  # the same window's online rows written again, by Feast alone
        feature_store.materialize(
            start_date=(summary.end - view.ttl).to_pydatetime(),
            end_date=summary.end.to_pydatetime(),
            feature_views=[featurestore.FEATURE_VIEW],
        )
        bare_s = time.perf_counter() - started
        figures["materialize_sqlite_both_symbols"] = {
            "feature_rows": summary.feature_rows,
            "project_s": round(project_s, 2),
            "bare_feast_materialize_s": round(bare_s, 2),
            "ratio": round(project_s / bare_s, 1),
            "target_s": 5,
        }

        project_s, result = timed(lambda: training.train(settings))
        frame = training.load_training_frame(settings, feature_store)
        end = frame["event_timestamp"].max()
        frame = frame.loc[frame["event_timestamp"] > end - pd.Timedelta(days=settings.train_days)]
        bare_s = bare_fit(frame)
        figures[f"train_{settings.train_days}_days"] = {
            "rows": result.rows,
            "project_s": round(project_s, 2),
            "bare_catboost_fit_s": round(bare_s, 2),
            "ratio": round(project_s / bare_s, 1),
            "target_s": 10,
            "promoted": result.promoted,
            "mae_ratio": result.metrics["mae_ratio"],
        }

        project_s, report = timed(lambda: evaluation.run(settings, weeks=args.weeks))
        rows = dataset.labelled_rows(dataset.load_candles(settings), settings.timeframe)
        stamps = rows["event_timestamp"]
        bare_fits = []
        for fold in report.folds:  # each fold's training rows: every row from its first to its last
            first, last = pd.Timestamp(fold["train_first"]), pd.Timestamp(fold["train_last"])
            same_rows = rows.loc[stamps.between(first, last)]
            assert len(same_rows) == fold["train_rows"], fold
            bare_fits.append(bare_fit(same_rows))
        train_rows = [fold["train_rows"] for fold in report.folds]
        figures[f"walk_forward_{args.weeks}_weeks_{settings.train_days}_days"] = {
            "fits": len(report.folds),
            "train_rows_per_fit": [min(train_rows), max(train_rows)],
            "scored_hours": report.metrics["model"]["n"],
            "project_s": round(project_s, 1),
            "bare_catboost_fits_s": round(sum(bare_fits), 1),
            "ratio": round(project_s / sum(bare_fits), 2),
            "fits_inside_project_s": round(sum(fold["fit_seconds"] for fold in report.folds), 1),
            "target_s": 300,
            "first_fold": report.folds[0]["start"],
            "last_fold_end": report.folds[-1]["end"],
            "mae_ratio": round(report.metrics["comparison"]["mae_ratio"], 4),
            "dm_p_value": round(report.metrics["comparison"]["dm_p_value"], 4),
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
    write_results(args.output, figures)


if __name__ == "__main__":
    main()
