"""Prediction API benchmark: wrk against a real `hourcast serve` (bentoml serve) with features in Redis
and no response cache, vs the bare in-process calls doing the same work (Feast online lookup +
CatBoost predict), in the same run.

Data: the last 40 days of the shared BTC/USDT and ETH/USDT files up to 2024-03-01, a model trained
with the default parameters. The feature-age limit is lifted (the recorded data is from 2024 and the
system clock is today's); staleness itself is covered by the tests.

Run: uv run python benchmarks/serve.py   (needs Redis on 127.0.0.1:6379 and `wrk`: apt-get install wrk)
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
import redis
from _common import REPO, summarize, write_results

from hourcast import featurestore, registry, store, training
from hourcast.dev.replay import load_candles_file
from hourcast.dev.samples import sample_files
from hourcast.features import FEATURE_NAMES
from hourcast.settings import Settings

REDIS_URL = "redis://127.0.0.1:6379/12"
PORT = 3970
SECONDS = int(os.environ.get("BENCH_SECONDS", "15"))
LUA = """wrk.method = "POST"
wrk.body = '{"symbol": "BTC/USDT"}'
wrk.headers["Content-Type"] = "application/json"
"""


def prepare(home: Path) -> Settings:
    settings = Settings(
        home=home / "data",
        symbols=list(sample_files()),
        online_store="redis",
        redis_url=REDIS_URL,
        feature_repo=REPO / "feature_repo",
        max_feature_age_seconds=10**9,
    )
    for symbol, path in sample_files().items():
        frame = load_candles_file(path)
        frame = frame.loc[(frame["ts"] >= "2024-01-21") & (frame["ts"] < "2024-03-01")]
        frame = frame.assign(symbol=symbol, exchange="binance", timeframe="1h")
        store.upsert(settings.candles_dir, store.Series("binance", symbol, "1h"), frame)
    redis.Redis.from_url(REDIS_URL).flushdb()
    featurestore.materialize(settings)
    training.train(settings)
    return settings


def wrk(connections: int, seconds: int, script: Path) -> dict:
    threads = min(2, connections)
    out = subprocess.run(
        [
            "wrk",
            f"-t{threads}",
            f"-c{connections}",
            f"-d{seconds}s",
            "--latency",
            "-s",
            str(script),
            f"http://127.0.0.1:{PORT}/predict",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    def latency(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 3)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "connections": connections,
        "p50_ms": latency("50%"),
        "p99_ms": latency("99%"),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "non_2xx": int(errors.group(1)) if errors else 0,
    }


def bare(settings: Settings, runs: int = 3000) -> dict:
    """Feast online lookup + CatBoost predict, in this process, one request's work at a time."""
    feature_store = featurestore.open_store(settings)
    service = feature_store.get_feature_service(featurestore.SERVING_SERVICE)
    _, model, _ = registry.load_production(settings.registry_dir, settings.model_name)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        values = feature_store.get_online_features(
            features=service, entity_rows=[{"symbol": "BTC/USDT"}]
        ).to_dict()
        model.predict([["BTC/USDT", *(values[name][0] for name in FEATURE_NAMES)]])
        samples.append(time.perf_counter() - started)
    figures = summarize(samples[100:])
    figures["p99_ms"] = round(float(np.quantile(samples[100:], 0.99)) * 1000, 3)
    figures["calls_per_s_one_thread"] = round(1 / float(np.mean(samples[100:])), 1)
    return figures


def main() -> None:
    assert shutil.which("wrk"), "install wrk: apt-get install wrk"
    home = Path(tempfile.mkdtemp(prefix="hourcast-bench-serve-"))
    os.environ.update({"BENTOML_HOME": str(home / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"})
    settings = prepare(home)
    env = {
        **os.environ,
        "HOURCAST_HOME": str(settings.home),
        "HOURCAST_SYMBOLS": ",".join(sample_files()),
        "HOURCAST_ONLINE_STORE": "redis",
        "HOURCAST_REDIS_URL": REDIS_URL,
        "HOURCAST_FEATURE_REPO": str(REPO / "feature_repo"),
        "HOURCAST_MAX_FEATURE_AGE_SECONDS": str(10**9),
    }
    hourcast = str(Path(sys.executable).with_name("hourcast"))
    server = subprocess.Popen(
        [hourcast, "serve", "--port", str(PORT)],
        cwd=REPO,
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                if httpx.get(f"http://127.0.0.1:{PORT}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        script = home / "predict.lua"
        script.write_text(LUA)
        wrk(4, 3, script)  # warm-up
        figures = {
            "service_c1": wrk(1, SECONDS, script),
            "service_c16": wrk(16, SECONDS, script),
            "bare_in_process": bare(settings),
            "targets": {"c1_p50_ms": 3, "c1_p99_ms": 10, "c16_requests_per_s": 800, "c16_p99_ms": 50},
        }
        figures["ratio_c1_p50_service_to_bare"] = round(
            figures["service_c1"]["p50_ms"] / figures["bare_in_process"]["median_ms"], 1
        )
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        redis.Redis.from_url(REDIS_URL).flushdb()
        shutil.rmtree(home, ignore_errors=True)
    write_results("serve", figures)


if __name__ == "__main__":
    main()
