"""Prometheus for the tests: Debian's ``prometheus`` binary of the test's own (a free loopback port, a
temporary config and storage, never the machine's service) scraping one target, and its HTTP query API."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hourcast.dev.ports import free_port
from tests.support.processes import running_server


@dataclass(frozen=True)
class Prometheus:
    """A running Prometheus at ``url`` whose scrape job is named ``job``."""

    url: str
    job: str

    def query(self, expr: str) -> list[dict]:
        """The instant vector ``expr`` evaluates to now (``/api/v1/query``): one ``{"metric": {label: value},
        "value": [time, "number as text"]}`` per series."""
        response = httpx.get(self.url + "/api/v1/query", params={"query": expr}, timeout=5)
        response.raise_for_status()
        body = response.json()
        assert body["status"] == "success" and body["data"]["resultType"] == "vector", body
        return body["data"]["result"]

    def target_up(self) -> bool:
        """Whether the last scrape of the job's target succeeded (Prometheus's own ``up`` series)."""
        return [series["value"][1] for series in self.query(f'up{{job="{self.job}"}}')] == ["1"]


@contextmanager
def running_prometheus(
    target: str, metrics_path: str, folder: Path, scrape_interval: str = "1s", job: str = "hourcast"
) -> Iterator[Prometheus]:
    """A ``prometheus`` scraping ``http://<target><metrics_path>`` every ``scrape_interval``, its config,
    storage and log under ``folder``; yields it once ``/-/ready`` answers, stops it on exit."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("the Prometheus test needs the prometheus binary: `apt-get install prometheus`")
    folder.mkdir(parents=True, exist_ok=True)
    config = {  # JSON is YAML
        "global": {"scrape_interval": scrape_interval, "scrape_timeout": scrape_interval},
        "scrape_configs": [
            {"job_name": job, "metrics_path": metrics_path, "static_configs": [{"targets": [target]}]}
        ],
    }
    (folder / "prometheus.yml").write_text(json.dumps(config))
    url = f"http://127.0.0.1:{free_port()}"
    command = [
        binary,
        f"--config.file={folder / 'prometheus.yml'}",
        f"--storage.tsdb.path={folder / 'data'}",
        f"--web.listen-address={url.removeprefix('http://')}",
    ]
    with running_server(
        command,
        url + "/-/ready",
        env=dict(os.environ),
        cwd=folder,
        log_path=folder / "prometheus.log",
        timeout=30,
    ):
        yield Prometheus(url, job)
