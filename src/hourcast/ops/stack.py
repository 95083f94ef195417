"""`hourcast up`: the whole system on one machine, run the way it runs in production.

Parts, each a child process in its own process group with its log under ``HOURCAST_HOME/logs``:

- a Prefect server (``prefect server start``, its database under ``HOURCAST_HOME/prefect``), unless
  ``PREFECT_API_URL`` names one already running, which is then used and no server is started;
- the deployments of ``prefect.yaml`` (``prefect deploy --all``) on the process work pool, and a worker
  of that pool (``prefect worker start``), which runs every flow run as a subprocess of its own;
- the prediction API (``hourcast serve``) and the dashboard (``hourcast ui``).

Start-up runs three lines of work side by side, so the two cores are both busy: the bootstrap of the data,
the online features and a first model, in this process; the Prefect side (server, work pools, deployments,
worker) in a thread that mostly waits on child processes; and the dashboard, which needs nothing but the
API's address. The API starts as soon as the bootstrap has its model. Against a live exchange the Prefect
server's scheduler runs the deployments on their cron schedules. Against the replay exchange, whose clock
may run faster than real time, the cron schedules are switched off and
``hourcast.dev.scheduler.ReplayScheduler`` creates runs of the same deployments whenever their cron fires
on the replay clock.

A part that dies during start-up, or a failed step (the bootstrap, ``prefect deploy``), stops everything
with one message (and the tail of the part's log); a step that fails while the bootstrap runs is reported
once the bootstrap returns. Ctrl-C or SIGTERM cancels the flow runs in progress through the Prefect API,
then stops every part (SIGTERM to its process group, SIGKILL after a bounded wait).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import UUID

import yaml

from hourcast.errors import HourcastError
from hourcast.settings import Settings

WORKER_QUERY_SECONDS = "2"
"""How often `hourcast up`'s worker asks for runs to start (Prefect's default, 10 s, delays each run)."""
ACTIVE_STATES = ("PENDING", "RUNNING", "CANCELLING")
"""Flow-run state types that are in progress on the worker."""


class StartupFailed(HourcastError):
    """A part of the stack did not come up; the message carries the tail of its log."""


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as ``HOURCAST_*`` variables, so child processes build the same ``Settings``."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        text = ",".join(value) if isinstance(value, list) else str(value)
        env[f"HOURCAST_{name.upper()}"] = text
    return env


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file (empty if there is none)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


@dataclass
class Child:
    """A supervised child process, in a process group of its own, output to ``log``."""

    name: str
    command: list[str]
    log: Path
    process: subprocess.Popen | None = None

    def start(self, env: dict[str, str], cwd: Path) -> Child:
        """Start it in its own process group (session); returns self."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=cwd,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def running(self) -> bool:
        """Whether it is still alive."""
        return self.process is not None and self.process.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        """Send ``sig`` to its process group (if it is still there)."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
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

    def failure(self) -> str:
        """Why it is not running, with the tail of its log."""
        code = self.process.poll() if self.process is not None else None
        return f"{self.name} exited (code {code}); last lines of {self.log}:\n{log_tail(self.log)}"


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
    for child in children:
        if child.process is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.process.wait(timeout=5)


def python_module(module: str, *args: str) -> list[str]:
    """A command running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def read_prefect_yaml(project_dir: Path) -> dict[str, Any]:
    """The project's ``prefect.yaml``."""
    return yaml.safe_load((project_dir / "prefect.yaml").read_text())


def work_pools(config: dict[str, Any]) -> list[str]:
    """The work pools the deployments of a ``prefect.yaml`` run on."""
    return sorted({spec["work_pool"]["name"] for spec in config["deployments"]})


def prefect_server_environment(home: Path) -> dict[str, str]:
    """Where a Prefect server started by `hourcast up` keeps its files and database (under ``home``)."""
    prefect_home = (home / "prefect").resolve()
    return {
        "PREFECT_HOME": str(prefect_home),
        "PREFECT_SERVER_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{prefect_home / 'prefect.db'}",
    }


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    children: list[Child],
    stop_event: threading.Event,
) -> None:
    """Poll ``condition`` until it holds; raise ``StartupFailed`` if a child dies or time runs out."""
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [child for child in children if not child.running()]
        if dead:
            raise StartupFailed(dead[0].failure())
        if time.monotonic() > deadline:
            raise StartupFailed(f"{what}: no answer after {timeout:.0f} s")
        if stop_event.wait(0.3):
            raise KeyboardInterrupt


def run_pid(flow_run: Any) -> int | None:
    """The pid of a flow run's process (its ``infrastructure_pid``, ``host:pid``), if it has one yet."""
    pid = (flow_run.infrastructure_pid or "").rpartition(":")[2]
    return int(pid) if pid.isdigit() else None


def process_alive(flow_run: Any) -> bool:
    """Whether a flow run's process may still be running: unknown (not started yet) counts as running."""
    pid = run_pid(flow_run)
    if pid is None:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, as another user's process
    return True


def in_group(pid: int | None, pgid: int) -> bool:
    """Whether process ``pid`` is in process group ``pgid``."""
    try:
        return pid is not None and os.getpgid(pid) == pgid
    except ProcessLookupError:
        return False


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 right now."""
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


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
        self._commands: list[Child] = []
        self._children_lock = threading.Lock()
        self._prefect_side: threading.Thread | None = None
        self._prefect_side_failure: BaseException | None = None
        self._schedules: dict[str, str] = {}
        self.server: Child | None = None
        self.worker: Child | None = None
        self.prefect_api_url = ""
        self.stop_event = threading.Event()
        self._starting = True
        self._replay_server = None
        self._scheduler = None
        self._scheduler_thread: threading.Thread | None = None
        self._flow_runs: set[UUID] = set()
        self._flow_runs_lock = threading.Lock()

    @property
    def api_url(self) -> str:
        """Where the prediction API answers."""
        return f"http://{self.settings.serve_host}:{self.settings.serve_port}"

    @property
    def ui_url(self) -> str:
        """Where the dashboard answers."""
        return f"http://{self.settings.ui_host}:{self.settings.ui_port}"

    @property
    def prefect_ui_url(self) -> str:
        """The Prefect UI (the API URL without its ``/api``)."""
        return self.prefect_api_url.rstrip("/").removesuffix("/api")

    @property
    def logs_dir(self) -> Path:
        """The children's logs."""
        return self.settings.home / "logs"

    # -- replay exchange -------------------------------------------------------------------------

    def start_replay(self) -> None:
        """Start the replay exchange in this process and point the settings at it."""
        import pandas as pd

        from hourcast.dev.replay.data import load_candles_file
        from hourcast.dev.replay.exchange import ReplayExchange
        from hourcast.dev.replay.server import ReplayServer

        assert self.replay_data, "replay needs recorded candle files"
        datasets = {symbol: load_candles_file(path) for symbol, path in self.replay_data.items()}
        now = self.replay_now or str(min(f["ts"].iloc[0] for f in datasets.values()) + pd.Timedelta(days=45))
        # the clock stands still while the stack starts, so the world it serves is fresh once it is up
        exchange = ReplayExchange(datasets, now=now, speed=0.0)
        self._replay_server = ReplayServer(exchange).start()
        self.settings = self.settings.model_copy(
            update={"exchange_url": self._replay_server.url, "symbols": list(datasets)}
        )
        self.say(
            f"replay exchange: {self._replay_server.url} (clock {now}, {self.replay_speed:g}x real time "
            "once everything is up)"
        )

    # -- Prefect -----------------------------------------------------------------------------------

    def start_prefect_server(self) -> None:
        """Use the Prefect server ``PREFECT_API_URL`` names, or start one (``prefect server start``)."""
        from prefect.settings import get_current_settings

        prefect = get_current_settings()
        if prefect.api.url:
            self.prefect_api_url = str(prefect.api.url)
            self.say(f"Prefect: using the server at {self.prefect_api_url} (PREFECT_API_URL)")
            return
        host, port = prefect.server.api.host, prefect.server.api.port
        self.prefect_api_url = f"http://{host}:{port}/api"
        if answers(f"{self.prefect_api_url}/health"):
            raise StartupFailed(
                f"something already answers on {host}:{port}; set PREFECT_API_URL to use that Prefect "
                "server, or PREFECT_SERVER_API_PORT to start one on another port"
            )
        env = {**os.environ, **prefect_server_environment(self.settings.home)}
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env.pop("PREFECT_API_URL", None)
        command = python_module("prefect", "server", "start", "--host", host, "--port", str(port))
        self.server = self._start_child(
            Child("prefect-server", command, self.logs_dir / "prefect-server.log"), env
        )

    @contextlib.contextmanager
    def prefect_api(self) -> Iterator[None]:
        """Prefect clients created inside talk to the stack's server."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.prefect_api_url}):
            yield

    def _prefect_environment(self) -> dict[str, str]:
        env = {"PREFECT_API_URL": self.prefect_api_url}
        if self.server is not None:
            env.update(prefect_server_environment(self.settings.home))
        return env

    def _environment(self) -> dict[str, str]:
        return {
            **os.environ,
            **settings_environment(self.settings),
            **self._prefect_environment(),
            "PYTHONUNBUFFERED": "1",
        }

    def create_work_pools(self, config: dict[str, Any]) -> None:
        """Create the process work pools of ``prefect.yaml`` that do not exist yet."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists

        with self.prefect_api(), get_client(sync_client=True) as client:
            for pool in work_pools(config):
                with contextlib.suppress(ObjectAlreadyExists):
                    client.create_work_pool(WorkPoolCreate(name=pool, type="process"))

    def deployed_schedules(self, config: dict[str, Any], active: bool) -> dict[str, str]:
        """The cron schedule of each deployed ``prefect.yaml`` deployment (``flow/deployment`` -> cron),
        read back from the server; every schedule is switched on or off (``active``), and the ingest
        deployment's set to the configured timeframe's cron (``schedules.deployment_cron``)."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName
        from prefect.client.schemas.schedules import CronSchedule

        from hourcast.ops.schedules import deployment_cron

        names = [spec["name"] for spec in config["deployments"]]
        schedules: dict[str, str] = {}
        with self.prefect_api(), get_client(sync_client=True) as client:
            deployments = client.read_deployments(
                deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=names))
            )
            for deployment in deployments:
                flow = client.read_flow(deployment.flow_id)
                for schedule in deployment.schedules:
                    cron = getattr(schedule.schedule, "cron", None)
                    wanted = deployment_cron(deployment.name, cron, self.settings.timeframe) if cron else None
                    if wanted is not None:
                        schedules[f"{flow.name}/{deployment.name}"] = wanted
                    if schedule.active != active or wanted != cron:
                        client.update_deployment_schedule(
                            deployment.id,
                            schedule.id,
                            active=active,
                            schedule=CronSchedule(cron=wanted, timezone="UTC") if wanted != cron else None,
                        )
        return schedules

    # -- bootstrap -----------------------------------------------------------------------------------

    def bootstrap(self) -> str:
        """Data (ingest, or the default backfill into an empty store), features, and a first model;
        returns a one-line status."""
        from hourcast.data import selection
        from hourcast.data.ingest import make_ingestor
        from hourcast.features import featurestore
        from hourcast.model import registry, training

        began = time.monotonic()
        self.say("bootstrap: ingesting candles (validated with Great Expectations) ...")
        summaries = make_ingestor(self.settings).ingest()
        for summary in summaries:
            self.say(
                f"  {summary.symbol}: {summary.new} new candles, last {summary.as_json()['last']}, "
                f"status {summary.status} {summary.message}".rstrip()
            )
        failed = "; ".join(f"{s.symbol}: {s.message}" for s in summaries if s.status == "failed")
        if failed:  # nothing after it can work: stop at the first failed step
            raise StartupFailed(f"bootstrap: the ingest failed, so the stack stops here: {failed}")
        ingested = selection.resolved(self.settings)  # a selector: the symbols the ingest resolved
        store = featurestore.describe_online_store(ingested)
        self.say(f"bootstrap: materializing features into {store} ...")
        featurestore.materialize(ingested)
        model = registry.production_tag(ingested.registry_dir, ingested.model_name)
        if model is None:
            self.say("bootstrap: training a first model ...")
            result = training.train(ingested)
            verdict = "promoted" if result.promoted else "NOT promoted"
            self.say(f"  {result.tag} {verdict}: {result.reason}")
            model = f"{result.tag} (new, {verdict})"
        new = sum(summary.new for summary in summaries)
        problems = [f"{s.symbol} {s.status}" for s in summaries if s.status != "ok"]
        return (
            f"{'ok' if not problems else 'with problems: ' + ', '.join(problems)}: {new} new candles for "
            f"{len(summaries)} symbols, features materialized, production model {model} "
            f"({time.monotonic() - began:.0f} s)"
        )

    # -- start-up ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bring every part up; returns once everything answers."""
        self.start_prefect_server()  # first: it starts while the rest loads and the bootstrap runs
        if self.replay_data:
            self.start_replay()
        env = self._environment()
        ui = Child("ui", python_module("hourcast", "ui"), self.logs_dir / "ui.log")
        self._start_child(ui, {**env, "HOURCAST_API_URL": self.api_url})
        self._prefect_side = threading.Thread(
            target=self._run_prefect_side, args=(env,), name="prefect-side", daemon=True
        )
        self._prefect_side.start()
        status = self.bootstrap()
        self._raise_prefect_side_failure()
        self._start_child(Child("api", python_module("hourcast", "serve"), self.logs_dir / "api.log"), env)
        self._wait(lambda: not self._prefect_side.is_alive(), 400, "the Prefect deployments and worker")
        self._raise_prefect_side_failure()
        self._wait(lambda: answers(f"{self.api_url}/readyz"), 180, "prediction API")
        self._wait(lambda: answers(self.ui_url), 120, "dashboard")
        schedules = self._schedules
        if self._replay_server is not None:
            exchange = self._replay_server.exchange
            exchange.clock.set_speed(self.replay_speed)
            self.say(
                f"replay clock:   running from {exchange.clock_state()['now']} at {self.replay_speed:g}x"
            )
            self._start_replay_scheduler(schedules)
        clock = "replay clock" if self._replay_server is not None else "system clock (UTC)"
        self.say(f"prediction API: {self.api_url}  (POST /predict, POST /predict_batch, GET /history)")
        self.say(f"Swagger page:   {self.api_url}/  (OpenAPI: {self.api_url}/docs.json)")
        self.say(f"dashboard:      {self.ui_url}")
        deployments = ", ".join(sorted(schedules))
        self.say(f"Prefect UI:     {self.prefect_ui_url}  (schedules of {deployments} on the {clock})")
        self.say(f"logs:           {self.logs_dir.resolve()}")
        self.say(f"bootstrap:      {status}")

    def _run_prefect_side(self, env: dict[str, str]) -> None:
        """The Prefect side of start-up, in its own thread: wait for the server, create the work pools, run
        ``prefect deploy --all`` beside the worker's start, then read the deployed schedules back (and switch
        them off in replay mode). A failure is kept for the main thread (``_raise_prefect_side_failure``)."""
        try:
            config = read_prefect_yaml(self.project_dir)
            self._wait(lambda: answers(f"{self.prefect_api_url}/health"), 120, self.prefect_api_url)
            self.create_work_pools(config)
            deploy_command = python_module("prefect", "--no-prompt", "deploy", "--all")
            deploy = Child("prefect deploy", deploy_command, self.logs_dir / "deploy.log")
            self._start_child(deploy, env, supervise=False)  # it ends by design: not a dead part
            self._start_worker(config, env)
            try:
                self._wait(lambda: not deploy.running(), 180, "prefect deploy --all")
            finally:
                stop_all([deploy], 5)
            if deploy.process is not None and deploy.process.returncode != 0:
                raise StartupFailed(deploy.failure())
            self._schedules = self.deployed_schedules(config, active=self._replay_server is None)
        except BaseException as failure:  # handed to the main thread, which raises it
            self._prefect_side_failure = failure

    def _raise_prefect_side_failure(self) -> None:
        """Raise what stopped the Prefect side of start-up, if anything did (an interruption as itself)."""
        failure = self._prefect_side_failure
        if failure is None:
            return
        if isinstance(failure, KeyboardInterrupt | StartupFailed):
            raise failure
        raise StartupFailed(f"setting up the Prefect deployments failed: {type(failure).__name__}: {failure}")

    def _start_child(self, child: Child, env: dict[str, str], supervise: bool = True) -> Child:
        """Start ``child`` (supervised: its death stops the stack; or a one-shot command such as
        ``prefect deploy``), unless the stack is already stopping, then raise ``KeyboardInterrupt``: once
        ``stop`` has begun nothing new starts, so ``stop`` stops everything there is."""
        with self._children_lock:
            if self.stop_event.is_set():
                raise KeyboardInterrupt
            child.start(env, self.project_dir)
            (self.children if supervise else self._commands).append(child)
        return child

    def _wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        wait_until(condition, timeout, what, self._supervised(), self.stop_event)

    def _supervised(self) -> list[Child]:
        """The children started so far (a copy: the Prefect side adds to them from its thread)."""
        with self._children_lock:
            return list(self.children)

    def _start_worker(self, config: dict[str, Any], env: dict[str, str]) -> None:
        """A process worker for each work pool, running flows from the project folder."""
        worker_env = {**env, "HOURCAST_PROJECT_DIR": str(self.project_dir.resolve())}
        worker_env.setdefault("PREFECT_WORKER_QUERY_SECONDS", WORKER_QUERY_SECONDS)
        for pool in work_pools(config):
            command = python_module("prefect", "worker", "start", "--pool", pool, "--type", "process")
            worker = Child(f"worker {pool}", command, self.logs_dir / f"worker-{pool}.log")
            self.worker = self._start_child(worker, worker_env)

    def _start_replay_scheduler(self, schedules: dict[str, str]) -> None:
        from hourcast.data.candles import from_ms
        from hourcast.dev.scheduler import ReplayScheduler

        exchange = self._replay_server.exchange
        self._scheduler = ReplayScheduler(lambda: from_ms(exchange.now_ms()), schedules, self.run_deployment)
        self._scheduler_thread = threading.Thread(
            target=self._scheduler.run, name="replay-scheduler", daemon=True
        )
        self._scheduler_thread.start()

    def run_deployment(self, name: str) -> None:
        """Create a run of deployment ``name`` (``flow/deployment``) and wait until it is over (or the
        stack stops); the replay scheduler's way of running a deployment."""
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment

        from hourcast.data.candles import from_ms

        with self.prefect_api():
            flow_run = run_deployment(name, timeout=0, as_subflow=False)
            with self._flow_runs_lock:
                self._flow_runs.add(flow_run.id)
            clock = from_ms(self._replay_server.exchange.now_ms())
            self.say(f"replay clock {clock:%Y-%m-%d %H:%M}: flow run {flow_run.name} of {name}")
            with get_client(sync_client=True) as client:
                while not self.stop_event.wait(1.0):  # when stopping, `stop` cancels it
                    state = client.read_flow_run(flow_run.id).state
                    if state is not None and state.is_final():
                        self.say(f"  {flow_run.name} ({name}): {state.name}")
                        with self._flow_runs_lock:
                            self._flow_runs.discard(flow_run.id)
                        return

    # -- running and stopping -------------------------------------------------------------------------

    def run(self) -> int:
        """Bring everything up and keep it running until Ctrl-C / SIGTERM; returns the exit code."""

        def on_signal(*_: object) -> None:
            self.stop_event.set()
            if self._starting:
                raise KeyboardInterrupt

        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, on_signal)
        try:
            try:
                self.start()
            except KeyboardInterrupt:
                self.say("interrupted during start-up")
                return 130
            finally:
                self._starting = False
            self.say("running; Ctrl-C stops everything")
            while not self.stop_event.wait(1.0):
                dead = [child for child in self._supervised() if not child.running()]
                if dead:
                    self.say(f"stopping: {dead[0].failure()}")
                    return 1
            return 0
        finally:
            self.stop()

    def in_flight_runs(self) -> list[Any]:
        """Flow runs in progress on the stack's work pool (with someone else's server: those whose process
        is in this stack's worker's process group), and the runs the replay scheduler made."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.filters import (
            FlowRunFilter,
            FlowRunFilterId,
            FlowRunFilterState,
            FlowRunFilterStateType,
            WorkPoolFilter,
            WorkPoolFilterName,
        )
        from prefect.client.schemas.objects import StateType

        config = read_prefect_yaml(self.project_dir)
        with self.prefect_api(), get_client(sync_client=True) as client:
            active = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType(s) for s in ACTIVE_STATES])
                    )
                ),
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=work_pools(config))),
            )
            with self._flow_runs_lock:
                ours = list(self._flow_runs)
            made = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ours)))
        if self.server is None and self.worker is not None and self.worker.process is not None:
            # someone else's server: other workers may serve the pool; only the runs of ours count
            active = [run for run in active if in_group(run_pid(run), self.worker.process.pid)]
        runs = {run.id: run for run in [*active, *made] if run.state is None or not run.state.is_final()}
        return list(runs.values())

    def cancel_flow_runs(self, timeout: float) -> list[UUID]:
        """Cancel the flow runs in progress through the Prefect API and wait (bounded) until their
        processes end; returns their ids."""
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelling

        runs = self.in_flight_runs()
        if not runs:
            return []
        self.say(f"cancelling {len(runs)} flow run(s) in progress: {', '.join(r.name for r in runs)}")
        with self.prefect_api(), get_client(sync_client=True) as client:
            for run in runs:
                client.set_flow_run_state(run.id, Cancelling(message="hourcast up is stopping"), force=True)
        deadline = time.monotonic() + timeout
        while any(map(process_alive, self.in_flight_runs())) and time.monotonic() < deadline:
            time.sleep(0.3)
        return [run.id for run in runs]

    def mark_cancelled(self, flow_run_ids: list[UUID]) -> None:
        """Of these flow runs, those a stopped worker left unfinished are marked Cancelled, not left
        Cancelling or Running."""
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelled

        with self.prefect_api(), get_client(sync_client=True) as client:
            for flow_run_id in flow_run_ids:
                state = client.read_flow_run(flow_run_id).state
                if state is None or not state.is_final():
                    message = "stopped with hourcast up"
                    client.set_flow_run_state(flow_run_id, Cancelled(message=message), force=True)

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the scheduler, cancel the flow runs in progress, stop every child and the replay
        exchange, each step bounded."""
        self.stop_event.set()
        if self._scheduler is not None:
            self._scheduler.stop_event.set()
        if self._prefect_side is not None:  # its waits end on stop_event; it starts no child after it
            self._prefect_side.join(timeout=timeout)
        prefect_up = bool(self.prefect_api_url) and answers(f"{self.prefect_api_url}/health")
        cancelled: list[UUID] = []
        if prefect_up and self.worker is not None:
            try:
                cancelled = self.cancel_flow_runs(timeout)
            except Exception as error:  # the API went away: the worker is stopped below all the same
                self.say(f"could not cancel the flow runs in progress: {error}")
        with self._children_lock:
            others = [child for child in [*self.children, *self._commands] if child is not self.server]
        stop_all(others, timeout)
        if cancelled:
            try:
                self.mark_cancelled(cancelled)
            except Exception as error:
                self.say(f"could not mark the unfinished flow runs cancelled: {error}")
        if self.server is not None:
            stop_all([self.server], timeout)
        if self._scheduler_thread is not None:
            self._scheduler_thread.join(timeout=timeout)
        if self._replay_server is not None:
            self._replay_server.stop()
        self.say("stopped")
