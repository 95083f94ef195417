"""Helpers shared by the benchmark scripts: timing, percentiles and the JSON result file."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call, and its result."""
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def summarize(samples: list[float]) -> dict[str, float]:
    """Median, p90 and best of a list of seconds, in milliseconds."""
    ordered = sorted(samples)
    return {
        "median_ms": round(statistics.median(ordered) * 1000, 2),
        "p90_ms": round(ordered[int(0.9 * (len(ordered) - 1))] * 1000, 2),
        "best_ms": round(ordered[0] * 1000, 2),
        "runs": len(ordered),
    }


def write_results(name: str, figures: dict[str, Any]) -> Path:
    """Print the figures and write them to ``benchmarks/results/<name>.json``."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps(figures, indent=2, default=str))
    print(f"written to {path}")
    return path


def free_port() -> int:
    """A loopback port nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def hourcast_serve(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    """``hourcast serve`` (it execs ``bentoml serve``) on ``port`` with ``env``, output to ``log``, once its
    ``/readyz`` says 200; on the way out a SIGTERM (BentoML's graceful shutdown), then every process of its
    tree still alive after 30 s is killed."""
    import httpx
    import psutil

    hourcast = str(Path(sys.executable).with_name("hourcast"))
    with log.open("wb") as output:
        server = subprocess.Popen(
            [hourcast, "serve", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 300
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"hourcast serve did not become ready:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(server.pid)
            processes = [root, *root.children(recursive=True)]  # bentoml serve and its workers
            os.killpg(server.pid, signal.SIGTERM)
            _, alive = psutil.wait_procs(processes, timeout=30)
            for process in alive:
                process.kill()
            psutil.wait_procs(alive, timeout=10)
        server.wait(timeout=10)
