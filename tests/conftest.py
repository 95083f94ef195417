"""Hooks for the whole run (the run's shared folder, the number of xdist workers, slowest files first) and
the fixtures every test may use. Helpers live in ``tests/support``."""

from __future__ import annotations

import os
from collections import defaultdict
from typing import Any

import pandas as pd
import pytest

from hourcast.compat.typeguard import skip_feast_instrumentation
from tests.support.data import BTC_FILE, read_recorded
from tests.support.prefect import SHARED_DIR, make_shared_dir, remove_shared_dir, shared_dir

FILE_SECONDS = "hourcast/file_seconds"
"""In pytest's cache (``.pytest_cache``): the seconds each test file took in the runs before, by path."""


class SlowestFilesFirst:
    """Order test files by the seconds they took last time (pytest's cache), slowest first, and record this
    run's. pytest-xdist hands whole files (``--dist loadfile``) to whichever worker is free, in collection
    order (``--no-loadscope-reorder``): a long file left for the end would run alone while the other
    workers idle. Files the cache does not know (all of them on a fresh clone) come first, those with a
    test marked ``slow`` (a minute or more) before the others, each group in collection order."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        self.cache: pytest.Cache | None = getattr(config, "cache", None)  # None with -p no:cacheprovider
        self.seconds: dict[str, float] = defaultdict(float)

    @pytest.hookimpl(tryfirst=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Sort ``items`` by their file's recorded seconds, unknown files first (with a ``slow`` test: before
        the other unknown ones); a file's tests keep their order."""
        recorded: dict[str, float] = self.cache.get(FILE_SECONDS, {}) if self.cache else {}
        slow = {file_of(item.nodeid) for item in items if item.get_closest_marker("slow")}

        def order(item: pytest.Item) -> tuple[float, bool]:
            name = file_of(item.nodeid)
            return -recorded.get(name, float("inf")), name not in slow

        items.sort(key=order)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        """Add a test phase's seconds to its file's (on the controller: every worker's reports)."""
        self.seconds[file_of(report.nodeid)] += report.duration

    def pytest_sessionfinish(self) -> None:
        """On the controller (or without xdist): store this run's seconds of the files it ran."""
        if not hasattr(self.config, "workerinput") and self.seconds and self.cache:
            ran = {name: round(seconds, 2) for name, seconds in self.seconds.items()}
            self.cache.set(FILE_SECONDS, self.cache.get(FILE_SECONDS, {}) | ran)


def file_of(nodeid: str) -> str:
    """The file part of a test's node id."""
    return nodeid.split("::")[0]


def pytest_configure(config: pytest.Config) -> None:
    """Have Feast skip typeguard (as the entry points do) before any test imports it; order files by
    recorded durations; the controller (or the only process) makes the shared folder."""
    skip_feast_instrumentation()
    config.pluginmanager.register(SlowestFilesFirst(config), "hourcast-slowest-files-first")
    if not hasattr(config, "workerinput"):
        make_shared_dir(config)


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """Tell each xdist worker where the shared folder is."""
    node.workerinput["hourcast_shared_dir"] = str(shared_dir(node.config))


def pytest_unconfigure(config: pytest.Config) -> None:
    """Once every worker is done: stop the shared Prefect server, if one was started; remove the folder."""
    if not hasattr(config, "workerinput") and SHARED_DIR in config.stash:
        remove_shared_dir(config.stash[SHARED_DIR])


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: one worker per core plus one. Many integration tests spend part of their time waiting on
    servers they started (a Prefect worker's poll, a service coming up), and the extra worker's tests fill
    those gaps."""
    return (os.cpu_count() or 1) + 1


@pytest.fixture(scope="session")
def btc_recorded() -> pd.DataFrame:
    """All 19,704 recorded BTC/USDT hourly candles."""
    return read_recorded(BTC_FILE)
