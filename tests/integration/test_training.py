"""Training end to end: Feast point-in-time training sets, CatBoost, the BentoML model store and the gate."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from catboost import CatBoostRegressor
from typer.testing import CliRunner

from hourcast.cli import render
from hourcast.cli.app import app
from hourcast.features import dataset, featurestore
from hourcast.features.compute import FEATURE_NAMES, compute_features
from hourcast.model import estimator, evaluation, registry, training
from hourcast.serving import predictor
from hourcast.settings import Settings
from tests.support.data import store_recorded

REPO = Path(__file__).resolve().parents[2]
FAST = {"iterations": 60}
pytestmark = pytest.mark.usefixtures("bentoml_store")


def fast_fit(frame: pd.DataFrame, params: dict | None = None) -> CatBoostRegressor:
    return estimator.fit(frame, {**(params or {}), **FAST})


def inverted_fit(frame: pd.DataFrame, params: dict | None = None) -> CatBoostRegressor:
    """A deliberately worse model: it learns twenty times the opposite of every move."""
    return estimator.fit(frame.assign(target_return=-20 * frame["target_return"]), {**(params or {}), **FAST})


def make_settings(home: Path, recorded: dict, end: str, days: int = 40, **overrides: object) -> Settings:
    settings = Settings(
        home=home,
        symbols=["BTC/USDT", "ETH/USDT"],
        feature_repo=REPO / "feature_repo",
        train_days=21,
        **overrides,
    )
    store_recorded(settings, recorded, days=days, end=end)
    featurestore.materialize(settings)
    return settings


def test_train_saves_promotes_rejects_and_rolls_back(tmp_path: Path, recorded_files: dict) -> None:
    settings = make_settings(tmp_path, recorded_files, end="2024-03-01")
    first = training.train(settings, fit_fn=fast_fit)
    assert first.promoted, first.reason
    assert registry.production_tag(settings.registry_dir, settings.model_name) == first.tag
    assert first.rows == 2 * 21 * 24 and first.window["end"].startswith(
        "2024-02-29 23:00"
    )  # last labelled hour
    assert np.isfinite(first.metrics["mae"]) and first.baseline["mae"] > 0

    tag, loaded, metadata = registry.load_production(settings.registry_dir, settings.model_name)
    assert tag == first.tag and loaded.tree_count_ == FAST["iterations"]
    assert metadata["features"] == FEATURE_NAMES and metadata["feature_service"] == "next_hour_v1"
    for key in (
        "training_window",
        "data_fingerprint",
        "params",
        "walk_forward",
        "code_version",
        "return_error_quantiles",
        "calibration",
    ):
        assert key in metadata, key
    assert metadata["walk_forward"]["persistence"]["mae"] == first.baseline["mae"]
    # the gate's direction against "the last move reverses" on the same hours, pooled and per symbol
    for scored in [metadata["walk_forward"], *metadata["walk_forward"]["by_symbol"].values()]:
        direction = scored["direction"]
        assert direction["model_accuracy"] == scored["model"]["directional_accuracy"]
        assert direction["hours"] == scored["model"]["directional_n"]
        assert 0 <= direction["mcnemar_p_value"] <= 1
    assert first.metrics["mcnemar_p_value"] == metadata["walk_forward"]["direction"]["mcnemar_p_value"]
    # calibrated on the gate's walk-forward hours (one week of both symbols), never on the training rows
    calibration = estimator.Calibration.from_metadata(metadata["calibration"])
    assert calibration.hours == metadata["walk_forward"]["model"]["n"] == 2 * 7 * 24
    assert calibration.shrink == first.metrics["shrink"] and 0 < calibration.shrink <= 1
    assert set(first.metrics["by_symbol"]) == {"BTC/USDT", "ETH/USDT"}
    for figures in [first.metrics, *first.metrics["by_symbol"].values()]:
        assert 0 <= figures["dm_p_value"] <= 1
    for figures in first.metrics["by_symbol"].values():
        assert figures["directional_low"] < figures["directional_accuracy"] < figures["directional_high"]

    # a deliberately worse model is saved for audit but not promoted (worse than persistence)
    worse = training.train(settings, fit_fn=inverted_fit)
    assert not worse.promoted and "worse than persistence" in worse.reason
    assert registry.production_tag(settings.registry_dir, settings.model_name) == first.tag
    statuses = {
        r.tag: (r.status, r.reason) for r in registry.list_models(settings.registry_dir, settings.model_name)
    }
    assert statuses[worse.tag] == ("rejected", worse.reason)

    # two more weeks of data: now production is compared on hours it has not seen
    newer = make_settings(tmp_path, recorded_files, end="2024-03-15", promotion_tolerance=100.0)
    challenger = training.train(newer, fit_fn=inverted_fit)
    assert challenger.production is not None and challenger.production["tag"] == first.tag
    assert challenger.production["hours"] == 2 * 7 * 24
    assert not challenger.promoted and "worse than the production model's" in challenger.reason

    registry.promote(settings.registry_dir, settings.model_name, challenger.tag, "forced by hand")
    assert registry.rollback(settings.registry_dir, settings.model_name) == first.tag
    assert registry.production_tag(settings.registry_dir, settings.model_name) == first.tag


def test_bad_training_input_fails_clearly_and_leaves_production(tmp_path: Path, recorded_files: dict) -> None:
    settings = make_settings(tmp_path / "a", recorded_files, end="2024-03-01")
    production = training.train(settings, fit_fn=fast_fit).tag

    unknown = settings.model_copy(update={"symbols": ["BTC/USDT", "DOGE/USDT"]})
    with pytest.raises(training.TrainingError, match="no candles stored for DOGE/USDT"):
        training.train(unknown, fit_fn=fast_fit)

    short = make_settings(tmp_path / "b", recorded_files, end="2024-03-01", days=3)
    with pytest.raises(training.TrainingError, match="too little data"):
        training.train(short, fit_fn=fast_fit)
    assert registry.production_tag(settings.registry_dir, settings.model_name) == production


def test_walk_forward_report_on_the_shared_data(
    tmp_path: Path, recorded_files: dict, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = make_settings(tmp_path, recorded_files, end="2024-03-01", days=46)  # 3 folds, 21 days each
    report = evaluation.run(settings, weeks=2)
    comparison = report.metrics["comparison"]
    assert np.isfinite(comparison["mae_ratio"]) and 0 <= comparison["dm_p_value"] <= 1
    # one calibration week (gate_weeks) before the two scored weeks
    assert report.metrics["persistence"]["mae"] > 0 and len(report.folds) == 3
    assert [fold["scored"] for fold in report.folds] == [False, True, True]
    for scope in [report.metrics, *report.metrics["by_symbol"].values()]:
        assert 0 < scope["band"]["model"]["coverage"] <= 1 and scope["band"]["width_ratio"] > 0
        assert 0 <= scope["p_up"]["brier"] <= 1 and 0 <= scope["p_up"]["brier_climatology"] <= 1
        assert scope["model"]["directional_low"] < scope["model"]["directional_high"]
    assert json.loads(report.json_path.read_text())["weeks"] == 2 and report.windows == []
    assert report.chart_path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # `hourcast evaluate --windows` compares training windows on the same hours
    with pytest.MonkeyPatch.context() as env:
        for name, value in (("HOME", tmp_path), ("SYMBOLS", "BTC/USDT,ETH/USDT"), ("TRAIN_DAYS", 21)):
            env.setenv(f"HOURCAST_{name}", str(value))
        answered = CliRunner().invoke(
            app, ["evaluate", "--weeks", "1", "--windows", "7,14", "--cross-asset", "--json"]
        )
        refused = CliRunner().invoke(app, ["evaluate", "--windows", "7;14"])
    assert answered.exit_code == 0, answered.output
    answer = json.loads(answered.stdout.splitlines()[-1])
    windows, cross_asset = answer["windows"], answer["cross_asset"]
    assert [row["train_days"] for row in windows] == [7, 14, 21]
    assert [row["inputs"] for row in cross_asset] == ["base", "base + cross-asset"]
    assert {(row["hours"], row["first_hour"], row["last_hour"]) for row in windows + cross_asset} == {
        (2 * 168, "2024-02-23 00:00:00+00:00", "2024-02-29 23:00:00+00:00")
    }
    assert all(
        0 < row["mae_ratio"] < 2 and row["directional_low"] < row["directional_high"] for row in windows
    )
    # each window head to head with the default (21 days) and the cross-asset inputs with the base ones,
    # on the same hours: the same persistence, so the MAE ratio of the two is the ratio of their ratios
    default = windows[-1]
    assert default["versus_default"]["mae_ratio"] == 1 and default["versus_default"]["dm_p_value"] == 1
    for row, reference, head_to_head in [
        *((row, default, row["versus_default"]) for row in windows[:-1]),
        (cross_asset[1], cross_asset[0], cross_asset[1]["versus_base"]),
    ]:
        assert head_to_head["mae_ratio"] == pytest.approx(row["mae_ratio"] / reference["mae_ratio"])
        assert 0 <= head_to_head["dm_p_value"] <= 1 and set(head_to_head["mae_ratio_by_symbol"]) == {
            "BTC/USDT",
            "ETH/USDT",
        }
    assert refused.exit_code == 1 and "--windows takes days" in refused.output
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as wide:  # a terminal wide enough that rich wraps no cell
        wide.setenv("COLUMNS", "250")
        render.windows_table(windows + cross_asset)  # the table `hourcast evaluate` prints
    printed = capsys.readouterr().out
    head_to_head = [windows[0]["versus_default"], cross_asset[1]["versus_base"]]
    assert "head to head" in printed and all(
        f"{versus['mae_ratio']:.4f}, {versus['dm_p_value']:.3f}" in printed for versus in head_to_head
    )


def test_a_service_without_a_registry_serves_its_packaged_model(tmp_path: Path, recorded_files: dict) -> None:
    """A Bento runs without HOURCAST_HOME/registry: the Predictor serves the model the service declared."""
    settings = make_settings(tmp_path / "trained", recorded_files, end="2024-03-01")
    packaged = training.train(settings, fit_fn=fast_fit).tag
    elsewhere = settings.model_copy(update={"home": tmp_path / "container"})  # no registry file there
    assert registry.production_tag(elsewhere.registry_dir, elsewhere.model_name) is None
    feature_store = featurestore.open_store(settings)
    clock = predictor.ExchangeClock(None)
    assert predictor.Predictor(elsewhere, feature_store, clock).model_tag is None
    live = predictor.Predictor(elsewhere, feature_store, clock, fallback_tag=packaged)
    assert live.model_tag == packaged
    [answer] = live.predict(["BTC/USDT"], allow_stale=True)
    assert answer.model == packaged and answer.as_of == "2024-02-29T23:00:00Z"

    # the service answers exactly what the model module's one predict path gives evaluation
    _, fitted, metadata = registry.load_model(settings.model_name, packaged)
    features = compute_features(dataset.load_candles(settings))
    row = features.loc[(features["symbol"] == "BTC/USDT")].tail(1).reset_index(drop=True)
    expected = estimator.forecast(fitted, row, estimator.Calibration.from_metadata(metadata["calibration"]))
    assert answer.predicted_close == pytest.approx(expected["predicted_close"].iloc[0], rel=1e-12)
    assert answer.band.low == pytest.approx(expected["band_low"].iloc[0], rel=1e-12)
    assert answer.band.high == pytest.approx(expected["band_high"].iloc[0], rel=1e-12)
    assert answer.p_up == pytest.approx(expected["p_up"].iloc[0], rel=1e-12) and 0 < answer.p_up < 1
    assert answer.band.low < answer.predicted_close < answer.band.high
