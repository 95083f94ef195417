"""`hourcast up --replay`'s world: the replay exchange over recorded candles, served from this process, and
the replay scheduler (``hourcast.dev.scheduler``) that runs the deployments whenever their cron fires on the
exchange's clock (which may run faster than real time).

The clock stands still while the stack starts, so the world it serves is fresh once everything is up;
``run_clock`` then sets it going.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from hourcast.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from hourcast.dev.replay.server import ReplayServer
    from hourcast.dev.scheduler import ReplayScheduler

RunDeployment = Callable[[str, Callable[[], "pd.Timestamp"]], None]
"""Runs deployment ``flow/deployment`` (with the replay clock to read), returning once the run is over."""


class ReplayWorld:
    """The replay exchange of ``data`` (symbol -> recorded candle file), its clock starting at ``now``
    (default: 45 days into the recordings) and, once running, at ``speed`` x real time."""

    def __init__(
        self,
        data: dict[str, Path],
        now: str | None = None,
        speed: float = 60.0,
        say: Callable[[str], None] = print,
    ) -> None:
        self.data = data
        self.now = now
        self.speed = speed
        self.say = say
        self.server: ReplayServer | None = None
        self.scheduler: ReplayScheduler | None = None
        self._scheduler_thread: threading.Thread | None = None

    def start(self, settings: Settings) -> Settings:
        """Start the replay exchange in this process (its clock still); returns ``settings`` pointed at it."""
        import pandas as pd

        from hourcast.dev.replay.data import load_candles_file
        from hourcast.dev.replay.exchange import ReplayExchange
        from hourcast.dev.replay.server import ReplayServer

        datasets = {symbol: load_candles_file(path) for symbol, path in self.data.items()}
        now = self.now or str(min(f["ts"].iloc[0] for f in datasets.values()) + pd.Timedelta(days=45))
        self.server = ReplayServer(ReplayExchange(datasets, now=now, speed=0.0)).start()
        self.say(
            f"replay exchange: {self.server.url} (clock {now}, {self.speed:g}x real time "
            "once everything is up)"
        )
        return settings.model_copy(update={"exchange_url": self.server.url, "symbols": list(datasets)})

    def clock(self) -> pd.Timestamp:
        """The replay exchange's clock now."""
        from hourcast.data.candles import from_ms

        assert self.server is not None, "the replay exchange is not started"
        return from_ms(self.server.exchange.now_ms())

    def run_clock(self, schedules: dict[str, str], run_deployment: RunDeployment) -> None:
        """Set the clock going at ``speed`` and run the deployments (``flow/deployment`` -> cron) on it."""
        from hourcast.dev.scheduler import ReplayScheduler

        assert self.server is not None, "the replay exchange is not started"
        exchange = self.server.exchange
        exchange.clock.set_speed(self.speed)
        self.say(f"replay clock:   running from {exchange.clock_state()['now']} at {self.speed:g}x")
        self.scheduler = ReplayScheduler(self.clock, schedules, lambda name: run_deployment(name, self.clock))
        self._scheduler_thread = threading.Thread(
            target=self.scheduler.run, name="replay-scheduler", daemon=True
        )
        self._scheduler_thread.start()

    def stop_scheduling(self) -> None:
        """Ask the scheduler to create no more runs (without waiting for the one in progress)."""
        if self.scheduler is not None:
            self.scheduler.stop_event.set()

    def stop(self, timeout: float) -> None:
        """Wait (bounded) for the scheduler's thread to end, then stop the replay exchange."""
        self.stop_scheduling()
        if self._scheduler_thread is not None:
            self._scheduler_thread.join(timeout=timeout)
        if self.server is not None:
            self.server.stop()
