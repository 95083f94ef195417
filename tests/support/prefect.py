"""The run's one Prefect server, shared by the controller and every xdist worker through the run's shared
folder: the first worker to need it starts it, the controller stops it at the end."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import State, TaskRun

from hourcast.dev.ports import free_port
from hourcast.dev.replay.server import ReplayServer
from hourcast.ops.prefect_admin import prefect_server_environment
from hourcast.ops.supervise import python_module
from hourcast.settings import Settings
from tests.support.processes import start_server, stop_process_tree, wait_for

REPO = Path(__file__).resolve().parents[2]

SHARED_DIR = pytest.StashKey[Path]()
"""The run's folder shared by the controller and every xdist worker (the Prefect server's files)."""

PREFECT_SERVER_STATE = "prefect-server.json"
"""In the shared folder: the API URL and process id of the run's Prefect server, once started."""


def make_shared_dir(config: pytest.Config) -> None:
    """On the controller (or the only process, without xdist): make the run's shared folder."""
    config.stash[SHARED_DIR] = Path(tempfile.mkdtemp(prefix="hourcast-tests-"))


def shared_dir(config: pytest.Config) -> Path:
    """The run's shared folder, seen from the controller or a worker."""
    workerinput = getattr(config, "workerinput", None)
    return Path(workerinput["hourcast_shared_dir"]) if workerinput else config.stash[SHARED_DIR]


def remove_shared_dir(folder: Path) -> None:
    """Stop the shared Prefect server, if one was started; remove the folder."""
    state = folder / PREFECT_SERVER_STATE
    if state.exists():
        stop_process_tree(json.loads(state.read_text())["pid"])
    shutil.rmtree(folder, ignore_errors=True)


def start_prefect_server(home: Path) -> dict[str, Any]:
    """Start ``prefect server start`` on a free port, its database under ``home``, in a process group of its
    own; once it answers, its API URL and process id."""
    port = free_port()
    env = {
        **os.environ,
        **prefect_server_environment(home),
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    home.mkdir(parents=True, exist_ok=True)
    url = f"http://127.0.0.1:{port}/api"
    command = python_module("prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port))
    server = start_server(
        command, f"{url}/health", env=env, cwd=Path.cwd(), log_path=home / "server.log", timeout=180
    )
    return {"url": url, "pid": server.pid}


def flow_settings(
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    server: ReplayServer,
    redis_url: str,
    symbols: tuple[str, ...] = ("BTC/USDT", "ETH/USDT"),
    **extra: object,
) -> Settings:
    """Point the flows' ``Settings()`` at a test home, the replay exchange and the test Redis, with a
    writer limit of the test's own (the Prefect server is shared); ``extra``: more ``HOURCAST_*`` values."""
    variables = {
        "HOME": home,
        "EXCHANGE_URL": server.url,
        "SYMBOLS": ",".join(symbols),
        "ONLINE_STORE": "redis",
        "REDIS_URL": redis_url,
        "FEATURE_REPO": REPO / "feature_repo",
        "RETRY_BASE_SECONDS": 0.01,
        "RETRY_MAX_SECONDS": 0.05,
        "WRITER_LIMIT": f"hourcast-ingest-{uuid4().hex[:12]}",
        **{name.upper(): value for name, value in extra.items()},
    }
    for name, value in variables.items():
        monkeypatch.setenv(f"HOURCAST_{name}", str(value))
    return Settings()


def run_id(state: State) -> UUID:
    """The flow run a final state belongs to."""
    flow_run_id = state.state_details.flow_run_id
    assert flow_run_id is not None
    return flow_run_id


def finished_task_runs(flow_run_id: UUID, names: tuple[str, ...]) -> dict[str, TaskRun]:
    """The finished task runs of a flow run by task name (waits for the server to record them: task-run
    states arrive as events)."""
    done: dict[str, TaskRun] = {}

    def recorded() -> bool:
        with get_client(sync_client=True) as client:
            runs = client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
        done.update({r.name.rsplit("-", 1)[0]: r for r in runs if r.state is not None and r.state.is_final()})
        return set(names) <= set(done)

    wait_for(recorded, 15, f"the finished task runs {names}", poll=0.2)
    return done
