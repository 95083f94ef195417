"""Forecast accuracy metrics, the Diebold-Mariano and McNemar tests and proper scores of the band (pure
numpy, no I/O).

Conventions:

* Every function takes array-likes of equal length ``n >= 2`` holding finite numbers and raises
  ``ValueError`` otherwise, so no metric is ever NaN.
* ``directional_accuracy`` is the share of hours where the forecast's move from the last close has the
  sign of the actual move. Hours where the close did not move carry no direction and are left out; a
  forecast of "no change" counts as a miss on every other hour.
* The naive persistence forecast (next close = last close) predicts "no change", so its direction is
  taken to be "the next move repeats the last move": ``sign(last_close - previous_close)``.
* Its 95 % interval is Wilson's score interval on the hours that moved (``directional_low`` /
  ``directional_high``), which stays inside [0, 1] and is right near 0.5 where hourly forecasts live.
* The Diebold-Mariano test compares absolute errors, uses the Harvey-Leybourne-Newbold small-sample
  correction and a Student t with ``n - 1`` degrees of freedom, computed here from the regularized
  incomplete beta function (no scipy at run time).
* McNemar's test (``mcnemar``, ``direction_versus_reversal``) compares two direction calls on the same
  hours through the hours where exactly one of them was right: exact binomial by default (the same beta
  function), or chi-square with continuity correction.
* Proper scores of the band: ``pinball_loss`` at each of its quantiles and the ``interval_score``
  (Winkler); lower is better, and a forecaster cannot improve either by reporting other than its belief.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike

_CF_EPS = 1e-16
_CF_TINY = 1e-300
_CF_MAX_ITER = 100_000


def _vectors(**named: ArrayLike) -> list[np.ndarray]:
    """The named inputs as float64 vectors of one common length >= 2 with finite values only."""
    vectors = [np.asarray(values, dtype="float64").reshape(-1) for values in named.values()]
    lengths = {name: len(vector) for name, vector in zip(named, vectors, strict=True)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"inputs must have equal lengths, got {lengths}")
    n = len(vectors[0])
    if n < 2:
        raise ValueError(f"need at least 2 forecasts to compute metrics, got {n}")
    for name, vector in zip(named, vectors, strict=True):
        if not np.isfinite(vector).all():
            raise ValueError(f"{name} contains non-finite values")
    return vectors


def _accuracy(actual: np.ndarray, predicted: np.ndarray) -> dict[str, float]:
    errors = predicted - actual
    if (actual == 0).any():
        raise ValueError("mape needs non-zero actual values")
    return {
        "mae": float(np.mean(np.abs(errors))),
        "rmse": float(math.sqrt(np.mean(errors * errors))),
        "mape": float(np.mean(np.abs(errors / actual)) * 100.0),
    }


def wilson_interval(successes: int, trials: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """Wilson score interval of a proportion (95 % for the default ``z``)."""
    if trials < 1 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials and trials >= 1, got {successes}/{trials}")
    share = successes / trials
    denominator = 1.0 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def _directional_accuracy(actual_move: np.ndarray, predicted_move: np.ndarray) -> dict[str, float]:
    moved = actual_move != 0
    if not moved.any():
        raise ValueError("directional accuracy needs at least one hour where the actual close moved")
    hits = int(np.sum(np.sign(predicted_move[moved]) == np.sign(actual_move[moved])))
    trials = int(moved.sum())
    low, high = wilson_interval(hits, trials)
    return {
        "directional_accuracy": hits / trials,
        "directional_low": low,
        "directional_high": high,
        "directional_n": trials,
    }


def forecast_metrics(
    actual_close: ArrayLike, predicted_close: ArrayLike, last_close: ArrayLike
) -> dict[str, float]:
    """MAE, RMSE, MAPE (percent), directional accuracy with its Wilson 95 % interval and ``n``."""
    actual, predicted, last = _vectors(
        actual_close=actual_close, predicted_close=predicted_close, last_close=last_close
    )
    return {
        **_accuracy(actual, predicted),
        **_directional_accuracy(actual - last, predicted - last),
        "n": len(actual),
    }


def persistence_metrics(
    actual_close: ArrayLike, last_close: ArrayLike, previous_close: ArrayLike
) -> dict[str, float]:
    """Metrics of the naive forecast next close = last close.

    Its MAE/RMSE/MAPE are those of ``last_close`` against the actual close; its directional accuracy is
    that of "the next move repeats the last move", ``sign(last_close - previous_close)``.
    """
    actual, last, previous = _vectors(
        actual_close=actual_close, last_close=last_close, previous_close=previous_close
    )
    return {
        **_accuracy(actual, last),
        **_directional_accuracy(actual - last, last - previous),
        "n": len(actual),
    }


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Continued fraction of the incomplete beta function (modified Lentz, Numerical Recipes betacf)."""
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c = 1.0
    d = 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
    h = d
    for m in range(1, _CF_MAX_ITER + 1):
        m2 = 2 * m
        for numerator in (
            m * (b - m) * x / ((qam + m2) * (a + m2)),
            -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > _CF_TINY else _CF_TINY)
            c = 1.0 + numerator / c
            c = c if abs(c) > _CF_TINY else _CF_TINY
            delta = d * c
            h *= delta
        if abs(delta - 1.0) < _CF_EPS:
            return h
    raise ArithmeticError(f"incomplete beta continued fraction did not converge for a={a}, b={b}, x={x}")


def _regularized_beta(a: float, b: float, x: float, y: float) -> float:
    """The regularized incomplete beta function I_x(a, b) for a, b > 0, 0 < x < 1 and ``y = 1 - x``
    (passed separately so that an x near 1 keeps its precision)."""
    log_front = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(x) + b * math.log(y)
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _beta_continued_fraction(a, b, x) / a
    return 1.0 - math.exp(log_front) * _beta_continued_fraction(b, a, y) / b


def student_t_two_sided_p(stat: float, df: float) -> float:
    """Two-sided p-value P(|T| >= |stat|) of a Student t with ``df`` degrees of freedom."""
    if df <= 0:
        raise ValueError(f"degrees of freedom must be positive, got {df}")
    if stat == 0.0:
        return 1.0
    if math.isinf(stat):
        return 0.0
    square = stat * stat
    return _regularized_beta(df / 2.0, 0.5, df / (df + square), square / (df + square))


def diebold_mariano(
    errors_model: ArrayLike, errors_baseline: ArrayLike, horizon: int = 1
) -> tuple[float, float]:
    """Diebold-Mariano statistic and two-sided p-value on absolute-error loss, HLN-corrected.

    The loss differential is ``d = |e_model| - |e_baseline|``; negative statistics favour the model. Its
    long-run variance sums the autocovariances up to lag ``horizon - 1`` (``horizon=1``: the plain
    variance). A differential that is identically zero gives ``(0.0, 1.0)``; any other differential
    whose long-run variance is not positive raises ``ValueError``.
    """
    model, baseline = _vectors(errors_model=errors_model, errors_baseline=errors_baseline)
    n = len(model)
    if not 1 <= horizon < n:
        raise ValueError(f"horizon must be between 1 and n - 1 = {n - 1}, got {horizon}")
    differential = np.abs(model) - np.abs(baseline)
    if not differential.any():
        return 0.0, 1.0
    mean = float(np.mean(differential))
    centred = differential - mean
    autocovariances = [float(np.dot(centred[lag:], centred[: n - lag])) / n for lag in range(horizon)]
    long_run_variance = autocovariances[0] + 2.0 * sum(autocovariances[1:])
    if long_run_variance <= 0.0:
        raise ValueError(
            f"the loss differential has a non-positive long-run variance ({long_run_variance:g}); "
            "the Diebold-Mariano test is undefined"
        )
    stat = mean / math.sqrt(long_run_variance / n)
    stat *= math.sqrt((n + 1 - 2 * horizon + horizon * (horizon - 1) / n) / n)
    return stat, student_t_two_sided_p(stat, n - 1)


def comparison(model: dict, baseline: dict, dm: tuple[float, float]) -> dict[str, float]:
    """Model vs baseline: ``mae_ratio`` (model MAE / baseline MAE, < 1 favours the model), ``dm_stat``
    and ``dm_p_value``."""
    if baseline["mae"] <= 0:
        raise ValueError("mae_ratio needs a baseline with a positive MAE")
    dm_stat, dm_p_value = dm
    return {"mae_ratio": model["mae"] / baseline["mae"], "dm_stat": dm_stat, "dm_p_value": dm_p_value}


def interval_metrics(
    actual_close: ArrayLike, low: ArrayLike, high: ArrayLike, last_close: ArrayLike
) -> dict[str, float]:
    """A forecast interval's ``coverage`` (share of closes inside ``[low, high]``), mean ``width`` (quote
    currency) and mean ``width_pct`` (percent of the last close)."""
    actual, lows, highs, last = _vectors(actual_close=actual_close, low=low, high=high, last_close=last_close)
    if (highs < lows).any():
        raise ValueError("interval has high < low")
    return {
        "coverage": float(np.mean((actual >= lows) & (actual <= highs))),
        "width": float(np.mean(highs - lows)),
        "width_pct": float(np.mean((highs - lows) / last) * 100.0),
    }


def brier_score(probability: ArrayLike, outcome: ArrayLike) -> float:
    """Mean squared difference between forecast probabilities in [0, 1] and 0/1 outcomes."""
    p, happened = _vectors(probability=probability, outcome=outcome)
    if ((p < 0) | (p > 1)).any():
        raise ValueError("probabilities must lie in [0, 1]")
    if not np.isin(happened, (0.0, 1.0)).all():
        raise ValueError("outcomes must be 0 or 1")
    return float(np.mean((p - happened) ** 2))


def binomial_two_sided_p(successes: int, trials: int) -> float:
    """Two-sided p-value of ``successes`` in ``trials`` fair coin flips: twice the smaller tail, at most 1
    (the exact McNemar test of the discordant pairs)."""
    if trials < 0 or not 0 <= successes <= trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes}/{trials}")
    smaller = min(successes, trials - successes)
    if 2 * smaller == trials:  # trials == 0 included: nothing to tell the two apart
        return 1.0
    # P(X <= k) of a Binomial(n, 1/2) is the regularized incomplete beta I_{1/2}(n - k, k + 1)
    return min(1.0, 2.0 * _regularized_beta(trials - smaller, smaller + 1.0, 0.5, 0.5))


def mcnemar(first_hits: ArrayLike, second_hits: ArrayLike, exact: bool = True) -> dict[str, float]:
    """McNemar's test of two forecasters' hits (0/1, or booleans) on the same trials.

    Only the discordant trials count: ``first_only`` (the first right, the second wrong) and ``second_only``.
    ``exact``: the two-sided binomial test of ``first_only`` among them with probability 1/2 (valid at any
    count); otherwise the chi-square statistic with continuity correction ``(|b - c| - 1)^2 / (b + c)`` and
    its p-value on one degree of freedom. ``statistic`` is ``min(b, c)`` for the exact test (as statsmodels
    reports it). No discordant trial: ``p_value`` 1."""
    first, second = (np.asarray(values).reshape(-1) for values in (first_hits, second_hits))
    if len(first) != len(second):
        raise ValueError(f"inputs must have equal lengths, got {len(first)} and {len(second)}")
    for name, hits in (("first_hits", first), ("second_hits", second)):
        if not np.isin(hits, (0, 1)).all():
            raise ValueError(f"{name} must hold 0/1 or booleans only")
    first, second = first.astype(bool), second.astype(bool)
    first_only, second_only = int(np.sum(first & ~second)), int(np.sum(~first & second))
    discordant = first_only + second_only
    if exact:
        statistic = float(min(first_only, second_only))
        p_value = binomial_two_sided_p(first_only, discordant)
    else:
        statistic = (max(abs(first_only - second_only) - 1, 0) ** 2 / discordant) if discordant else 0.0
        p_value = math.erfc(math.sqrt(statistic / 2.0))  # chi-square(1) survival function
    return {
        "first_only": first_only,
        "second_only": second_only,
        "statistic": statistic,
        "p_value": p_value,
    }


def direction_versus_reversal(
    actual_close: ArrayLike, predicted_close: ArrayLike, last_close: ArrayLike, previous_close: ArrayLike
) -> dict[str, float]:
    """The forecast's direction against the naive call "the last move reverses",
    ``-sign(last_close - previous_close)``, on the same hours (those where the close moved; a flat last move
    calls no direction, a miss): both directional accuracies, the reversal's Wilson 95 % interval, and the
    exact McNemar test of the two on those hours (``model_only``: hours only the forecast called right,
    ``reversal_only``: hours only the reversal did; ``mcnemar_p_value`` below 0.05: a difference beyond
    noise)."""
    actual, predicted, last, previous = _vectors(
        actual_close=actual_close,
        predicted_close=predicted_close,
        last_close=last_close,
        previous_close=previous_close,
    )
    moved = actual != last
    if not moved.any():
        raise ValueError("directional accuracy needs at least one hour where the actual close moved")
    truth = np.sign(actual[moved] - last[moved])
    model_hits = np.sign(predicted[moved] - last[moved]) == truth
    reversal_hits = -np.sign(last[moved] - previous[moved]) == truth
    hours = int(moved.sum())
    low, high = wilson_interval(int(reversal_hits.sum()), hours)
    test = mcnemar(model_hits, reversal_hits)
    return {
        "hours": hours,
        "model_accuracy": float(np.mean(model_hits)),
        "reversal_accuracy": float(np.mean(reversal_hits)),
        "reversal_low": low,
        "reversal_high": high,
        "model_only": test["first_only"],
        "reversal_only": test["second_only"],
        "mcnemar_p_value": test["p_value"],
    }


def pinball_loss(actual: ArrayLike, quantile_forecast: ArrayLike, level: float) -> float:
    """Mean pinball (quantile) loss of a forecast of the ``level`` quantile: ``level * (y - q)`` when the
    outcome ``y`` is above ``q``, ``(1 - level) * (q - y)`` otherwise. Lower is better; proper for that
    quantile."""
    if not 0 < level < 1:
        raise ValueError(f"level must lie in (0, 1), got {level}")
    outcome, forecast = _vectors(actual=actual, quantile_forecast=quantile_forecast)
    miss = outcome - forecast
    return float(np.mean(np.maximum(level * miss, (level - 1.0) * miss)))


def interval_score(actual: ArrayLike, low: ArrayLike, high: ArrayLike, alpha: float) -> float:
    """Mean interval (Winkler) score of central ``1 - alpha`` intervals ``[low, high]`` (Gneiting and Raftery
    2007): the width, plus ``2 / alpha`` times the distance by which the outcome falls outside. Lower is
    better; proper for the ``alpha / 2`` and ``1 - alpha / 2`` quantiles (it is ``2 / alpha`` times the sum of
    their pinball losses)."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    outcome, lows, highs = _vectors(actual=actual, low=low, high=high)
    if (highs < lows).any():
        raise ValueError("interval has high < low")
    below, above = np.maximum(lows - outcome, 0.0), np.maximum(outcome - highs, 0.0)
    return float(np.mean(highs - lows + 2.0 / alpha * (below + above)))
