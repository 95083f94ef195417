"""The prediction API over HTTP: the stock `bentoml serve` (one worker), a real model in a temporary
BentoML home, features in a Redis the test starts on its own port (frozen, stopped, restarted empty),
and the replay exchange as the clock (unreachable when the service starts, reachable afterwards)."""

from __future__ import annotations

import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pandas as pd
import psutil
import pytest
import schemathesis
from catboost import CatBoostRegressor
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from playwright.sync_api import Page, expect
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from hourcast.cli.serve import serve_environment
from hourcast.dashboard.figures import format_price
from hourcast.data import store
from hourcast.dev.ports import free_port
from hourcast.dev.redis_server import RedisServer
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.features import featurestore
from hourcast.features.compute import FEATURE_NAMES
from hourcast.model import estimator, registry, training
from hourcast.monitor import prometheus, scoreboard, scoring
from hourcast.monitor import run as monitor_run
from hourcast.serving import predictor, schema
from hourcast.serving.prediction_log import read_log
from hourcast.serving.schema import ErrorBody, Performance, Prediction, Readiness, Scoreboard
from hourcast.settings import Settings
from tests.integration.test_dashboard_browser import open_dashboard, running_dashboard, select_symbol
from tests.support.bento import bentoml_home, bentoml_serve
from tests.support.data import store_recorded
from tests.support.processes import process_tree, wait_for
from tests.support.prometheus import running_prometheus

REPO = Path(__file__).resolve().parents[2]
CLOCK = "2024-03-01T00:10:00Z"  # ten minutes after the last stored candle closed
HANG_GUARD = 2.0  # seconds a request may take before the test calls it hung (a frozen Redis took 40 s)


def fast_fit(frame: pd.DataFrame, params: dict | None = None) -> CatBoostRegressor:
    return estimator.fit(frame, {**(params or {}), "iterations": 40})


@dataclass
class World:
    settings: Settings
    url: str
    port: int
    replay: ReplayExchange
    redis: RedisServer
    server: subprocess.Popen
    log_path: Path
    at_start: dict = field(default_factory=dict)

    def post(self, path: str, body: object, timeout: float = 10) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=timeout)

    def readiness(self) -> Readiness:
        return Readiness.model_validate(httpx.get(self.url + "/readyz", timeout=HANG_GUARD).json())


@pytest.fixture(scope="module")
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, recorded_files: dict
) -> Iterator[World]:
    home = tmp_path_factory.mktemp("service")
    redis = RedisServer().start()
    request.addfinalizer(redis.stop)  # also when the set-up below fails; after the service is killed
    replay = ReplayExchange(recorded_files, now=CLOCK)
    settings = Settings(
        home=home / "data",
        symbols=["BTC/USDT", "ETH/USDT"],
        online_store="redis",
        redis_url=redis.url,
        feature_repo=REPO / "feature_repo",
        train_days=14,
        model_refresh_seconds=0.3,
        prediction_flush_seconds=0.5,
        _env_file=None,
    )
    store_recorded(settings, recorded_files, days=25, end="2024-03-01")
    featurestore.materialize(settings)
    with bentoml_home(home / "bentoml"):
        training.train(settings, fit_fn=fast_fit)
    port, exchange_port = free_port(), free_port()
    given = {
        **os.environ,
        "BENTOML_HOME": str(home / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "BENTOML_CONFIG_OVERRIDES": '{"services": {"hourcast": {"workers": 1}}}',  # _OPTIONS is deprecated
        "HOURCAST_HOME": str(settings.home),
        "HOURCAST_SYMBOLS": "BTC/USDT,ETH/USDT",
        "HOURCAST_ONLINE_STORE": "redis",
        "HOURCAST_REDIS_URL": redis.url,
        "HOURCAST_FEATURE_REPO": str(REPO / "feature_repo"),
        "HOURCAST_EXCHANGE_URL": f"http://127.0.0.1:{exchange_port}",  # nothing listens there yet
        "HOURCAST_MODEL_REFRESH_SECONDS": "0.3",
        "HOURCAST_PREDICTION_FLUSH_SECONDS": "0.5",
        "PYTHONWARNINGS": "default",  # every warning shown: the service hides the known noisy ones
    }
    env = serve_environment(settings, given)  # as `hourcast serve` starts it: its warning filters too
    log_path = home / "service.log"
    url = f"http://127.0.0.1:{port}"
    with bentoml_serve("bento_service.service:NextHour", port, env, REPO, log_path, timeout=90) as server:
        world = World(settings, url, port, replay, redis, server, log_path)
        world.at_start = {
            "readiness": world.readiness(),
            "answer": world.post("/predict", {"symbol": "BTC/USDT", "allow_stale": True}),
        }
        with ReplayServer(replay, port=exchange_port):
            wait_for(lambda: world.readiness().clock == "exchange", 10, "the exchange clock to be used")
            yield world


def test_it_starts_with_the_exchange_unreachable_and_says_which_clock_it_uses(world: World) -> None:
    at_start = world.at_start["readiness"]
    assert at_start.ready and at_start.clock == "system" and at_start.model is not None
    answer = world.at_start["answer"]
    assert answer.status_code == 200, answer.text
    assert answer.json()["clock"] == "system" and answer.json()["stale"] is True  # 2024 data, today's clock
    assert "exchange clock sync" in world.log_path.read_text()  # the failure was logged, not swallowed
    now = world.post("/predict", {"symbol": "BTC/USDT"})
    assert now.status_code == 200 and now.json()["clock"] == "exchange" and now.json()["stale"] is False


SCORED_HOURS = 168  # the last week of stored hours, answered by two models
PROMOTED_AFTER = 96  # the production model took over after the first 96 of them
NEWEST_STORED = "2024-02-29T23:00:00Z"


def answer_log(settings: Settings, tag: str, rows: pd.DataFrame) -> pd.DataFrame:
    """What the prediction log holds for ``rows`` of the offline feature table answered by model ``tag``:
    its calibrated forecasts and bands through the model module (what the API answers), one per hour."""
    loaded = predictor.load_model(settings, tag)
    assert loaded.calibration is not None
    forecasts = estimator.predictions_frame(
        loaded.model, rows.assign(next_close=float("nan")), calibration=loaded.calibration
    )
    return pd.DataFrame(
        {
            "requested_at": rows["as_of"] + pd.Timedelta(hours=1, minutes=2),
            "symbol": rows["symbol"].astype(str),
            "as_of": rows["as_of"],
            "target_time": rows["as_of"] + pd.Timedelta(hours=1),
            "last_close": rows["last_close"],
            "predicted_close": forecasts["predicted_close"],
            "model": tag,
            "stale": False,
            "band_low": forecasts["band_low"],
            "band_high": forecasts["band_high"],
        }
    ).reset_index(drop=True)


@pytest.fixture(scope="module")
def scored(world: World) -> dict[str, str]:
    """A week of served hours scored into the service's scores dataset, as `hourcast monitor` does: an
    earlier model (a shallower CatBoost) answered the first 96 hours, the production model the rest.
    Returns the tags ``{"previous", "production"}``."""
    settings = world.settings
    production = registry.production_tag(settings.registry_dir, settings.model_name)
    assert production is not None
    table = pd.read_parquet(settings.feature_table_path)
    newest = pd.Timestamp(NEWEST_STORED)
    hours = sorted(hour for hour in table["as_of"].unique() if hour < newest)[-SCORED_HOURS:]  # target stored
    rows = table.loc[table["as_of"].isin(hours)].sort_values(["as_of", "symbol"])
    with bentoml_home(world.settings.home.parent / "bentoml"):
        frame = training.load_training_frame(settings, featurestore.open_store(settings))
        _, _, metadata = registry.load_production(settings.registry_dir, settings.model_name)
        previous = registry.save_candidate(
            fast_fit(frame, {"depth": 2}),
            settings.model_name,
            settings.registry_dir,
            labels={},
            metadata=metadata,
        )
        early = rows["as_of"] < hours[PROMOTED_AFTER]
        log = pd.concat(
            [answer_log(settings, previous, rows[early]), answer_log(settings, production, rows[~early])]
        )
    candles = pd.concat(
        store.load_candles(settings.candles_dir, store.Series(settings.exchange, symbol, settings.timeframe))
        for symbol in settings.symbols
    )
    scores, pending = scoring.score_predictions(scoring.distinct_predictions(log), candles)
    assert pending.empty and len(scores) == 2 * SCORED_HOURS
    assert scoring.write_scores(settings.scores_dir, scores) == len(scores)
    return {"previous": previous, "production": production}


def test_the_scoreboard_has_the_numbers_of_hourcast_monitor(world: World, scored: dict[str, str]) -> None:
    response = httpx.get(world.url + "/scoreboard", params={"symbol": "ETH/USDT", "window": "7d"}, timeout=10)
    assert response.status_code == 200, response.text
    body = Scoreboard.model_validate(response.json())
    assert response.json() == scoreboard.current_scoreboard(world.settings, "ETH/USDT", "7d")
    with bentoml_home(world.settings.home.parent / "bentoml"):
        report = monitor_run.run(world.settings)  # what `hourcast monitor` computes and prints
    board = report.scoreboard.loc[
        (report.scoreboard["window"] == "7d") & (report.scoreboard["symbol"] == "ETH/USDT")
    ]
    expected = {row["model"]: row for row in scoreboard.json_records(board)}
    assert {row.model: row.model_dump() for row in body.rows} == expected
    assert set(expected) == {"all", scored["previous"], scored["production"]}
    assert body.newest_hour == "2024-02-29T23:00:00+00:00" and expected["all"]["hours"] == SCORED_HOURS
    assert body.production == scored["production"]

    everything = httpx.get(world.url + "/scoreboard", timeout=10).json()
    assert {(row["window"], row["symbol"]) for row in everything["rows"]} == {
        (window, symbol) for window in ("24h", "7d", "30d") for symbol in ("BTC/USDT", "ETH/USDT")
    }
    assert_error(httpx.get(world.url + "/scoreboard", params={"window": "2d"}, timeout=10), 400)
    assert_error(httpx.get(world.url + "/scoreboard", params={"symbol": "DOGE/USDT"}, timeout=10), 404)


def test_performance_has_each_served_hour_the_rolling_figures_and_the_promotion(
    world: World, scored: dict[str, str]
) -> None:
    response = httpx.get(world.url + "/performance", params={"symbol": "BTC/USDT", "hours": 48}, timeout=10)
    assert response.status_code == 200, response.text
    body = Performance.model_validate(response.json())
    assert len(body.history) == 48 and body.history[-1].target_time == NEWEST_STORED
    candles = store.load_candles(world.settings.candles_dir, store.Series("binance", "BTC/USDT", "1h"))
    closes = dict(zip(candles["ts"].dt.strftime("%Y-%m-%dT%H:%M:%SZ"), candles["close"], strict=True))
    assert [hour.realised_close for hour in body.history] == [
        closes[hour.target_time] for hour in body.history
    ]
    assert all(hour.band_low < hour.predicted_close < hour.band_high for hour in body.history)
    assert len(body.rolling) == 48 and body.rolling[-1].hours == 24
    assert [span.model for span in body.models] == [scored["previous"], scored["production"]]
    assert body.production == scored["production"]
    assert_error(httpx.get(world.url + "/performance", params={"symbol": "DOGE/USDT"}, timeout=10), 404)
    assert_error(
        httpx.get(world.url + "/performance", params={"symbol": "BTC/USDT", "hours": 0}, timeout=10), 400
    )


def test_prometheus_metrics_carry_the_rolling_figures_feature_age_and_model(
    world: World, scored: dict[str, str]
) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    response = httpx.get(world.url + "/monitor/metrics", timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    ratio = {
        (s.labels["symbol"], s.labels["window"], s.labels["model"]): s.value
        for s in families["hourcast_forecast_mae_ratio"].samples
    }
    board = scoreboard.current_scoreboard(world.settings, "BTC/USDT", "7d")["rows"]
    expected = next(row for row in board if row["model"] == scored["production"])
    assert ratio[("BTC/USDT", "7d", scored["production"])] == pytest.approx(expected["mae_ratio"])
    assert ("BTC/USDT", "7d", scored["previous"]) not in ratio  # only what was served and production
    ages = {s.labels["symbol"]: s.value for s in families["hourcast_feature_age_seconds"].samples}
    assert set(ages) == {"BTC/USDT", "ETH/USDT"} and all(590 <= age <= 3600 for age in ages.values())
    assert [s.labels["model"] for s in families["hourcast_model_info"].samples] == [scored["production"]]
    for name in (
        "hourcast_forecast_mae",
        "hourcast_forecast_directional_accuracy",
        "hourcast_forecast_coverage",
    ):
        assert {s.labels["symbol"] for s in families[name].samples} == {"BTC/USDT", "ETH/USDT"}
    assert "bentoml" in httpx.get(world.url + "/metrics", timeout=10).text  # BentoML's own, untouched


def test_metrics_answer_at_once_with_the_last_known_feature_age_while_the_store_is_frozen(
    world: World, scored: dict[str, str]
) -> None:
    httpx.get(world.url + "/monitor/metrics", timeout=10)  # an age read while the store is up
    world.redis.freeze()
    try:
        wait_for(lambda: not world.readiness().ready, 5, "/readyz to report the store down")
        response = httpx.get(world.url + "/monitor/metrics", timeout=HANG_GUARD)
        assert (
            response.status_code == 200 and 'hourcast_feature_age_seconds{symbol="BTC/USDT"}' in response.text
        )
    finally:
        world.redis.thaw()
    wait_for(lambda: world.readiness().ready, 2, "/readyz ready again")


def series(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    """A series' own labels, without those Prometheus adds on scraping (name, job, instance)."""
    return tuple(sorted((k, v) for k, v in labels.items() if k not in {"__name__", "job", "instance"}))


def test_a_real_prometheus_scrapes_the_forecast_quality_gauges(
    world: World, scored: dict[str, str], tmp_path: Path
) -> None:
    """Debian's prometheus scrapes /monitor/metrics every second; its query API then answers every
    forecast-quality gauge (names from ``hourcast.monitor.prometheus``) with what the endpoint exports, and
    every query of the shipped Grafana dashboard draws series."""
    from prometheus_client.parser import text_string_to_metric_families

    gauges = [prometheus.forecast_gauge(column) for column in prometheus.GAUGES]
    text = httpx.get(world.url + "/monitor/metrics", timeout=10).text
    families = {family.name: family for family in text_string_to_metric_families(text)}
    exported = {name: {series(s.labels): s.value for s in families[name].samples} for name in gauges}
    assert all(exported.values()), exported  # every gauge has series to compare

    with running_prometheus(f"127.0.0.1:{world.port}", "/monitor/metrics", tmp_path / "prometheus") as server:

        def scraped() -> dict[str, dict[tuple, float]]:
            return {
                name: {series(s["metric"]): float(s["value"][1]) for s in server.query(name)}
                for name in gauges
            }

        wait_for(server.target_up, 30, "Prometheus's first successful scrape of /monitor/metrics")
        wait_for(lambda: all(scraped().values()), 10, "every forecast-quality gauge in Prometheus")
        assert scraped() == exported
        production = scored["production"]
        ratio = server.query(
            f'{prometheus.forecast_gauge("mae_ratio")}{{symbol="BTC/USDT",window="7d",model="{production}"}}'
        )
        row = next(
            row
            for row in scoreboard.current_scoreboard(world.settings, "BTC/USDT", "7d")["rows"]
            if row["model"] == production
        )
        assert [float(s["value"][1]) for s in ratio] == [pytest.approx(row["mae_ratio"])]
        assert [s["metric"]["model"] for s in server.query(prometheus.MODEL_INFO)] == [production]
        dashboard = json.loads((REPO / "deploy" / "grafana" / "hourcast.json").read_text())
        for panel in dashboard["panels"]:  # every panel's query, its variables at "All", draws series
            for target in panel["targets"]:
                expr = re.sub(r"\$(symbol|window|model)\b", ".*", target["expr"])
                assert server.query(expr), f"the panel {panel['title']!r} draws nothing: {expr}"


def test_the_openapi_document_names_the_service_and_groups_its_routes(world: World) -> None:
    from hourcast import __version__

    document = httpx.get(world.url + "/docs.json", timeout=10).json()
    assert document["info"]["title"] == "hourcast prediction API"
    assert (
        document["info"]["version"] == __version__
        and "Next-hour close forecasts" in document["info"]["description"]
    )
    tags = {
        path: {tag for op in item.values() for tag in op.get("tags", [])}
        for path, item in document["paths"].items()
    }
    assert tags["/predict"] == tags["/history"] == {"Forecasts"}
    assert tags["/scoreboard"] == tags["/performance"] == tags["/monitor/metrics"] == {"Monitoring"}
    assert "503" in document["paths"]["/predict"]["post"]["responses"]
    assert "503" in document["paths"]["/scoreboard"]["get"]["responses"]
    assert {tag["name"] for tag in document["tags"]} == {"Forecasts", "Monitoring", "Infrastructure"}


def listening_addresses(port: int) -> set[str]:
    """Local addresses of the TCP sockets listening on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_bentoml_serve_binds_loopback_unless_told_otherwise(world: World) -> None:
    assert listening_addresses(world.port) == {"0100007F"}  # 127.0.0.1, not 0.0.0.0 or ::


def test_predict_answers_from_online_features_and_the_production_model(world: World) -> None:
    response = world.post("/predict", {"symbol": "BTC/USDT"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == set(Prediction.model_fields)
    assert body["as_of"] == "2024-02-29T23:00:00Z" and body["target_time"] == "2024-03-01T00:00:00Z"
    assert body["last_close"] == body["persistence_close"] == 61130.98
    assert body["model"] == registry.production_tag(world.settings.registry_dir, world.settings.model_name)
    assert 590 <= body["features_age_seconds"] <= 900 and body["stale"] is False
    assert body["direction"] == ("up" if body["predicted_return"] >= 0 else "down")
    assert body["band"]["low"] < body["predicted_close"] < body["band"]["high"]

    batch = world.post("/predict_batch", {"symbols": ["ETH/USDT", "BTC/USDT"]})
    assert batch.status_code == 200 and [p["symbol"] for p in batch.json()] == ["ETH/USDT", "BTC/USDT"]
    assert batch.json()[1]["predicted_close"] == body["predicted_close"]

    history = httpx.get(world.url + "/history", params={"symbol": "BTC/USDT", "hours": 12}).json()
    assert len(history["candles"]) == 12 and history["candles"][-1]["ts"] == body["as_of"]
    assert history["candles"][-1]["close"] == body["last_close"]


def test_the_answer_is_the_model_modules_prediction_on_the_offline_row(world: World) -> None:
    """The evaluation path (``estimator.predictions_frame``) on the same hour's row of the offline feature
    table gives exactly the service's answer, so serving cannot build its inputs differently."""
    body = world.post("/predict", {"symbol": "ETH/USDT"}).json()
    table = pd.read_parquet(world.settings.feature_table_path)
    row = table.loc[(table["symbol"] == "ETH/USDT") & (table["as_of"] == pd.Timestamp(body["as_of"]))]
    assert len(row) == 1
    with bentoml_home(world.settings.home.parent / "bentoml"):
        _, production, metadata = registry.load_production(
            world.settings.registry_dir, world.settings.model_name
        )
    calibration = estimator.Calibration.from_metadata(metadata["calibration"])
    offline = estimator.predictions_frame(
        production, row.assign(next_close=float("nan")), calibration=calibration
    )
    assert body["predicted_return"] == pytest.approx(float(offline["predicted_return"].iloc[0]), rel=1e-12)
    assert body["predicted_close"] == pytest.approx(float(offline["predicted_close"].iloc[0]), rel=1e-12)
    assert body["band"]["low"] == pytest.approx(float(offline["band_low"].iloc[0]), rel=1e-12)
    assert body["band"]["high"] == pytest.approx(float(offline["band_high"].iloc[0]), rel=1e-12)
    assert body["p_up"] == pytest.approx(float(offline["p_up"].iloc[0]), rel=1e-12)


def raw_post(world: World, path: str, content: bytes, content_type: str | None) -> httpx.Response:
    headers = {"content-type": content_type} if content_type else {}
    return httpx.post(world.url + path, content=content, headers=headers, timeout=10)


def assert_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = ErrorBody.model_validate(response.json())
    assert body.status == status and body.error and set(response.json()) == {"error", "status"}


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/predict", {"symbol": "DOGE/USDT"}, 404),
        ("/predict", {"symbol": "btc"}, 400),
        ("/predict", {"symbol": 42}, 400),
        ("/predict", {"sym": "BTC/USDT"}, 400),
        ("/predict", {"symbol": "BTC/USDT", "allow_stale": "maybe"}, 400),
        ("/predict", {"symbol": "BTC/USDT", "allow_stale": "yes"}, 400),
        ("/predict", {"symbol": "BTC/USDT", "allow_stale": 1}, 400),
        ("/predict", [], 400),
        ("/predict_batch", {"symbols": []}, 400),
        ("/predict_batch", {"symbols": ["BTC/USDT"] * (schema.MAX_BATCH_SYMBOLS + 1)}, 400),
        ("/predict_batch", {"symbols": ["BTC/USDT", "DOGE/USDT"]}, 404),
    ],
)
def test_bad_requests_get_one_error_shape(world: World, path: str, body: object, status: int) -> None:
    assert_error(world.post(path, body), status)


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"{not json", "application/json", 400),
        (b'{"symbol": "BTC/USDT"}', "text/plain", 415),
        (b'{"symbol": "BTC/USDT"}', "application/octet-stream", 415),
        (b'{"symbol": "BTC/USDT"}', None, 415),
        (b"symbol=BTC%2FUSDT", "application/x-www-form-urlencoded", 415),
        (
            b'--b\r\nContent-Disposition: form-data; name="symbol"\r\n\r\nBTC/USDT\r\n--b--\r\n',
            "multipart/form-data; boundary=b",
            415,
        ),
    ],
)
def test_only_json_bodies_are_read(
    world: World, content: bytes, content_type: str | None, status: int
) -> None:
    assert_error(raw_post(world, "/predict", content, content_type), status)


@pytest.mark.parametrize(
    ("method", "path", "params", "status"),
    [
        ("GET", "/history", {"symbol": "BTC/USDT", "hours": 0}, 400),
        ("GET", "/history", {"symbol": "BTC/USDT", "hours": 10_000}, 400),
        ("GET", "/history", {"symbol": "BTC/USDT", "hours": "x"}, 400),
        ("GET", "/history", {"hours": 3}, 400),
        ("GET", "/history", {"symbol": "DOGE/USDT"}, 404),
        ("GET", "/nowhere", {}, 404),
        ("GET", "/predict", {}, 405),
    ],
)
def test_every_path_answers_errors_in_the_same_shape(
    world: World, method: str, path: str, params: dict, status: int
) -> None:
    assert_error(httpx.request(method, world.url + path, params=params, timeout=10), status)


def read_answer(connection: socket.socket, first: bytes) -> bytes:
    """The whole HTTP answer (head and Content-Length body) that starts with ``first``."""
    answer = first
    while b"\r\n\r\n" not in answer:
        answer += connection.recv(65536)
    head, _, body = answer.partition(b"\r\n\r\n")
    length = int(
        next(
            line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
        )
    )
    while len(body) < length:
        body += connection.recv(65536)
    return head + b"\r\n\r\n" + body


def http_exchange(world: World, head: bytes, body_chunks: Iterator[bytes]) -> bytes:
    """Send ``head``, then body chunks until the server answers; its whole answer."""
    with socket.create_connection(("127.0.0.1", world.port), timeout=HANG_GUARD) as connection:
        connection.sendall(head)
        for chunk in body_chunks:
            readable, _, _ = select.select([connection], [], [], 0)
            if readable:
                break
            try:
                connection.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        return read_answer(connection, connection.recv(65536))


def test_a_10_mb_body_is_refused_before_it_is_read(world: World) -> None:
    declared = b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    answer = http_exchange(world, declared + b"Content-Length: 10485760\r\n\r\n", iter(()))  # no body sent
    assert answer.startswith(b"HTTP/1.1 413") and b'"status":413' in answer.replace(b" ", b"")

    chunk = b"1000\r\n" + b" " * 4096 + b"\r\n"  # chunked: the size is only known while reading
    chunks = (chunk for _ in range(10 * 256))
    answer = http_exchange(world, declared + b"Transfer-Encoding: chunked\r\n\r\n", chunks)
    assert answer.startswith(b"HTTP/1.1 413") and b'"status":413' in answer.replace(b" ", b"")
    assert world.post("/predict", {"symbol": "BTC/USDT"}).status_code == 200


def test_a_batch_answers_each_distinct_symbol_once(world: World) -> None:
    response = world.post("/predict_batch", {"symbols": ["ETH/USDT"] * 30 + ["BTC/USDT"] * 20})
    assert response.status_code == 200, response.text
    assert [p["symbol"] for p in response.json()] == ["ETH/USDT", "BTC/USDT"]


def test_rejected_requests_log_no_traceback(world: World) -> None:
    before = world.log_path.read_text().splitlines()
    for _ in range(30):
        world.post("/predict", {"symbol": "btc"})
        world.post("/predict", {"symbol": "DOGE/USDT"})
        raw_post(world, "/predict", b"x", "text/plain")
    added = world.log_path.read_text().splitlines()[len(before) :]
    assert len(added) <= 90 and not [line for line in added if "Traceback" in line or "ERROR" in line]


WARNING_LINE = re.compile(r"\.py:\d+: \w+: |py\.warnings")  # warnings.formatwarning, or logged


def test_the_log_carries_no_deprecation_noise(world: World, scored: dict[str, str]) -> None:
    """With every warning enabled (PYTHONWARNINGS=default) and the filters `hourcast serve` adds, after
    start-up, forecasts and the monitoring routes, the log holds no warning at all: neither those BentoML's
    own import raises (pathspec, pydantic) nor Feast's, ibis's or BentoML's later ones."""
    for path in ("/scoreboard", "/monitor/metrics", "/docs.json"):
        assert httpx.get(world.url + path, timeout=10).status_code == 200
    assert world.post("/predict", {"symbol": "BTC/USDT"}).status_code == 200
    lines = world.log_path.read_text().splitlines()
    warned = [line for line in lines if WARNING_LINE.search(line)]
    assert not warned, warned


def test_stale_features_are_refused_unless_allowed(world: World) -> None:
    world.replay.advance(3 * 3600)  # the exchange's clock moves on; no new candles arrive
    try:
        wait_for(
            lambda: world.post("/predict", {"symbol": "BTC/USDT"}).status_code == 503, 10, "the clock to move"
        )
        refused = world.post("/predict", {"symbol": "BTC/USDT"})
        assert_error(refused, 503)
        assert "3.2 h old" in refused.text and "allow_stale" in refused.text
        allowed = world.post("/predict", {"symbol": "BTC/USDT", "allow_stale": True})
        assert allowed.status_code == 200 and allowed.json()["stale"] is True
    finally:
        world.replay.set_now(CLOCK)
    wait_for(lambda: world.post("/predict", {"symbol": "BTC/USDT"}).status_code == 200, 10, "fresh again")


def assert_refused_at_once(world: World) -> None:
    """/predict of a stale cached forecast answers 503 naming the store (even with allow_stale), health
    endpoints answer, /readyz says not ready and why."""
    for allow_stale in (False, True) * 5:
        down = world.post("/predict", {"symbol": "BTC/USDT", "allow_stale": allow_stale}, timeout=HANG_GUARD)
        assert_error(down, 503)
        assert f"127.0.0.1:{world.redis.port}" in down.text
        for probe in ("/livez", "/healthz"):
            assert httpx.get(world.url + probe, timeout=HANG_GUARD).status_code == 200
        assert httpx.head(world.url + "/readyz", timeout=HANG_GUARD).status_code == 503
    readiness = world.readiness()
    assert not readiness.ready and readiness.online_store.startswith("down")
    assert f"127.0.0.1:{world.redis.port}" in readiness.problems[0]


def answered_until_stale_while_down(
    world: World, fault: Callable[[], None], repair: Callable[[], None]
) -> None:
    """Inject ``fault``: /readyz turns not ready; the cached forecasts are answered unchanged while fresh,
    and refused at once once their hour has closed; after ``repair`` /readyz is ready again within 2 s."""
    before = world.post("/predict", {"symbol": "BTC/USDT"}).json()
    fault()
    try:
        wait_for(lambda: not world.readiness().ready, 5, "/readyz to report the store down")
        cached = world.post("/predict", {"symbol": "BTC/USDT"}, timeout=HANG_GUARD)
        assert cached.status_code == 200, cached.text
        per_request = {"features_age_seconds", "stale", "clock"}
        assert {k: v for k, v in cached.json().items() if k not in per_request} == {
            k: v for k, v in before.items() if k not in per_request
        }
        assert cached.json()["stale"] is False
        world.replay.advance(3 * 3600)  # the exchange's clock moves on: the cached hour closes
        wait_for(
            lambda: world.post("/predict", {"symbol": "BTC/USDT"}, timeout=HANG_GUARD).status_code == 503,
            10,
            "the cached forecast to go stale",
        )
        assert_refused_at_once(world)
    finally:
        world.replay.set_now(CLOCK)
        repair()
    wait_for(lambda: world.readiness().ready, 2, "/readyz ready again within 2 s")


def test_a_frozen_redis_is_answered_from_memory_until_stale_and_recovery_is_seen(world: World) -> None:
    answered_until_stale_while_down(world, world.redis.freeze, world.redis.thaw)
    wait_for(lambda: world.post("/predict", {"symbol": "BTC/USDT"}).status_code == 200, 10, "fresh again")


def test_a_stopped_redis_that_restarts_empty_heals_with_one_materialize(world: World) -> None:
    # it restarts empty, on the same port: the forecast check sees the row gone
    answered_until_stale_while_down(world, world.redis.stop, world.redis.start)
    wait_for(
        lambda: world.post("/predict", {"symbol": "BTC/USDT"}).status_code == 503,
        predictor.FORECAST_CHECK_SECONDS + 3,
        "the lost online row to be seen",
    )
    empty = world.post("/predict", {"symbol": "BTC/USDT"})
    assert_error(empty, 503)
    assert "no online features" in empty.text and "rewrites it" in empty.text

    summary = featurestore.materialize(world.settings)  # what `hourcast materialize` and `ingest` run
    assert sorted(summary.healed) == ["BTC/USDT", "ETH/USDT"]
    assert world.post("/predict", {"symbol": "BTC/USDT"}).status_code == 200
    assert world.post("/predict", {"symbol": "ETH/USDT"}).status_code == 200
    assert featurestore.materialize(world.settings).healed == []  # nothing missing: nothing rewritten


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_the_api_keeps_its_openapi_contract(world: World, mode: GenerationMode) -> None:
    """Schemathesis against the service's own OpenAPI document (BentoML's /docs.json with the API's paths
    merged in): generated valid and invalid requests to every operation, each response checked for a
    server error, an undocumented status, content type or header, and a body that breaks its schema."""
    rejections = {"expected-statuses": [400, 404, 405, 413, 415]}  # 413: an invalid body that is also too big
    config = SchemathesisConfig.from_dict({"checks": {"negative_data_rejection": rejections}})
    schema = schemathesis.openapi.from_url(world.url + "/docs.json", config=config)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {"/predict", "/predict_batch", "/history", "/scoreboard", "/performance", "/monitor/metrics"} <= {
        operation.path for operation in operations
    }
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not (operation.body or operation.query):
            continue  # nothing to make invalid

        @given(case=operation.as_strategy(generation_mode=mode))
        @hypothesis_settings(
            max_examples=20, deadline=None, database=None, suppress_health_check=list(HealthCheck)
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(base_url=world.url, timeout=10)

        check()


def test_a_promotion_is_picked_up_under_load_without_a_failed_request(world: World) -> None:
    before = registry.production_tag(world.settings.registry_dir, world.settings.model_name)
    statuses: list[int] = []
    tags: list[str] = []
    stop = threading.Event()

    def load() -> None:
        with httpx.Client(base_url=world.url, timeout=10) as client:
            for _ in range(5000):  # bounded
                if stop.is_set():
                    return
                response = client.post("/predict", json={"symbol": "ETH/USDT"})
                statuses.append(response.status_code)
                if response.status_code == 200:
                    tags.append(response.json()["model"])

    worker = threading.Thread(target=load)
    worker.start()
    try:
        with bentoml_home(world.settings.home.parent / "bentoml"):
            newer = fast_fit(
                training.load_training_frame(world.settings, featurestore.open_store(world.settings))
            )
            _, _, metadata = registry.load_production(world.settings.registry_dir, world.settings.model_name)
            tag = registry.save_candidate(
                newer, world.settings.model_name, world.settings.registry_dir, labels={}, metadata=metadata
            )
            registry.promote(world.settings.registry_dir, world.settings.model_name, tag, "test promotion")
        wait_for(lambda: bool(tags) and tags[-1] == tag, 20, "the promoted model to be served")
        served = len(tags)
        wait_for(lambda: len(tags) >= served + 20, 20, "20 more answers from the new model")
    finally:
        stop.set()
        worker.join()
    assert statuses and set(statuses) == {200}, f"failed requests: {[s for s in statuses if s != 200][:5]}"
    assert tags[0] == before and tags[-1] == tag and set(tags[tags.index(tag) :]) == {tag}


def test_dashboard_draws_the_forecast_and_the_performance_of_the_running_service(
    world: World, scored: dict[str, str], page: Page, tmp_path: Path
) -> None:
    settings = Settings(
        symbols=["BTC/USDT", "ETH/USDT"], api_url=world.url, ui_refresh_seconds=0, _env_file=None
    )
    with running_dashboard(settings) as url:
        page.set_viewport_size({"width": 1400, "height": 1000})
        open_dashboard(page, url)
        select_symbol(page, "ETH/USDT")
        expected = httpx.post(world.url + "/predict", json={"symbol": "ETH/USDT"}).json()
        numbers, chart = page.locator("#numbers"), page.locator("#chart")
        expect(numbers).to_contain_text("ETH/USDT")
        expect(numbers).to_contain_text(format_price(expected["predicted_close"]))
        expect(numbers).to_contain_text(expected["model"])
        expect(chart.locator(".js-plotly-plot")).to_be_visible()
        expect(chart).to_contain_text("Predicted close")

        board = httpx.get(world.url + "/scoreboard", params={"symbol": "ETH/USDT", "window": "7d"}).json()
        served = next(row for row in board["rows"] if row["model"] == "all")
        view, figures = page.locator("#performance_chart"), page.locator("#performance_numbers")
        expect(view.locator(".js-plotly-plot")).to_be_visible()
        for text in (
            "ETH/USDT: how the forecasts fared",
            "Realised close",
            "MAE ratio",
            "Directional accuracy",
        ):
            expect(view).to_contain_text(text)
        expect(view).to_contain_text(f"model {scored['production'].split(':')[1][:8]} from here")
        expect(figures).to_contain_text(
            f"Model: {world.readiness().model}"
        )  # promoted since, if that test ran
        expect(figures).to_contain_text(f"{scored['previous']} until 2024-02-26 23:00 UTC")
        expect(figures.locator("table")).to_contain_text(f"{served['mae_ratio']:.3f}")
        page.locator("#performance").screenshot(path=tmp_path / "performance.png", animations="disabled")
        page.screenshot(path=tmp_path / "dashboard.png", full_page=True, animations="disabled")
    assert (tmp_path / "dashboard.png").stat().st_size > 20_000
    assert (tmp_path / "performance.png").stat().st_size > 20_000


def test_a_clean_shutdown_flushes_the_prediction_log(world: World) -> None:
    """Every answer is logged with the served band, including those still buffered at shutdown."""
    started = pd.Timestamp(datetime.now(UTC))
    with httpx.Client(base_url=world.url, timeout=10) as client:
        answers = [client.post("/predict", json={"symbol": "BTC/USDT"}) for _ in range(40)]
    assert {a.status_code for a in answers} == {200}
    processes = process_tree(world.server.pid)
    assert len(processes) >= 2  # the server and its worker
    os.killpg(world.server.pid, signal.SIGTERM)  # right away: these answers are still in the buffer
    world.server.wait(timeout=30)
    _, alive = psutil.wait_procs(processes, timeout=30)
    assert not alive, f"left running after a clean shutdown: {alive}"
    log = read_log(world.settings.predictions_dir)
    mine = log.loc[log["requested_at"] >= started]
    assert len(mine) == 40
    assert list(mine["band_low"]) == [a.json()["band"]["low"] for a in answers]
    assert list(mine["band_high"]) == [a.json()["band"]["high"] for a in answers]
    assert {
        "requested_at",
        "symbol",
        "as_of",
        "target_time",
        "predicted_close",
        "last_close",
        "model",
        "stale",
        "features_age_seconds",
        "band_low",
        "band_high",
        *FEATURE_NAMES,
    } <= set(log.columns)
    assert set(log["symbol"]) == {"BTC/USDT", "ETH/USDT"}
