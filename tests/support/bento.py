"""BentoML for the tests: a model store of the test's own, and the stock `bentoml serve` until it is
ready."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.support.processes import console_script, running_server


@contextmanager
def bentoml_home(home: Path) -> Iterator[Path]:
    """Point this process's BentoML model store at ``home/models`` (usage tracking off); yields it.

    BentoML resolves its store through ``BentoMLContainer`` providers when a store function is called, so
    they are overridden in-process; the tracking check is cached, hence the ``cache_clear``.
    """
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore
    from bentoml._internal.utils.analytics import usage_stats

    models = home / "models"
    models.mkdir(parents=True, exist_ok=True)
    previous = {name: os.environ.get(name) for name in ("BENTOML_HOME", "BENTOML_DO_NOT_TRACK")}
    os.environ.update({"BENTOML_HOME": str(home), "BENTOML_DO_NOT_TRACK": "True"})
    usage_stats.do_not_track.cache_clear()
    try:
        with (
            BentoMLContainer.bentoml_home.patch(str(home)),
            BentoMLContainer.model_store.patch(ModelStore(models)),
        ):
            yield models
    finally:
        for name, value in previous.items():
            os.environ.pop(name, None) if value is None else os.environ.update({name: value})
        usage_stats.do_not_track.cache_clear()


@contextmanager
def bentoml_serve(
    target: str, port: int, env: dict[str, str], cwd: Path, log_path: Path, timeout: float = 120
) -> Iterator[subprocess.Popen]:
    """The stock ``bentoml serve <target> --port <port>`` (no --host: it must bind 127.0.0.1 by itself),
    its output in ``log_path``; yields the process once ``/readyz`` answers 200. On exit it stops the
    server and every worker (SIGTERM, then SIGKILL after 15 s) and fails if any survives."""
    command = [console_script("bentoml"), "serve", target, "--port", str(port)]
    ready_url = f"http://127.0.0.1:{port}/readyz"
    with running_server(command, ready_url, env=env, cwd=cwd, log_path=log_path, timeout=timeout) as server:
        yield server
