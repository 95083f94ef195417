"""The replay scheduler: the deployments' cron schedules, followed by the replay exchange's clock.

The replay exchange's clock may run faster than real time, so Prefect's own scheduler (which follows the
system clock) cannot drive a replayed world. ``hourcast up --replay`` switches the deployments' schedules
off and runs this scheduler instead: it polls the exchange's clock and, whenever a deployment's cron
(``prefect.yaml``, UTC) fires between two readings, creates a flow run of that deployment through the
Prefect API, which the worker then executes like any other run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import pandas as pd
from cronsim import CronSim


def next_firing(cron: str, after: pd.Timestamp) -> pd.Timestamp:
    """The first time strictly after ``after`` (UTC) that ``cron`` fires."""
    start = after.tz_convert("UTC").to_pydatetime()
    return pd.Timestamp(next(CronSim(cron, start)))


@dataclass
class ReplayScheduler:
    """Creates runs of deployments (``flow/deployment`` -> cron) when their cron fires on the replay clock.

    A clock that skips several firings of one deployment between two readings runs it once (ingest
    catches up on every missed hour); the deployments due at once run in the order of their firings.
    ``run_deployment`` is called from the scheduler's thread and should return once the run is over, so
    runs of a deployment never pile up. A run it could not make (the Prefect server restarting) stays due
    and is tried again at each reading, with one line (``say``) when the trouble begins.
    """

    exchange_now: Callable[[], pd.Timestamp]
    schedules: dict[str, str]
    run_deployment: Callable[[str], None]
    poll_seconds: float = 1.0
    stop_event: threading.Event = field(default_factory=threading.Event)
    say: Callable[[str], None] = print

    def due(self, last: pd.Timestamp, now: pd.Timestamp) -> list[str]:
        """The deployments whose cron fires in ``(last, now]``, in the order they fire."""
        firings = {name: next_firing(cron, last) for name, cron in self.schedules.items()}
        return sorted((name for name, at in firings.items() if at <= now), key=lambda name: firings[name])

    def run(self) -> None:
        """Poll the clock until ``stop_event`` is set."""
        last = self.exchange_now()
        pending: list[str] = []  # due, in firing order, and not run yet
        failing = False
        while not self.stop_event.wait(self.poll_seconds):
            now = self.exchange_now()
            pending += [name for name in self.due(last, now) if name not in pending]
            last = now
            while pending and not self.stop_event.is_set():
                try:
                    self.run_deployment(pending[0])
                except Exception as error:  # the Prefect API is away: the run stays due
                    if not failing:
                        self.say(
                            f"replay scheduler: could not run {pending[0]} ({type(error).__name__}: "
                            f"{error}); trying again every {self.poll_seconds:g} s"
                        )
                    failing = True
                    break
                failing = False
                pending.pop(0)
