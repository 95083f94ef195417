"""The run's one Prefect server, shared by the controller and every xdist worker through the run's shared
folder: the first worker to need it starts it, the controller stops it at the end."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from hourcast.dev.ports import free_port
from hourcast.ops.prefect_admin import prefect_server_environment
from hourcast.ops.supervise import python_module
from tests.support.processes import start_server, stop_process_tree

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
