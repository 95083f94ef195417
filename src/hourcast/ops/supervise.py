"""Process supervision for `hourcast up`: child processes, each in a process group of its own with its output
in a log file; waiting until something answers while watching that no child died; stopping process trees
(SIGTERM to the group, SIGKILL after a bounded wait); restarting a part that died, the way a process
supervisor does (systemd's ``Restart=on-failure``): after a delay that doubles with each death, unless it died
too often.

A child is its process group and every process started under it, found by the mark its environment carries
(``PART_MARK``, inherited) wherever it went: server workers and flow runs move to sessions of their own and
outlive a killed parent (on Linux, through ``/proc``; elsewhere a child is its process group only).

Knows nothing of Prefect, the bootstrap or the parts it runs: ``hourcast.ops.stack`` tells it what to start
and how to restart it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from hourcast.errors import HourcastError

PART_MARK = "HOURCAST_PART"
"""The environment variable that marks every process started under a child (``Child.mark``)."""


class StartupFailed(HourcastError):
    """A part of the stack did not come up; the message carries the tail of its log."""


@dataclass(frozen=True)
class RestartPolicy:
    """When a dead part starts again: after ``first_delay`` seconds, doubled for each other death within
    the last ``window`` seconds (at most ``max_delay``); never once it died more than ``limit`` times
    within it."""

    limit: int
    window: float
    first_delay: float
    max_delay: float

    def recent(self, deaths: list[float], now: float) -> list[float]:
        """The deaths (monotonic times) within the window that ends ``now``."""
        return [death for death in deaths if now - death < self.window]

    def delay(self, deaths: list[float], now: float) -> float | None:
        """Seconds to wait before restarting a part whose deaths (the last one included) are ``deaths``;
        None to give up."""
        count = len(self.recent(deaths, now))
        if count > self.limit:
            return None
        return min(self.max_delay, self.first_delay * 2 ** (count - 1))


def processes_with_variable(variable: str) -> list[int]:
    """The live processes whose environment holds ``variable`` (``NAME=value``; none where there is no
    ``/proc``)."""
    entry = variable.encode()
    found: list[int] = []
    with contextlib.suppress(FileNotFoundError):
        for process in Path("/proc").iterdir():
            if not process.name.isdigit():
                continue
            try:
                if entry in (process / "environ").read_bytes().split(b"\0"):
                    found.append(int(process.name))
            except OSError:  # gone, or another user's
                continue
    return found


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
    mark: str = ""

    def start(self, env: dict[str, str], cwd: Path) -> Child:
        """Start it in its own process group (session), its processes marked afresh; returns self."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.mark = f"{self.name} {uuid.uuid4().hex}"
        with open(self.log, "ab") as output:
            self.process = subprocess.Popen(
                self.command,
                cwd=cwd,
                env={**env, PART_MARK: self.mark},
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

    def strays(self) -> list[int]:
        """Processes started under it that are still alive (in sessions of their own, or orphaned)."""
        return processes_with_variable(f"{PART_MARK}={self.mark}") if self.mark else []

    def signal_strays(self, sig: signal.Signals) -> None:
        """Send ``sig`` to every process started under it that is still alive."""
        for pid in self.strays():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def exit_code(self) -> int | None:
        """Its exit code (negative: the signal that ended it), None while it runs."""
        return self.process.poll() if self.process is not None else None

    def failure(self) -> str:
        """Why it is not running, with the tail of its log."""
        code = self.exit_code()
        return f"{self.name} exited (code {code}); last lines of {self.log}:\n{log_tail(self.log)}"


def _wait_while(condition: Callable[[], bool], deadline: float) -> None:
    """Poll ``condition`` until it is false or ``deadline`` (monotonic) has passed."""
    while condition() and time.monotonic() < deadline:
        time.sleep(0.1)


def stop_all(children: list[Child], timeout: float) -> None:
    """SIGTERM every child's process group at once, then, once the groups are gone, what they started
    elsewhere (whose parent had the chance to stop it first); SIGKILL what is still alive after
    ``timeout``."""
    deadline = time.monotonic() + timeout
    for child in children:
        child.signal(signal.SIGTERM)
    _wait_while(lambda: any(child.group_alive() for child in children), deadline)
    for child in children:
        child.signal_strays(signal.SIGTERM)
    _wait_while(lambda: any(child.group_alive() or child.strays() for child in children), deadline)
    for child in children:
        if child.group_alive():
            child.signal(signal.SIGKILL)
        child.signal_strays(signal.SIGKILL)
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


@dataclass
class Restarts:
    """A part restarted when it dies: the environment it starts with, its recent deaths (monotonic times)
    and, while it waits to start again, when it does."""

    child: Child
    env: dict[str, str]
    deaths: list[float] = field(default_factory=list)
    due: float | None = None


class Supervisor:
    """The children of one stack, started from ``cwd``: parts (restarted when they die under ``policy`` once
    ``tend`` looks after them; without one, a part's death stops the stack) and one-shot commands (such as
    ``prefect deploy``, which end by design).
    Threads may start children side by side; once ``stop_event`` is set nothing new starts, so ``stop``
    stops everything there is."""

    def __init__(
        self,
        cwd: Path,
        policy: RestartPolicy | None = None,
        say: Callable[[str], None] = print,
        stop_timeout: float = 15.0,
    ) -> None:
        self.cwd = cwd
        self.policy = policy
        self.say = say
        self.stop_timeout = stop_timeout
        self.stop_event = threading.Event()
        self._parts: list[Child] = []
        self._commands: list[Child] = []
        self._restarts: list[Restarts] = []
        self._lock = threading.Lock()

    def start(self, child: Child, env: dict[str, str], part: bool = True) -> Child:
        """Start ``child`` (a part, or a one-shot command); ``KeyboardInterrupt`` if stopping has begun."""
        with self._lock:
            if self.stop_event.is_set():
                raise KeyboardInterrupt
            child.start(env, self.cwd)
            (self._parts if part else self._commands).append(child)
            if part and self.policy is not None:
                self._restarts.append(Restarts(child, env))
        return child

    def parts(self) -> list[Child]:
        """The parts started so far (a copy: other threads may add to them)."""
        with self._lock:
            return list(self._parts)

    def wait(self, condition: Callable[[], bool], timeout: float, what: str) -> None:
        """``wait_until`` ``condition`` holds, watching every part started so far."""
        wait_until(condition, timeout, what, self.parts(), self.stop_event)

    def tend(self) -> str | None:
        """Look after the parts once they are all up (call it every second or so): a restarted part that
        died is stopped for good (with what it started) and started again after the policy's delay, with a
        line naming it and its exit code. Returns why the stack must stop, if it must: a part that is not
        restarted (there is no policy) died, or one died more often than the policy allows."""
        with self._lock:
            restarts = {id(entry.child): entry for entry in self._restarts}
        for child in self.parts():
            entry = restarts.get(id(child))
            if entry is not None and entry.due is not None:
                if time.monotonic() >= entry.due:
                    self._start_again(entry)
            elif not child.running():
                reason = child.failure() if entry is None else self._died(entry)
                if reason is not None:
                    return reason
        return None

    def _died(self, entry: Restarts) -> str | None:
        """``entry``'s part died: stop what it left, and set when it starts again; or why to give up."""
        assert self.policy is not None
        child, policy, now = entry.child, self.policy, time.monotonic()
        entry.deaths = [*policy.recent(entry.deaths, now), now]
        delay = policy.delay(entry.deaths, now)
        code = child.exit_code()
        if delay is None:
            return (
                f"{child.name} exited (code {code}): {len(entry.deaths)} deaths within {policy.window:g} s, "
                f"more than the {policy.limit} restarts allowed; its log: {child.log}"
            )
        stop_all([child], self.stop_timeout)  # what it started (orphaned server workers) goes with it
        self.say(
            f"{child.name} exited (code {code}); restarting it in {delay:g} s "
            f"(restart {len(entry.deaths)} of at most {policy.limit} in {policy.window:g} s)"
        )
        entry.due = time.monotonic() + delay
        return None

    def _start_again(self, entry: Restarts) -> None:
        """Start ``entry``'s part again (unless stopping has begun)."""
        with self._lock:
            if self.stop_event.is_set():
                return
            entry.child.start(entry.env, self.cwd)
            entry.due = None

    def stop(self, timeout: float, spare: Child | None = None) -> None:
        """Set ``stop_event`` and stop every child but ``spare`` (which its owner stops later)."""
        self.stop_event.set()
        with self._lock:
            children = [child for child in [*self._parts, *self._commands] if child is not spare]
        stop_all(children, timeout)
