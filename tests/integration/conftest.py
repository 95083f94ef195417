"""Integration fixtures: a real replay exchange on loopback, the suite's Redis, a BentoML store of the
test's own, a headless browser and the run's Prefect server. Helpers live in ``tests/support``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from playwright.sync_api import Browser, Page

from hourcast.atomic import file_lock
from hourcast.dev.redis_server import RedisServer
from hourcast.dev.replay.data import load_candles_file
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from tests.support.bento import bentoml_home
from tests.support.data import BTC_FILE, ETH_FILE
from tests.support.prefect import PREFECT_SERVER_STATE, shared_dir, start_prefect_server
from tests.support.redis_servers import redis_server


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
