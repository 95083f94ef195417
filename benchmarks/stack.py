"""`hourcast up --replay` benchmark, on a fresh data folder with the bundled candles, as a user starts it.

Measures seconds from start to the first answered /predict (target < 90 s: the bootstrap backfills and
trains on the default 365-day window), to the first completed flow run of a deployment, run by the worker
on the replay clock (target < 90 s), and from Ctrl-C to exit. Then, in the same run, the same start-up with
the first model trained on ``--compare-train-days`` (default 30, the bootstrap before the 365-day window),
and the ratio of the two times to the first /predict. Its own
Prefect server on a free port (nothing shared with the machine), like the quick start. Every line
`hourcast up` prints is kept with the second it appeared (``timeline``, also in ``up.out``), and the first
completed run's own figures are read back from the Prefect API: when it was created, when its process
started the flow (``start_time``) and when it ended, so the start-up's time can be split into its steps.

Run: uv run python benchmarks/stack.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from _common import REPO, argument_parser, write_results

from hourcast.dev.ports import free_port


def first_completed_deployment_run(api_url: str) -> dict | None:
    """The first completed flow run of a deployment the Prefect API lists, if there is one."""
    try:
        runs = httpx.post(
            f"{api_url}/flow_runs/filter",
            json={"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}, "limit": 10},
            timeout=5,
        ).json()
    except httpx.HTTPError:
        return None
    return next((run for run in runs if run.get("deployment_id")), None)


def seconds_between(earlier: str, later: str) -> float:
    """Seconds from one ISO time the Prefect API gives to another."""
    from datetime import datetime

    return round((datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds(), 1)


def record_lines(stream, started: float, timeline: list[tuple[float, str]], log: Path) -> None:
    """Keep each line of ``stream`` with the seconds since ``started`` it appeared (also in ``log``)."""
    with open(log, "w") as output:
        for raw in stream:
            line = raw.decode(errors="replace").rstrip()
            at = round(time.monotonic() - started, 1)
            timeline.append((at, line))
            output.write(f"{at:7.1f}  {line}\n")
            output.flush()


def predicts(api_port: int) -> bool:
    """Whether /predict answers 200 right now."""
    try:
        answer = httpx.post(f"http://127.0.0.1:{api_port}/predict", json={"symbol": "BTC/USDT"}, timeout=2)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


def up_replay_figures(home: Path, train_days: int | None = None) -> dict:
    api_port, ui_port, prefect_port = free_port(), free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HOURCAST_", "PREFECT_", "BENTOML_"))}
    env.update(
        {
            "HOURCAST_HOME": str(home / "data"),
            "BENTOML_HOME": str(home / "bentoml"),
            "BENTOML_DO_NOT_TRACK": "True",
            "HOURCAST_SERVE_PORT": str(api_port),
            "HOURCAST_UI_PORT": str(ui_port),
            "PREFECT_HOME": str(home / "prefect-client"),
            "PREFECT_SERVER_API_PORT": str(prefect_port),
            "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
            "PYTHONUNBUFFERED": "1",  # each line as it is printed, for the timeline
        }
    )
    if train_days is not None:
        env["HOURCAST_TRAIN_DAYS"] = str(train_days)
    api_url = f"http://127.0.0.1:{prefect_port}/api"
    started = time.monotonic()
    up = subprocess.Popen(
        [sys.executable, "-m", "hourcast", "up", "--replay"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    timeline: list[tuple[float, str]] = []
    reader = threading.Thread(target=record_lines, args=(up.stdout, started, timeline, home / "up.out"))
    reader.start()
    first_prediction = first_run = None
    run: dict | None = None
    try:
        while first_prediction is None or first_run is None:
            if up.poll() is not None or time.monotonic() - started > 600:
                raise RuntimeError(f"hourcast up --replay failed; see {home / 'up.out'}")
            now = time.monotonic() - started
            if first_prediction is None and predicts(api_port):
                first_prediction = now
            if first_run is None and (run := first_completed_deployment_run(api_url)) is not None:
                first_run = now
            time.sleep(0.2)
    finally:
        up.send_signal(signal.SIGINT)
        stopping = time.monotonic()
        up.wait(timeout=120)
        reader.join(timeout=10)
    return {
        "first_prediction_s": round(first_prediction, 1),
        "first_completed_deployment_run_s": round(first_run, 1),
        "ctrl_c_to_exit_s": round(time.monotonic() - stopping, 1),
        "target_first_prediction_s": 90,
        "target_first_deployment_run_s": 90,
        "first_run": {
            "name": run["name"],
            "created_to_start_s": seconds_between(run["created"], run["start_time"]),
            "start_to_end_s": seconds_between(run["start_time"], run["end_time"]),
        },
        "load_average_1min_at_end": round(os.getloadavg()[0], 2),
        "timeline": [f"{at:6.1f}  {line}" for at, line in timeline],
    }


def main() -> None:
    parser = argument_parser(__doc__, "stack")
    parser.add_argument(
        "--compare-train-days",
        type=int,
        default=30,
        help="training window of the comparison start-up (0: none; default %(default)s)",
    )
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="hourcast-bench-stack-"))
    figures = {"up_replay": up_replay_figures(home)}
    if args.compare_train_days:
        (home / "short").mkdir()
        short = up_replay_figures(home / "short", args.compare_train_days)
        figures[f"up_replay_train_days_{args.compare_train_days}"] = short
        figures["first_prediction_ratio"] = round(
            figures["up_replay"]["first_prediction_s"] / short["first_prediction_s"], 2
        )
    write_results(args.output, figures)


if __name__ == "__main__":
    main()
