"""Prediction API benchmark: wrk against a real `hourcast serve` (bentoml serve, 2 workers) with features in
a Redis of the benchmark's own, vs the bare in-process calls doing the same work (Feast online lookup +
CatBoost predict), in the same run.

Figures: healthy /predict at concurrency 1 and 16; single /predict while 4 clients send 50-symbol batches;
with Redis frozen (SIGSTOP) and stopped, the 503 latency of /predict and the latency of /readyz and
/livez, and how long /readyz takes to say ready after Redis is back. Every wrk run also gives the server's
CPU per answer. The health probes are timed alone at concurrency 1 (never while wrk floods /predict on the
same cores), each fault window beside a bare uvicorn answering the same body from memory: on a machine shared
with other work the latency tail is mostly the machine's, and that floor shows how much.

Data: the last 40 days of the bundled BTC/USDT and ETH/USDT candles up to 2024-03-01, a model trained with
the default parameters. The feature-age limit is lifted (the recorded data is from 2024 and the system
clock is today's, so every forecast's target hour is long over): requests send ``allow_stale`` and are
answered in full (online read, model, band), flagged stale; staleness itself is covered by the tests.
A healthy run that gets any non-2xx answer stops the benchmark rather than time errors.

Run: uv run python benchmarks/serve.py   (needs redis-server and `wrk`: apt-get install redis-server wrk)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import psutil
from _common import REPO, argument_parser, hourcast_serve, summarize, write_results

from hourcast.data import store
from hourcast.dev.ports import free_port
from hourcast.dev.redis_server import RedisServer
from hourcast.dev.replay.data import load_candles_file
from hourcast.dev.samples import sample_files
from hourcast.features import featurestore
from hourcast.features.compute import FEATURE_NAMES
from hourcast.model import registry, training
from hourcast.settings import Settings

FAULT_SECONDS = 5
PREDICT_LUA = """wrk.method = "POST"
wrk.body = '{"symbol": "BTC/USDT", "allow_stale": true}'
wrk.headers["Content-Type"] = "application/json"
"""


BARE_HEALTH = """
import sys, uvicorn
body = sys.argv[2].encode()
headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
async def app(scope, receive, send):
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 503, "headers": headers})
        await send({"type": "http.response.body", "body": body})
uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False)
"""


def prepare(home: Path, redis_url: str) -> Settings:
    settings = Settings(
        home=home / "data",
        symbols=list(sample_files()),
        online_store="redis",
        redis_url=redis_url,
        feature_repo=REPO / "feature_repo",
        max_feature_age_seconds=10**9,
        _env_file=None,
    )
    for symbol, path in sample_files().items():
        frame = load_candles_file(path)
        frame = frame.loc[(frame["ts"] >= "2024-01-21") & (frame["ts"] < "2024-03-01")]
        frame = frame.assign(symbol=symbol, exchange="binance", timeframe="1h")
        store.upsert(settings.candles_dir, store.Series("binance", symbol, "1h"), frame)
    featurestore.materialize(settings)
    training.train(settings)
    return settings


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds the processes have used so far."""
    return sum(sum(process.cpu_times()[:2]) for process in processes)


def wrk(url: str, connections: int, seconds: int, script: Path | None, server: list[psutil.Process]) -> dict:
    """wrk's figures, and the CPU the ``server`` processes spent per answer meanwhile (a figure other
    programs on the machine cannot inflate, unlike the latency tail)."""
    threads = min(2, connections)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url]
    if script is not None:
        command[-1:-1] = ["-s", str(script)]
    used = cpu_seconds(server)
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    used = cpu_seconds(server) - used

    def latency(label: str) -> float:
        value, unit = re.search(rf"^\s+{label}\s+([\d.]+)(us|ms|s)\s*$", out, re.M).groups()
        return round(float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit], 3)

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    answered = int(re.search(r"(\d+) requests in", out).group(1))
    return {
        "connections": connections,
        "p50_ms": latency("50%"),
        "p99_ms": latency("99%"),
        "requests_per_s": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "non_2xx": int(errors.group(1)) if errors else 0,
        "server_cpu_ms_per_request": round(used * 1000 / max(answered, 1), 3),
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


def under_batch_load(
    base: str, script: Path, server: list[psutil.Process], seconds: int, clients: int = 4
) -> dict:
    """Single /predict at concurrency 1 while ``clients`` threads send 50-symbol batches back to back."""
    stop = threading.Event()
    batches: list[int] = []

    def send_batches() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while not stop.is_set():
                response = client.post(
                    "/predict_batch", json={"symbols": list(sample_files()) * 25, "allow_stale": True}
                )
                batches.append(response.status_code)

    workers = [threading.Thread(target=send_batches) for _ in range(clients)]
    for worker in workers:
        worker.start()
    try:
        figures = wrk(f"{base}/predict", 1, seconds, script, server)
    finally:
        stop.set()
        for worker in workers:
            worker.join()
    del figures["server_cpu_ms_per_request"]  # the batches' CPU too: not a figure per answer here
    figures["batch_clients"] = clients
    figures["batches_answered"] = len(batches)
    figures["batch_statuses"] = sorted(set(batches))
    return figures


def health_floor(body: str, seconds: int) -> dict:
    """The machine's floor for a health probe right now: wrk at concurrency 1 against a bare uvicorn
    (the server BentoML's workers run) answering ``body`` from memory, with no framework in between."""
    port = free_port()
    floor = subprocess.Popen([sys.executable, "-c", BARE_HEALTH, str(port), body])
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        return wrk(f"http://127.0.0.1:{port}/readyz", 1, seconds, None, [psutil.Process(floor.pid)])
    finally:
        floor.terminate()
        floor.wait(timeout=10)


def store_fault(
    base: str, own_redis: RedisServer, script: Path, fault: str, server: list[psutil.Process]
) -> dict:
    """/predict, /readyz and /livez while Redis is frozen or stopped; then seconds until /readyz is 200.

    Each figure is its own wrk run, one after the other: the health probes are timed alone at concurrency
    1 (as a load balancer probes), not while wrk floods /predict on the same two cores, and beside them the
    floor of the machine at that moment (``health_floor``): on a machine shared with other work, a latency
    tail both show is the machine's, not the service's."""
    if fault == "frozen":
        own_redis.freeze()
    else:
        own_redis.stop()
    try:
        figures = {
            "predict_c1": wrk(f"{base}/predict", 1, FAULT_SECONDS, script, server),
            "predict_c16": wrk(f"{base}/predict", 16, FAULT_SECONDS, script, server),
            "readyz_c1": wrk(f"{base}/readyz", 1, FAULT_SECONDS, None, server),
            "livez_c1": wrk(f"{base}/livez", 1, FAULT_SECONDS, None, server),
            "bare_uvicorn_health_c1": health_floor(
                httpx.get(f"{base}/readyz", timeout=5).text, FAULT_SECONDS
            ),
        }
    finally:
        if fault == "frozen":
            own_redis.thaw()
        else:
            own_redis.start()
    back = time.monotonic()
    while httpx.get(f"{base}/readyz", timeout=5).status_code != 200:
        time.sleep(0.01)
    figures["readyz_ready_after_recovery_s"] = round(time.monotonic() - back, 3)
    return figures


def main() -> None:
    parser = argument_parser(__doc__, "serve")
    parser.add_argument(
        "--seconds", type=int, default=15, help="seconds of each healthy wrk run (default: %(default)s)"
    )
    args = parser.parse_args()
    assert shutil.which("wrk"), "install wrk: apt-get install wrk"
    home = Path(tempfile.mkdtemp(prefix="hourcast-bench-serve-"))
    os.environ.update({"BENTOML_HOME": str(home / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"})
    own_redis = RedisServer().start()
    settings = prepare(home, own_redis.url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "HOURCAST_HOME": str(settings.home),
        "HOURCAST_SYMBOLS": ",".join(sample_files()),
        "HOURCAST_ONLINE_STORE": "redis",
        "HOURCAST_REDIS_URL": own_redis.url,
        "HOURCAST_FEATURE_REPO": str(REPO / "feature_repo"),
        "HOURCAST_MAX_FEATURE_AGE_SECONDS": str(10**9),
        "HOURCAST_SERVE_WORKERS": "2",
    }
    try:
        with hourcast_serve(env, port, home / "serve.log") as server:
            root = psutil.Process(server.pid)
            processes = [root, *root.children(recursive=True)]  # hourcast serve, bentoml, its workers
            script = home / "predict.lua"
            script.write_text(PREDICT_LUA)
            wrk(f"{base}/predict", 4, 3, script, processes)  # warm-up
            figures: dict = {
                "service_c1": wrk(f"{base}/predict", 1, args.seconds, script, processes),
                "service_c16": wrk(f"{base}/predict", 16, args.seconds, script, processes),
                "service_c1_under_4_batch_clients": under_batch_load(base, script, processes, args.seconds),
                "redis_frozen": store_fault(base, own_redis, script, "frozen", processes),
                "redis_stopped": store_fault(base, own_redis, script, "stopped", processes),
            }
            healthy = ("service_c1", "service_c16", "service_c1_under_4_batch_clients")
            failed = {name: figures[name]["non_2xx"] for name in healthy if figures[name]["non_2xx"]}
            if failed or figures["service_c1_under_4_batch_clients"]["batch_statuses"] != [200]:
                raise SystemExit(f"healthy runs got error answers, not forecasts: {failed}; see {home}")
            featurestore.materialize(settings)  # the stopped Redis came back empty: heal it for the bare run
            figures["bare_in_process"] = bare(settings)
            figures["targets"] = {
                "c1_p50_ms": 3,
                "c1_p99_ms": 10,
                "c16_requests_per_s": 800,
                "c16_p99_ms": 50,
                "fault_predict_503_p99_ms": 250,
                "fault_health_p99_ms": 50,
                "readyz_after_recovery_s": 2,
            }
            bare_median = figures["bare_in_process"]["median_ms"]
            figures["ratio_c1_p50_service_to_bare"] = round(figures["service_c1"]["p50_ms"] / bare_median, 1)
            figures["ratio_frozen_503_p99_to_bare_median"] = round(
                figures["redis_frozen"]["predict_c16"]["p99_ms"] / bare_median, 1
            )
            for fault in ("redis_frozen", "redis_stopped"):
                floor = figures[fault]["bare_uvicorn_health_c1"]["server_cpu_ms_per_request"]
                for probe in ("readyz_c1", "livez_c1"):
                    cpu = figures[fault][probe]["server_cpu_ms_per_request"]
                    figures[fault][f"ratio_{probe}_cpu_to_bare_uvicorn"] = round(cpu / max(floor, 0.001), 1)
    finally:
        own_redis.stop()
        shutil.rmtree(home, ignore_errors=True)
    write_results(args.output, figures)


if __name__ == "__main__":
    main()
