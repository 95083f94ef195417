"""Prediction API benchmark: wrk against a real `hourcast serve` (bentoml serve, 2 workers) answering from its
in-memory forecasts, in the same run as

* the floor: a bare Starlette app on uvicorn (2 workers) answering the same JSON bodies from memory;
* BentoML's floor: `bentoml serve` (2 workers, the service's own configuration) of a trivial service
  mounting that same Starlette app: what BentoML's server and middlewares cost per request by themselves;
* the service lean: `hourcast serve` again with those two middlewares switched off by configuration;
* BentoML's lean floor: the same trivial service with BentoML's per-request tracing (OpenTelemetry ASGI)
  and metrics (Prometheus) middlewares switched off: what those two cost, by difference;
* the bare in-process call doing the work per request without the cache (Feast online lookup + CatBoost).

Figures: /predict at concurrency 1 and 16 and /predict_batch of 100 symbols at concurrency 1 and 16, each
with p50, p99, requests/s and the server's CPU per answer (a figure other programs on the machine cannot
inflate, unlike the latency tail), and the ratios to both floors; /predict at concurrency 1 again from one
client timing each request (wrk's percentiles at one connection are not consistent with its own rate);
single /predict while 4 clients send 50-symbol batches; with Redis frozen (SIGSTOP) and stopped,
/predict (answered from memory: the forecasts are fresh), /readyz and /livez, and how long /readyz takes to
say ready after Redis is back. The health probes are timed alone at concurrency 1, each fault window beside
a bare uvicorn answering the same body from memory. The load average and time are recorded: on a shared
machine, compare ratios of one run.

Data: the last 40 days up to 2024-03-01 of the bundled BTC/USDT and ETH/USDT candles and of 98 synthetic
symbols derived from them (100 symbols), a model trained with the default parameters on BTC/USDT and
ETH/USDT; the service's clock is a replay exchange standing ten minutes after the last candle closed, so
every forecast is fresh. A healthy run that gets any non-2xx answer stops the benchmark rather than time
errors.

Run: uv run python benchmarks/serve.py   (needs redis-server and `wrk`: apt-get install redis-server wrk)
"""

from __future__ import annotations

import datetime
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import psutil
from _common import REPO, argument_parser, hourcast_serve, summarize, write_results

from hourcast.data import store
from hourcast.dev.ports import free_port
from hourcast.dev.redis_server import RedisServer
from hourcast.dev.replay.data import load_candles_file, synthetic_datasets
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.dev.samples import sample_files
from hourcast.features import featurestore
from hourcast.features.compute import FEATURE_NAMES
from hourcast.model import registry, training
from hourcast.settings import Settings

WORKERS = 2
BATCH_SYMBOLS = 100
CLOCK = "2024-03-01T00:10:00Z"  # ten minutes after the last stored candle closed: every forecast fresh
FAULT_SECONDS = 5
TARGETS = {
    "predict_c16_requests_per_s": 3000,
    "predict_c16_floor_to_service_requests_per_s_at_most": 1.5,
    "predict_c1_p99_ms": 5,
    "cpu_per_answer_service_to_floor_at_most": 1.5,
    "fault_health_p99_ms": 50,
    "readyz_after_recovery_s": 2,
}
# BentoML's per-request tracing and metrics middlewares off (BentoML configuration, no code change)
LEAN_BENTOML = {
    "BENTOML_CONFIG_OVERRIDES": json.dumps(
        {"services": {"hourcast": {"tracing": {"excluded_urls": [".*"]}, "metrics": {"enabled": False}}}}
    )
}
SCENARIOS = {
    "predict_c1": ("/predict", 1),
    "predict_c16": ("/predict", 16),
    "predict_batch_100_c1": ("/predict_batch", 1),
    "predict_batch_100_c16": ("/predict_batch", 16),
}
TIMED_SCENARIO = "predict_c1_timed"
"""/predict at concurrency 1 from one Python client timing each request (``timed_requests``)."""
PREDICT_BODY = {"symbol": "BTC/USDT"}

FLOOR_APP = """
# The floor: Starlette answering the service's own JSON bodies from memory (the request body is read).
import json, os
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

BODIES = json.loads(open(os.environ["FLOOR_BODIES"]).read())

def answering(body):
    async def endpoint(request):
        await request.body()
        return Response(body, media_type="application/json")
    return endpoint

app = Starlette(routes=[
    Route("/predict", answering(BODIES["predict"]), methods=["POST"]),
    Route("/predict_batch", answering(BODIES["predict_batch"]), methods=["POST"]),
    Route("/readyz", answering("{}"), methods=["GET"]),
])
"""

BENTO_FLOOR = """
# BentoML's floor: the Starlette floor mounted on a trivial service configured as hourcast's.
import bentoml
from floor import app

@bentoml.service(
    name="floor",
    workers=2,
    traffic={"timeout": 10},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": ["/readyz$", "/livez$", "/healthz$"]},
)
@bentoml.asgi_app(app, path="/")
class Floor:
    pass


# The same without BentoML's per-request tracing and metrics middlewares: what its server costs by itself.
@bentoml.service(
    name="lean_floor",
    workers=2,
    traffic={"timeout": 10},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": [".*"]},
    metrics={"enabled": False},
)
@bentoml.asgi_app(app, path="/")
class LeanFloor:
    pass
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


def recorded() -> dict[str, pd.DataFrame]:
    """The bundled recorded candles (BTC/USDT, ETH/USDT)."""
    return {symbol: load_candles_file(path) for symbol, path in sample_files().items()}


def candles() -> dict[str, pd.DataFrame]:
    """The recorded symbols and synthetic ones, ``BATCH_SYMBOLS`` in all."""
    frames = recorded()
    return frames | synthetic_datasets(BATCH_SYMBOLS - len(frames), frames)


def prepare(home: Path, redis_url: str, exchange_url: str) -> Settings:
    """The data home: 40 days of candles of every symbol, materialized; a model trained on the recorded
    two (CatBoost answers any symbol)."""
    frames = candles()
    settings = Settings(
        home=home / "data",
        symbols=list(frames),
        online_store="redis",
        redis_url=redis_url,
        exchange_url=exchange_url,
        feature_repo=REPO / "feature_repo",
        _env_file=None,
    )
    for symbol, frame in frames.items():
        frame = frame.loc[(frame["ts"] >= "2024-01-21") & (frame["ts"] < "2024-03-01")]
        frame = frame.assign(symbol=symbol, exchange="binance", timeframe="1h")
        store.upsert(settings.candles_dir, store.Series("binance", symbol, "1h"), frame)
    featurestore.materialize(settings)
    training.train(settings.model_copy(update={"symbols": list(sample_files())}))
    return settings


def cpu_seconds(processes: list[psutil.Process]) -> float:
    """User + system CPU seconds the processes have used so far."""
    return sum(sum(process.cpu_times()[:2]) for process in processes)


def process_tree(pid: int) -> list[psutil.Process]:
    """A server and every process it started (its workers)."""
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def wait_until(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    """Poll ``condition`` until it holds (``RuntimeError`` naming ``what`` after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


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


def timed_requests(url: str, body: dict, seconds: float, server: list[psutil.Process]) -> dict:
    """Concurrency 1 with every request timed by the client: one keep-alive connection POSTing ``body``
    for ``seconds``. wrk's latency percentiles at one connection break Little's law here (its mean
    latency times its request count exceeds the run's duration against BentoML), so the one-client p99 is
    taken from this loop; the client's own time (about 0.1 ms) is included in every figure."""
    host, port = url.removeprefix("http://").split("/")[0].split(":")
    path = "/" + url.removeprefix("http://").split("/", 1)[1]
    payload, headers = json.dumps(body).encode(), {"Content-Type": "application/json"}
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    latencies, failed = [], 0
    used, start = cpu_seconds(server), time.perf_counter()
    while time.perf_counter() - start < seconds:
        sent = time.perf_counter()
        connection.request("POST", path, body=payload, headers=headers)
        response = connection.getresponse()
        response.read()
        latencies.append(time.perf_counter() - sent)
        failed += response.status >= 300
    elapsed, used = time.perf_counter() - start, cpu_seconds(server) - used
    connection.close()
    ms = np.array(latencies) * 1000
    return {
        "connections": 1,
        "p50_ms": round(float(np.percentile(ms, 50)), 3),
        "p99_ms": round(float(np.percentile(ms, 99)), 3),
        "p999_ms": round(float(np.percentile(ms, 99.9)), 3),
        "max_ms": round(float(ms.max()), 3),
        "requests_per_s": round(len(ms) / elapsed, 1),
        "non_2xx": failed,
        "server_cpu_ms_per_request": round(used * 1000 / max(len(ms), 1), 3),
    }


def post_script(home: Path, name: str, body: dict) -> Path:
    """A wrk script POSTing ``body`` as JSON."""
    script = home / f"{name}.lua"
    script.write_text(
        f"wrk.method = \"POST\"\nwrk.body = '{json.dumps(body)}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    return script


def bare(settings: Settings, symbols: list[str], runs: int) -> dict:
    """Feast online lookup + CatBoost predict of ``symbols`` in this process, one request's work at a time
    (what each request cost before the forecasts were kept in memory)."""
    feature_store = featurestore.open_store(settings)
    service = feature_store.get_feature_service(featurestore.SERVING_SERVICE)
    _, model, _ = registry.load_production(settings.registry_dir, settings.model_name)
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        values = feature_store.get_online_features(
            features=service, entity_rows=[{"symbol": symbol} for symbol in symbols]
        ).to_dict()
        rows = [
            [symbol, *(values[name][index] for name in FEATURE_NAMES)] for index, symbol in enumerate(symbols)
        ]
        model.predict(rows)
        samples.append(time.perf_counter() - started)
    kept = samples[runs // 10 :]
    figures = summarize(kept)
    figures["p99_ms"] = round(float(np.quantile(kept, 0.99)) * 1000, 3)
    figures["calls_per_s_one_thread"] = round(1 / float(np.mean(kept)), 1)
    return figures


@contextmanager
def floor_server(command: list[str], home: Path, name: str) -> Iterator[tuple[str, list[psutil.Process]]]:
    """A floor server (``command``, with ``{port}`` a free port, run in ``home``, where ``floor.py`` and
    ``floor_bodies.json`` are); yields its URL and processes."""
    from tests.support.processes import running_server

    port = free_port()
    command = [part.replace("{port}", str(port)) for part in command]
    env = {**os.environ, "FLOOR_BODIES": str(home / "floor_bodies.json"), "PYTHONPATH": str(home)}
    ready = f"http://127.0.0.1:{port}/readyz"
    log = home / f"{name}.log"
    with running_server(command, ready, env=env, cwd=home, log_path=log, timeout=120) as server:
        yield f"http://127.0.0.1:{port}", process_tree(server.pid)


def health_floor(body: str, seconds: int) -> dict:
    """The machine's floor for a health probe right now: wrk at concurrency 1 against a bare uvicorn
    (the server BentoML's workers run) answering ``body`` from memory, with no framework in between."""
    port = free_port()
    floor = subprocess.Popen([sys.executable, "-c", BARE_HEALTH, str(port), body])
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 503
            except httpx.HTTPError:
                return False

        wait_until(answers, "the bare uvicorn", 30)
        return wrk(f"http://127.0.0.1:{port}/readyz", 1, seconds, None, [psutil.Process(floor.pid)])
    finally:
        floor.terminate()
        floor.wait(timeout=10)


def under_batch_load(
    base: str, script: Path, server: list[psutil.Process], seconds: int, batch: list[str], clients: int = 4
) -> dict:
    """Single /predict at concurrency 1 while ``clients`` threads send ``batch`` back to back."""
    stop = threading.Event()
    batches: list[int] = []

    def send_batches() -> None:
        with httpx.Client(base_url=base, timeout=30) as client:
            while not stop.is_set():
                batches.append(client.post("/predict_batch", json={"symbols": batch}).status_code)

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
    figures |= {"batch_clients": clients, "batch_symbols": len(batch), "batches_answered": len(batches)}
    figures["batch_statuses"] = sorted(set(batches))
    return figures


def store_fault(
    base: str, own_redis: RedisServer, script: Path, fault: str, server: list[psutil.Process]
) -> dict:
    """/predict (answered from memory: the forecasts are fresh), /readyz and /livez while Redis is frozen
    or stopped, once the service has seen it down; then seconds until /readyz is 200 again. Each figure is
    its own wrk run; the health probes are timed alone at concurrency 1, beside the floor of the machine at
    that moment (``health_floor``): a latency tail both show is the machine's, not the service's."""
    if fault == "frozen":
        own_redis.freeze()
    else:
        own_redis.stop()
    try:
        wait_until(lambda: httpx.get(f"{base}/readyz", timeout=5).status_code == 503, "the store seen down")
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
    wait_until(lambda: httpx.get(f"{base}/readyz", timeout=5).status_code == 200, "ready again")
    figures["readyz_ready_after_recovery_s"] = round(time.monotonic() - back, 3)
    floor = figures["bare_uvicorn_health_c1"]["server_cpu_ms_per_request"]
    for probe in ("readyz_c1", "livez_c1"):
        cpu = figures[probe]["server_cpu_ms_per_request"]
        figures[f"ratio_{probe}_cpu_to_bare_uvicorn"] = ratio(cpu, floor)
    return figures


def ratio(numerator: float, denominator: float) -> float:
    """``numerator / denominator`` to two decimals."""
    return round(numerator / max(denominator, 1e-9), 2)


def healthy_runs(
    servers: dict[str, tuple[str, list[psutil.Process]]], scripts: dict[str, Path], seconds: int
) -> dict[str, dict[str, dict]]:
    """Each scenario against each server in turn (a server is idle while another is measured): wrk's,
    then one client timing each ``/predict`` (``timed_requests``)."""
    runs = {
        scenario: {
            name: wrk(f"{url}{path}", connections, seconds, scripts[path], processes)
            for name, (url, processes) in servers.items()
        }
        for scenario, (path, connections) in SCENARIOS.items()
    }
    runs[TIMED_SCENARIO] = {
        name: timed_requests(f"{url}/predict", PREDICT_BODY, seconds, processes)
        for name, (url, processes) in servers.items()
    }
    return runs


def compare(runs: dict[str, dict[str, dict]], bare_figures: dict[str, dict]) -> dict[str, dict]:
    """Per scenario: the service against the floor, BentoML's floor and the bare call."""
    compared = {}
    for scenario, by_server in runs.items():
        service, floor, bento = by_server["service"], by_server["floor"], by_server["bentoml_floor"]
        call = bare_figures["batch_100" if scenario.startswith("predict_batch") else "single"]
        cpu = {name: figures["server_cpu_ms_per_request"] for name, figures in by_server.items()}
        compared[scenario] = {
            "floor_to_service_requests_per_s": ratio(floor["requests_per_s"], service["requests_per_s"]),
            "bentoml_floor_to_service_requests_per_s": ratio(
                bento["requests_per_s"], service["requests_per_s"]
            ),
            "service_to_floor_p99": ratio(service["p99_ms"], floor["p99_ms"]),
            "service_to_floor_cpu_per_answer": ratio(cpu["service"], cpu["floor"]),
            "bentoml_floor_to_floor_cpu_per_answer": ratio(cpu["bentoml_floor"], cpu["floor"]),
            "service_to_bentoml_floor_cpu_per_answer": ratio(cpu["service"], cpu["bentoml_floor"]),
            "bentoml_floor_to_lean_floor_cpu_per_answer": ratio(
                cpu["bentoml_floor"], cpu["bentoml_lean_floor"]
            ),
            "bentoml_tracing_and_metrics_cpu_ms_per_answer": round(
                cpu["bentoml_floor"] - cpu["bentoml_lean_floor"], 3
            ),
            "service_p50_to_bare_call_median": ratio(service["p50_ms"], call["median_ms"]),
            "service_requests_per_s_to_bare_calls_per_s": ratio(
                service["requests_per_s"], call["calls_per_s_one_thread"]
            ),
        }
    return compared


def table(runs: dict[str, dict[str, dict]], compared: dict[str, dict], bare_figures: dict[str, dict]) -> str:
    """The figures and their ratios as Markdown tables."""
    lines = [
        "| scenario | server | req/s | p50 ms | p99 ms | CPU ms/answer |",
        "| --- | --- | ---: | ---: | ---: | ---: |",
    ]
    for scenario, by_server in runs.items():
        for name, figures in by_server.items():
            lines.append(
                f"| {scenario} | {name} | {figures['requests_per_s']:,.0f} | {figures['p50_ms']:.2f} | "
                f"{figures['p99_ms']:.2f} | {figures['server_cpu_ms_per_request']:.3f} |"
            )
    for name, figures in bare_figures.items():
        lines.append(
            f"| bare Feast + CatBoost, {name} | in process, 1 thread | "
            f"{figures['calls_per_s_one_thread']:,.0f} | {figures['median_ms']:.2f} | "
            f"{figures['p99_ms']:.2f} | |"
        )
    lines += [
        "",
        "| scenario | floor/service req/s | service/floor CPU | BentoML floor/floor CPU "
        "| service/BentoML floor CPU | BentoML floor/lean floor CPU | BentoML tracing+metrics CPU ms "
        "| service p50/bare call |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    columns = [
        "floor_to_service_requests_per_s",
        "service_to_floor_cpu_per_answer",
        "bentoml_floor_to_floor_cpu_per_answer",
        "service_to_bentoml_floor_cpu_per_answer",
        "bentoml_floor_to_lean_floor_cpu_per_answer",
        "bentoml_tracing_and_metrics_cpu_ms_per_answer",
        "service_p50_to_bare_call_median",
    ]
    for scenario, ratios in compared.items():
        lines.append(f"| {scenario} | " + " | ".join(str(ratios[column]) for column in columns) + " |")
    return "\n".join(lines)


def machine_state() -> dict:
    """When, and how loaded the machine was (other programs may share its cores)."""
    return {
        "utc": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S"),
        "load_average_1_5_15": [round(load, 2) for load in os.getloadavg()],
        "cpus": os.cpu_count(),
    }


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
    replay = ReplayServer(ReplayExchange(recorded(), now=CLOCK)).start()
    figures: dict = {"workers": WORKERS, "targets": TARGETS}
    try:
        settings = prepare(home, own_redis.url, replay.url)
        batch = settings.symbols[:BATCH_SYMBOLS]
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        env = {
            **os.environ,
            "HOURCAST_HOME": str(settings.home),
            "HOURCAST_SYMBOLS": ",".join(settings.symbols),
            "HOURCAST_ONLINE_STORE": "redis",
            "HOURCAST_REDIS_URL": own_redis.url,
            "HOURCAST_EXCHANGE_URL": replay.url,
            "HOURCAST_FEATURE_REPO": str(REPO / "feature_repo"),
            "HOURCAST_SERVE_WORKERS": str(WORKERS),
        }
        scripts = {
            "/predict": post_script(home, "predict", PREDICT_BODY),
            "/predict_batch": post_script(home, "batch", {"symbols": batch}),
        }
        with hourcast_serve(env, port, home / "serve.log") as server:
            service = (base, process_tree(server.pid))  # hourcast serve, bentoml, its workers
            bodies = {
                "predict": httpx.post(f"{base}/predict", json=PREDICT_BODY, timeout=10).text,
                "predict_batch": httpx.post(
                    f"{base}/predict_batch", json={"symbols": batch}, timeout=10
                ).text,
            }
            (home / "floor_bodies.json").write_text(json.dumps(bodies))
            (home / "floor.py").write_text(FLOOR_APP)
            (home / "bento_floor.py").write_text(BENTO_FLOOR)
            uvicorn = [sys.executable, "-m", "uvicorn", "floor:app", "--port", "{port}"]
            uvicorn += ["--workers", str(WORKERS), "--log-level", "warning", "--no-access-log"]
            bentoml = [shutil.which("bentoml") or "bentoml", "serve", "bento_floor:Floor", "--port", "{port}"]
            lean = [*bentoml[:2], "bento_floor:LeanFloor", *bentoml[3:]]
            lean_port = free_port()
            with (
                floor_server(uvicorn, home, "floor") as floor,
                floor_server(bentoml, home, "bentoml_floor") as bento_floor,
                floor_server(lean, home, "bentoml_lean_floor") as lean_floor,
                hourcast_serve({**env, **LEAN_BENTOML}, lean_port, home / "serve_lean.log") as lean_server,
            ):
                servers = {
                    "service": service,
                    "service_lean": (f"http://127.0.0.1:{lean_port}", process_tree(lean_server.pid)),
                    "floor": floor,
                    "bentoml_floor": bento_floor,
                    "bentoml_lean_floor": lean_floor,
                }
                for url, processes in servers.values():  # warm-up
                    wrk(f"{url}/predict", 4, 2, scripts["/predict"], processes)
                figures["machine_at_start"] = machine_state()
                runs = figures["healthy"] = healthy_runs(servers, scripts, args.seconds)
                figures["machine_after_healthy_runs"] = machine_state()
            figures["service_c1_under_4_batch_clients"] = under_batch_load(
                base, scripts["/predict"], service[1], args.seconds, batch[:50]
            )
            failed = {
                f"{scenario}/{name}": run["non_2xx"]
                for scenario, by_server in runs.items()
                for name, run in by_server.items()
                if run["non_2xx"]
            }
            if failed or figures["service_c1_under_4_batch_clients"]["batch_statuses"] != [200]:
                raise SystemExit(f"healthy runs got error answers, not forecasts: {failed}; see {home}")
            for fault in ("frozen", "stopped"):
                figures[f"redis_{fault}"] = store_fault(
                    base, own_redis, scripts["/predict"], fault, service[1]
                )
        featurestore.materialize(settings)  # the stopped Redis came back empty: heal it for the bare run
        figures["bare_in_process"] = {
            "single": bare(settings, ["BTC/USDT"], 3000),
            "batch_100": bare(settings, batch, 300),
        }
        figures["compared"] = compare(runs, figures["bare_in_process"])
        figures["table"] = table(runs, figures["compared"], figures["bare_in_process"])
    finally:
        replay.stop()
        own_redis.stop()
        shutil.rmtree(home, ignore_errors=True)
    write_results(args.output, figures)
    print(figures["table"])


if __name__ == "__main__":
    main()
