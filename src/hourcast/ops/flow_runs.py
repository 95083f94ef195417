"""The flow runs `hourcast up` answers for: runs of deployments it creates (the replay scheduler's), and at
shutdown every run in progress on its work pools, cancelled through the Prefect API, waited for (bounded),
and, once the worker is stopped, marked Cancelled rather than left Cancelling or Running.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from uuid import UUID

from hourcast.ops.prefect_admin import PrefectAdmin, read_prefect_yaml, work_pools

if TYPE_CHECKING:
    import pandas as pd

ACTIVE_STATES = ("PENDING", "RUNNING", "CANCELLING")
"""Flow-run state types that are in progress on the worker."""


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


class FlowRuns:
    """The flow runs of one stack, on the server and worker of ``prefect``; ``stop_event`` ends the waits."""

    def __init__(
        self, prefect: PrefectAdmin, stop_event: threading.Event, say: Callable[[str], None] = print
    ) -> None:
        self.prefect = prefect
        self.stop_event = stop_event
        self.say = say
        self._made: set[UUID] = set()
        self._made_lock = threading.Lock()

    def run_deployment(self, name: str, clock: Callable[[], pd.Timestamp]) -> None:
        """Create a run of deployment ``name`` (``flow/deployment``; logged with the time ``clock`` reads)
        and wait until it is over (or the stack stops, which cancels it), through outages of the Prefect
        server (restarted by `hourcast up`); the replay scheduler's way of running a deployment."""
        import httpx
        from prefect.client.orchestration import get_client
        from prefect.deployments import run_deployment

        with self.prefect.api():
            flow_run = run_deployment(name, timeout=0, as_subflow=False)
            with self._made_lock:
                self._made.add(flow_run.id)
            self.say(f"replay clock {clock():%Y-%m-%d %H:%M}: flow run {flow_run.name} of {name}")
            with get_client(sync_client=True) as client:
                while not self.stop_event.wait(1.0):
                    try:
                        state = client.read_flow_run(flow_run.id).state
                    except httpx.HTTPError:  # the server is away (its client retried): ask again
                        continue
                    if state is not None and state.is_final():
                        self.say(f"  {flow_run.name} ({name}): {state.name}")
                        with self._made_lock:
                            self._made.discard(flow_run.id)
                        return

    def in_flight(self) -> list[Any]:
        """Flow runs in progress on the stack's work pool (with someone else's server: those whose process
        is in this stack's worker's process group), and the runs ``run_deployment`` made."""
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

        config = read_prefect_yaml(self.prefect.project_dir)
        with self.prefect.api(), get_client(sync_client=True) as client:
            active = client.read_flow_runs(
                flow_run_filter=FlowRunFilter(
                    state=FlowRunFilterState(
                        type=FlowRunFilterStateType(any_=[StateType(s) for s in ACTIVE_STATES])
                    )
                ),
                work_pool_filter=WorkPoolFilter(name=WorkPoolFilterName(any_=work_pools(config))),
            )
            with self._made_lock:
                ours = list(self._made)
            made = client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=ours)))
        worker = self.prefect.worker
        if self.prefect.server is None and worker is not None and worker.process is not None:
            # someone else's server: other workers may serve the pool; only the runs of ours count
            active = [run for run in active if in_group(run_pid(run), worker.process.pid)]
        runs = {run.id: run for run in [*active, *made] if run.state is None or not run.state.is_final()}
        return list(runs.values())

    def cancel(self, timeout: float) -> list[UUID]:
        """Cancel the flow runs in progress through the Prefect API and wait (bounded) until their
        processes end; returns their ids."""
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelling

        runs = self.in_flight()
        if not runs:
            return []
        self.say(f"cancelling {len(runs)} flow run(s) in progress: {', '.join(r.name for r in runs)}")
        with self.prefect.api(), get_client(sync_client=True) as client:
            for run in runs:
                client.set_flow_run_state(run.id, Cancelling(message="hourcast up is stopping"), force=True)
        deadline = time.monotonic() + timeout
        while any(map(process_alive, self.in_flight())) and time.monotonic() < deadline:
            time.sleep(0.3)
        return [run.id for run in runs]

    def mark_cancelled(self, flow_run_ids: list[UUID]) -> None:
        """Of these flow runs, those a stopped worker left unfinished are marked Cancelled, not left
        Cancelling or Running."""
        from prefect.client.orchestration import get_client
        from prefect.states import Cancelled

        with self.prefect.api(), get_client(sync_client=True) as client:
            for flow_run_id in flow_run_ids:
                state = client.read_flow_run(flow_run_id).state
                if state is None or not state.is_final():
                    message = "stopped with hourcast up"
                    client.set_flow_run_state(flow_run_id, Cancelled(message=message), force=True)
