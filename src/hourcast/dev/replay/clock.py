"""The replay exchange's simulated clock: frozen, or running at a speed (simulated seconds per real
second), moved by ``POST /_replay/clock``.

May import: ``hourcast.data.candles``.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pandas as pd

from hourcast.data.candles import to_ms


def epoch_ms(value: pd.Timestamp | str | int) -> int:
    """Epoch milliseconds of an int (taken as ms), ISO string or timestamp (naive = UTC)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    return to_ms(value)


def iso_text(ms: int) -> str:
    """ISO-8601 UTC text of epoch milliseconds, e.g. ``2024-03-01T00:00:00.000Z``."""
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SimClock:
    """Simulated epoch-ms clock; frozen when ``speed`` is 0, otherwise advancing ``speed``
    simulated seconds per real (monotonic) second since it was last set."""

    def __init__(self, now_ms: int, speed: float = 0.0) -> None:
        self._lock = threading.Lock()
        self._anchor_ms = now_ms
        self._anchor_mono = time.monotonic()
        self._speed = speed

    @property
    def speed(self) -> float:
        """Simulated seconds per real second."""
        return self._speed

    def now_ms(self) -> int:
        """Current simulated time in epoch milliseconds."""
        with self._lock:
            return self._now_locked()

    def _now_locked(self) -> int:
        return self._anchor_ms + int((time.monotonic() - self._anchor_mono) * self._speed * 1000)

    def set(self, now_ms: int) -> None:
        """Jump to ``now_ms``; with a non-zero speed, elapsed time counts from here."""
        with self._lock:
            self._anchor_ms, self._anchor_mono = now_ms, time.monotonic()

    def advance(self, seconds: float) -> None:
        """Move the clock forward (or back, if negative) by simulated seconds."""
        with self._lock:
            self._anchor_ms, self._anchor_mono = self._now_locked() + round(seconds * 1000), time.monotonic()

    def set_speed(self, speed: float) -> None:
        """Change speed without jumping: the current simulated time is kept."""
        with self._lock:
            self._anchor_ms, self._anchor_mono, self._speed = self._now_locked(), time.monotonic(), speed

    def apply(self, body: dict[str, Any]) -> None:
        """Apply a ``POST /_replay/clock`` body: ``now`` (ISO or epoch ms) or ``advance_seconds``, optional
        ``speed``; ValueError if the body is anything else."""
        unknown = set(body) - {"now", "advance_seconds", "speed"}
        if unknown or ("now" in body and "advance_seconds" in body):
            raise ValueError("clock body takes 'now' or 'advance_seconds', and optionally 'speed'")
        if "speed" in body:
            speed = float(body["speed"])
            if speed < 0:
                raise ValueError("speed must be non-negative")
            self.set_speed(speed)
        if "now" in body:
            self.set(epoch_ms(body["now"]))
        elif "advance_seconds" in body:
            self.advance(float(body["advance_seconds"]))

    def state(self) -> dict[str, Any]:
        """``{"now": ISO, "now_ms": int, "speed": float}``, as served by ``/_replay/clock``."""
        now = self.now_ms()
        return {"now": iso_text(now), "now_ms": now, "speed": self.speed}
