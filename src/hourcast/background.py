"""Small reliability pieces of the serving side: a periodic background job that logs every failure,
and a circuit that remembers a dependency is down so requests can be refused at once."""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections.abc import Callable

from hourcast.redact import redact


class Periodic:
    """Runs ``action`` every ``seconds`` in a daemon thread until ``stop()``.

    A failure never ends the loop and is never silent: the first of a run of failures is logged with its
    traceback, each later one as one line, and recovery is logged too. ``last_error`` holds the current
    failure (``None`` after a success), for health reports.
    """

    def __init__(
        self, name: str, seconds: float, action: Callable[[], object], logger: logging.Logger
    ) -> None:
        self.name, self.seconds, self.action, self.logger = name, seconds, action, logger
        self.last_error: str | None = None
        self.failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> bool:
        """One run of the action, its failure recorded and logged; True if it succeeded."""
        try:
            self.action()
        except Exception as error:
            self.failures += 1
            self.last_error = redact(f"{type(error).__name__}: {error}")
            if self.failures == 1:
                trace = redact("".join(traceback.format_exception(error)))
                self.logger.error("%s failed: %s\n%s", self.name, self.last_error, trace.rstrip())
            else:
                self.logger.warning(
                    "%s failed again (%d in a row): %s", self.name, self.failures, self.last_error
                )
            return False
        if self.failures:
            self.logger.warning("%s works again after %d failures", self.name, self.failures)
        self.failures, self.last_error = 0, None
        return True

    def start(self) -> None:
        """Start the loop (the first run is one period from now)."""

        def loop() -> None:
            while not self._stop.wait(self.seconds):
                self.run_once()

        self._thread = threading.Thread(target=loop, name=f"hourcast-{self.name}", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        """End the loop and wait (bounded) for a run in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=timeout)


class Circuit:
    """Whether a dependency is known to be down, and why. Requests check ``reason`` and answer at once
    while it is set; only a background probe (or a successful call) closes it again."""

    def __init__(self, logger: logging.Logger, name: str) -> None:
        self.logger, self.name = logger, name
        self._reason: str | None = None
        self._since = 0.0
        self._lock = threading.Lock()

    @property
    def reason(self) -> str | None:
        """Why the dependency is down (``None``: closed, calls go through)."""
        return self._reason

    def open(self, reason: str) -> None:
        """Record a failure: calls are refused until ``close()``."""
        reason = redact(reason)
        with self._lock:
            if self._reason is None:
                self._since = time.monotonic()
                self.logger.warning("%s is down, refusing requests until it answers: %s", self.name, reason)
            self._reason = reason

    def close(self) -> None:
        """Record a success: calls go through again."""
        with self._lock:
            if self._reason is not None:
                self.logger.warning(
                    "%s answers again after %.1f s", self.name, time.monotonic() - self._since
                )
            self._reason = None
