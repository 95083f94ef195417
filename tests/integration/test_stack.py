"""`hourcast up --replay` as a user runs it, from the project folder with the bundled candles: the Prefect
server (its own, or one already running), the work pool, a worker and the deployments of prefect.yaml, the
API and the dashboard; deployment runs made by the replay clock; Ctrl-C leaving no process behind."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from hourcast.data import store
from hourcast.dev.ports import free_port
from hourcast.ops.bootstrap import bootstrap
from hourcast.ops.prefect_admin import read_prefect_yaml, work_pools
from hourcast.ops.stack import Stack
from hourcast.ops.supervise import Child, StartupFailed, Supervisor, processes_with_variable
from hourcast.settings import Settings
from tests.support.processes import wait_for

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTC/USDT", "ETH/USDT"]


def processes_with(marker: str) -> dict[int, int]:
    """pid -> process group of every process whose environment contains ``marker`` (`hourcast up` itself
    runs in the test's process group; every part it starts has a group of its own)."""
    found: dict[int, int] = {}
    for pid in processes_with_variable(marker):
        with contextlib.suppress(ProcessLookupError):
            found[pid] = os.getpgid(pid)
    return found


def cmdline(pid: int) -> str:
    """The command line of process ``pid`` (arguments separated by NUL), empty once it is gone."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_text()
    except OSError:
        return ""


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


class Up:
    """`hourcast up --replay` in a subprocess with its own data home and free ports; output to a file."""

    def __init__(self, tmp_path: Path, prefect_api_url: str | None = None) -> None:
        self.home = tmp_path / "data"
        self.marker = f"HOURCAST_HOME={self.home}"
        self.api_port, self.ui_port, self.prefect_port = free_port(), free_port(), free_port()
        self.output = tmp_path / "up.out"
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("HOURCAST_", "PREFECT_", "BENTOML_"))
        }
        env.update(
            {
                "HOURCAST_HOME": str(self.home),
                "BENTOML_HOME": str(tmp_path / "bentoml"),
                "BENTOML_DO_NOT_TRACK": "True",
                "HOURCAST_SERVE_PORT": str(self.api_port),
                "HOURCAST_UI_PORT": str(self.ui_port),
                "HOURCAST_SERVE_WORKERS": "1",
                "PREFECT_HOME": str(tmp_path / "prefect-client"),
                "PREFECT_SERVER_API_PORT": str(self.prefect_port),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            }
        )
        if prefect_api_url:
            env["PREFECT_API_URL"] = prefect_api_url
        self.env = env
        self.prefect_api_url = prefect_api_url or f"http://127.0.0.1:{self.prefect_port}/api"
        command = [sys.executable, "-m", "hourcast", "up", "--replay"]  # the replay clock at 60x
        with open(self.output, "wb") as output:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT
            )

    def text(self) -> str:
        return self.output.read_text(errors="replace")

    def predicts(self) -> bool:
        assert self.process.poll() is None, self.text()
        try:
            answer = httpx.post(
                f"http://127.0.0.1:{self.api_port}/predict", json={"symbol": "ETH/USDT"}, timeout=2
            )
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json()["stale"] is False

    def models(self) -> list[dict[str, Any]]:
        """`hourcast models list --json` on the stack's data, one object per model."""
        listed = subprocess.run(
            [sys.executable, "-m", "hourcast", "models", "list", "--json"],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return [json.loads(line) for line in listed.stdout.splitlines()]

    def stop(self) -> int:
        """Ctrl-C; the exit code (within a bounded time)."""
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=90)


def prefect(api_url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to the Prefect REST API (POST with a body, else GET)."""
    url = f"{api_url}/{path}"
    answer = httpx.post(url, json=body, timeout=10) if body is not None else httpx.get(url, timeout=10)
    answer.raise_for_status()
    return answer.json()


def completed_runs_with_artifacts(api_url: str, deployment: str) -> list[dict[str, Any]]:
    """Completed flow runs of a deployment that published artifacts."""
    runs = prefect(
        api_url,
        "flow_runs/filter",
        {
            "flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}},
            "deployments": {"name": {"any_": [deployment]}},
        },
    )
    if not runs:
        return []
    artifacts = prefect(
        api_url, "artifacts/filter", {"artifacts": {"flow_run_id": {"any_": [run["id"] for run in runs]}}}
    )
    with_artifacts = {artifact["flow_run_id"] for artifact in artifacts}
    return [run for run in runs if run["id"] in with_artifacts]


def pool_workers(api_url: str) -> set[str]:
    """The names of the workers that have polled the `hourcast up` work pool."""
    return {worker["name"] for worker in prefect(api_url, "work_pools/hourcast-process/workers/filter", {})}


def assert_stops_cleanly(up: Up, groups: dict[int, int]) -> None:
    """Ctrl-C ends `hourcast up` with code 0 and leaves none of its processes or process groups."""
    code = up.stop()
    assert code == 0, up.text()
    assert "stopped" in up.text()
    assert processes_with(up.marker) == {}, up.text()
    assert [pgid for pgid in set(groups.values()) - {os.getpgrp()} if group_alive(pgid)] == []


@pytest.mark.slow
@pytest.mark.timeout(900)  # its own waits bound each step; the whole stack takes minutes on 2 busy cores
def test_up_replay_runs_the_deployments_and_its_worker_runs_a_backfill(
    tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    """One `hourcast up --replay` on its own Prefect server, with the default settings: the first answered
    /predict, from a first model trained on the 365-day window and promoted by the default gate, its gate
    figures against persistence in the API (what the dashboard shows) and `models list`; runs the replay
    clock makes (ingest, then monitor), a backfill deployment run through the stack's
    worker that stores exactly the recorded candles, the worker SIGKILLed and restarted, and Ctrl-C leaving
    nothing running or in progress."""
    up = Up(tmp_path)
    groups: dict[int, int] = {}
    try:
        wait_for(up.predicts, 480, "a first answered /predict")
        assert httpx.get(f"http://127.0.0.1:{up.ui_port}/", timeout=10).status_code == 200
        served = httpx.get(f"http://127.0.0.1:{up.api_port}/model", timeout=10).json()
        [first] = up.models()
        assert first["tag"] == served["model"] and first["status"] == "production", first
        assert first["training_days"] == served["training_days"] == 365, (first, up.text())
        gate = first["gate"]
        assert served["gate"] == gate and gate["weeks"] == 1 and gate["hours"] == 2 * 7 * 24
        assert gate["mae_ratio"] == pytest.approx(gate["mae"] / gate["persistence_mae"])
        assert gate["mae_ratio"] <= 1.02  # the default tolerance promoted it
        assert f"trained on 365 days; gate: MAE {gate['mae']:.2f} vs persistence" in up.text()
        # the summary comes once the Prefect side is up too, which may be after the API first answers
        wait_for(lambda: "bootstrap:      " in up.text(), 120, "the stack's summary")
        text = up.text()
        assert f"Prefect UI:     http://127.0.0.1:{up.prefect_port}" in text, text
        assert f"Swagger page:   http://127.0.0.1:{up.api_port}/" in text and "bootstrap:      ok" in text
        api = up.prefect_api_url
        deployments = prefect(api, "deployments/filter", {})
        assert {"ingest", "retention", "retrain", "backfill", "monitor"} <= {d["name"] for d in deployments}

        # a run of the backfill deployment, through the stack's worker, stores exactly the recorded candles
        backfill = next(d for d in deployments if d["name"] == "backfill")
        since, until = pd.Timestamp("2024-01-05", tz="UTC"), pd.Timestamp("2024-01-10", tz="UTC")
        run = prefect(
            api,
            f"deployments/{backfill['id']}/create_flow_run",
            {"parameters": {"since": "2024-01-05", "until": "2024-01-10"}},
        )

        def backfilled() -> bool:
            state = prefect(api, f"flow_runs/{run['id']}")["state"]
            assert state["type"] not in ("FAILED", "CRASHED", "CANCELLED"), state
            return state["type"] == "COMPLETED"

        wait_for(backfilled, 240, "the backfill deployment run")
        for symbol in SYMBOLS:
            series = store.Series("binance", symbol, "1h")
            stored = store.load_candles(up.home / "candles", series, since, until - pd.Timedelta(hours=1))
            recorded = recorded_files[symbol]
            expected = recorded.loc[(recorded["ts"] >= since) & (recorded["ts"] < until), "ts"]
            assert stored["ts"].tolist() == expected.tolist(), symbol

        # the replay clock makes runs of the ingest deployment, the worker runs them; the monitor follows
        wait_for(lambda: completed_runs_with_artifacts(api, "ingest"), 240, "an ingest run")
        wait_for(lambda: completed_runs_with_artifacts(api, "monitor"), 120, "a monitor run")
        groups = processes_with(up.marker)
        commands = " ".join(cmdline(pid) for pid in groups)
        assert "server\0start" in commands and "worker\0start" in commands
        assert len(set(groups.values())) >= 5  # server, worker, API, dashboard, each a group of its own

        # a SIGKILLed Prefect worker comes back: `up` restarts it and it registers with the server again
        [worker] = [pid for pid in groups if "worker\0start" in cmdline(pid)]
        before = pool_workers(api)
        os.kill(worker, signal.SIGKILL)

        def worker_back() -> bool:
            assert up.process.poll() is None, up.text()
            return bool(pool_workers(api) - before)

        wait_for(worker_back, 120, "the restarted worker to poll the server")
        restarted = "worker hourcast-process exited (code -9); restarting it in 1 s (restart 1 of at most 5"
        assert restarted in up.text()
        groups = processes_with(up.marker)
    finally:
        if up.process.poll() is None:
            groups = groups or processes_with(up.marker)
            assert_stops_cleanly(up, groups)


@pytest.mark.usefixtures("prefect_server")
def test_up_uses_a_running_prefect_server_and_leaves_it_running(tmp_path: Path) -> None:
    """With PREFECT_API_URL naming a server (the suite's own), the stack starts none, talks to that one, and
    stopping leaves it running. (Everything else `up` does is the same on either server: the test above.)"""
    from prefect.settings import get_current_settings

    theirs = str(get_current_settings().api.url)
    said: list[str] = []
    stack = Stack(Settings(home=tmp_path, _env_file=None), REPO, say=said.append)
    stack.prefect.start_server()
    assert stack.prefect.server is None and stack.supervisor.parts() == []
    assert said == [f"Prefect: using the server at {theirs} (PREFECT_API_URL)"]
    stack.prefect.create_work_pools(read_prefect_yaml(REPO))
    stack.stop(timeout=5)
    assert httpx.get(f"{theirs}/health", timeout=5).status_code == 200  # theirs: left running
    pools = {pool["name"] for pool in prefect(theirs, "work_pools/filter", {})}
    assert set(work_pools(read_prefect_yaml(REPO))) <= pools


def test_a_part_that_dies_while_starting_stops_the_stack_with_its_log_tail(tmp_path: Path) -> None:
    supervisor = Supervisor(REPO)
    grandchild = "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"
    dying = "print('OSError: [Errno 98] address already in use', flush=True); raise SystemExit(3)"
    running = supervisor.start(
        Child("api", [sys.executable, "-c", grandchild], tmp_path / "api.log"), dict(os.environ)
    )
    failed = supervisor.start(
        Child("ui", [sys.executable, "-c", dying], tmp_path / "ui.log"), dict(os.environ)
    )
    with pytest.raises(
        StartupFailed, match=r"(?s)ui exited \(code 3\); last lines of .*address already in use"
    ):
        supervisor.wait(lambda: False, 60, "dashboard")
    assert running.group_alive()  # with the child it started in its group
    supervisor.stop(timeout=5)
    assert not running.group_alive() and not failed.group_alive()


def test_a_prefect_side_failure_during_the_bootstrap_stops_the_stack_and_nothing_starts_after(
    tmp_path: Path,
) -> None:
    """The Prefect side runs in a thread while the bootstrap runs: a server that dies there is raised in the
    main thread with its log tail; once stopping has begun no part starts, so none is left behind."""
    stack = Stack(Settings(home=tmp_path, _env_file=None), REPO, say=lambda _: None)
    stack.prefect.api_url = f"http://127.0.0.1:{free_port()}/api"  # nothing answers there
    dying = "print('database is locked', flush=True); raise SystemExit(1)"
    stack.supervisor.start(
        Child("prefect-server", [sys.executable, "-c", dying], tmp_path / "server.log"), {}
    )
    side = threading.Thread(target=stack._run_prefect_side, args=(dict(os.environ),))
    side.start()
    side.join(timeout=60)
    assert not side.is_alive()
    with pytest.raises(StartupFailed, match=r"(?s)prefect-server exited \(code 1\).*database is locked"):
        stack._raise_prefect_side_failure()
    stack.stop(timeout=5)
    late = Child("api", [sys.executable, "-c", "import time; time.sleep(300)"], tmp_path / "api.log")
    with pytest.raises(KeyboardInterrupt):
        stack.supervisor.start(late, dict(os.environ))
    assert late.process is None and late not in stack.supervisor.parts()


def test_the_bootstrap_stops_at_a_failed_ingest(tmp_path: Path) -> None:
    """An unreachable exchange fails the bootstrap's first step, and the bootstrap stops there with one line
    naming it (`hourcast up` prints it as `hourcast: ...`), instead of going on to a materialize error."""
    settings = Settings(
        home=tmp_path,
        exchange_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        retry_attempts=1,
        _env_file=None,
    )
    said: list[str] = []
    with pytest.raises(StartupFailed, match=r"^bootstrap: the ingest failed.*BTC/USDT: .*NetworkError"):
        bootstrap(settings, said.append)
    assert not [line for line in said if "materializ" in line], said
