"""Process supervision for `hourcast up`: child processes, each in a process group of its own with its output
in a log file; waiting until something answers while watching that no child died; stopping process trees
(SIGTERM to the group, SIGKILL after a bounded wait).

Knows nothing of Prefect, the bootstrap or the parts it runs: ``hourcast.ops.stack`` tells it what to start.
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
from dataclasses import dataclass
from pathlib import Path

from hourcast.errors import HourcastError


class StartupFailed(HourcastError):
    """A part of the stack did not come up; the message carries the tail of its log."""


def log_tail(path: Path, lines: int = 20) -> str:
    """The last ``lines`` lines of a log file (empty if there is none)."""
    try:
        text = path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.rstrip().splitlines()[-lines:])


def python_module(module: str, *args: str) -> list[str]:
    """A command running ``python -m module args`` with this interpreter."""
    return [sys.executable, "-m", module, *args]


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 right now."""
    import httpx

    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


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


def wait_until(
    condition: Callable[[], bool],
    timeout: float,
    what: str,
    children: list[Child],
    stop_event: threading.Event,
) -> None:
    """Poll ``condition`` until it holds; raise ``StartupFailed`` if a child dies or time runs out, and
    ``KeyboardInterrupt`` once ``stop_event`` is set."""
    deadline = time.monotonic() + timeout
    while not condition():
        dead = [child for child in children if not child.running()]
        if dead:
            raise StartupFailed(dead[0].failure())
        if time.monotonic() > deadline:
            raise StartupFailed(f"{what}: no answer after {timeout:.0f} s")
        if stop_event.wait(0.3):
            raise KeyboardInterrupt


class Supervisor:
    """The children of one stack, started from ``cwd``: parts (whose death stops the stack) and one-shot
    commands (such as ``prefect deploy``, which end by design). Threads may start children side by side;
    once ``stop_event`` is set nothing new starts, so ``stop`` stops everything there is."""

    def __init__(self, cwd: Path) -> None:
        self.cwd = cwd
        self.stop_event = threading.Event()
        self._parts: list[Child] = []
        self._commands: list[Child] = []
        self._lock = threading.Lock()

    def start(self, child: Child, env: dict[str, str], part: bool = True) -> Child:
        """Start ``child`` (a part, or a one-shot command); ``KeyboardInterrupt`` if stopping has begun."""
        with self._lock:
            if self.stop_event.is_set():
                raise KeyboardInterrupt
            child.start(env, self.cwd)
            (self._parts if part else self._commands).append(child)
        return child

    def parts(self) -> list[Child]:
        """The parts started so far (a copy: other threads may add to them)."""
        with self._lock:
            return list(self._parts)

    def dead_part(self) -> Child | None:
        """A part that is no longer running, if any."""
        return next((child for child in self.parts() if not child.running()), None)

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """``wait_until`` ``condition`` holds, watching every part started so far."""
        wait_until(condition, timeout, what, self.parts(), self.stop_event)

    def stop(self, timeout: float, spare: Child | None = None) -> None:
        """Set ``stop_event`` and stop every child but ``spare`` (which its owner stops later)."""
        self.stop_event.set()
        with self._lock:
            children = [child for child in [*self._parts, *self._commands] if child is not spare]
        stop_all(children, timeout)
