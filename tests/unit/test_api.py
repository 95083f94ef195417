"""The API edge's pure parts: which warnings the service process hides, the feature ages it exports, and the
health probes answered from memory ahead of the rest of the ASGI stack."""

from __future__ import annotations

import asyncio
import warnings
from datetime import UTC, datetime

import pytest

from hourcast.api import asgi
from hourcast.serving.schema import Band, Prediction, Readiness
from hourcast.warning_filters import quiet_known_deprecations


def shown(category: type[Warning], module: str, message: str = "old API") -> bool:
    """Whether a warning raised from ``module`` is shown once the service's filters are set (every other
    warning shown, as with ``PYTHONWARNINGS=default``)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        quiet_known_deprecations()
        warnings.warn_explicit(message, category, f"/{module.replace('.', '/')}.py", 1, module=module)
    return bool(caught)


@pytest.mark.parametrize(
    "module", ["feast.repo_config", "feast", "ibis.backends.duckdb", "bentoml._internal.x"]
)
@pytest.mark.parametrize("category", [DeprecationWarning, PendingDeprecationWarning, FutureWarning])
def test_the_known_noisy_deprecations_are_hidden(module: str, category: type[Warning]) -> None:
    assert not shown(category, module)


@pytest.mark.parametrize(
    ("category", "module"),
    [
        (UserWarning, "feast.repo_config"),  # not a deprecation
        (RuntimeWarning, "bentoml._internal.x"),
        (DeprecationWarning, "hourcast.serving.predictor"),  # our own code
        (DeprecationWarning, "feastlike"),  # a module that only starts like one
        (DeprecationWarning, "pandas.core.frame"),
    ],
)
def test_every_other_warning_is_still_shown(category: type[Warning], module: str) -> None:
    assert shown(category, module)


def prediction(symbol: str, target_time: str) -> Prediction:
    return Prediction(
        symbol=symbol,
        as_of="2024-02-29T23:00:00Z",
        target_time=target_time,
        last_close=1.0,
        predicted_close=1.0,
        predicted_return=0.0,
        direction="up",
        persistence_close=1.0,
        model="m:1",
        features_age_seconds=0.0,
        stale=False,
        band=Band(low=0.9, high=1.1, quantiles=[0.05, 0.95]),
        clock="exchange",
    )


def test_feature_ages_count_from_the_newest_answer_by_the_given_clock() -> None:
    ages = asgi.FeatureAges()
    assert ages.ages(datetime(2024, 3, 1, tzinfo=UTC)) == {}
    ages.remember(
        [prediction("BTC/USDT", "2024-03-01T00:00:00Z"), prediction("ETH/USDT", "2024-02-29T23:00:00Z")]
    )
    ages.remember([prediction("BTC/USDT", "2024-03-01T01:00:00Z")])
    assert ages.ages(datetime(2024, 3, 1, 1, 10, tzinfo=UTC)) == {"BTC/USDT": 600.0, "ETH/USDT": 7800.0}


def test_the_api_accepts_exactly_the_monitors_windows() -> None:
    from typing import get_args

    from hourcast.monitor import scoreboard
    from hourcast.serving import schema

    assert list(get_args(schema.Window)) == list(scoreboard.WINDOWS)


def readiness(ready: bool) -> Readiness:
    return Readiness(
        ready=ready,
        model="m:1",
        online_store="up" if ready else "down: redis (redis://127.0.0.1:1/0) is unreachable",
        model_reload_error=None,
        clock="system",
        problems=[] if ready else ["redis (redis://127.0.0.1:1/0) is unreachable"],
    )


def call(app: asgi.ASGIApp, method: str, path: str) -> tuple[int, dict[str, str], bytes]:
    """One request through an ASGI app: its status, headers and body."""
    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": []}
    asyncio.run(app(scope, receive, send))
    start, *bodies = sent
    headers = {key.decode(): value.decode() for key, value in start.get("headers", [])}
    return start["status"], headers, b"".join(body.get("body", b"") for body in bodies)


class Inner:
    """The rest of the stack: records what reached it and answers 299."""

    def __init__(self) -> None:
        self.paths: list[str] = []

    async def __call__(self, scope: dict, receive: asgi.Receive, send: asgi.Send) -> None:
        self.paths.append(scope["path"])
        await send({"type": "http.response.start", "status": 299, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@pytest.mark.parametrize("ready", [True, False])
def test_readyz_is_answered_from_memory_before_the_rest_of_the_stack(ready: bool) -> None:
    inner = Inner()
    health = asgi.HealthEndpoints(inner, readiness=lambda: readiness(ready))
    status, headers, body = call(health, "GET", "/readyz")
    assert (status, headers["content-type"]) == (200 if ready else 503, "application/json")
    assert Readiness.model_validate_json(body) == readiness(ready)
    assert inner.paths == []


@pytest.mark.parametrize("path", ["/livez", "/healthz"])
def test_liveness_is_bentomls_answer_without_the_stack(path: str) -> None:
    inner = Inner()
    status, _, body = call(asgi.HealthEndpoints(inner, readiness=lambda: readiness(True)), "GET", path)
    assert (status, body, inner.paths) == (200, b"\n", [])


def test_a_service_that_is_not_running_is_not_ready() -> None:
    def gone() -> Readiness:
        raise RuntimeError("no service instance")

    status, _, body = call(asgi.HealthEndpoints(Inner(), readiness=gone), "GET", "/readyz")
    answer = Readiness.model_validate_json(body)
    assert status == 503 and not answer.ready and "not running" in answer.problems[0]


@pytest.mark.parametrize(("method", "path"), [("GET", "/predict"), ("POST", "/readyz"), ("GET", "/readyz/x")])
def test_every_other_request_goes_through(method: str, path: str) -> None:
    inner = Inner()
    status, _, _ = call(asgi.HealthEndpoints(inner, readiness=lambda: readiness(True)), method, path)
    assert (status, inner.paths) == (299, [path])
