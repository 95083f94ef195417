"""Serve hourcast's flows with the schedules of ``prefect.yaml`` in one process, without a work pool or
worker (Prefect's ``serve``): a lighter way to run the schedules in development. ``hourcast up`` runs
the deployments on the work pool with a worker, as production does. Like ``hourcast up``, it runs ingest on
the cron of the configured timeframe (``hourcast.ops.schedules``), whatever ``prefect.yaml`` writes.

Run from the project folder: ``python -m flows.serve`` (Ctrl-C stops it).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import yaml
from prefect import Flow, serve

from hourcast.ops.schedules import deployment_crons
from hourcast.settings import Settings

PREFECT_YAML = Path(__file__).resolve().parents[1] / "prefect.yaml"


def load_flow(entrypoint: str) -> Flow:
    """The flow an entrypoint such as ``flows/ingest.py:ingest`` names."""
    path, name = entrypoint.split(":")
    return getattr(importlib.import_module(path.removesuffix(".py").replace("/", ".")), name)


def deployments(config: dict[str, Any], timeframe: str) -> list[Any]:
    """A served deployment per ``prefect.yaml`` deployment, with its cron schedules for ``timeframe``, event
    triggers (the ``monitor`` after each ``ingest``, ``retrain`` when the model degrades) and parameters."""
    from prefect.events import DeploymentTriggerTypes
    from pydantic import TypeAdapter

    trigger = TypeAdapter(DeploymentTriggerTypes)
    served = []
    for spec in config["deployments"]:
        crons = deployment_crons(spec, timeframe)
        served.append(
            load_flow(spec["entrypoint"]).to_deployment(
                name=spec["name"],
                cron=crons or None,
                parameters=spec.get("parameters") or {},
                tags=spec.get("tags") or [],
                description=spec.get("description"),
                triggers=[trigger.validate_python(t) for t in spec.get("triggers") or []],
            )
        )
    return served


def main() -> None:
    """Serve every deployment until interrupted."""
    serve(*deployments(yaml.safe_load(PREFECT_YAML.read_text()), Settings().timeframe))


if __name__ == "__main__":
    main()
