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

from hourcast.errors import UserError
from hourcast.ops.bootstrap import first_history_days
from hourcast.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from hourcast.dev.replay.server import ReplayServer
    from hourcast.dev.scheduler import ReplayScheduler

RunDeployment = Callable[[str, Callable[[], "pd.Timestamp"]], None]
"""Runs deployment ``flow/deployment`` (with the replay clock to read), returning once the run is over."""


def first_clock(datasets: dict[str, pd.DataFrame], history_days: int) -> pd.Timestamp:
    """Where the replay clock starts by default: ``history_days`` after the first recorded candle, so an
    empty store's bootstrap gets that much history (``bootstrap.first_history_days``). ``UserError`` when
    the recordings end before it (nothing would be left to replay)."""
    import pandas as pd

    first = min(frame["ts"].iloc[0] for frame in datasets.values())
    last = max(frame["ts"].iloc[-1] for frame in datasets.values())
    clock = first + pd.Timedelta(days=history_days)
    if clock >= last:
        raise UserError(
            f"the recorded candles span {first:%Y-%m-%d %H:%M} to {last:%Y-%m-%d %H:%M}, but the bootstrap "
            f"needs {history_days} days before the replay clock (HOURCAST_TRAIN_DAYS plus the features' "
            "lookback); record a longer span, lower HOURCAST_TRAIN_DAYS or set the clock with --now"
        )
    return clock


class ReplayWorld:
    """The replay exchange of ``data`` (symbol -> recorded candle file), its clock starting at ``now``
    (default: ``first_clock``, late enough that the bootstrap trains on the configured window) and, once
    running, at ``speed`` x real time."""

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
        from hourcast.dev.replay.data import load_candles_file
        from hourcast.dev.replay.exchange import ReplayExchange
        from hourcast.dev.replay.server import ReplayServer

        datasets = {symbol: load_candles_file(path) for symbol, path in self.data.items()}
        now = self.now or str(first_clock(datasets, first_history_days(settings)))
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
        self.scheduler = ReplayScheduler(
            self.clock, schedules, lambda name: run_deployment(name, self.clock), say=self.say
        )
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
