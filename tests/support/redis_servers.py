"""Redis for the tests: a ``redis-server`` of the test's own (never the machine's)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from hourcast.dev.redis_server import RedisServer


@contextmanager
def redis_server() -> Iterator[RedisServer]:
    """A running ``RedisServer``, killed on exit."""
    if shutil.which("redis-server") is None:
        pytest.fail("the Redis tests need the redis-server binary: `apt-get install redis-server`")
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.stop()
