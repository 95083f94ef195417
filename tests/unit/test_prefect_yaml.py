"""prefect.yaml: every deployment names a real flow, a valid UTC cron, the process pool and parameters the
flow accepts (no server needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule
from prefect.flows import load_flow_from_entrypoint

REPO = Path(__file__).resolve().parents[2]
CONFIG: dict[str, Any] = yaml.safe_load((REPO / "prefect.yaml").read_text())
DEPLOYMENTS = {deployment["name"]: deployment for deployment in CONFIG["deployments"]}
EXPECTED_CRONS = {"ingest": "5 * * * *", "retention": "0 3 * * 1", "retrain": "30 3 * * 1", "backfill": None}


def load(deployment: dict[str, Any]) -> Flow:
    """The flow an entrypoint names, loaded the way a worker loads it (from the file path)."""
    path, _, function = deployment["entrypoint"].partition(":")
    return load_flow_from_entrypoint(f"{REPO / path}:{function}")


def test_the_four_deployments_run_from_disk_on_the_process_pool() -> None:
    assert set(DEPLOYMENTS) == set(EXPECTED_CRONS)
    assert CONFIG["build"] is None and CONFIG["push"] is None
    assert CONFIG["pull"] == [
        {"prefect.deployments.steps.set_working_directory": {"directory": "{{ $HOURCAST_PROJECT_DIR }}"}}
    ]
    for deployment in DEPLOYMENTS.values():
        assert deployment["work_pool"]["name"] == "hourcast-process", deployment["name"]


@pytest.mark.parametrize("name", sorted(EXPECTED_CRONS))
def test_entrypoint_schedule_and_parameters(name: str) -> None:
    deployment = DEPLOYMENTS[name]
    flow = load(deployment)
    assert isinstance(flow, Flow) and flow.name == name
    assert deployment["entrypoint"] == f"flows/{name}.py:{name}"

    crons = [schedule["cron"] for schedule in deployment["schedules"]]
    assert crons == ([EXPECTED_CRONS[name]] if EXPECTED_CRONS[name] else [])
    for schedule in deployment["schedules"]:
        assert CronSchedule(cron=schedule["cron"], timezone=schedule["timezone"]).timezone == "UTC"

    schema = flow.parameters
    given = deployment["parameters"]
    assert set(given) <= set(schema.properties), f"{name}: {set(given) - set(schema.properties)} unknown"
    assert set(schema.required) <= set(given), f"{name}: required {schema.required} not all given"
    flow.validate_parameters(given)


def test_backfill_takes_the_documented_parameters() -> None:
    assert set(load(DEPLOYMENTS["backfill"]).parameters.properties) == {"since", "until", "symbols"}


def test_an_invalid_cron_is_rejected() -> None:
    with pytest.raises(ValueError, match="Invalid cron"):
        CronSchedule(cron="61 * * * *", timezone="UTC")
