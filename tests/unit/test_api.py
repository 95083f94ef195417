"""The API edge's pure parts: which warnings the service process hides, and the feature ages it exports."""

from __future__ import annotations

import warnings
from datetime import UTC, datetime

import pytest

from hourcast import api
from hourcast.schema import Band, Prediction


def shown(category: type[Warning], module: str, message: str = "old API") -> bool:
    """Whether a warning raised from ``module`` is shown once the service's filters are set (every other
    warning shown, as with ``PYTHONWARNINGS=default``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        api.quiet_known_deprecations()
        warnings.warn_explicit(message, category, f"/{module.replace('.', '/')}.py", 1, module=module)
    return bool(caught)


@pytest.mark.parametrize(
    "module", ["feast.repo_config", "feast", "ibis.backends.duckdb", "bentoml._internal.x"]
)
@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning, FutureWarning])
def test_the_known_noisy_deprecations_are_hidden(module: str, category: type[Warning]) -> None:
    assert not shown(category, module)


@pytest.mark.parametrize(
    ("category", "module"),
    [
        (UserWarning, "feast.repo_config"),  # not a deprecation
        (RuntimeWarning, "bentoml._internal.x"),
        (DeprecationWarning, "hourcast.serving"),  # our own code
        (DeprecationWarning, "feastlike"),  # a module that only starts like one
        (DeprecationWarning, "pandas.core.frame"),
    ],
)
def test_every_other_warning_is_still_shown(category: type[Warning], module: str) -> None:
    assert shown(category, module)


def prediction(symbol: str, target_time: str) -> Prediction:
    return Prediction(
        symbol=symbol,
        as_of="2024-02-29T23:00:00Z",
        target_time=target_time,
        last_close=1.0,
        predicted_close=1.0,
        predicted_return=0.0,
        direction="up",
        persistence_close=1.0,
        model="m:1",
        features_age_seconds=0.0,
        stale=False,
        band=Band(low=0.9, high=1.1, quantiles=[0.05, 0.95]),
        clock="exchange",
    )


def test_feature_ages_count_from_the_newest_answer_by_the_given_clock() -> None:
    ages = api.FeatureAges()
    assert ages.ages(datetime(2024, 3, 1, tzinfo=UTC)) == {}
    ages.remember(
        [prediction("BTC/USDT", "2024-03-01T00:00:00Z"), prediction("ETH/USDT", "2024-02-29T23:00:00Z")]
    )
    ages.remember([prediction("BTC/USDT", "2024-03-01T01:00:00Z")])
    assert ages.ages(datetime(2024, 3, 1, 1, 10, tzinfo=UTC)) == {"BTC/USDT": 600.0, "ETH/USDT": 7800.0}


def test_the_api_accepts_exactly_the_monitors_windows() -> None:
    from typing import get_args

    from hourcast import monitor, schema

    assert list(get_args(schema.Window)) == list(monitor.WINDOWS)
