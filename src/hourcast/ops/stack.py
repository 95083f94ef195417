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
once the bootstrap returns. Once everything is up, every part that dies is restarted (``RestartPolicy``
from the ``restart_*`` settings: a growing delay, and the stack stops only when a part keeps dying), after
what it started is stopped too (the API's orphaned workers, a dead worker's flow runs). The rest carries on
meanwhile: the worker, the flow runs and the replay scheduler wait for a restarted Prefect server (whose
database is under ``HOURCAST_HOME``), the dashboard for a restarted API. Ctrl-C or SIGTERM cancels the flow
runs in progress through the Prefect API, then stops every part (SIGTERM to its process group, SIGKILL after
a bounded wait).

This module only composes: process supervision is ``hourcast.ops.supervise``, the Prefect side
``hourcast.ops.prefect_admin`` and ``hourcast.ops.flow_runs``, the bootstrap ``hourcast.ops.bootstrap``, the
replay exchange and its scheduler ``hourcast.ops.replay_world``.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from pathlib import Path
from uuid import UUID

from hourcast.ops.bootstrap import bootstrap
from hourcast.ops.flow_runs import FlowRuns
from hourcast.ops.prefect_admin import PrefectAdmin
from hourcast.ops.replay_world import ReplayWorld
from hourcast.ops.supervise import (
    Child,
    RestartPolicy,
    StartupFailed,
    Supervisor,
    answers,
    python_module,
    stop_all,
)
from hourcast.settings import Settings


def restart_policy(settings: Settings) -> RestartPolicy:
    """How `hourcast up` restarts a part that died (the ``restart_*`` settings)."""
    return RestartPolicy(
        limit=settings.restart_limit,
        window=settings.restart_window_seconds,
        first_delay=settings.restart_delay_seconds,
        max_delay=settings.restart_max_delay_seconds,
    )


def settings_environment(settings: Settings) -> dict[str, str]:
    """The settings as ``HOURCAST_*`` variables, so child processes build the same ``Settings``."""
    env: dict[str, str] = {}
    for name, value in settings.model_dump().items():
        if value is None:
            continue
        text = ",".join(value) if isinstance(value, list) else str(value)
        env[f"HOURCAST_{name.upper()}"] = text
    return env


class Stack:
    """Everything `hourcast up` runs, started side by side, and its orderly shutdown."""

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
        self.say = say
        self.supervisor = Supervisor(project_dir, restart_policy(settings), say)
        self.prefect = PrefectAdmin(settings, project_dir, self.supervisor, say)
        self.flow_runs = FlowRuns(self.prefect, self.supervisor.stop_event, say)
        self.replay = ReplayWorld(replay_data, replay_now, replay_speed, say) if replay_data else None
        self._prefect_side: threading.Thread | None = None
        self._prefect_side_failure: BaseException | None = None
        self._schedules: dict[str, str] = {}
        self._starting = True

    @property
    def api_url(self) -> str:
        """Where the prediction API answers."""
        return f"http://{self.settings.serve_host}:{self.settings.serve_port}"

    @property
    def ui_url(self) -> str:
        """Where the dashboard answers."""
        return f"http://{self.settings.ui_host}:{self.settings.ui_port}"

    @property
    def logs_dir(self) -> Path:
        """The children's logs."""
        return self.settings.home / "logs"

    def _environment(self) -> dict[str, str]:
        """The environment of every child: the settings, and where the Prefect server is."""
        return {
            **os.environ,
            **settings_environment(self.settings),
            **self.prefect.environment(),
            "PYTHONUNBUFFERED": "1",
        }

    # -- start-up ------------------------------------------------------------------------------------

    def start(self) -> None:
        """Bring every part up; returns once everything answers."""
        self.prefect.start_server()  # first: it starts while the rest loads and the bootstrap runs
        if self.replay is not None:
            self.settings = self.replay.start(self.settings)
        env = self._environment()
        ui = Child("ui", python_module("hourcast", "ui"), self.logs_dir / "ui.log")
        self.supervisor.start(ui, {**env, "HOURCAST_API_URL": self.api_url})
        self._prefect_side = threading.Thread(
            target=self._run_prefect_side, args=(env,), name="prefect-side", daemon=True
        )
        self._prefect_side.start()
        status = bootstrap(self.settings, self.say)
        self._raise_prefect_side_failure()
        self.supervisor.start(
            Child("api", python_module("hourcast", "serve"), self.logs_dir / "api.log"), env
        )
        prefect_side = self._prefect_side
        self.supervisor.wait(lambda: not prefect_side.is_alive(), 400, "the Prefect deployments and worker")
        self._raise_prefect_side_failure()
        self.supervisor.wait(lambda: answers(f"{self.api_url}/readyz"), 180, "prediction API")
        self.supervisor.wait(lambda: answers(self.ui_url), 120, "dashboard")
        schedules = self._schedules
        if self.replay is not None:
            self.replay.run_clock(schedules, self.flow_runs.run_deployment)
        clock = "replay clock" if self.replay is not None else "system clock (UTC)"
        self.say(f"prediction API: {self.api_url}  (POST /predict, POST /predict_batch, GET /history)")
        self.say(f"Swagger page:   {self.api_url}/  (OpenAPI: {self.api_url}/docs.json)")
        self.say(f"dashboard:      {self.ui_url}")
        deployments = ", ".join(sorted(schedules))
        self.say(f"Prefect UI:     {self.prefect.ui_url}  (schedules of {deployments} on the {clock})")
        self.say(f"logs:           {self.logs_dir.resolve()}")
        self.say(f"bootstrap:      {status}")

    def _run_prefect_side(self, env: dict[str, str]) -> None:
        """The Prefect side of start-up (``PrefectAdmin.set_up``), in its own thread; against the replay
        exchange the deployed schedules are switched off (the replay scheduler follows them). A failure is
        kept for the main thread (``_raise_prefect_side_failure``)."""
        try:
            self._schedules = self.prefect.set_up(env, schedules_active=self.replay is None)
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

    # -- running and stopping -------------------------------------------------------------------------

    def run(self) -> int:
        """Bring everything up and keep it running until Ctrl-C / SIGTERM; returns the exit code."""

        def on_signal(*_: object) -> None:
            self.supervisor.stop_event.set()
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
            while not self.supervisor.stop_event.wait(1.0):
                reason = self.supervisor.tend()
                if reason is not None:
                    self.say(f"stopping: {reason}")
                    return 1
            return 0
        finally:
            self.stop()

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the scheduler, cancel the flow runs in progress, stop every child and the replay
        exchange, each step bounded."""
        self.supervisor.stop_event.set()
        if self.replay is not None:
            self.replay.stop_scheduling()
        if self._prefect_side is not None:  # its waits end on stop_event; it starts no child after it
            self._prefect_side.join(timeout=timeout)
        cancelled: list[UUID] = []
        if self.prefect.answers() and self.prefect.worker is not None:
            try:
                cancelled = self.flow_runs.cancel(timeout)
            except Exception as error:  # the API went away: the worker is stopped below all the same
                self.say(f"could not cancel the flow runs in progress: {error}")
        self.supervisor.stop(timeout, spare=self.prefect.server)
        if cancelled:
            try:
                self.flow_runs.mark_cancelled(cancelled)
            except Exception as error:
                self.say(f"could not mark the unfinished flow runs cancelled: {error}")
        if self.prefect.server is not None:
            stop_all([self.prefect.server], timeout)
        if self.replay is not None:
            self.replay.stop(timeout)
        self.say("stopped")
