"""The prediction API over HTTP: a real `hourcast serve` (bentoml serve) subprocess, a real model in a
temporary BentoML home, features in a real Redis the test starts on its own port, and the replay
exchange as the clock."""

from __future__ import annotations

import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from catboost import CatBoostRegressor
from playwright.sync_api import Page, expect

from hourcast import featurestore, model, registry, training
from hourcast.dashboard import build_app, format_price
from hourcast.dev.replay import ReplayExchange, ReplayServer
from hourcast.features import FEATURE_NAMES
from hourcast.prediction_log import read_log
from hourcast.settings import Settings
from tests.integration.conftest import bentoml_home, free_port, store_recorded
from tests.integration.test_dashboard_browser import open_dashboard, select_symbol

REPO = Path(__file__).resolve().parents[2]
CLOCK = "2024-03-01T00:10:00Z"  # ten minutes after the last stored candle closed


def process_group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True


def fast_fit(frame: pd.DataFrame, params: dict | None = None) -> CatBoostRegressor:
    return model.fit(frame, {**(params or {}), "iterations": 40})


class RedisServer:
    """A redis-server of the test's own (append-only file, so its data survives a restart)."""

    def __init__(self, directory: Path) -> None:
        self.directory, self.port, self.process = directory, free_port(), None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is needed (the CI script installs it)"
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--dir",
                str(self.directory),
            ],
            stdout=subprocess.DEVNULL,
        )
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None


@dataclass
class World:
    settings: Settings
    url: str
    replay: ReplayExchange
    redis: RedisServer
    server: subprocess.Popen

    def post(self, path: str, body: object) -> httpx.Response:
        return httpx.post(self.url + path, json=body, timeout=10)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, recorded_files: dict) -> Iterator[World]:
    home = tmp_path_factory.mktemp("service")
    redis = RedisServer(home)
    redis.start()
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
    )
    store_recorded(settings, recorded_files, days=25, end="2024-03-01")
    featurestore.materialize(settings)
    with bentoml_home(home / "bentoml"):
        training.train(settings, fit_fn=fast_fit)
    port = free_port()
    with ReplayServer(replay) as exchange:
        env = {
            **os.environ,
            "BENTOML_HOME": str(home / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "True",
            "HOURCAST_HOME": str(settings.home),
            "HOURCAST_SYMBOLS": "BTC/USDT,ETH/USDT",
            "HOURCAST_ONLINE_STORE": "redis",
            "HOURCAST_REDIS_URL": redis.url,
            "HOURCAST_FEATURE_REPO": str(REPO / "feature_repo"),
            "HOURCAST_EXCHANGE_URL": exchange.url,
            "HOURCAST_MODEL_REFRESH_SECONDS": "0.3",
            "HOURCAST_PREDICTION_FLUSH_SECONDS": "0.5",
        }
        hourcast = str(Path(sys.executable).with_name("hourcast"))
        server = subprocess.Popen(
            [hourcast, "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert server.poll() is None, "bentoml serve exited"
            time.sleep(0.3)
        else:
            raise AssertionError("the service did not become ready in 90 s")
        yield World(settings, url, replay, redis, server)
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGKILL)
    redis.stop()


def expected_prediction(world: World, symbol: str) -> float:
    """What the production model gives on the online features, computed here, outside the service."""
    feature_store = featurestore.open_store(world.settings)
    service = feature_store.get_feature_service(featurestore.SERVING_SERVICE)
    values = feature_store.get_online_features(features=service, entity_rows=[{"symbol": symbol}]).to_dict()
    with bentoml_home(world.settings.home.parent / "bentoml"):
        _, production, _ = registry.load_production(world.settings.registry_dir, world.settings.model_name)
    row = [symbol, *(values[name][0] for name in FEATURE_NAMES)]
    return values["last_close"][0] * math.exp(production.predict([row])[0])


def test_predict_answers_from_online_features_and_the_production_model(world: World) -> None:
    response = world.post("/predict", {"symbol": "BTC/USDT"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert set(body) == {
        "symbol",
        "as_of",
        "target_time",
        "last_close",
        "predicted_close",
        "predicted_return",
        "direction",
        "persistence_close",
        "model",
        "features_age_seconds",
        "stale",
        "band",
    }
    assert body["as_of"] == "2024-02-29T23:00:00Z" and body["target_time"] == "2024-03-01T00:00:00Z"
    assert body["last_close"] == body["persistence_close"] == 61130.98
    assert body["model"] == registry.production_tag(world.settings.registry_dir, world.settings.model_name)
    assert 590 <= body["features_age_seconds"] <= 900 and body["stale"] is False
    assert body["direction"] == ("up" if body["predicted_return"] >= 0 else "down")
    assert body["band"]["low"] < body["predicted_close"] < body["band"]["high"]
    assert body["predicted_close"] == pytest.approx(expected_prediction(world, "BTC/USDT"), rel=1e-12)

    batch = world.post("/predict_batch", {"symbols": ["ETH/USDT", "BTC/USDT"]})
    assert batch.status_code == 200 and [p["symbol"] for p in batch.json()] == ["ETH/USDT", "BTC/USDT"]
    assert batch.json()[1]["predicted_close"] == body["predicted_close"]

    history = httpx.get(world.url + "/history", params={"symbol": "BTC/USDT", "hours": 12}).json()
    assert len(history["candles"]) == 12 and history["candles"][-1]["ts"] == body["as_of"]
    assert history["candles"][-1]["close"] == body["last_close"]


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/predict", {"symbol": "DOGE/USDT"}, 404),
        ("/predict", {"symbol": "btc"}, 400),
        ("/predict", {"symbol": 42}, 400),
        ("/predict", {"sym": "BTC/USDT"}, 400),
        ("/predict", {"symbol": "BTC/USDT", "allow_stale": "maybe"}, 400),
        ("/predict", [], 400),
        ("/predict_batch", {"symbols": []}, 400),
        ("/predict_batch", {"symbols": ["BTC/USDT", "DOGE/USDT"]}, 404),
    ],
)
def test_bad_requests_get_a_clear_4xx(world: World, path: str, body: object, status: int) -> None:
    response = world.post(path, body)
    assert response.status_code == status, response.text
    assert "error" in response.text


@pytest.mark.parametrize(
    "query",
    [
        {"symbol": "BTC/USDT", "hours": 0},
        {"symbol": "BTC/USDT", "hours": 10_000},
        {"symbol": "BTC/USDT", "hours": "x"},
        {"hours": 3},
        {"symbol": "DOGE/USDT"},
    ],
)
def test_bad_history_queries_get_a_4xx(world: World, query: dict) -> None:
    response = httpx.get(world.url + "/history", params=query)
    assert 400 <= response.status_code < 500, response.text


def test_not_json_is_a_4xx(world: World) -> None:
    response = httpx.post(
        world.url + "/predict", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert 400 <= response.status_code < 500


def test_stale_features_are_refused_unless_allowed(world: World) -> None:
    world.replay.advance(3 * 3600)  # the exchange's clock moves on; no new candles arrive
    try:
        time.sleep(1.0)  # the service re-reads the exchange clock every 0.3 s
        refused = world.post("/predict", {"symbol": "BTC/USDT"})
        assert refused.status_code == 503
        assert "3.2 h old" in refused.text and "allow_stale" in refused.text
        allowed = world.post("/predict", {"symbol": "BTC/USDT", "allow_stale": True})
        assert allowed.status_code == 200 and allowed.json()["stale"] is True
    finally:
        world.replay.set_now(CLOCK)
        time.sleep(1.0)
    assert world.post("/predict", {"symbol": "BTC/USDT"}).json()["stale"] is False


def test_redis_down_is_a_503_naming_the_store_and_the_service_recovers(world: World) -> None:
    world.redis.stop()
    try:
        down = world.post("/predict", {"symbol": "BTC/USDT"})
        assert down.status_code == 503 and f"127.0.0.1:{world.redis.port}" in down.text
        assert httpx.get(world.url + "/livez").status_code == 200
    finally:
        world.redis.start()
    deadline = time.monotonic() + 15
    while world.post("/predict", {"symbol": "BTC/USDT"}).status_code != 200:
        assert time.monotonic() < deadline, "the service did not recover after Redis came back"
        time.sleep(0.2)


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
        deadline = time.monotonic() + 20
        while not tags or tags[-1] != tag:
            assert time.monotonic() < deadline, "the promoted model was not picked up"
            time.sleep(0.1)
        time.sleep(0.5)
    finally:
        stop.set()
        worker.join()
    assert statuses and set(statuses) == {200}, f"failed requests: {[s for s in statuses if s != 200][:5]}"
    assert tags[0] == before and tags[-1] == tag


def test_dashboard_draws_the_forecast_of_the_running_service(
    world: World, page: Page, tmp_path: Path
) -> None:
    settings = Settings(
        symbols=["BTC/USDT", "ETH/USDT"], api_url=world.url, ui_refresh_seconds=0, _env_file=None
    )
    demo = build_app(settings)
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        open_dashboard(page, url)
        select_symbol(page, "ETH/USDT")
        expected = httpx.post(world.url + "/predict", json={"symbol": "ETH/USDT"}).json()
        numbers, chart = page.locator("#numbers"), page.locator("#chart")
        expect(numbers).to_contain_text("ETH/USDT")
        expect(numbers).to_contain_text(format_price(expected["predicted_close"]))
        expect(numbers).to_contain_text(expected["model"])
        expect(chart.locator(".js-plotly-plot")).to_be_visible()
        expect(chart).to_contain_text("Predicted close")
        page.screenshot(path=tmp_path / "dashboard.png", full_page=True, animations="disabled")
    finally:
        demo.close()
    assert (tmp_path / "dashboard.png").stat().st_size > 20_000


def test_a_clean_shutdown_flushes_the_prediction_log(world: World) -> None:
    """Every answer since the last periodic flush is written when the service stops."""
    time.sleep(1.0)  # let the periodic writer catch up (every 0.5 s)
    before = len(read_log(world.settings.predictions_dir))
    with httpx.Client(base_url=world.url, timeout=10) as client:
        answered = sum(
            client.post("/predict", json={"symbol": "BTC/USDT"}).status_code == 200 for _ in range(40)
        )
    os.killpg(world.server.pid, signal.SIGTERM)  # right away: these answers are still in the buffer
    world.server.wait(timeout=30)
    deadline = time.monotonic() + 30
    while process_group_alive(world.server.pid):  # the workers finish after the arbiter is told to stop
        assert time.monotonic() < deadline, "the service did not shut down within 30 s"
        time.sleep(0.1)
    log = read_log(world.settings.predictions_dir)
    assert answered == 40 and len(log) == before + answered
    assert {
        "requested_at",
        "symbol",
        "as_of",
        "target_time",
        "predicted_close",
        "last_close",
        "model",
        *FEATURE_NAMES,
    } <= set(log.columns)
    assert set(log["symbol"]) == {"BTC/USDT", "ETH/USDT"}
