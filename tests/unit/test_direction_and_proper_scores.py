"""McNemar's test of two direction calls and the proper scores of the band, against independent references
(scipy's binomial test and chi-square distribution, formulas written out by hand)."""

import math

import numpy as np
import pytest
from scipy import stats

from hourcast.model.metrics import (
    binomial_two_sided_p,
    direction_versus_reversal,
    interval_score,
    mcnemar,
    pinball_loss,
)


def hits_with(first_only: int, second_only: int, both: int = 7, neither: int = 5) -> tuple[list, list]:
    """Two hit vectors with the given discordant counts, shuffled the same way."""
    first = [1] * first_only + [0] * second_only + [1] * both + [0] * neither
    second = [0] * first_only + [1] * second_only + [1] * both + [0] * neither
    order = np.random.default_rng(first_only * 1000 + second_only).permutation(len(first))
    return [first[i] for i in order], [second[i] for i in order]


@pytest.mark.parametrize(
    ("first_only", "second_only"), [(0, 1), (3, 9), (9, 3), (20, 20), (121, 59), (1310, 1190), (4000, 3850)]
)
def test_mcnemar_exact_matches_scipy_binomial_test(first_only: int, second_only: int) -> None:
    first, second = hits_with(first_only, second_only)
    result = mcnemar(first, second)
    expected = stats.binomtest(first_only, first_only + second_only, 0.5).pvalue
    assert (result["first_only"], result["second_only"]) == (first_only, second_only)
    assert result["p_value"] == pytest.approx(expected, rel=1e-9, abs=1e-15)
    assert result["statistic"] == min(first_only, second_only)


@pytest.mark.parametrize(("first_only", "second_only"), [(3, 9), (121, 59), (1310, 1190), (4000, 3850)])
def test_mcnemar_chi_square_with_continuity_correction_matches_scipy(
    first_only: int, second_only: int
) -> None:
    first, second = hits_with(first_only, second_only)
    result = mcnemar(first, second, exact=False)
    statistic = (abs(first_only - second_only) - 1) ** 2 / (first_only + second_only)
    assert result["statistic"] == pytest.approx(statistic, rel=1e-12)
    assert result["p_value"] == pytest.approx(stats.chi2.sf(statistic, df=1), rel=1e-9)


def test_mcnemar_known_table_and_edge_cases() -> None:
    # the textbook 2x2 table [[101, 121], [59, 33]]: corrected chi-square 20.672, p 5.45e-06
    result = mcnemar(*hits_with(121, 59, both=101, neither=33), exact=False)
    assert result["statistic"] == pytest.approx(20.672, abs=5e-4)
    assert result["p_value"] == pytest.approx(5.45e-6, rel=1e-3)
    # no discordant hour: nothing tells the two apart
    assert mcnemar([1, 0, 1], [1, 0, 1])["p_value"] == 1.0
    assert mcnemar([1, 0, 1], [1, 0, 1], exact=False)["p_value"] == 1.0
    assert binomial_two_sided_p(0, 0) == 1.0 and binomial_two_sided_p(5, 10) == 1.0
    assert binomial_two_sided_p(0, 10) == pytest.approx(2 * 0.5**10)
    with pytest.raises(ValueError, match="0/1"):
        mcnemar([1, 2], [1, 0])
    with pytest.raises(ValueError, match="equal lengths"):
        mcnemar([1, 0], [1])


def test_direction_versus_reversal_by_hand() -> None:
    previous = [101.0, 99.0, 99.0, 100.0, 101.0, 99.0]
    last = [100.0] * 6
    actual = [101.0, 99.0, 101.0, 101.0, 100.0, 99.0]
    predicted = [100.5, 100.5, 100.5, 100.5, 99.5, 100.5]
    result = direction_versus_reversal(actual, predicted, last, previous)
    # hour 5 did not move and is left out; the last move was down, up, up, flat, (.), up:
    # reversal calls up, down, down, none, (.), down -> right on hours 1, 2, 6; the model on hours 1, 3, 4
    assert result["hours"] == 5
    assert result["reversal_accuracy"] == pytest.approx(3 / 5)
    assert result["model_accuracy"] == pytest.approx(3 / 5)
    assert (result["model_only"], result["reversal_only"]) == (2, 2)
    assert result["mcnemar_p_value"] == 1.0
    assert result["reversal_low"] < 0.6 < result["reversal_high"]


def test_direction_versus_reversal_detects_a_better_model() -> None:
    rng = np.random.default_rng(3)
    n = 4000
    move = rng.choice([-1.0, 1.0], size=n)
    last = np.full(n, 100.0)
    actual = last + move
    previous = last + rng.choice([-1.0, 1.0], size=n)  # reversal: right half the time
    right = rng.random(n) < 0.56  # the model: right 56 % of the time
    predicted = last + np.where(right, move, -move) * 0.1
    result = direction_versus_reversal(actual, predicted, last, previous)
    model_hits = np.sign(predicted - last) == np.sign(actual - last)
    reversal_hits = -np.sign(last - previous) == np.sign(actual - last)
    b, c = int(np.sum(model_hits & ~reversal_hits)), int(np.sum(~model_hits & reversal_hits))
    assert (result["model_only"], result["reversal_only"]) == (b, c)
    assert result["mcnemar_p_value"] == pytest.approx(stats.binomtest(b, b + c).pvalue, rel=1e-9)
    assert result["mcnemar_p_value"] < 0.001 and result["model_accuracy"] > result["reversal_accuracy"]


def test_pinball_loss_by_hand() -> None:
    actual, forecast = [10.0, 10.0, 10.0], [12.0, 8.0, 10.0]
    # below the forecast: (1 - level) * 2; above: level * 2; on it: 0
    assert pinball_loss(actual, forecast, 0.05) == pytest.approx((0.95 * 2 + 0.05 * 2 + 0) / 3)
    median_loss = np.mean(np.abs(np.subtract(actual, forecast))) / 2
    assert pinball_loss(actual, forecast, 0.5) == pytest.approx(median_loss)
    with pytest.raises(ValueError, match="level"):
        pinball_loss(actual, forecast, 1.0)


def test_interval_score_by_hand_and_as_pinball_losses() -> None:
    actual = np.array([100.0, 95.0, 108.0, 101.0])
    low, high = np.full(4, 98.0), np.full(4, 104.0)
    alpha = 0.1
    # width 6 every hour; 95 is 3 below, 108 is 4 above: each penalised by 2 / alpha = 20
    assert interval_score(actual, low, high, alpha) == pytest.approx((4 * 6 + 20 * 3 + 20 * 4) / 4)
    pinballs = pinball_loss(actual, low, alpha / 2) + pinball_loss(actual, high, 1 - alpha / 2)
    assert interval_score(actual, low, high, alpha) == pytest.approx(2 / alpha * pinballs)
    # proper: for normal outcomes the true 5 %/95 % quantiles score better than a narrower or wider band
    outcomes = np.random.default_rng(0).normal(size=20000)
    z = stats.norm.ppf(0.95)
    scores = {
        factor: interval_score(outcomes, np.full(20000, -z * factor), np.full(20000, z * factor), alpha)
        for factor in (0.8, 1.0, 1.25)
    }
    assert scores[1.0] < min(scores[0.8], scores[1.25])
    assert math.isfinite(scores[1.0])
    with pytest.raises(ValueError, match="high < low"):
        interval_score([1.0, 2.0], [2.0, 2.0], [1.0, 3.0], alpha)
