"""Monitoring, pure parts: scoring against recorded candles (exact errors, duplicates once, gaps unscorable,
unknown targets pending), the idempotent scores dataset, rolling metrics, drift (PSI) and the cool-down."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hourcast.model import drift, metrics
from hourcast.monitor import prometheus, scoreboard, scoring, verdict

HOUR = pd.Timedelta(hours=1)
START = pd.Timestamp("2024-03-01", tz="UTC")


@pytest.fixture
def candles(btc_recorded: pd.DataFrame) -> pd.DataFrame:
    """72 recorded BTC/USDT hours from START, as ``symbol, ts, close``."""
    frame = btc_recorded.loc[(btc_recorded["ts"] >= START) & (btc_recorded["ts"] < START + 72 * HOUR)]
    return frame.assign(symbol="BTC/USDT")[["symbol", "ts", "close"]].reset_index(drop=True)


def close_at(candles: pd.DataFrame, stamp: pd.Timestamp) -> float:
    return float(candles.loc[candles["ts"] == stamp, "close"].iloc[0])


def log_rows(candles: pd.DataFrame, hours: range, model: str = "m:1", answers: int = 3) -> pd.DataFrame:
    """What the API would log: ``answers`` identical answers per hour, the first a minute after the close;
    predicted close 0.1 % above the last close, band +-0.5 %."""
    rows = []
    for hour in hours:
        as_of = START + hour * HOUR
        last = close_at(candles, as_of)
        for answer in range(answers):
            rows.append(
                {
                    "requested_at": as_of + HOUR + pd.Timedelta(minutes=1 + answer),
                    "symbol": "BTC/USDT",
                    "as_of": as_of,
                    "target_time": as_of + HOUR,
                    "last_close": last,
                    "predicted_close": last * 1.001,
                    "model": model,
                    "stale": False,
                    "band_low": last * 0.995,
                    "band_high": last * 1.005,
                }
            )
    return pd.DataFrame(rows)


def test_each_prediction_is_scored_exactly_against_its_candle(candles: pd.DataFrame) -> None:
    predictions = scoring.distinct_predictions(log_rows(candles, range(24, 40)))
    assert len(predictions) == 16  # three answers per hour count once

    scores, pending = scoring.score_predictions(predictions, candles)
    assert pending.empty and (scores["status"] == scoring.SCORED).all()
    for row in scores.itertuples():
        realised = close_at(candles, row.as_of + HOUR)
        last = close_at(candles, row.as_of)
        assert row.realised_close == realised
        assert row.error == pytest.approx(last * 1.001 - realised, abs=1e-9)
        assert row.persistence_error == pytest.approx(last - realised, abs=1e-9)
        assert row.direction_hit == (realised > last)
        assert row.in_band == (last * 0.995 <= realised <= last * 1.005)
        assert row.requested_at == row.as_of + HOUR + pd.Timedelta(minutes=1)  # the first answer


def test_a_gap_is_unscorable_and_an_unknown_target_waits(candles: pd.DataFrame) -> None:
    gap = START + 30 * HOUR
    stored = candles.loc[(candles["ts"] != gap) & (candles["ts"] <= START + 40 * HOUR)]
    predictions = scoring.distinct_predictions(log_rows(candles, range(28, 45)))

    scores, pending = scoring.score_predictions(predictions, stored)
    unscorable = scores.loc[scores["status"] == scoring.UNSCORABLE]
    assert unscorable["target_time"].tolist() == [gap]
    assert unscorable[["realised_close", "error", "persistence_error"]].isna().all().all()
    assert unscorable["direction_hit"].isna().all() and unscorable["in_band"].isna().all()
    assert sorted(pending["target_time"]) == [START + h * HOUR for h in range(41, 46)]
    assert len(scores) + len(pending) == len(predictions)

    # later, the hours are stored: the pending ones are scored, the gap stays a gap
    later, still = scoring.score_predictions(pending, candles.loc[candles["ts"] != gap])
    assert still.empty and (later["status"] == scoring.SCORED).all() and len(later) == 5


def test_a_log_without_band_scores_without_coverage(candles: pd.DataFrame) -> None:
    old_layout = log_rows(candles, range(24, 30)).drop(columns=["band_low", "band_high", "stale"])
    scores, _ = scoring.score_predictions(scoring.distinct_predictions(old_layout), candles)
    assert scores["in_band"].isna().all() and scores["error"].notna().all()
    board = scoreboard.scoreboard(scores, START + 30 * HOUR)
    assert board.loc[board["window"] == "24h", "coverage"].isna().all()


def test_the_scores_dataset_is_idempotent(tmp_path: Path, candles: pd.DataFrame) -> None:
    directory = tmp_path / "scores"
    first, _ = scoring.score_predictions(
        scoring.distinct_predictions(log_rows(candles, range(20, 30))), candles
    )
    assert scoring.write_scores(directory, first) == 10
    assert scoring.write_scores(directory, first) == 0  # re-running adds nothing
    more, _ = scoring.score_predictions(
        scoring.distinct_predictions(log_rows(candles, range(20, 40))), candles
    )
    assert scoring.write_scores(directory, more) == 10  # only the keys not yet stored
    stored = scoring.read_scores(directory)
    assert len(stored) == 20 and not stored.duplicated(scoring.KEY).any()
    assert sorted(p.parent.name for p in directory.glob("date=*/scores.parquet")) == [
        "date=2024-03-01",
        "date=2024-03-02",
    ]
    pd.testing.assert_frame_equal(
        stored.sort_values("as_of").reset_index(drop=True), more.sort_values("as_of").reset_index(drop=True)
    )
    assert scoring.read_scores(tmp_path / "nothing").empty


def test_rolling_metrics_count_each_hour_once_and_match_the_metrics_module(candles: pd.DataFrame) -> None:
    log = pd.concat([log_rows(candles, range(0, 60), answers=5), log_rows(candles, range(50, 60), "m:2", 1)])
    scores, _ = scoring.score_predictions(scoring.distinct_predictions(log), candles)
    now = START + 60 * HOUR
    board = scoreboard.scoreboard(scores, now).set_index(["window", "symbol", "model"])

    first = scores.loc[scores["model"] == "m:1"].sort_values("as_of")
    day = first.loc[first["target_time"] > now - pd.Timedelta(hours=24)]
    row = board.loc[("24h", "BTC/USDT", "m:1")]
    assert row["hours"] == 24 == len(day)
    expected = metrics.forecast_metrics(day["realised_close"], day["predicted_close"], day["last_close"])
    assert row["mae"] == pytest.approx(expected["mae"])
    assert row["rmse"] == pytest.approx(expected["rmse"])
    assert row["directional_accuracy"] == pytest.approx(expected["directional_accuracy"])
    persistence_mae = float(np.mean(np.abs(day["last_close"] - day["realised_close"])))
    assert row["mae_ratio"] == pytest.approx(expected["mae"] / persistence_mae)
    assert row["dm_p_value"] == pytest.approx(
        metrics.diebold_mariano(day["error"], day["persistence_error"])[1]
    )
    assert row["coverage"] == pytest.approx(day["in_band"].astype(float).mean())

    # two models answered hours 50..59: "all" scores each served hour once (the first answer)
    assert board.loc[("24h", "BTC/USDT", "m:2"), "hours"] == 10
    assert board.loc[("24h", "BTC/USDT", "all"), "hours"] == 24
    assert board.loc[("30d", "BTC/USDT", "all"), "hours"] == 60
    assert board.loc[("7d", "BTC/USDT", "m:1"), "hours"] == 60


def test_rolling_series_and_model_spans(candles: pd.DataFrame) -> None:
    log = pd.concat([log_rows(candles, range(0, 30)), log_rows(candles, range(30, 60), "m:2")])
    scores, _ = scoring.score_predictions(scoring.distinct_predictions(log), candles)
    series = scoreboard.rolling_series(scores, "BTC/USDT", pd.Timedelta(hours=24))
    assert len(series) == 60 and series["hours"].max() == 24
    last_day = scores.sort_values("target_time").tail(24)
    assert series["mae_ratio"].iloc[-1] == pytest.approx(
        last_day["error"].abs().sum() / last_day["persistence_error"].abs().sum()
    )
    assert series["directional_accuracy"].iloc[-1] == pytest.approx(last_day["direction_hit"].dropna().mean())
    spans = scoreboard.model_spans(scores, "BTC/USDT")
    assert spans["model"].tolist() == ["m:1", "m:2"]
    assert spans["first"].tolist() == [START, START + 30 * HOUR]


def test_degradation_needs_enough_hours_and_the_cooldown_holds() -> None:
    board = pd.DataFrame(
        [
            {"window": "7d", "symbol": "BTC/USDT", "model": "m:1", "hours": 100, "mae_ratio": 1.2},
            {"window": "7d", "symbol": "ETH/USDT", "model": "m:1", "hours": 10, "mae_ratio": 3.0},
            {"window": "24h", "symbol": "BTC/USDT", "model": "m:1", "hours": 24, "mae_ratio": 5.0},
        ]
    )
    no_drift = drift.empty_table()
    reasons = verdict.degradation(board, no_drift, "m:1", 1.05, 96, 0.5)
    assert len(reasons) == 1 and reasons[0].startswith("BTC/USDT: 7-day MAE ratio to persistence 1.2000")
    assert verdict.degradation(board, no_drift, "m:2", 1.05, 96, 0.5) == []
    assert verdict.degradation(board, no_drift, "m:1", 1.25, 96, 0.5) == []

    drifted = pd.DataFrame(
        [
            {"window": "7d", "symbol": "ETH/USDT", "feature": "ret_1h", "psi": 0.9, "hours": 168},
            {"window": "7d", "symbol": "ETH/USDT", "feature": "range_hl", "psi": 0.6, "hours": 168},
            {"window": "24h", "symbol": "BTC/USDT", "feature": "ret_1h", "psi": 3.0, "hours": 24},
        ]
    )
    reasons = verdict.degradation(board.iloc[:0], drifted, "m:1", 1.05, 96, 0.5)
    assert reasons == [
        "ETH/USDT: feature ret_1h drifted, 7-day PSI 0.900 > 0.5 (2 features over the threshold)"
    ]

    now = START + 100 * HOUR
    day = pd.Timedelta(hours=24)
    assert verdict.retrain_due(["x"], None, now, day)
    assert not verdict.retrain_due([], None, now, day)
    assert not verdict.retrain_due(["x"], now - 23 * HOUR, now, day)
    assert verdict.retrain_due(["x"], now - 24 * HOUR, now, day)


def test_retrain_requests_are_recorded_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "monitor" / "retrain_request.json"
    assert verdict.last_retrain_request(path) is None
    verdict.record_retrain_request(path, START, "m:1", ["why"])
    assert verdict.last_retrain_request(path) == START


def test_psi_is_small_for_the_same_distribution_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(0)
    reference = drift.reference_of(rng.normal(size=5000))
    assert reference["shares"] == pytest.approx([0.1] * 10, abs=1e-3)
    assert drift.psi(reference, rng.normal(size=5000)) < 0.01
    assert drift.psi(reference, rng.normal(size=168)) < 0.2  # about (bins - 1) / n of noise
    assert drift.psi(reference, rng.normal(loc=1.0, size=168)) > 0.5
    constant = drift.reference_of(np.zeros(100))
    assert constant["edges"] == [0.0] and drift.psi(constant, np.zeros(10)) == 0.0
    assert np.isnan(drift.psi(reference, []))
    with pytest.raises(ValueError, match="finite"):
        drift.reference_of([np.nan])


def test_drift_table_per_symbol_and_window_worst_first() -> None:
    rng = np.random.default_rng(1)
    hours = pd.date_range(START, periods=24 * 30, freq="h")
    train = pd.DataFrame({"symbol": "BTC/USDT", "as_of": hours, "ret_1h": rng.normal(size=len(hours))})
    train["range_hl"] = rng.normal(size=len(hours))
    reference = drift.feature_reference(train, ["ret_1h", "range_hl"])
    served = train.tail(24 * 7).copy()
    served["range_hl"] = served["range_hl"] + 2.0  # only this one shifts
    table = drift.drift_table(reference, served, hours[-1], verdict.DRIFT_WINDOWS)
    assert table["window"].tolist() == ["24h", "24h", "7d", "7d"]
    week = table.loc[table["window"] == "7d"]
    assert week["feature"].tolist() == ["range_hl", "ret_1h"] and week["hours"].tolist() == [168, 168]
    assert week["psi"].iloc[0] > 1.0 and week["psi"].iloc[1] < 0.2
    assert drift.drift_table({}, served, hours[-1], verdict.DRIFT_WINDOWS).empty


def test_the_log_reader_selects_columns_skips_old_files_and_fills_older_layouts(tmp_path: Path) -> None:
    from hourcast import atomic
    from hourcast.serving.prediction_log import read_log

    def write(written: pd.Timestamp, as_of: pd.Timestamp, band: bool) -> None:
        row = {"requested_at": written, "symbol": "BTC/USDT", "as_of": as_of, "predicted_close": 1.0}
        frame = pd.DataFrame([row | ({"band_low": 0.9} if band else {})])
        name = f"date={written:%Y-%m-%d}/part-{written:%Y%m%dT%H%M%S%f}-1-0.parquet"
        atomic.write_parquet(frame, tmp_path / name)

    write(START + HOUR, START, band=False)  # written before the band was logged
    write(START + 5 * HOUR, START + 4 * HOUR, band=True)
    everything = read_log(tmp_path, columns=["symbol", "as_of", "band_low", "missing"])
    assert list(everything.columns) == ["requested_at", "symbol", "as_of", "band_low"]
    assert everything["as_of"].tolist() == [START, START + 4 * HOUR]
    assert np.isnan(everything["band_low"].iloc[0]) and everything["band_low"].iloc[1] == 0.9
    recent = read_log(tmp_path, columns=["as_of"], since=START + 2 * HOUR)
    assert recent["as_of"].tolist() == [START + 4 * HOUR]
    assert read_log(tmp_path, columns=["as_of"], since=START + 9 * HOUR).empty


def test_a_run_rereads_the_log_from_before_each_symbols_newest_score(candles: pd.DataFrame) -> None:
    scores, _ = scoring.score_predictions(
        scoring.distinct_predictions(log_rows(candles, range(0, 10))), candles
    )
    assert scoring.log_since(scores, ["BTC/USDT"]) == START + 9 * HOUR - scoring.RESCAN
    assert scoring.log_since(scores, ["BTC/USDT", "ETH/USDT"]) is None  # ETH never scored: read it all
    assert scoring.log_since(scoring.empty_scores(), ["BTC/USDT"]) is None


def test_the_scoreboard_endpoint_reads_the_scores_dataset(tmp_path: Path, btc_recorded: pd.DataFrame) -> None:
    from hourcast.data import store
    from hourcast.settings import Settings
    from tests.support.data import as_candle_frame

    settings = Settings(home=tmp_path)
    rows = btc_recorded.loc[(btc_recorded["ts"] >= START) & (btc_recorded["ts"] < START + 48 * HOUR)]
    store.upsert(settings.candles_dir, store.Series("binance", "BTC/USDT", "1h"), as_candle_frame(rows))
    candles = rows.assign(symbol="BTC/USDT")[["symbol", "ts", "close"]]
    scores, _ = scoring.score_predictions(
        scoring.distinct_predictions(log_rows(candles, range(0, 47))), candles
    )
    scoring.write_scores(settings.scores_dir, scores)

    answer = scoreboard.current_scoreboard(settings, "BTC/USDT", "24h")
    assert answer["newest_hour"] == (START + 47 * HOUR).isoformat() and answer["production"] is None
    assert [(r["window"], r["model"], r["hours"]) for r in answer["rows"]] == [
        ("24h", "all", 24),
        ("24h", "m:1", 24),
    ]
    assert answer["rows"][0] == scoreboard.current_scoreboard(settings)["rows"][0]
    assert scoreboard.current_scoreboard(settings, "ETH/USDT", "7d")["rows"] == []
    with pytest.raises(ValueError, match="unknown window '2d'"):
        scoreboard.current_scoreboard(settings, window="2d")


def test_prometheus_text_parses_and_leaves_undefined_figures_out(candles: pd.DataFrame) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    log = pd.concat([log_rows(candles, range(0, 40)), log_rows(candles, range(39, 40), "old:1", 1)])
    scores, _ = scoring.score_predictions(scoring.distinct_predictions(log), candles)
    board = scoreboard.scoreboard(scores, START + 40 * HOUR)
    text = prometheus.prometheus_text(board, "m:1", {"BTC/USDT": 75.5})
    families = {family.name: family for family in text_string_to_metric_families(text)}
    ratio = {
        (s.labels["window"], s.labels["model"]): s.value
        for s in families["hourcast_forecast_mae_ratio"].samples
    }
    expected = board.set_index(["window", "model"]).loc[("24h", "m:1"), "mae_ratio"]
    assert ratio[("24h", "m:1")] == pytest.approx(expected)
    assert ("24h", "old:1") not in ratio  # only "all" and the production model
    assert families["hourcast_feature_age_seconds"].samples[0].value == 75.5
    assert families["hourcast_model_info"].samples[0].labels == {"model": "m:1"}
    one_hour = scoreboard.scoreboard(scores, START + 40 * HOUR, {"1h": HOUR})  # one hour: no MAE ratio
    assert "hourcast_forecast_mae_ratio{" not in prometheus.prometheus_text(one_hour, "m:1", {})


def test_performance_view_data(candles: pd.DataFrame) -> None:
    log = pd.concat([log_rows(candles, range(0, 30)), log_rows(candles, range(30, 60), "m:2")])
    scores, _ = scoring.score_predictions(scoring.distinct_predictions(log), candles)
    view = scoreboard.performance(scores, "BTC/USDT", START + 60 * HOUR, hours=48)
    history = view["history"]
    assert len(history) == 48 and history["target_time"].iloc[-1] == START + 60 * HOUR
    assert (history["band_low"] < history["predicted_close"]).all()
    assert len(view["rolling"]) == 48 and view["rolling"]["hours"].iloc[-1] == 24
    assert view["models"]["model"].tolist() == ["m:1", "m:2"]


def test_a_write_failing_part_way_loses_nothing_and_the_next_run_adds_the_rest(
    tmp_path: Path, candles: pd.DataFrame
) -> None:
    directory = tmp_path / "scores"
    scores, _ = scoring.score_predictions(
        scoring.distinct_predictions(log_rows(candles, range(0, 70))), candles
    )
    blocker = directory / "date=2024-03-02"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("not a folder")  # the second day's file cannot be written
    with pytest.raises(OSError):
        scoring.write_scores(directory, scores)
    written = scoring.read_scores(directory)
    assert len(written) == 23 and written["target_time"].max() == START + 23 * HOUR  # the first day, whole

    blocker.unlink()
    assert scoring.write_scores(directory, scores) == 70 - 23
    stored = scoring.read_scores(directory).sort_values("as_of").reset_index(drop=True)
    pd.testing.assert_frame_equal(stored, scores.sort_values("as_of").reset_index(drop=True))


def test_scoreboard_reports_mcnemar_against_the_reversal(candles: pd.DataFrame) -> None:
    from scipy import stats

    from hourcast.monitor.run import MonitorReport

    hours = [hour for hour in range(60) if hour != 30]  # hour 30 never answered: hour 31 has no previous
    log = log_rows(candles, hours, answers=1)
    log["predicted_close"] *= np.where(log["as_of"].dt.hour % 2 == 0, 1.0, 0.998)  # down on odd hours
    scores, _ = scoring.score_predictions(scoring.distinct_predictions(log), candles)
    now = START + 60 * HOUR
    board = scoreboard.scoreboard(scores, now).set_index(["window", "symbol", "model"])

    close = candles.set_index("ts")["close"]
    # by hand: the 7-day window holds every hour; hours 0 and 31 have no scored hour before them
    judged = [START + hour * HOUR for hour in hours if hour - 1 in hours]
    last, previous = close[judged].to_numpy(), close[[stamp - HOUR for stamp in judged]].to_numpy()
    actual = close[[stamp + HOUR for stamp in judged]].to_numpy()
    called = np.where(np.array([stamp.hour for stamp in judged]) % 2 == 0, 1.0, -1.0)
    moved = actual != last
    truth = np.sign(actual - last)[moved]
    model, reversal = called[moved] == truth, -np.sign(last - previous)[moved] == truth
    b, c = int(np.sum(model & ~reversal)), int(np.sum(~model & reversal))
    assert len(judged) == 57 and b + c > 10  # the calls often differ
    for name in ("m:1", scoreboard.ALL_MODELS):
        row = board.loc[("7d", "BTC/USDT", name)]
        assert row["reversal_accuracy"] == pytest.approx(np.mean(reversal))
        assert row["mcnemar_p_value"] == pytest.approx(stats.binomtest(b, b + c).pvalue, rel=1e-9)

    # in `hourcast monitor --json`, beside the other figures; undefined (None) under two judged hours
    one_hour = scoreboard.scoreboard(scores, now, {"1h": HOUR})
    report = MonitorReport(now, 0, 0, scores.iloc[0:0], scores, one_hour, drift.empty_table(), None)
    [served, _] = report.as_json()["scoreboard"]
    assert {"reversal_accuracy", "mcnemar_p_value"} <= set(served) and served["mcnemar_p_value"] is None


def test_no_scores_have_no_previous_close_and_an_empty_board() -> None:
    """Before any hour is scored (a fresh install, `hourcast monitor` right after the first ingest) the
    board is empty, not a merge error."""
    empty = scoring.empty_scores()
    assert scoreboard.with_previous_close(empty).empty
    assert scoreboard.served(empty).empty
