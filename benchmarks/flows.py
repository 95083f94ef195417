"""Orchestration benchmark.

1. The hourly `ingest` flow (pull one new candle per symbol, validate, store, materialize into Redis) under a
   warm Prefect server (`prefect server start`), run in-process as a served flow would run it, vs the bare
   package calls doing the same work (`Ingestor.ingest` + `featurestore.materialize`) in the same run.
2. `hourcast up --replay` on a fresh data folder: seconds from start to the first answered /predict.

Run: uv run python benchmarks/flows.py   (needs Redis on 127.0.0.1:6379)
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import redis
from _common import REPO, summarize, timed, write_results

from hourcast.dev.samples import sample_files

sys.path.insert(0, str(REPO))  # the project's flows/ package, as `python -m flows.…` from the repo sees it
REDIS_URL = "redis://127.0.0.1:6379/12"
FILES = {
    "BTC/USDT": sample_files()["BTC/USDT"],
    "ETH/USDT": sample_files()["ETH/USDT"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {seconds} s")


def ingest_flow_figures(home: Path) -> dict:
    port = free_port()
    os.environ.update(
        {
            "PREFECT_HOME": str(home / "prefect"),
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "HOURCAST_HOME": str(home / "data"),
            "HOURCAST_SYMBOLS": "BTC/USDT,ETH/USDT",
            "HOURCAST_ONLINE_STORE": "redis",
            "HOURCAST_REDIS_URL": REDIS_URL,
            "HOURCAST_FEATURE_REPO": str(REPO / "feature_repo"),
            "HOURCAST_DEFAULT_BACKFILL_DAYS": "30",
        }
    )
    server = subprocess.Popen(
        ["prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    from flows.ingest import ingest
    from hourcast import featurestore
    from hourcast.dev.replay import ReplayExchange, ReplayServer, load_candles_file
    from hourcast.ingest import make_ingestor
    from hourcast.settings import Settings

    try:
        wait_for(f"http://127.0.0.1:{port}/api/health", 120)
        redis.Redis.from_url(REDIS_URL).flushdb()
        exchange = ReplayExchange(
            {s: load_candles_file(p) for s, p in FILES.items()}, now="2024-03-01T00:05:00Z"
        )
        with ReplayServer(exchange) as replay:
            os.environ["HOURCAST_EXCHANGE_URL"] = replay.url
            ingest()  # first run: the 30-day backfill, imports, the concurrency limit
            flow_runs = []
            for _ in range(8):
                exchange.advance(3600)
                flow_runs.append(timed(ingest)[0])
            settings = Settings()
            ingestor = make_ingestor(settings)
            bare_runs = []
            for _ in range(8):
                exchange.advance(3600)
                bare_runs.append(timed(lambda: (ingestor.ingest(), featurestore.materialize(settings)))[0])
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
        redis.Redis.from_url(REDIS_URL).flushdb()
    flow, bare = summarize(flow_runs), summarize(bare_runs)
    return {
        "flow_run_warm_server": flow,
        "bare_ingest_plus_materialize": bare,
        "ratio_median": round(flow["median_ms"] / bare["median_ms"], 2),
        "target_s": 10,
    }


def up_replay_figures(home: Path) -> dict:
    api_port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "HOURCAST_HOME": str(home / "up"),
        "BENTOML_HOME": str(home / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "HOURCAST_SERVE_PORT": str(api_port),
        "HOURCAST_UI_PORT": str(ui_port),
    }
    for name in ("PREFECT_API_URL", "HOURCAST_EXCHANGE_URL", "HOURCAST_ONLINE_STORE", "HOURCAST_REDIS_URL"):
        env.pop(name, None)
    command = [
        sys.executable,
        "-m",
        "hourcast",
        "up",
        "--replay",
        *(arg for symbol, path in FILES.items() for arg in ("--data", f"{symbol}={path}")),
    ]
    started = time.monotonic()
    up = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{api_port}/predict", json={"symbol": "BTC/USDT"}, timeout=2
                )
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if up.poll() is not None or time.monotonic() - started > 300:
                raise RuntimeError("hourcast up --replay did not serve a prediction")
            time.sleep(0.2)
        first = time.monotonic() - started
    finally:
        up.send_signal(signal.SIGINT)
        stopping = time.monotonic()
        up.wait(timeout=90)
    return {
        "first_prediction_s": round(first, 1),
        "ctrl_c_to_exit_s": round(time.monotonic() - stopping, 1),
        "target_first_prediction_s": 60,
    }


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="hourcast-bench-flows-"))
    figures = {"hourly_ingest_flow": ingest_flow_figures(home), "up_replay": up_replay_figures(home)}
    write_results("flows", figures)


if __name__ == "__main__":
    main()
