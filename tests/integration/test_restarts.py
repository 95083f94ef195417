"""`hourcast up` restarts a part that dies, the way a process supervisor does: real child processes SIGKILLed
by the test, restarted after a growing delay with one line naming the part and its exit code, what they
started elsewhere stopped first (a server whose workers hold its listening socket in sessions of their own,
as BentoML's do), and the stack stopped with one line once a part keeps dying."""

from __future__ import annotations

import os
import signal
import socket
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from hourcast.dev.ports import free_port
from hourcast.ops.supervise import Child, RestartPolicy, Supervisor
from tests.support.processes import wait_for

REPO = Path(__file__).resolve().parents[2]
QUICK = RestartPolicy(limit=2, window=60, first_delay=0.2, max_delay=0.3)

# A server like `bentoml serve`: it binds the port, hands the listening socket to a worker in a session of
# its own (which outlives it), writes both pids to a file and waits.
SERVER = textwrap.dedent(
    """
    import os, socket, subprocess, sys, time
    port, pids = int(sys.argv[1]), sys.argv[2]
    listener = socket.socket()
    listener.bind(("127.0.0.1", port))
    listener.listen()
    worker = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(300)"],
        pass_fds=[listener.fileno()],
        start_new_session=True,
    )
    with open(pids, "a") as out:
        out.write(f"{os.getpid()} {worker.pid}\\n")
    time.sleep(300)
    """
)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (killed, not yet reaped by its parent) is dead too
    return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"


def tend_until(supervisor: Supervisor, condition: Callable[[], bool], what: str) -> None:
    """Call ``tend`` as `hourcast up` does until ``condition`` holds; it must not give up meanwhile."""

    def tended() -> bool:
        assert supervisor.tend() is None
        return condition()

    wait_for(tended, 60, what)


def test_a_killed_server_is_restarted_once_its_orphaned_worker_is_stopped(tmp_path: Path) -> None:
    """SIGKILL the server: its worker (another session, the listening socket inherited) is stopped, the
    server starts again on the same port after the first delay with one line, then after a longer one."""
    said: list[str] = []
    supervisor = Supervisor(REPO, QUICK, said.append, stop_timeout=5)
    port, pids = free_port(), tmp_path / "pids"
    command = [sys.executable, "-c", SERVER, str(port), str(pids)]
    server = supervisor.start(Child("api", command, tmp_path / "api.log"), dict(os.environ))

    def starts() -> list[tuple[int, int]]:
        lines = pids.read_text().splitlines() if pids.exists() else []
        return [(int(a), int(b)) for a, b in (line.split() for line in lines)]

    try:
        for restart, delay in ((1, 0.2), (2, 0.3)):
            wait_for(lambda: len(starts()) == restart, 60, "the server and its worker")  # noqa: B023
            killed, worker = starts()[-1]
            os.kill(killed, signal.SIGKILL)
            tend_until(supervisor, lambda: len(starts()) == restart + 1, "the server to start again")  # noqa: B023
            assert not alive(killed) and not alive(worker)  # the worker went with it, freeing the port
            assert server.running() and server.process is not None and server.process.pid != killed
            assert said[-1] == (
                f"api exited (code -9); restarting it in {delay:g} s (restart {restart} of at most 2 in 60 s)"
            )
        wait_for(lambda: len(starts()) == 3, 60, "the server's third start")
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # the restarted server listens on the port
    finally:
        supervisor.stop(timeout=5)
    wait_for(lambda: not any(alive(pid) for pair in starts() for pid in pair), 10, "every process to end")


def test_a_part_that_keeps_dying_stops_the_stack_with_one_line(tmp_path: Path) -> None:
    said: list[str] = []
    supervisor = Supervisor(REPO, QUICK, said.append, stop_timeout=5)
    dying = [sys.executable, "-c", "raise SystemExit(3)"]
    sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
    supervisor.start(Child("ui", dying, tmp_path / "ui.log"), dict(os.environ))
    steady = supervisor.start(Child("worker", sleeper, tmp_path / "worker.log"), dict(os.environ))
    reasons: list[str] = []

    def gave_up() -> bool:
        reason = supervisor.tend()
        if reason is not None:
            reasons.append(reason)
        return bool(reasons)

    try:
        wait_for(gave_up, 60, "the supervisor to give up")
    finally:
        supervisor.stop(timeout=5)
    why = "ui exited (code 3): 3 deaths within 60 s, more than the 2 restarts allowed"
    assert reasons == [f"{why}; its log: {tmp_path / 'ui.log'}"]
    assert said == [
        "ui exited (code 3); restarting it in 0.2 s (restart 1 of at most 2 in 60 s)",
        "ui exited (code 3); restarting it in 0.3 s (restart 2 of at most 2 in 60 s)",
    ]
    assert not steady.group_alive()


def test_without_a_policy_a_dead_part_stops_the_stack(tmp_path: Path) -> None:
    supervisor = Supervisor(REPO)
    part = supervisor.start(
        Child("api", [sys.executable, "-c", "import time; time.sleep(300)"], tmp_path / "api.log"),
        dict(os.environ),
    )
    try:
        assert supervisor.tend() is None
        part.signal(signal.SIGKILL)
        wait_for(lambda: not part.running(), 30, "the part to die")
        assert (supervisor.tend() or "").startswith("api exited (code -9); last lines of")
    finally:
        supervisor.stop(timeout=5)


def test_nothing_restarts_once_stopping_has_begun(tmp_path: Path) -> None:
    said: list[str] = []
    supervisor = Supervisor(REPO, QUICK, said.append, stop_timeout=5)
    sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
    part = supervisor.start(Child("ui", sleeper, tmp_path / "ui.log"), dict(os.environ))
    assert part.process is not None
    killed = part.process
    part.signal(signal.SIGKILL)
    tend_until(supervisor, lambda: bool(said), "the death to be seen")
    noticed = time.monotonic()
    supervisor.stop(timeout=5)
    wait_for(lambda: time.monotonic() > noticed + 2 * QUICK.first_delay, 5, "the restart's time")
    assert supervisor.tend() is None
    assert part.process is killed and not part.running()
