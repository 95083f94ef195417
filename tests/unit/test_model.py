import itertools
import json

import catboost
import numpy as np
import pandas as pd
import pytest

from hourcast.features.compute import LOOKBACK, compute_features, next_hour_targets
from hourcast.model import estimator
from hourcast.model.estimator import MIN_ROWS, WalkForward
from tests.support.data import ETH_FILE, read_recorded

FAST = {"iterations": 100}
WINDOW = pd.Timedelta(days=30)
WEEKS = 2
HORIZON = pd.Timedelta(hours=1)  # one 1h candle: the label's distance


def public_frame(recorded: pd.DataFrame, symbol: str) -> pd.DataFrame:
    frame = recorded.reset_index(drop=True)
    frame.insert(0, "symbol", pd.Series([symbol] * len(frame), dtype="string"))
    return frame


@pytest.fixture(scope="module")
def frame(btc_recorded: pd.DataFrame) -> pd.DataFrame:
    """Training frame of the last 44 days (30-day window + 2 weeks) of BTC and ETH."""
    hours = 24 * 44 + LOOKBACK
    candles = pd.concat(
        [
            public_frame(btc_recorded.iloc[-hours:], "BTC/USDT"),
            public_frame(read_recorded(ETH_FILE).iloc[-hours:], "ETH/USDT"),
        ],
        ignore_index=True,
    )
    return compute_features(candles).merge(next_hour_targets(candles), on=["symbol", "event_timestamp"])


@pytest.fixture(scope="module")
def month(frame: pd.DataFrame) -> pd.DataFrame:
    """The 1440 rows of the last 30 days."""
    rows = frame.loc[frame["event_timestamp"] > frame["event_timestamp"].max() - WINDOW]
    assert len(rows) == 1440
    return rows.reset_index(drop=True)


@pytest.fixture(scope="module")
def walk(frame: pd.DataFrame) -> tuple[WalkForward, list[pd.DataFrame]]:
    """A 2-week walk-forward with a 30-day window and the training frames passed to the fitter."""
    trained: list[pd.DataFrame] = []

    def recording_fit(train: pd.DataFrame, params: dict | None = None) -> catboost.CatBoostRegressor:
        trained.append(train)
        return estimator.fit(train, params)

    return estimator.walk_forward(
        frame, WEEKS, WINDOW, params=FAST, horizon=HORIZON, fit_fn=recording_fit
    ), trained


def test_fit_predicts_finite_small_returns_deterministically(month: pd.DataFrame) -> None:
    cutoff = month["event_timestamp"].max() - pd.Timedelta(days=2)
    train = month.loc[month["event_timestamp"] + HORIZON <= cutoff]
    test = month.loc[month["event_timestamp"] > cutoff].reset_index(drop=True)
    first = estimator.fit(train, FAST)
    predicted = estimator.predict_returns(first, test)

    assert predicted.shape == (len(test),) and np.isfinite(predicted).all()
    assert np.abs(predicted).max() < 0.05
    assert predicted.std() > 0  # not a constant forecast
    shuffled = train.sample(frac=1.0, random_state=1)  # fit orders rows by time itself
    np.testing.assert_array_equal(estimator.predict_returns(estimator.fit(shuffled, FAST), test), predicted)


def test_fit_rejects_bad_training_data(month: pd.DataFrame) -> None:
    with pytest.raises(ValueError, match=f"at least {MIN_ROWS} training rows"):
        estimator.fit(month.head(MIN_ROWS - 1))
    broken = month.copy()
    broken.loc[5, "target_return"] = np.nan
    with pytest.raises(ValueError, match="target_return has 1 missing"):
        estimator.fit(broken)
    fitted = estimator.fit(month, FAST)
    assert fitted.feature_names_ == estimator.MODEL_INPUTS
    with pytest.raises(ValueError, match="lacks model inputs"):
        estimator.predict_returns(fitted, month.drop(columns=["symbol"]))


def test_a_few_rows_make_the_same_pool_as_a_large_frame(
    month: pd.DataFrame, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert len(month) > estimator.SMALL_POOL_ROWS  # the whole month goes in as a DataFrame
    fitted = estimator.fit(month, FAST)
    whole = estimator.predict_returns(fitted, month)
    np.testing.assert_array_equal(estimator.predict_returns(fitted, month.head(3)), whole[:3])
    np.testing.assert_array_equal(estimator.predict_returns(fitted, month.iloc[[700]]), whole[[700]])
    few = month.head(200)
    by_array = estimator.fit(few, FAST)
    monkeypatch.setattr(estimator, "SMALL_POOL_ROWS", 0)
    by_frame = estimator.fit(few, FAST)
    np.testing.assert_array_equal(
        estimator.predict_returns(by_array, month), estimator.predict_returns(by_frame, month)
    )


def test_to_close() -> None:
    np.testing.assert_allclose(estimator.to_close([100.0, 200.0], [0.0, np.log(1.01)]), [100.0, 202.0])


def test_walk_forward_folds_never_see_their_labels(
    walk: tuple[WalkForward, list[pd.DataFrame]], frame: pd.DataFrame
) -> None:
    result, trained = walk
    folds, predictions = result.folds, result.predictions

    assert len(trained) == len(folds) == WEEKS  # one fit per fold
    assert folds[-1]["end"] == frame["event_timestamp"].max()
    for earlier, later in itertools.pairwise(folds):
        assert earlier["end"] <= later["start"]
    for fold, train in zip(folds, trained, strict=True):
        rows = predictions.loc[predictions["fold"] == fold["fold"]]
        assert len(rows) == fold["test_rows"] == 2 * 168
        assert len(train) == fold["train_rows"]
        assert train["event_timestamp"].max() == fold["train_last"]
        assert train["event_timestamp"].min() > fold["start"] - WINDOW
        # every prediction comes strictly after every training label of its fold was realised
        assert fold["train_last"] + HORIZON <= fold["start"] < rows["event_timestamp"].min()
        assert rows["event_timestamp"].max() <= fold["end"]
    assert not predictions.duplicated(["symbol", "event_timestamp"]).any()


def test_walk_forward_predictions_and_metrics(walk: tuple[WalkForward, list[pd.DataFrame]]) -> None:
    result, _ = walk
    predictions = result.predictions
    assert np.isfinite(
        predictions[["predicted_return", "predicted_close", "previous_close"]].to_numpy()
    ).all()
    np.testing.assert_allclose(
        predictions["predicted_close"], predictions["last_close"] * np.exp(predictions["predicted_return"])
    )
    # previous_close recovered from ret_1h is the close one hour earlier
    btc = predictions.loc[predictions["symbol"] == "BTC/USDT"].set_index("event_timestamp")
    earlier = btc["last_close"].reindex(btc.index - HORIZON).to_numpy()
    known = ~np.isnan(earlier)
    np.testing.assert_allclose(btc["previous_close"].to_numpy()[known], earlier[known], rtol=1e-12)

    for scope in [result.metrics, *result.metrics["by_symbol"].values()]:
        for block in ("model", "persistence", "comparison"):
            assert all(np.isfinite(value) for value in scope[block].values())
    assert result.metrics["model"]["n"] == len(predictions) == 2 * WEEKS * 168
    assert 50 < result.metrics["by_symbol"]["BTC/USDT"]["persistence"]["mae"] < 1000
    assert 0 < result.metrics["comparison"]["mae_ratio"] < 2
    assert 0 <= result.metrics["comparison"]["dm_p_value"] <= 1


def test_walk_forward_rejects_folds_without_enough_history(frame: pd.DataFrame) -> None:
    def never(train: pd.DataFrame, params: dict | None = None) -> catboost.CatBoostRegressor:
        raise AssertionError("no fold should be fitted")

    with pytest.raises(ValueError, match=r"fold 0 .* training rows"):
        estimator.walk_forward(frame, WEEKS, pd.Timedelta(hours=12), horizon=HORIZON, fit_fn=never)
    with pytest.raises(ValueError, match=r"fold 0 .* training rows"):
        estimator.walk_forward(frame, 7, WINDOW, horizon=HORIZON, fit_fn=never)
    with pytest.raises(ValueError, match="weeks"):
        estimator.walk_forward(frame, 0, WINDOW, horizon=HORIZON, fit_fn=never)


def synthetic_predictions(n: int, seed: int, signal: float) -> pd.DataFrame:
    """Walk-forward-like predictions whose realised return is ``signal * raw_return`` plus noise whose
    size is ``spread`` (a known, varying volatility)."""
    rng = np.random.default_rng(seed)
    symbol = np.where(np.arange(n) % 2 == 0, "BTC/USDT", "ETH/USDT")
    spread = rng.uniform(0.002, 0.01, n) * np.where(symbol == "ETH/USDT", 1.5, 1.0)  # ETH moves more
    raw = rng.normal(0.0, 0.004, n)
    realised = signal * raw + spread * rng.standard_t(5, n) / np.sqrt(5 / 3)
    last = rng.uniform(90.0, 110.0, n)
    return pd.DataFrame(
        {
            "symbol": symbol,
            "last_close": last,
            "next_close": last * np.exp(realised),
            "raw_return": raw,
            "spread": spread,
            "persistence_close": last,
            "previous_close": last,
            "predicted_close": last,
        }
    )


def test_fit_shrink_finds_the_out_of_sample_factor() -> None:
    rng = np.random.default_rng(0)
    raw = rng.normal(0.0, 0.01, 5000)
    last = np.full(5000, 100.0)
    assert estimator.fit_shrink(last, raw, last * np.exp(0.4 * raw + rng.normal(0, 1e-4, 5000))) == 0.4
    assert estimator.fit_shrink(last, raw, last * np.exp(raw)) == 1.0
    # a forecast unrelated to what happens is shrunk as far as the grid goes, never to 0 (its direction stays)
    assert (
        estimator.fit_shrink(last, raw, last * np.exp(rng.normal(0, 0.01, 5000)))
        == estimator.SHRINK_GRID[0]
        > 0
    )


def test_calibrated_band_and_p_up_hold_out_of_sample() -> None:
    history, future = synthetic_predictions(4000, 1, 0.5), synthetic_predictions(4000, 2, 0.5)
    calibration = estimator.calibrate(history)
    assert 0.4 <= calibration.shrink <= 0.6
    assert (
        estimator.Calibration.from_metadata(json.loads(json.dumps(calibration.as_metadata()))) == calibration
    )

    served = estimator.with_calibration(future, calibration)
    scored = estimator.evaluate(served)
    assert abs(scored["band"]["model"]["coverage"] - 0.90) < 0.02  # nominal 90 %, on unseen hours
    # persistence's band is per symbol: it covers each symbol at its nominal rate, whatever its volatility
    for _, rows in served.groupby("symbol"):
        per_symbol = estimator.evaluate(rows)["band"]
        assert abs(per_symbol["persistence"]["coverage"] - 0.90) < 0.03
        assert abs(per_symbol["model"]["coverage"] - 0.90) < 0.03
    # the volatility-scaled band is narrower than persistence's fixed band of the same coverage
    assert scored["band"]["width_ratio"] < 0.95
    assert scored["p_up"]["brier"] < scored["p_up"]["brier_climatology"]
    # p_up rises with the predicted return, at a given spread
    rising = estimator.calibrated(
        np.linspace(-0.01, 0.01, 9), np.full(9, 100.0), np.full(9, 0.005), calibration
    )["p_up"]
    assert (np.diff(rising) > 0).all() and rising.iloc[0] < 0.5 < rising.iloc[-1]
    with pytest.raises(ValueError, match="at least"):
        estimator.calibrate(history.head(MIN_ROWS - 1))


def test_recalibrated_folds_use_only_earlier_folds(walk: tuple[WalkForward, list[pd.DataFrame]]) -> None:
    predictions = walk[0].predictions
    scored = estimator.recalibrated(predictions, 1)
    later = predictions.loc[predictions["fold"] == 1].reset_index(drop=True)
    assert scored["fold"].eq(1).all() and len(scored) == len(later)
    expected = estimator.with_calibration(
        later, estimator.calibrate(predictions.loc[predictions["fold"] == 0])
    )
    pd.testing.assert_frame_equal(scored, expected)
    # what fold 1 then did changes nothing in how it was calibrated
    moved = predictions.assign(
        next_close=np.where(
            predictions["fold"] == 1, predictions["next_close"] * 1.01, predictions["next_close"]
        )
    )
    np.testing.assert_array_equal(estimator.recalibrated(moved, 1)["band_low"], scored["band_low"])


def test_forecast_is_the_path_walk_forward_scores(
    month: pd.DataFrame, walk: tuple[WalkForward, list[pd.DataFrame]]
) -> None:
    fitted = estimator.fit(month.iloc[:-48], FAST)
    rows = month.iloc[-48:].reset_index(drop=True)
    calibration = estimator.calibrate(walk[0].predictions)
    served = estimator.forecast(fitted, rows, calibration)
    scored = estimator.predictions_frame(fitted, rows, calibration=calibration)
    for column in ("predicted_return", "predicted_close", "band_low", "band_high", "p_up"):
        np.testing.assert_array_equal(served[column].to_numpy(), scored[column].to_numpy())
    raw = estimator.predict_returns(fitted, rows)
    np.testing.assert_allclose(served["predicted_return"], calibration.shrink * raw)
    assert (served["band_low"] < served["predicted_close"]).all() and (
        served["predicted_close"] < served["band_high"]
    ).all()
    assert served["p_up"].between(0, 1).all()
    uncalibrated = estimator.forecast(fitted, rows, None)
    np.testing.assert_array_equal(uncalibrated["predicted_return"], raw)
    assert uncalibrated["p_up"].isna().all()


def test_walk_forward_with_calibration_scores_band_and_p_up(frame: pd.DataFrame) -> None:
    result = estimator.walk_forward(
        frame, 1, pd.Timedelta(days=21), FAST, horizon=HORIZON, calibration_weeks=1
    )
    assert [fold["scored"] for fold in result.folds] == [False, True]
    assert result.predictions["fold"].eq(1).all() and result.metrics["model"]["n"] == 2 * 168
    for scope in [result.metrics, *result.metrics["by_symbol"].values()]:
        assert 0.5 < scope["band"]["model"]["coverage"] <= 1 and scope["band"]["width_ratio"] > 0
        assert np.isfinite(scope["p_up"]["brier"]) and np.isfinite(scope["p_up"]["brier_climatology"])
        low, high = scope["model"]["directional_low"], scope["model"]["directional_high"]
        assert low < scope["model"]["directional_accuracy"] < high
    with pytest.raises(ValueError, match="calibration_weeks"):
        estimator.walk_forward(frame, 1, WINDOW, horizon=HORIZON, calibration_weeks=-1)


def test_two_variants_head_to_head_on_the_same_hours(walk: tuple[WalkForward, list[pd.DataFrame]]) -> None:
    from hourcast.model import evaluation

    result, _ = walk
    same = evaluation.versus(result, result)
    assert same["mae_ratio"] == 1 and same["dm_p_value"] == 1
    persistence = WalkForward(
        result.predictions.assign(predicted_close=result.predictions["persistence_close"]), [], {}
    )
    against = evaluation.versus(result, persistence)  # the model against persistence: as evaluate scores it
    assert against["mae_ratio"] == pytest.approx(result.metrics["comparison"]["mae_ratio"])
    assert against["dm_p_value"] == pytest.approx(result.metrics["comparison"]["dm_p_value"])
    by_symbol = result.metrics["by_symbol"]
    assert against["mae_ratio_by_symbol"] == pytest.approx(
        {symbol: scored["comparison"]["mae_ratio"] for symbol, scored in by_symbol.items()}
    )
    fewer = WalkForward(result.predictions.iloc[1:], [], {})
    with pytest.raises(ValueError, match="did not predict the same hours"):
        evaluation.versus(result, fewer)
