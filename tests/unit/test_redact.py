"""No message carries a credential: URLs and Feast connection strings are redacted."""

from __future__ import annotations

import pytest

from hourcast.features.featurestore import describe_online_store, redis_connection_string
from hourcast.redact import redact
from hourcast.settings import Settings


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("redis://:hunter2@10.0.0.5:6379/0", "redis://:***@10.0.0.5:6379/0"),
        ("rediss://app:hunter2@cache:6380/1 is down", "rediss://app:***@cache:6380/1 is down"),
        ("10.0.0.5:6379,db=0,password=hunter2,ssl=true", "10.0.0.5:6379,db=0,password=***,ssl=true"),
        ("redis://127.0.0.1:6379/0 refused", "redis://127.0.0.1:6379/0 refused"),
        ("http://user@host/path", "http://user@host/path"),
    ],
)
def test_redact(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_online_store_is_described_without_its_password() -> None:
    settings = Settings(online_store="redis", redis_url="redis://:hunter2@10.0.0.5:6379/0", _env_file=None)
    assert "hunter2" not in describe_online_store(settings)
    connection = redis_connection_string(settings.redis_url, 0.15)
    assert "password=hunter2" in connection  # Feast needs it; it is never printed
    assert "socket_timeout=0.15" in connection and "socket_connect_timeout=0.15" in connection
    assert "hunter2" not in redact(connection)
