"""`hourcast up`: the whole system on one machine.

Bootstraps data, features and a first model in-process, then supervises the API (`hourcast serve`), the
dashboard (`hourcast ui`) and the schedules as child processes, each in its own process group, until
Ctrl-C or SIGTERM, when every child is stopped (SIGTERM, then SIGKILL after a bounded wait).

Schedules: against a live exchange, Prefect's `serve` runs the flows on their cron schedules
(`python -m flows.serve`). Against the replay exchange, whose clock may run faster than real time, a
small scheduler follows the exchange's clock instead and runs the same flows (`python -m flows.<name>`)
a few minutes past every simulated hour, and retrain (which applies retention first) every simulated week.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hourcast.settings import Settings

INGEST_MINUTE = 5
"""Minutes past the hour the ingest flow runs (the exchange needs a moment to close the candle)."""


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as ``HOURCAST_*`` variables, so child processes build the same ``Settings``."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        text = ",".join(value) if isinstance(value, list) else str(value)
        env[f"HOURCAST_{name.upper()}"] = text
    return env


@dataclass
class Child:
    """A supervised child process."""

    name: str
    command: list[str]
    process: subprocess.Popen | None = None

    def start(self, env: dict[str, str], cwd: Path, log: Path) -> None:
        """Start it in its own process group, output to ``log``."""
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=cwd,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        """Whether it is still alive."""
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to its process group (if it is still there)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)

    def group_alive(self) -> bool:
        """Whether anything of its process group is still alive."""
        if self.process is None:
            return False
        self.process.poll()
        try:
            os.killpg(self.process.pid, 0)
        except ProcessLookupError:
            return False
        return True


def stop_all(children: list[Child], timeout: float) -> None:
    """SIGTERM every child's process group at once; SIGKILL what is still alive after ``timeout``."""
    for child in children:
        child.signal(signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(child.group_alive() for child in children) and time.monotonic() < deadline:
        time.sleep(0.1)
    for child in children:
        if child.group_alive():
            child.signal(signal.SIGKILL)


@dataclass
class ReplayScheduler:
    """Runs flows by the exchange's clock: ingest every hour (at :05), retrain (retention first) weekly."""

    exchange_now: Callable[[], pd.Timestamp]
    run_flow: Callable[[str], None]
    poll_seconds: float = 1.0
    stop_event: threading.Event = field(default_factory=threading.Event)

    def due(self, last: pd.Timestamp, now: pd.Timestamp) -> list[str]:
        """The flows due between two readings of the clock, in order."""
        offset = pd.Timedelta(minutes=INGEST_MINUTE)
        flows: list[str] = []
        if (now - offset).floor("h") > (last - offset).floor("h"):
            flows.append("ingest")
        if (now - offset).tz_convert(None).to_period("W") != (last - offset).tz_convert(None).to_period("W"):
            flows.append("retrain")  # which applies retention first
        return flows

    def run(self) -> None:
        """Poll the clock until ``stop_event`` is set."""
        last = self.exchange_now()
        while not self.stop_event.wait(self.poll_seconds):
            now = self.exchange_now()
            for name in self.due(last, now):
                if self.stop_event.is_set():
                    return
                self.run_flow(name)
            last = now


def python_module(module: str) -> list[str]:
    """A command running ``python -m module`` with this interpreter."""
    return [sys.executable, "-m", module]


def hourcast_command(*args: str) -> list[str]:
    """A command running the hourcast CLI with this interpreter."""
    return [sys.executable, "-m", "hourcast", *args]


class Stack:
    """Everything `hourcast up` runs, and its orderly shutdown."""

    def __init__(
        self,
        settings: Settings,
        project_dir: Path,
        replay_data: dict[str, Path] | None = None,
        replay_now: str | None = None,
        replay_speed: float = 60.0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.project_dir = project_dir
        self.replay_data = replay_data
        self.replay_now = replay_now
        self.replay_speed = replay_speed
        self.say = say
        self.children: list[Child] = []
        self.stop_event = threading.Event()
        self._replay_server = None
        self._scheduler: ReplayScheduler | None = None
        self._scheduler_thread: threading.Thread | None = None
        self._flow_run: Child | None = None

    @property
    def api_url(self) -> str:
        """Where the API answers."""
        return f"http://{self.settings.serve_host}:{self.settings.serve_port}"

    @property
    def logs_dir(self) -> Path:
        """The children's logs."""
        return self.settings.home / "logs"

    def start_replay(self) -> None:
        """Start the replay exchange in this process and point the settings at it."""
        from hourcast.dev.replay import ReplayExchange, ReplayServer, load_candles_file

        assert self.replay_data, "replay needs --data SYMBOL=PATH"
        datasets = {symbol: load_candles_file(path) for symbol, path in self.replay_data.items()}
        now = self.replay_now or str(min(f["ts"].iloc[0] for f in datasets.values()) + pd.Timedelta(days=45))
        exchange = ReplayExchange(datasets, now=now, speed=self.replay_speed)
        self._replay_server = ReplayServer(exchange).start()
        self.settings = self.settings.model_copy(
            update={"exchange_url": self._replay_server.url, "symbols": list(datasets)}
        )
        self.say(
            f"replay exchange: {self._replay_server.url} (clock {now}, {self.replay_speed:g}x real time)"
        )

    def bootstrap(self) -> None:
        """Data (ingest, or the default backfill into an empty store), features, and a first model."""
        from hourcast import featurestore, registry, training
        from hourcast.ingest import make_ingestor

        self.say("ingesting candles (validated with Great Expectations) ...")
        for summary in make_ingestor(self.settings).ingest():
            self.say(
                f"  {summary.symbol}: {summary.new} new candles, last {summary.as_json()['last']}, "
                f"status {summary.status} {summary.message}".rstrip()
            )
        self.say(f"materializing features into {featurestore.describe_online_store(self.settings)} ...")
        featurestore.materialize(self.settings)
        if registry.production_tag(self.settings.registry_dir, self.settings.model_name) is None:
            self.say("training a first model ...")
            result = training.train(self.settings)
            verdict = "promoted" if result.promoted else "NOT promoted"
            self.say(f"  {result.tag} {verdict}: {result.reason}")

    def _environment(self) -> dict[str, str]:
        return {**os.environ, **settings_environment(self.settings), "PYTHONUNBUFFERED": "1"}

    def start_children(self) -> None:
        """The API, the dashboard and (live) Prefect's scheduler, or (replay) the clock-driven one."""
        env = self._environment()
        ui_env = {**env, "HOURCAST_API_URL": self.api_url}
        api = Child("api", hourcast_command("serve"))
        api.start(env, self.project_dir, self.logs_dir / "api.log")
        ui = Child("ui", hourcast_command("ui"))
        ui.start(ui_env, self.project_dir, self.logs_dir / "ui.log")
        self.children += [api, ui]
        if self._replay_server is None:
            scheduler = Child("schedules", python_module("flows.serve"))
            scheduler.start(env, self.project_dir, self.logs_dir / "schedules.log")
            self.children.append(scheduler)
        else:
            self._start_replay_scheduler(env)

    def _start_replay_scheduler(self, env: dict[str, str]) -> None:
        from hourcast.candles import from_ms

        exchange = self._replay_server.exchange

        def run_flow(name: str) -> None:
            self.say(f"replay clock {from_ms(exchange.now_ms()):%Y-%m-%d %H:%M}: running flow {name}")
            with open(self.logs_dir / "flows.log", "ab") as output:
                subprocess.run(
                    python_module(f"flows.{name}"),
                    cwd=self.project_dir,
                    env=env,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    check=False,
                )

        self._scheduler = ReplayScheduler(lambda: from_ms(exchange.now_ms()), run_flow)
        self._scheduler_thread = threading.Thread(
            target=self._scheduler.run, name="replay-scheduler", daemon=True
        )
        self._scheduler_thread.start()

    def wait_until_serving(self, timeout: float = 180.0) -> None:
        """Block until the API is ready and the dashboard answers (or a child dies, or time runs out)."""
        import httpx

        ui_url = f"http://{self.settings.ui_host}:{self.settings.ui_port}"
        deadline = time.monotonic() + timeout
        pending = {"api": f"{self.api_url}/readyz", "ui": ui_url}
        while pending:
            for name, url in list(pending.items()):
                try:
                    if httpx.get(url, timeout=2).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            dead = [child.name for child in self.children if not child.running()]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited; see {self.logs_dir}")
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"not serving after {timeout:.0f} s ({', '.join(pending)}); see {self.logs_dir}"
                )
            if pending:
                time.sleep(0.5)
        self.say(f"prediction API: {self.api_url}  (POST /predict, GET /history)")
        self.say(f"dashboard:      {ui_url}")

    def run(self) -> int:
        """Bring everything up and keep it running until Ctrl-C / SIGTERM; returns the exit code."""
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda *_: self.stop_event.set())
        try:
            if self.replay_data:
                self.start_replay()
            self.bootstrap()
            self.start_children()
            self.wait_until_serving()
            self.say("running; Ctrl-C stops everything")
            while not self.stop_event.wait(1.0):
                dead = [child.name for child in self.children if not child.running()]
                if dead:
                    self.say(f"{', '.join(dead)} exited; stopping (see {self.logs_dir})")
                    return 1
            return 0
        finally:
            self.stop()

    def stop(self, timeout: float = 20.0) -> None:
        """Stop the scheduler, every child and the replay exchange."""
        if self._scheduler is not None:
            self._scheduler.stop_event.set()
        stop_all([*self.children, *([self._flow_run] if self._flow_run else [])], timeout)
        if self._scheduler_thread is not None:
            self._scheduler_thread.join(timeout=timeout)
        if self._replay_server is not None:
            self._replay_server.stop()
        self.say("stopped")
