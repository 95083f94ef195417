"""Helpers shared by the benchmark scripts: the command line, timing, percentiles, the JSON result file and
``hourcast serve``. Process helpers come from ``tests.support`` (the repository root is put on ``sys.path``:
the scripts run as ``uv run python benchmarks/<name>.py``, which puts only ``benchmarks/`` there)."""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hourcast.compat.typeguard import skip_feast_instrumentation

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
skip_feast_instrumentation()  # every script imports this first: Feast as the entry points import it


def argument_parser(doc: str, name: str) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring as the help text and ``--output`` (default
    ``benchmarks/results/<name>.json``)."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--output",
        type=Path,
        default=RESULTS / f"{name}.json",
        help="where the JSON figures are written (default: %(default)s)",
    )
    return parser


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


def write_results(path: Path, figures: dict[str, Any]) -> Path:
    """Print the figures and write them to ``path`` (``--output``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(figures, indent=2, default=str))
    print(json.dumps(figures, indent=2, default=str))
    print(f"written to {path}")
    return path


@contextlib.contextmanager
def hourcast_serve(env: dict[str, str], port: int, log: Path) -> Iterator[subprocess.Popen]:
    """``hourcast serve`` (it execs ``bentoml serve``) on ``port`` with ``env``, output to ``log``, once its
    ``/readyz`` says 200; on the way out it and every process it started are stopped (SIGTERM, SIGKILL
    after 30 s). ``tests.support`` is imported here, so that pytest stays out of the processes the other
    benchmarks measure."""
    from tests.support.processes import console_script, running_server

    command = [console_script("hourcast"), "serve", "--port", str(port)]
    ready_url = f"http://127.0.0.1:{port}/readyz"
    with running_server(command, ready_url, env=env, cwd=REPO, log_path=log, timeout=300, grace=30) as server:
        yield server
