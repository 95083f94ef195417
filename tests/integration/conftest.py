"""Integration fixtures: a real replay exchange on loopback and settings pointing ccxt at it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import pytest
from playwright.sync_api import Browser, Page

from hourcast.atomic import file_lock
from hourcast.dev.redis_server import RedisServer
from hourcast.dev.replay.data import load_candles_file
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.settings import Settings
from tests.conftest import BTC_FILE, ETH_FILE, PREFECT_SERVER_STATE, shared_dir, terminate


@pytest.fixture(scope="session")
def recorded_files() -> dict[str, pd.DataFrame]:
    """The bundled recorded candles, loaded once."""
    return {"BTC/USDT": load_candles_file(BTC_FILE), "ETH/USDT": load_candles_file(ETH_FILE)}


@pytest.fixture
def replay(recorded_files: dict[str, pd.DataFrame]) -> Iterator[ReplayServer]:
    """A replay exchange whose clock stands at 2024-03-01T00:00Z."""
    exchange = ReplayExchange(recorded_files, now="2024-03-01T00:00:00Z")
    with ReplayServer(exchange) as server:
        yield server


def replay_settings(home: Path, server: ReplayServer, **overrides: object) -> Settings:
    """Settings for a test: its own data home, ccxt aimed at the replay exchange, quick retries."""
    values: dict[str, object] = {
        "home": home,
        "exchange_url": server.url,
        "exchange_timeout_ms": 1000,
        "retry_base_seconds": 0.01,
        "retry_max_seconds": 0.05,
        "default_backfill_days": 2,
    }
    return Settings(**(values | overrides))


REDIS_SERVER = shutil.which("redis-server")


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.02, max_poll: float = 0.5
) -> None:
    """Poll ``condition`` until it holds; fail the test naming ``what`` after ``timeout`` seconds.

    The interval starts at ``poll`` and grows by half each time up to ``max_poll``: a quick condition is seen
    at once, and a wait of minutes does not spend the CPU it waits for on polling (most conditions are HTTP
    calls to a server the test started)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)
        poll = min(poll * 1.5, max(poll, max_poll))


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A running ``RedisServer``, killed on exit."""
    if REDIS_SERVER is None:
        pytest.fail("the Redis tests need the redis-server binary: `apt-get install redis-server`")
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def test_redis() -> Iterator[RedisServer]:
    """The suite's own Redis server (started once)."""
    with redis_server() as server:
        yield server


@pytest.fixture
def redis_db(test_redis: RedisServer) -> Iterator[str]:
    """The URL of an empty Redis database on the suite's own server, emptied again afterwards."""
    import redis

    client = redis.Redis.from_url(test_redis.url)
    client.flushall()
    yield test_redis.url
    client.flushall()
    client.close()


def store_recorded(settings: Settings, recorded: dict[str, pd.DataFrame], days: int, end: str) -> None:
    """Put the recorded candles of the ``days`` before ``end`` straight into the settings' store."""
    from hourcast.data import store
    from tests.conftest import as_candle_frame

    stop = pd.Timestamp(end, tz="UTC")
    for symbol in settings.symbols:
        frame = recorded[symbol]
        window = frame.loc[(frame["ts"] >= stop - pd.Timedelta(days=days)) & (frame["ts"] < stop)]
        store.upsert(
            settings.candles_dir,
            store.Series(settings.exchange, symbol, settings.timeframe),
            as_candle_frame(window, symbol),
        )


@contextmanager
def bentoml_home(home: Path) -> Iterator[Path]:
    """Point this process's BentoML model store at ``home/models`` (usage tracking off); yields it.

    BentoML resolves its store through ``BentoMLContainer`` providers when a store function is called, so
    they are overridden in-process; the tracking check is cached, hence the ``cache_clear``.
    """
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore
    from bentoml._internal.utils.analytics import usage_stats

    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    previous = {name: os.environ.get(name) for name in ("BENTOML_HOME", "BENTOML_DO_NOT_TRACK")}
    os.environ.update({"BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"})
    usage_stats.do_not_track.cache_clear()
    try:
        with (
            BentoMLContainer.bentoml_home.patch(str(home)),
            BentoMLContainer.model_store.patch(ModelStore(models)),
        ):
            yield models
    finally:
        for name, value in previous.items():
            os.environ.pop(name, None) if value is None else os.environ.update({name: value})
        usage_stats.do_not_track.cache_clear()


@pytest.fixture
def bentoml_store(tmp_path: Path) -> Iterator[Path]:
    """A fresh, empty BentoML model store under ``tmp_path``; yields its models directory."""
    with bentoml_home(tmp_path / "bentoml") as models:
        yield models


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless system Chromium (Debian's package), started once per test module: not per session, since
    Playwright's sync API holds an event loop of its own while the browser is open, which stays out of the
    other modules' tests."""
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.exists():
        pytest.fail(f"the browser tests need Chromium at {CHROMIUM}; install it: `apt-get install chromium`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A 1280x800 page in a browser context of its own (nothing shared with other tests' pages)."""
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        yield context.new_page()
    finally:
        context.close()


@pytest.fixture(scope="session")
def prefect_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One Prefect server for the whole run (``prefect server start``, as `hourcast up` starts it, UI off),
    shared by every xdist worker: the first worker to need it starts it, the controller stops it at the end
    (``tests/conftest.py``). Yields its API URL, which this process's Prefect clients then use. Each test
    gives its data home a writer limit of its own (HOURCAST_WRITER_LIMIT), as two homes sharing a server
    would, so tests on other workers never wait for its slot.

    Flow-run heartbeats are off: the engine joins its heartbeat thread, which sleeps in 1 s steps, at the
    end of every run, a fixed second per run that is irrelevant hourly and would dominate 50 test runs.
    """
    from prefect.context import _temporary_global_settings_context, get_settings_context
    from prefect.settings import temporary_settings

    folder = shared_dir(request.config)
    state = folder / PREFECT_SERVER_STATE
    with file_lock(folder / "prefect-server.lock"):
        if not state.exists():
            state.write_text(json.dumps(start_prefect_server(folder / "prefect")))
    url = json.loads(state.read_text())["url"]
    updates: dict[str, Any] = {
        "home": tmp_path_factory.mktemp("prefect"),
        "api.url": url,
        "flows.heartbeat_frequency": None,
    }
    # process-wide too, as prefect_test_harness does: threads a test starts have no settings context of
    # their own and would otherwise start an ephemeral server
    with temporary_settings(updates=updates), _temporary_global_settings_context(get_settings_context()):
        yield url


def start_prefect_server(home: Path) -> dict[str, Any]:
    """Start ``prefect server start`` on a free port, its database under ``home``, in a process group of its
    own; once it answers, its API URL and process id."""
    from hourcast.ops.stack import answers, prefect_server_environment, python_module

    port = free_port()
    env = {
        **os.environ,
        **prefect_server_environment(home),
        "PREFECT_UI_ENABLED": "false",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    env.pop("PREFECT_API_URL", None)
    home.mkdir(parents=True, exist_ok=True)
    with (home / "server.log").open("wb") as log:
        server = subprocess.Popen(
            python_module("prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)),
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}/api"

    def ready() -> bool:
        assert server.poll() is None, (
            f"the Prefect server exited:\n{(home / 'server.log').read_text()[-3000:]}"
        )
        return answers(f"{url}/health")

    wait_for(ready, 180, "the Prefect test server")
    return {"url": url, "pid": server.pid}


@contextmanager
def bentoml_serve(
    target: str, port: int, env: dict[str, str], cwd: Path, log_path: Path, timeout: float = 120
) -> Iterator[subprocess.Popen]:
    """The stock ``bentoml serve <target> --port <port>`` (no --host: it must bind 127.0.0.1 by itself),
    its output in ``log_path``; yields the process once ``/readyz`` answers 200. On exit it stops the
    server and every worker (SIGTERM, then SIGKILL after 15 s) and fails if any survives."""
    bentoml = str(Path(sys.executable).with_name("bentoml"))
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [bentoml, "serve", target, "--port", str(port)],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def ready() -> bool:
        assert server.poll() is None, f"bentoml serve exited:\n{log_path.read_text()[-3000:]}"
        try:
            return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    try:
        wait_for(ready, timeout, f"bentoml serve {target} to become ready")
        yield server
    finally:
        stop_service(server)


def stop_service(server: subprocess.Popen) -> None:
    """Stop `bentoml serve` and every process it started (SIGTERM, SIGKILL after 15 s); fail if any
    survives."""
    alive = terminate(service_processes(server))
    server.poll()
    assert not alive, f"processes left running: {alive}"


def service_processes(server: subprocess.Popen) -> list[psutil.Process]:
    """`bentoml serve` and every process it started: its workers run in process groups of their own, so
    signalling the server's group does not reach them."""
    try:
        root = psutil.Process(server.pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []
