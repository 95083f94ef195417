"""A materialization killed half-way: Feast 0.67 has recorded the feature view ``MATERIALIZING`` in its
registry and nobody rolls it back, so Feast refuses every online read of the view through that registry.
The next `hourcast materialize` puts it back in the state a failed run leaves, says so in one line, and the
online features are served again. Real `hourcast materialize` processes, a real SIGKILL, a Redis of the test's
own, Feast's real registry."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import redis
from feast import FeatureViewState

from hourcast.dev.redis_server import RedisServer
from hourcast.features import featurestore
from hourcast.settings import Settings
from tests.support.data import store_recorded
from tests.support.processes import console_script, wait_for
from tests.support.redis_servers import redis_server

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
END = "2024-03-01T00:00:00Z"
LATER = "2024-03-01T03:00:00Z"
FIRST_AS_OF = pd.Timestamp("2024-02-29 23:00", tz="UTC")  # the newest feature row of the candles before END
NEWEST_AS_OF = pd.Timestamp("2024-03-01 02:00", tz="UTC")  # and before LATER


@pytest.fixture
def server() -> Iterator[RedisServer]:
    """A Redis of the test's own: its writes are paused, which must not pause any other test's."""
    with redis_server() as running:
        yield running


def view_state(settings: Settings) -> FeatureViewState:
    """The feature view's state as the registry file holds it now."""
    return featurestore.open_store(settings).get_feature_view(featurestore.FEATURE_VIEW).state


def read_through_registry(settings: Settings) -> dict[str, pd.Timestamp | None]:
    """Each symbol's online ``as_of``, read through the registry under the home (as the record step does)."""
    return featurestore.online_as_of(featurestore.open_store(settings), SYMBOLS)


def hourcast_materialize(settings: Settings) -> subprocess.Popen[str]:
    """`hourcast materialize` as the user runs it, on ``settings``' home and Redis."""
    env = {
        **os.environ,
        "HOURCAST_HOME": str(settings.home),
        "HOURCAST_SYMBOLS": ",".join(SYMBOLS),
        "HOURCAST_ONLINE_STORE": "redis",
        "HOURCAST_REDIS_URL": settings.redis_url,
        "HOURCAST_FEATURE_REPO": str(settings.feature_repo),
    }
    return subprocess.Popen(
        [console_script("hourcast"), "materialize"],
        env=env,
        cwd=settings.home,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_a_view_left_materializing_by_a_killed_run_is_released_by_the_next_materialize(
    tmp_path: Path, server: RedisServer, recorded_files: dict
) -> None:
    settings = Settings(
        home=tmp_path,
        symbols=SYMBOLS,
        online_store="redis",
        redis_url=server.url,
        feature_repo=REPO / "feature_repo",
        _env_file=None,
    )
    store_recorded(settings, recorded_files, days=10, end=END)
    featurestore.materialize(settings)
    assert view_state(settings) == FeatureViewState.AVAILABLE_ONLINE

    # new candles; Redis answers reads but holds every write, so the run stops inside Feast's materialization
    store_recorded(settings, recorded_files, days=10, end=LATER)
    admin = redis.Redis(port=server.port)
    admin.execute_command("CLIENT", "PAUSE", "120000", "WRITE")
    try:
        killed = hourcast_materialize(settings)
        try:
            wait_for(
                lambda: killed.poll() is not None or view_state(settings) == FeatureViewState.MATERIALIZING,
                120,
                "the first run's feature view MATERIALIZING",
                max_poll=0.05,
            )
            assert killed.poll() is None, killed.communicate()
        finally:
            killed.send_signal(signal.SIGKILL)
            killed.communicate()
    finally:
        admin.execute_command("CLIENT", "UNPAUSE")
    assert view_state(settings) == FeatureViewState.MATERIALIZING

    # what the soak saw: reads through the registry are refused; the API's store (its own registry) serves
    with pytest.raises(ValueError, match="is in state 'MATERIALIZING' and cannot serve features"):
        read_through_registry(settings)
    serving = featurestore.open_serving_store(settings, featurestore.REDIS_TIMEOUT_SECONDS)
    assert featurestore.online_as_of(serving, SYMBOLS) == dict.fromkeys(SYMBOLS, FIRST_AS_OF)

    rerun = hourcast_materialize(settings)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, err
    [warning] = [line for line in err.splitlines() if "MATERIALIZING" in line]
    assert warning == (
        "feature view next_hour_fv was left MATERIALIZING by a materialization that never finished "
        "(killed?): set back to AVAILABLE_ONLINE, the state a failed run leaves"
    )
    assert view_state(settings) == FeatureViewState.AVAILABLE_ONLINE
    assert read_through_registry(settings) == dict.fromkeys(SYMBOLS, NEWEST_AS_OF)


def test_a_view_never_materialized_goes_back_to_generated_then_materializes(
    tmp_path: Path, recorded_files: dict, caplog: pytest.LogCaptureFixture
) -> None:
    """A run that set MATERIALIZING before any materialization was recorded started from GENERATED (the
    transitions Feast allows; Feast's own calls make them here, as such a run did before it was killed)."""
    settings = Settings(home=tmp_path, symbols=SYMBOLS, feature_repo=REPO / "feature_repo", _env_file=None)
    store_recorded(settings, recorded_files, days=10, end=LATER)
    feature_store = featurestore.open_store(settings)
    featurestore.apply_definitions(feature_store, featurestore.definitions(settings))
    for state in ("CREATED", "GENERATED", "MATERIALIZING"):
        feature_store.set_feature_view_state(featurestore.FEATURE_VIEW, FeatureViewState[state])

    with caplog.at_level(logging.WARNING, logger=featurestore.logger.name):
        featurestore.materialize(settings)
    assert [record.getMessage() for record in caplog.records] == [
        "feature view next_hour_fv was left MATERIALIZING by a materialization that never finished "
        "(killed?): set back to GENERATED, the state a failed run leaves"
    ]
    assert view_state(settings) == FeatureViewState.AVAILABLE_ONLINE
    assert read_through_registry(settings) == dict.fromkeys(SYMBOLS, NEWEST_AS_OF)
