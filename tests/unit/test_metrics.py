import math

import numpy as np
import pytest
from scipy import stats

from hourcast.model.metrics import (
    brier_score,
    comparison,
    diebold_mariano,
    forecast_metrics,
    interval_metrics,
    persistence_metrics,
    student_t_two_sided_p,
    wilson_interval,
)


def reference_dm(errors_model: np.ndarray, errors_baseline: np.ndarray, horizon: int) -> tuple[float, float]:
    """Diebold-Mariano with the HLN correction, p-value from scipy's Student t."""
    d = np.abs(errors_model) - np.abs(errors_baseline)
    n = len(d)
    centred = d - d.mean()
    gammas = [np.sum(centred[k:] * centred[: n - k]) / n for k in range(horizon)]
    variance = gammas[0] + 2 * sum(gammas[1:])
    dm = d.mean() / np.sqrt(variance / n)
    hln = dm * np.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return float(hln), float(2 * stats.t.sf(abs(hln), df=n - 1))


def test_forecast_metrics_by_hand() -> None:
    last = [100.0, 100.0, 100.0, 100.0]
    actual = [110.0, 90.0, 100.0, 105.0]
    predicted = [104.0, 102.0, 99.0, 100.0]
    result = forecast_metrics(actual, predicted, last)

    # errors 6, 12, 1, 5
    assert result["mae"] == pytest.approx(24 / 4)
    assert result["rmse"] == pytest.approx(math.sqrt((36 + 144 + 1 + 25) / 4))
    assert result["mape"] == pytest.approx(100 * (6 / 110 + 12 / 90 + 1 / 100 + 5 / 105) / 4)
    # hour 3 did not move and is left out; hour 1 hit, hour 2 missed, hour 4 predicted no change: a miss
    assert result["directional_accuracy"] == pytest.approx(1 / 3)
    assert result["n"] == 4


def test_persistence_direction_repeats_the_last_move() -> None:
    previous = [95.0, 95.0, 105.0, 100.0, 100.0]
    last = [100.0, 100.0, 100.0, 100.0, 100.0]
    actual = [101.0, 99.0, 98.0, 103.0, 100.0]
    result = persistence_metrics(actual, last, previous)

    assert result["mae"] == pytest.approx((1 + 1 + 2 + 3 + 0) / 5)
    assert result["rmse"] == pytest.approx(math.sqrt((1 + 1 + 4 + 9) / 5))
    assert result["mape"] == pytest.approx(100 * (1 / 101 + 1 / 99 + 2 / 98 + 3 / 103) / 5)
    # up then up: hit; up then down: miss; down then down: hit; flat then up: miss; unmoved hour left out
    assert result["directional_accuracy"] == pytest.approx(2 / 4)
    # its MAE/RMSE/MAPE are exactly those of forecasting the last close
    same = forecast_metrics(actual, last, last)
    assert {key: result[key] for key in ("mae", "rmse", "mape")} == {
        key: same[key] for key in ("mae", "rmse", "mape")
    }


@pytest.mark.parametrize("horizon", [1, 3])
@pytest.mark.parametrize("n", [12, 500])
def test_diebold_mariano_matches_scipy_reference(horizon: int, n: int) -> None:
    rng = np.random.default_rng(horizon * 1000 + n)
    errors_model = rng.normal(0.0, 1.0, n)
    errors_baseline = rng.normal(0.0, 1.2, n)
    stat, p_value = diebold_mariano(errors_model, errors_baseline, horizon=horizon)
    expected_stat, expected_p = reference_dm(errors_model, errors_baseline, horizon)

    assert stat == pytest.approx(expected_stat, rel=1e-12)
    assert p_value == pytest.approx(expected_p, rel=1e-9)
    # negative statistics favour the model
    assert diebold_mariano(0.5 * errors_baseline, errors_baseline, horizon=horizon)[0] < 0


def test_student_t_p_value_matches_scipy() -> None:
    for df in (1, 2, 5, 29, 671, 20_000):
        for stat in (0.0, 0.05, 1.0, -1.96, 3.5, 12.0):
            expected = 2 * stats.t.sf(abs(stat), df)
            assert student_t_two_sided_p(stat, df) == pytest.approx(expected, rel=1e-9, abs=1e-300)


def test_identical_errors_give_p_one() -> None:
    errors = np.random.default_rng(3).normal(size=50)
    assert diebold_mariano(errors, errors) == (0.0, 1.0)
    # only absolute errors count
    assert diebold_mariano(errors, -errors, horizon=3) == (0.0, 1.0)


def test_degenerate_inputs_raise() -> None:
    with pytest.raises(ValueError, match="need at least 2 forecasts"):
        forecast_metrics([101.0], [100.5], [100.0])
    with pytest.raises(ValueError, match="need at least 2 forecasts"):
        persistence_metrics([], [], [])
    with pytest.raises(ValueError, match="need at least 2 forecasts"):
        diebold_mariano([1.0], [2.0])
    with pytest.raises(ValueError, match="equal lengths"):
        forecast_metrics([1.0, 2.0], [1.0, 2.0], [1.0])
    with pytest.raises(ValueError, match="non-finite"):
        forecast_metrics([1.0, np.nan], [1.0, 2.0], [1.0, 2.0])
    with pytest.raises(ValueError, match="moved"):
        forecast_metrics([100.0, 100.0], [101.0, 99.0], [100.0, 100.0])
    with pytest.raises(ValueError, match="horizon"):
        diebold_mariano([1.0, 2.0, 3.0], [2.0, 1.0, 3.0], horizon=3)
    with pytest.raises(ValueError, match="long-run variance"):  # a constant non-zero differential
        diebold_mariano([2.0, 3.0, 4.0], [1.0, 2.0, 3.0])


def test_comparison() -> None:
    result = comparison({"mae": 90.0}, {"mae": 100.0}, (-2.5, 0.0125))
    assert result == {"mae_ratio": pytest.approx(0.9), "dm_stat": -2.5, "dm_p_value": 0.0125}
    with pytest.raises(ValueError, match="positive MAE"):
        comparison({"mae": 1.0}, {"mae": 0.0}, (0.0, 1.0))


@pytest.mark.parametrize(("hits", "trials"), [(0, 10), (3, 10), (52, 100), (4541, 8736), (10, 10)])
def test_wilson_interval_matches_scipy(hits: int, trials: int) -> None:
    expected = stats.binomtest(hits, trials).proportion_ci(confidence_level=0.95, method="wilson")
    low, high = wilson_interval(hits, trials)
    assert low == pytest.approx(expected.low, abs=1e-9) and high == pytest.approx(expected.high, abs=1e-9)
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(11, 10)


def test_directional_accuracy_carries_its_interval() -> None:
    last = np.full(200, 100.0)
    actual = np.where(np.arange(200) % 4 == 0, 99.0, 101.0)  # 150 up, 50 down
    result = forecast_metrics(actual, np.full(200, 100.5), last)  # always "up": 150 of 200 right
    assert result["directional_accuracy"] == 0.75 and result["directional_n"] == 200
    assert (result["directional_low"], result["directional_high"]) == pytest.approx(wilson_interval(150, 200))
    assert result["directional_low"] < 0.75 < result["directional_high"]


def test_interval_metrics_and_brier_by_hand() -> None:
    result = interval_metrics(
        [100.0, 105.0, 98.0, 101.0],
        [99.0, 99.0, 99.0, 100.0],
        [101.0, 101.0, 101.0, 104.0],
        [100.0, 100.0, 100.0, 100.0],
    )
    assert result == pytest.approx({"coverage": 0.5, "width": 2.5, "width_pct": 2.5})
    with pytest.raises(ValueError, match="high < low"):
        interval_metrics([1.0, 2.0], [2.0, 1.0], [1.0, 2.0], [1.0, 1.0])
    assert brier_score([0.5, 0.8, 0.1], [1.0, 1.0, 0.0]) == pytest.approx((0.25 + 0.04 + 0.01) / 3)
    with pytest.raises(ValueError, match="probabilities"):
        brier_score([1.2, 0.5], [1.0, 0.0])
    with pytest.raises(ValueError, match="0 or 1"):
        brier_score([0.2, 0.5], [1.0, 0.5])
