"""`hourcast up --replay` benchmark, on a fresh data folder with the bundled candles, as a user starts it.

Measures seconds from start to the first answered /predict (target < 60 s), to the first completed flow run
of a deployment, run by the worker on the replay clock (target < 90 s), and from Ctrl-C to exit. Its own
Prefect server on a free port (nothing shared with the machine), like the quick start.

Run: uv run python benchmarks/stack.py
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from _common import REPO, free_port, write_results


def first_completed_deployment_run(api_url: str) -> bool:
    """Whether the Prefect API lists a completed flow run of a deployment."""
    try:
        runs = httpx.post(
            f"{api_url}/flow_runs/filter",
            json={"flow_runs": {"state": {"type": {"any_": ["COMPLETED"]}}}, "limit": 10},
            timeout=5,
        ).json()
    except httpx.HTTPError:
        return False
    return any(run.get("deployment_id") for run in runs)


def predicts(api_port: int) -> bool:
    """Whether /predict answers 200 right now."""
    try:
        answer = httpx.post(f"http://127.0.0.1:{api_port}/predict", json={"symbol": "BTC/USDT"}, timeout=2)
    except httpx.HTTPError:
        return False
    return answer.status_code == 200


def up_replay_figures(home: Path) -> dict:
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
        }
    )
    api_url = f"http://127.0.0.1:{prefect_port}/api"
    started = time.monotonic()
    with open(home / "up.out", "wb") as output:
        up = subprocess.Popen(
            [sys.executable, "-m", "hourcast", "up", "--replay"],
            cwd=REPO,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    first_prediction = first_run = None
    try:
        while first_prediction is None or first_run is None:
            if up.poll() is not None or time.monotonic() - started > 600:
                raise RuntimeError(f"hourcast up --replay failed; see {home / 'up.out'}")
            now = time.monotonic() - started
            if first_prediction is None and predicts(api_port):
                first_prediction = now
            if first_run is None and first_completed_deployment_run(api_url):
                first_run = now
            time.sleep(0.2)
    finally:
        up.send_signal(signal.SIGINT)
        stopping = time.monotonic()
        up.wait(timeout=120)
    return {
        "first_prediction_s": round(first_prediction, 1),
        "first_completed_deployment_run_s": round(first_run, 1),
        "ctrl_c_to_exit_s": round(time.monotonic() - stopping, 1),
        "target_first_prediction_s": 60,
        "target_first_deployment_run_s": 90,
    }


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="hourcast-bench-stack-"))
    write_results("stack", {"up_replay": up_replay_figures(home)})


if __name__ == "__main__":
    main()
