import pandas as pd
import pytest

from hourcast.settings import Settings
from hourcast.stack import ReplayScheduler, settings_environment


def stamp(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def test_replay_scheduler_runs_ingest_past_every_hour_and_retrain_every_week() -> None:
    scheduler = ReplayScheduler(exchange_now=lambda: stamp("2024-01-01"), run_flow=lambda name: None)
    assert scheduler.due(stamp("2024-01-03 10:04"), stamp("2024-01-03 10:04:59")) == []
    assert scheduler.due(stamp("2024-01-03 10:04"), stamp("2024-01-03 10:05")) == ["ingest"]
    assert scheduler.due(stamp("2024-01-03 10:06"), stamp("2024-01-03 11:04")) == []
    # a fast clock can skip hours between two readings: one ingest catches up on all of them
    assert scheduler.due(stamp("2024-01-03 10:06"), stamp("2024-01-03 13:30")) == ["ingest"]
    # Monday 00:05 starts a new week (2024-01-08 is a Monday)
    assert scheduler.due(stamp("2024-01-08 00:04"), stamp("2024-01-08 00:06")) == ["ingest", "retrain"]


def test_replay_scheduler_polls_until_stopped() -> None:
    readings = iter([stamp("2024-01-03 10:00"), stamp("2024-01-03 10:06"), stamp("2024-01-03 10:07")])
    ran: list[str] = []
    scheduler = ReplayScheduler(lambda: next(readings), ran.append, poll_seconds=0.001)

    def run_and_stop(name: str) -> None:
        ran.append(name)
        scheduler.stop_event.set()

    scheduler.run_flow = run_and_stop
    scheduler.run()
    assert ran == ["ingest"]


def test_children_rebuild_the_same_settings_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        symbols=["BTC/USDT", "ETH/USDT"],
        exchange_url="http://127.0.0.1:9",
        serve_port=3999,
        online_store="redis",
        promotion_tolerance=0.5,
        _env_file=None,
    )
    for name, value in settings_environment(settings).items():
        monkeypatch.setenv(name, value)
    assert Settings(_env_file=None) == settings
