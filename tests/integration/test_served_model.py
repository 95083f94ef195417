"""The model the Bento service declares: the registry's production model (what `bentoml build` packages and
`bentoml serve` resolves before it starts), else the newest stored one (a Bento without the registry)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from bentoml.exceptions import NotFound
from catboost import CatBoostRegressor

from hourcast.features import featurestore
from hourcast.model import estimator, registry, training
from hourcast.model.served_model import ProductionModel
from hourcast.serving import predictor
from hourcast.settings import Settings
from tests.support.data import store_recorded

NAME = "hourcast_next_hour"
REPO = Path(__file__).resolve().parents[2]


def tiny_model() -> CatBoostRegressor:
    return CatBoostRegressor(iterations=2, verbose=False, allow_writing_files=False).fit(
        [[1.0], [2.0], [3.0]], [1.0, 2.0, 3.0]
    )


def test_it_resolves_to_production_else_the_newest(
    bentoml_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOURCAST_HOME", str(tmp_path / "data"))
    registry_dir = tmp_path / "data" / "registry"
    declared = ProductionModel()
    with pytest.raises(NotFound, match="run `hourcast train`"):
        declared.resolve()  # nothing stored: never looked up remotely

    first = registry.save_candidate(tiny_model(), NAME, registry_dir, labels={}, metadata={})
    newest = registry.save_candidate(tiny_model(), NAME, registry_dir, labels={}, metadata={})
    assert str(declared.resolve().tag) == newest  # no production pointer: the newest stored
    registry.promote(registry_dir, NAME, first, "test")
    assert str(declared.resolve().tag) == first
    assert str(declared.to_info().tag) == first  # what `bentoml build` packages


def test_a_forecast_whose_target_hour_has_closed_is_stale(
    bentoml_store: Path, tmp_path: Path, recorded_files: dict
) -> None:
    """Newest candle 23:00 (closed at 00:00): its forecast targets the 00:00 candle, which closes at 01:00 by
    the exchange clock; from then on the answer is stale although the features are under the 2 h limit."""
    settings = Settings(
        home=tmp_path, symbols=["BTC/USDT"], feature_repo=REPO / "feature_repo", train_days=10, _env_file=None
    )
    store_recorded(settings, recorded_files, days=14, end="2024-03-01")
    featurestore.materialize(settings)
    trained = training.train(
        settings, fit_fn=lambda frame, params=None: estimator.fit(frame, {"iterations": 20})
    )
    exchange_now = {"at": pd.Timestamp("2024-03-01T00:59:00Z")}
    clock = predictor.ExchangeClock(lambda: int(exchange_now["at"].timestamp() * 1000))
    live = predictor.Predictor(settings, clock=clock, fallback_tag=trained.tag)  # promoted or not

    [fresh] = live.predict(["BTC/USDT"])
    assert fresh.target_time == "2024-03-01T00:00:00Z" and fresh.stale is False

    exchange_now["at"] = pd.Timestamp("2024-03-01T01:00:00Z")  # the target candle has closed
    clock.sync()
    assert settings.feature_age_limit_seconds == 7200  # one hour of age: under the limit
    with pytest.raises(
        predictor.Unavailable, match=r"2024-03-01T00:00:00Z\) has already closed by the exchange"
    ):
        live.predict(["BTC/USDT"])
    [late] = live.predict(["BTC/USDT"], allow_stale=True)
    assert late.stale is True and 3600 <= late.features_age_seconds < 3660
