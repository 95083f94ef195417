"""The replay scheduler (the deployments' crons on the replay clock) and the stack's pure helpers."""

from pathlib import Path

import pandas as pd
import pytest

from hourcast.dev.scheduler import ReplayScheduler, next_firing
from hourcast.ops.prefect_admin import prefect_server_environment, read_prefect_yaml, work_pools
from hourcast.ops.stack import restart_policy, settings_environment
from hourcast.ops.supervise import RestartPolicy, log_tail
from hourcast.settings import Settings

REPO = Path(__file__).resolve().parents[2]
SCHEDULES = {
    "ingest/ingest": "5 * * * *",
    "retention/retention": "0 3 * * 1",
    "retrain/retrain": "30 3 * * 1",
}


def stamp(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="UTC")


def scheduler(**overrides: object) -> ReplayScheduler:
    values = {"exchange_now": lambda: stamp("2024-01-01"), "schedules": SCHEDULES, "run_deployment": print}
    return ReplayScheduler(**(values | overrides))


def test_next_firing_is_strictly_after() -> None:
    assert next_firing("5 * * * *", stamp("2024-01-03 10:05")) == stamp("2024-01-03 11:05")
    assert next_firing("30 3 * * 1", stamp("2024-01-03 10:05")) == stamp("2024-01-08 03:30")


def test_the_crons_fire_on_the_replay_clock() -> None:
    due = scheduler().due
    assert due(stamp("2024-01-03 10:04"), stamp("2024-01-03 10:04:59")) == []
    assert due(stamp("2024-01-03 10:04"), stamp("2024-01-03 10:05")) == ["ingest/ingest"]
    assert due(stamp("2024-01-03 10:06"), stamp("2024-01-03 11:04")) == []
    # a fast clock can skip hours between two readings: one ingest catches up on all of them
    assert due(stamp("2024-01-03 10:06"), stamp("2024-01-03 13:30")) == ["ingest/ingest"]
    # Monday 2024-01-08: retention at 03:00, ingest at 03:05, retrain at 03:30, in that order, once each
    assert due(stamp("2024-01-08 02:50"), stamp("2024-01-08 03:40")) == [
        "retention/retention",
        "ingest/ingest",
        "retrain/retrain",
    ]
    assert due(stamp("2024-01-08 03:40"), stamp("2024-01-15 02:59")) == ["ingest/ingest"]


def test_the_scheduler_polls_until_stopped() -> None:
    readings = iter([stamp("2024-01-03 10:00"), stamp("2024-01-03 10:06"), stamp("2024-01-03 10:07")])
    ran: list[str] = []
    replay = scheduler(exchange_now=lambda: next(readings), poll_seconds=0.001)

    def run_and_stop(name: str) -> None:
        ran.append(name)
        replay.stop_event.set()

    replay.run_deployment = run_and_stop
    replay.run()
    assert ran == ["ingest/ingest"]


def test_a_run_it_could_not_make_stays_due_and_is_said_once() -> None:
    """The Prefect server restarting: making the run fails; it is tried again at the next readings (one
    line for the whole outage), and runs once the server answers."""
    readings = iter([stamp("2024-01-03 10:00"), *[stamp("2024-01-03 10:06")] * 3])
    tried: list[str] = []
    said: list[str] = []
    replay = scheduler(exchange_now=lambda: next(readings), poll_seconds=0.001, say=said.append)

    def run_deployment(name: str) -> None:
        tried.append(name)
        if len(tried) < 3:
            raise ConnectionError("All connection attempts failed")
        replay.stop_event.set()

    replay.run_deployment = run_deployment
    replay.run()
    assert tried == ["ingest/ingest"] * 3
    assert said == [
        "replay scheduler: could not run ingest/ingest (ConnectionError: All connection attempts failed); "
        "trying again every 0.001 s"
    ]


def test_the_schedules_it_follows_are_those_of_prefect_yaml() -> None:
    config = read_prefect_yaml(REPO)
    crons = {spec["name"]: [s["cron"] for s in spec["schedules"]] for spec in config["deployments"]}
    assert {name.split("/")[1]: [cron] for name, cron in SCHEDULES.items()} == {
        name: value for name, value in crons.items() if value
    }
    assert work_pools(config) == ["hourcast-process"]


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


def test_the_prefect_server_keeps_its_database_under_the_data_home(tmp_path: Path) -> None:
    env = prefect_server_environment(tmp_path / "data")
    assert env["PREFECT_HOME"] == str(tmp_path / "data" / "prefect")
    assert (
        env["PREFECT_SERVER_DATABASE_CONNECTION_URL"]
        == f"sqlite+aiosqlite:///{tmp_path}/data/prefect/prefect.db"
    )


def test_a_part_restarts_after_a_doubling_delay_until_it_died_too_often_in_the_window() -> None:
    policy = RestartPolicy(limit=3, window=600, first_delay=1, max_delay=3)
    assert policy.delay([100], 100) == 1
    assert policy.delay([100, 110], 110) == 2
    assert policy.delay([100, 110, 120], 120) == 3  # 4, capped
    assert policy.delay([100, 110, 120, 130], 130) is None  # a 4th restart within 600 s: give up
    assert policy.delay([100, 110, 200, 730], 730) == 2  # the deaths of 100 and 110 are out of the window
    assert policy.recent([100, 110, 200, 730], 730) == [200, 730]
    assert RestartPolicy(limit=0, window=600, first_delay=1, max_delay=3).delay([5], 5) is None


def test_the_restart_policy_is_the_settings() -> None:
    settings = Settings(
        restart_limit=2, restart_window_seconds=60, restart_max_delay_seconds=9, _env_file=None
    )
    assert restart_policy(settings) == RestartPolicy(limit=2, window=60, first_delay=1.0, max_delay=9)


def test_log_tail(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    assert log_tail(log) == ""
    log.write_text("".join(f"line {i}\n" for i in range(30)))
    assert log_tail(log, 3) == "line 27\nline 28\nline 29"
