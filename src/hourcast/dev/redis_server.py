"""A throwaway ``redis-server`` on a free loopback port, for the tests and the benchmarks: never the machine's
Redis, nothing on disk. It can be frozen (SIGSTOP: connects, never answers), thawed, stopped and started
again, empty."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time

from hourcast.dev.ports import free_port


class RedisServer:
    """A ``redis-server`` of the caller's own on a free loopback port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("needs the redis-server binary: `apt-get install redis-server`")
        self.binary = binary
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def ping(self) -> bool:
        """Whether the server answers right now."""
        import redis

        client = redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        except redis.exceptions.RedisError:
            return False
        finally:
            client.close()

    def start(self, timeout: float = 10.0) -> RedisServer:
        """Start it (empty) and wait until it answers (``RuntimeError`` after ``timeout`` seconds)."""
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while not self.ping():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server on port {self.port} did not answer within {timeout:g} s")
            time.sleep(0.02)
        return self

    def freeze(self) -> None:
        """Stop the process without closing its socket (a hung Redis: connects, never answers)."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        """Resume a frozen server."""
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Kill it and wait until it is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=10)
