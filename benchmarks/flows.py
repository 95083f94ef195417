"""Orchestration benchmark: the cost of one hourly `ingest` (pull one new candle per symbol, validate, store,
materialize into Redis) through Prefect, against the bare package calls doing the same work in the same run.

With a warm Prefect server (`prefect server start` on a free port) and a Redis server of its own:

1. a run of the `ingest` deployment through the process worker (`prefect deploy --all`, `prefect worker
   start`), as `hourcast up` runs it: from `run_deployment` to Completed (what a user waits), and the
   run's own start-to-end time on the server (the flow-run process: interpreter, imports, the work),
   split by the run's state history and task runs into where the time goes: the worker's pick-up
   (Scheduled to Pending), the process start (Pending to Running: interpreter, Prefect, the pull step and
   the flow module's imports), each task (Great Expectations is imported in `pull-candles`, Feast in
   `materialize`) and the rest (the writer slot, reports, the final state);
2. the `ingest` flow called in-process (a served flow's cost, no process start);
3. the bare calls: `Ingestor.ingest` + `featurestore.materialize`.

Also: the cold import of the flow module alone, in a fresh interpreter (`python -X importtime`).

Run: uv run python benchmarks/flows.py [--runs N]   (needs the redis-server binary)
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

from _common import REPO, argument_parser, summarize, timed, write_results

from hourcast.dev.ports import free_port
from hourcast.dev.samples import sample_files
from hourcast.ops.prefect_admin import prefect_server_environment
from tests.support.processes import start_server, wait_for

RUNS = 6
STEPS = ("pickup_s", "process_start_s", "tasks_s", "other_s")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as output:
        return subprocess.Popen(
            command, cwd=REPO, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )


def flow_import_seconds(module: str) -> float:
    """Seconds a fresh interpreter spends importing ``module`` (its ``-X importtime`` total)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(line for line in reversed(done.stderr.splitlines()) if line.rstrip().endswith(f"| {module}"))
    return round(int(line.split("|")[1]) / 1e6, 2)


def run_breakdown(client, flow_run) -> dict[str, float]:
    """Where a worker run's time went: the worker's pick-up, the process start, each task, the rest."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    states = {state.type.value: state.timestamp for state in client.read_flow_run_states(flow_run.id)}
    tasks = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
    figures = {
        "pickup_s": (states["PENDING"] - states["SCHEDULED"]).total_seconds(),
        "process_start_s": (states["RUNNING"] - states["PENDING"]).total_seconds(),
    }
    for task in tasks:
        if task.start_time is not None and task.end_time is not None:
            name = re.sub(r"-[0-9a-f]+$", "", task.name)
            figures[f"task {name}_s"] = (task.end_time - task.start_time).total_seconds()
    figures["tasks_s"] = sum(v for k, v in figures.items() if k.startswith("task "))
    figures["other_s"] = (states["COMPLETED"] - states["RUNNING"]).total_seconds() - figures["tasks_s"]
    return figures


def median_breakdown(breakdowns: list[dict[str, float]]) -> dict[str, float]:
    """The median of each figure over the runs."""
    import statistics

    names = sorted({name for breakdown in breakdowns for name in breakdown})
    return {
        name: round(statistics.median(b[name] for b in breakdowns if name in b), 2)
        for name in [*STEPS, *(n for n in names if n not in STEPS)]
    }


def ingest_figures(home: Path, runs: int) -> dict:
    redis_port, prefect_port = free_port(), free_port()
    api_url = f"http://127.0.0.1:{prefect_port}/api"
    redis_command = [shutil.which("redis-server") or "redis-server", "--port", str(redis_port)]
    redis_command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    os.environ.update(
        {
            **prefect_server_environment(home / "data"),  # as `hourcast up` starts its server
            "PREFECT_API_URL": api_url,
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "HOURCAST_HOME": str(home / "data"),
            "HOURCAST_SYMBOLS": "BTC/USDT,ETH/USDT",
            "HOURCAST_ONLINE_STORE": "redis",
            "HOURCAST_REDIS_URL": f"redis://127.0.0.1:{redis_port}/0",
            "HOURCAST_FEATURE_REPO": str(REPO / "feature_repo"),
            "HOURCAST_PROJECT_DIR": str(REPO),
            "PREFECT_WORKER_QUERY_SECONDS": "2",  # as `hourcast up` runs its worker
        }
    )
    (home / "data" / "prefect").mkdir(parents=True)
    server_env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    processes = [
        start(redis_command, dict(os.environ), home / "redis.log"),
        start_server(
            [sys.executable, "-m", "prefect", "server", "start", "--port", str(prefect_port)],
            f"{api_url}/health",
            env=server_env,
            cwd=REPO,
            log_path=home / "server.log",
            timeout=120,
        ),
    ]
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.deployments import run_deployment

    from flows.ingest import ingest
    from hourcast.data.ingest import make_ingestor
    from hourcast.dev.replay.data import load_candles_file
    from hourcast.dev.replay.exchange import ReplayExchange
    from hourcast.dev.replay.server import ReplayServer
    from hourcast.features import featurestore
    from hourcast.settings import Settings

    exchange = ReplayExchange(
        {s: load_candles_file(p) for s, p in sample_files().items()}, now="2024-03-01T00:05:00Z"
    )
    try:
        with ReplayServer(exchange) as replay:
            os.environ["HOURCAST_EXCHANGE_URL"] = replay.url
            with get_client(sync_client=True) as client:
                client.create_work_pool(WorkPoolCreate(name="hourcast-process", type="process"))
            deploy = [sys.executable, "-m", "prefect", "--no-prompt", "deploy", "--all"]
            subprocess.run(deploy, cwd=REPO, check=True, capture_output=True)
            worker = [sys.executable, "-m", "prefect", "worker", "start", "--pool", "hourcast-process"]
            processes.append(start(worker, dict(os.environ), home / "worker.log"))

            def through_worker() -> tuple[float, float, dict[str, float]]:
                began = time.perf_counter()
                run = run_deployment("ingest/ingest", timeout=300, poll_interval=0.2, as_subflow=False)
                waited = time.perf_counter() - began
                assert run.state is not None and run.state.is_completed(), run.state
                wait_for(idle, 300, "the monitor run the ingest triggers")  # no overlap with the next
                with get_client(sync_client=True) as client:
                    breakdown = run_breakdown(client, run)
                return waited, (run.end_time - run.start_time).total_seconds(), breakdown

            def idle() -> bool:
                with get_client(sync_client=True) as client:
                    runs = client.read_flow_runs()
                return all(r.state is None or r.state.is_final() for r in runs)

            through_worker()  # first run: the 30-day backfill, the concurrency limit
            worker_runs, worker_run_spans, breakdowns = [], [], []
            for _ in range(runs):
                exchange.advance(3600)
                waited, span, breakdown = through_worker()
                worker_runs.append(waited)
                worker_run_spans.append(span)
                breakdowns.append(breakdown)
            flow_runs = []
            ingest()  # imports in this process
            for _ in range(runs):
                exchange.advance(3600)
                wait_for(idle, 300, "the monitor run the last ingest triggered")
                flow_runs.append(timed(ingest)[0])
            wait_for(idle, 300, "the monitor run the last ingest triggered")
            settings = Settings()
            ingestor = make_ingestor(settings)
            bare_runs = []
            for _ in range(runs):
                exchange.advance(3600)
                bare_runs.append(timed(lambda: (ingestor.ingest(), featurestore.materialize(settings)))[0])
    finally:
        for process in reversed(processes):
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)
    worker, span, flow, bare = map(summarize, (worker_runs, worker_run_spans, flow_runs, bare_runs))
    return {
        "deployment_run_through_worker": worker,
        "deployment_run_own_span": span,
        "deployment_run_breakdown_median": median_breakdown(breakdowns),
        "flows.ingest_cold_import_s": flow_import_seconds("flows.ingest"),
        "flow_called_in_process": flow,
        "bare_ingest_plus_materialize": bare,
        "ratio_worker_to_bare": round(worker["median_ms"] / bare["median_ms"], 1),
        "ratio_in_process_flow_to_bare": round(flow["median_ms"] / bare["median_ms"], 2),
        "target_s": 10,
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
    }


def main() -> None:
    parser = argument_parser(__doc__, "flows")
    parser.add_argument(
        "--runs", type=int, default=RUNS, help="timed runs of each kind (default: %(default)s)"
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hourcast-bench-flows-"))
    write_results(args.output, {"hourly_ingest": ingest_figures(home, args.runs)})


if __name__ == "__main__":
    main()
