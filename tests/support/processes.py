"""Child processes of the tests and the benchmarks: wait for a condition, start a server and wait until
it answers, stop a process and every process it started."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from hourcast.ops.supervise import answers


def wait_for(
    condition: Callable[[], bool], timeout: float, what: str, poll: float = 0.02, max_poll: float = 0.5
) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``timeout`` seconds.

    The interval starts at ``poll`` and grows by half each time up to ``max_poll``: a quick condition is seen
    at once, and a wait of minutes does not spend the CPU it waits for on polling (most conditions are HTTP
    calls to a server the caller started)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(poll)
        poll = min(poll * 1.5, max(poll, max_poll))


def process_tree(pid: int) -> list[psutil.Process]:
    """Process ``pid`` and every process it started (servers such as `bentoml serve` start workers in
    process groups of their own, which signalling the server's group does not reach)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def terminate(processes: list[psutil.Process], grace: float = 15) -> list[psutil.Process]:
    """SIGTERM each of ``processes``, SIGKILL those alive after ``grace`` seconds; those still alive 5 s
    after that."""
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.send_signal(signal.SIGTERM)
    _, alive = psutil.wait_procs(processes, timeout=grace)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    _, alive = psutil.wait_procs(alive, timeout=5)
    return alive


def stop_process_tree(pid: int, grace: float = 15) -> list[psutil.Process]:
    """Stop process ``pid`` and every process it started (``terminate``); those that survived."""
    return terminate(process_tree(pid), grace)


def start_server(
    command: list[str], ready_url: str, *, env: dict[str, str], cwd: Path, log_path: Path, timeout: float
) -> subprocess.Popen:
    """Start ``command`` in a session of its own, its output appended to ``log_path``; return the process
    once ``ready_url`` answers 200. Fails (after stopping it) if it exits or is not ready in ``timeout``
    seconds."""
    with log_path.open("ab") as log:
        server = subprocess.Popen(
            command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    name = " ".join(Path(part).name if index == 0 else part for index, part in enumerate(command[:3]))

    def ready() -> bool:
        assert server.poll() is None, f"{name} exited:\n{log_path.read_text()[-3000:]}"
        return answers(ready_url)

    try:
        wait_for(ready, timeout, f"{name} to answer {ready_url}")
    except BaseException:
        stop_process_tree(server.pid)
        raise
    return server


@contextlib.contextmanager
def running_server(
    command: list[str],
    ready_url: str,
    *,
    env: dict[str, str],
    cwd: Path,
    log_path: Path,
    timeout: float = 120,
    grace: float = 15,
) -> Iterator[subprocess.Popen]:
    """``start_server``; on exit stop it and every process it started (SIGTERM, SIGKILL after ``grace``
    seconds) and fail if any survives."""
    server = start_server(command, ready_url, env=env, cwd=cwd, log_path=log_path, timeout=timeout)
    try:
        yield server
    finally:
        alive = stop_process_tree(server.pid, grace)
        server.poll()
        assert not alive, f"processes left running: {alive}"


def console_script(name: str) -> str:
    """The path of the venv's console script ``name`` (``hourcast``, ``bentoml``)."""
    return str(Path(sys.executable).with_name(name))


def kill_writer_when(script: str, folder: Path, written: Callable[[], bool], what: str) -> None:
    """Run the Python ``script`` (given ``folder``; it prints ``ready`` before it starts writing) in a child
    process and SIGKILL it as soon as ``written()`` holds: a writer killed mid-way."""
    repo = Path(__file__).resolve().parents[2]
    writer = subprocess.Popen(
        [sys.executable, "-c", script, str(folder)],
        cwd=repo,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == b"ready"
        wait_for(written, 60, what)
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait()
