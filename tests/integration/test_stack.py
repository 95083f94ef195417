"""`hourcast up --replay` as a user runs it: starts, serves /predict and the dashboard, stops on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import BTC_FILE, ETH_FILE
from tests.integration.conftest import free_port

REPO = Path(__file__).resolve().parents[2]


def test_up_replay_serves_and_stops_cleanly(tmp_path: Path) -> None:
    api_port, ui_port = free_port(), free_port()
    env = {
        **os.environ,
        "HOURCAST_HOME": str(tmp_path / "data"),
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "HOURCAST_SERVE_PORT": str(api_port),
        "HOURCAST_UI_PORT": str(ui_port),
        "HOURCAST_SERVE_WORKERS": "1",
        "HOURCAST_PROMOTION_TOLERANCE": "1.0",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    }
    command = [
        sys.executable,
        "-m",
        "hourcast",
        "up",
        "--replay",
        "--data",
        f"BTC/USDT={BTC_FILE}",
        "--data",
        f"ETH/USDT={ETH_FILE}",
    ]
    up = subprocess.Popen(
        command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    started = time.monotonic()
    try:
        answer = None
        while time.monotonic() - started < 120:
            assert up.poll() is None, up.stdout.read()
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{api_port}/predict", json={"symbol": "ETH/USDT"}, timeout=2
                )
                if answer.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        assert answer is not None and answer.status_code == 200, "no prediction within 120 s"
        assert answer.json()["stale"] is False  # judged by the replay exchange's clock
        assert httpx.get(f"http://127.0.0.1:{ui_port}/", timeout=10).status_code == 200
    finally:
        up.send_signal(signal.SIGINT)
        stopping = time.monotonic()
        output, _ = up.communicate(timeout=60)
    assert up.returncode == 0, output
    assert time.monotonic() - stopping < 45, "Ctrl-C took too long"
    assert "stopped" in output
    for port in (api_port, ui_port):
        try:
            httpx.get(f"http://127.0.0.1:{port}/", timeout=1)
        except httpx.ConnectError:
            continue
        raise AssertionError(f"something still listens on {port} after Ctrl-C")
