"""Shared fixtures: the recorded candles bundled with hourcast (``hourcast.dev.samples``) and small real
frames built from them."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from hourcast.dev.samples import sample_files

# The longest test files, longest first (measured on 2 cores with 3 workers). pytest-xdist hands whole
# files (--dist loadfile) to whichever worker is free, in collection order (--no-loadscope-reorder): a long
# file left for the end would run alone while the other workers idle.
SLOWEST_FILES = [
    "test_flows.py",
    "test_stack.py",
    "test_training.py",
    "test_ingest.py",
    "test_service.py",
    "test_monitor_http.py",
    "test_monitor.py",
    "test_dask_runner.py",
    "test_feature_table.py",
    "test_completeness.py",
    "test_featurestore.py",
    "test_scale_ingest.py",
    "test_redis_cluster.py",
    "test_validation.py",
    "test_dashboard_browser.py",
    "test_bento.py",
    "test_dashboard.py",
    "test_timeframes.py",
    "test_bad_input.py",
    "test_order_flow.py",
    "test_model.py",
]


SHARED_DIR = pytest.StashKey[Path]()
"""The run's folder shared by the controller and every xdist worker (the Prefect server's files)."""


def pytest_configure(config: pytest.Config) -> None:
    """The controller (or the only process, without xdist) makes the run's shared folder."""
    if not hasattr(config, "workerinput"):
        config.stash[SHARED_DIR] = Path(tempfile.mkdtemp(prefix="hourcast-tests-"))


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each xdist worker where the shared folder is."""
    node.workerinput["hourcast_shared_dir"] = str(node.config.stash[SHARED_DIR])


def pytest_unconfigure(config: pytest.Config) -> None:
    """Once every worker is done: stop the shared Prefect server, if one was started; remove the folder."""
    if hasattr(config, "workerinput") or SHARED_DIR not in config.stash:
        return
    folder = config.stash[SHARED_DIR]
    state = folder / PREFECT_SERVER_STATE
    if state.exists():
        stop_process_tree(json.loads(state.read_text())["pid"])
    shutil.rmtree(folder, ignore_errors=True)


def shared_dir(config: pytest.Config) -> Path:
    """The run's shared folder, seen from the controller or a worker."""
    workerinput = getattr(config, "workerinput", None)
    return Path(workerinput["hourcast_shared_dir"]) if workerinput else config.stash[SHARED_DIR]


PREFECT_SERVER_STATE = "prefect-server.json"
"""In the shared folder: the API URL and process id of the run's Prefect server, once started."""


def stop_process_tree(pid: int) -> None:
    """Stop the process ``pid`` and every process it started (``terminate``)."""
    import psutil

    try:
        root = psutil.Process(pid)
        terminate([root, *root.children(recursive=True)])
    except psutil.NoSuchProcess:
        return


def terminate(processes: list[Any]) -> list[Any]:
    """SIGTERM each of the ``psutil`` ``processes``, SIGKILL those alive after 15 s; those still alive 5 s
    after that."""
    import psutil

    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=15)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    _, alive = psutil.wait_procs(alive, timeout=5)
    return alive


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core plus one. Many integration tests spend part of their time waiting on
    servers they started (a Prefect worker's poll, a service coming up), and the extra worker's tests fill
    those gaps."""
    return (os.cpu_count() or 1) + 1


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run the slowest files first (``SLOWEST_FILES``); the rest keep their order."""
    rank = {name: position for position, name in enumerate(SLOWEST_FILES)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))


BTC_FILE = sample_files()["BTC/USDT"]
ETH_FILE = sample_files()["ETH/USDT"]


def read_recorded(path: Path) -> pd.DataFrame:
    """A recorded file as ``ts, open, high, low, close, volume`` (ts tz-aware UTC)."""
    frame = pd.read_csv(path)
    frame["ts"] = pd.to_datetime(frame.pop("timestamp"), utc=True).astype("datetime64[ms, UTC]")
    return frame[["ts", "open", "high", "low", "close", "volume"]]


@pytest.fixture(scope="session")
def btc_recorded() -> pd.DataFrame:
    """All 19,704 recorded BTC/USDT hourly candles."""
    return read_recorded(BTC_FILE)


def as_candle_frame(recorded: pd.DataFrame, symbol: str = "BTC/USDT") -> pd.DataFrame:
    """Recorded rows as a candle frame of the binance 1h series."""
    frame = recorded.copy()
    for column, value in (("timeframe", "1h"), ("symbol", symbol), ("exchange", "binance")):
        frame.insert(0, column, pd.Series([value] * len(frame), dtype="string"))
    return frame.reset_index(drop=True)


def kill_writer_when(script: str, folder: Path, written: Callable[[], bool], what: str) -> None:
    """Run the Python ``script`` (given ``folder``; it prints ``ready`` before it starts writing) in a child
    process and SIGKILL it as soon as ``written()`` holds: a writer killed mid-way."""
    from tests.integration.conftest import wait_for

    repo = Path(__file__).resolve().parents[1]
    writer = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)],
        cwd=repo,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == b"ready"
        wait_for(written, 60, what)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
