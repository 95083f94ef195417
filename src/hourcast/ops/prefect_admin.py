"""Prefect administration for `hourcast up`: the Prefect server (started with its database under
``HOURCAST_HOME/prefect``, or the one ``PREFECT_API_URL`` names), the work pools, the deployments of
``prefect.yaml`` (``prefect deploy --all``) and their schedules, and the process worker.

The child processes it starts are supervised by the ``Supervisor`` it is given (``hourcast.ops.supervise``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from hourcast.ops.supervise import Child, StartupFailed, Supervisor, answers, python_module, stop_all
from hourcast.settings import Settings

WORKER_QUERY_SECONDS = "2"
"""How often `hourcast up`'s worker asks for runs to start (Prefect's default, 10 s, delays each run)."""


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


class PrefectAdmin:
    """The Prefect side of one stack: its server, work pools, deployments, schedules and worker."""

    def __init__(
        self,
        settings: Settings,
        project_dir: Path,
        supervisor: Supervisor,
        say: Callable[[str], None] = print,
    ) -> None:
        self.settings = settings
        self.project_dir = project_dir
        self.supervisor = supervisor
        self.say = say
        self.api_url = ""
        self.server: Child | None = None
        self.worker: Child | None = None

    @property
    def ui_url(self) -> str:
        """The Prefect UI (the API URL without its ``/api``)."""
        return self.api_url.rstrip("/").removesuffix("/api")

    @property
    def logs_dir(self) -> Path:
        """The logs of the Prefect processes."""
        return self.settings.home / "logs"

    def answers(self) -> bool:
        """Whether the Prefect server answers its health check right now."""
        return bool(self.api_url) and answers(f"{self.api_url}/health")

    def start_server(self) -> None:
        """Use the Prefect server ``PREFECT_API_URL`` names, or start one (``prefect server start``)."""
        from prefect.settings import get_current_settings

        prefect = get_current_settings()
        if prefect.api.url:
            self.api_url = str(prefect.api.url)
            self.say(f"Prefect: using the server at {self.api_url} (PREFECT_API_URL)")
            return
        host, port = prefect.server.api.host, prefect.server.api.port
        self.api_url = f"http://{host}:{port}/api"
        if self.answers():
            raise StartupFailed(
                f"something already answers on {host}:{port}; set PREFECT_API_URL to use that Prefect "
                "server, or PREFECT_SERVER_API_PORT to start one on another port"
            )
        env = {**os.environ, **prefect_server_environment(self.settings.home)}
        env["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
        env.pop("PREFECT_API_URL", None)
        command = python_module("prefect", "server", "start", "--host", host, "--port", str(port))
        server = Child("prefect-server", command, self.logs_dir / "prefect-server.log")
        self.server = self.supervisor.start(server, env)

    @contextlib.contextmanager
    def api(self) -> Iterator[None]:
        """Prefect clients created inside talk to the stack's server."""
        from prefect.settings import PREFECT_API_URL, temporary_settings

        with temporary_settings(updates={PREFECT_API_URL: self.api_url}):
            yield

    def environment(self) -> dict[str, str]:
        """What a child process needs to talk to the stack's server (and, with the stack's own server,
        to find its files)."""
        env = {"PREFECT_API_URL": self.api_url}
        if self.server is not None:
            env.update(prefect_server_environment(self.settings.home))
        return env

    def set_up(self, env: dict[str, str], schedules_active: bool) -> dict[str, str]:
        """Wait for the server, create the work pools, run ``prefect deploy --all`` beside the worker's
        start, then read the deployed schedules back (switched on or off: ``schedules_active``); returns
        them (``flow/deployment`` -> cron). ``StartupFailed`` if the deploy fails or a part dies."""
        config = read_prefect_yaml(self.project_dir)
        self.supervisor.wait(self.answers, 120, self.api_url)
        self.create_work_pools(config)
        deploy_command = python_module("prefect", "--no-prompt", "deploy", "--all")
        deploy = Child("prefect deploy", deploy_command, self.logs_dir / "deploy.log")
        self.supervisor.start(deploy, env, part=False)  # it ends by design: not a dead part
        self.start_worker(config, env)
        try:
            self.supervisor.wait(lambda: not deploy.running(), 180, "prefect deploy --all")
        finally:
            stop_all([deploy], 5)
        if deploy.process is not None and deploy.process.returncode != 0:
            raise StartupFailed(deploy.failure())
        return self.deployed_schedules(config, active=schedules_active)

    def create_work_pools(self, config: dict[str, Any]) -> None:
        """Create the process work pools of ``prefect.yaml`` that do not exist yet."""
        from prefect.client.orchestration import get_client
        from prefect.client.schemas.actions import WorkPoolCreate
        from prefect.exceptions import ObjectAlreadyExists

        with self.api(), get_client(sync_client=True) as client:
            for pool in work_pools(config):
                with contextlib.suppress(ObjectAlreadyExists):
                    client.create_work_pool(WorkPoolCreate(name=pool, type="process"))

    def start_worker(self, config: dict[str, Any], env: dict[str, str]) -> None:
        """A process worker for each work pool, running flows from the project folder."""
        worker_env = {**env, "HOURCAST_PROJECT_DIR": str(self.project_dir.resolve())}
        worker_env.setdefault("PREFECT_WORKER_QUERY_SECONDS", WORKER_QUERY_SECONDS)
        for pool in work_pools(config):
            command = python_module("prefect", "worker", "start", "--pool", pool, "--type", "process")
            worker = Child(f"worker {pool}", command, self.logs_dir / f"worker-{pool}.log")
            self.worker = self.supervisor.start(worker, worker_env)

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
        with self.api(), get_client(sync_client=True) as client:
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
