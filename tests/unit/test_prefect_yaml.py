"""prefect.yaml: every deployment names a real flow, a valid UTC cron, the process pool and parameters the
flow accepts (no server needed); the ingest cron is the default timeframe's, and hourcast deploys the
configured timeframe's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from prefect import Flow
from prefect.client.schemas.schedules import CronSchedule
from prefect.flows import load_flow_from_entrypoint

from hourcast.ops.schedules import deployment_crons
from hourcast.settings import Settings
from hourcast.timeframe import SUPPORTED_TIMEFRAMES, cron_for

REPO = Path(__file__).resolve().parents[2]
CONFIG: dict[str, Any] = yaml.safe_load((REPO / "prefect.yaml").read_text())
DEPLOYMENTS = {deployment["name"]: deployment for deployment in CONFIG["deployments"]}
DEFAULT_TIMEFRAME = Settings.model_fields["timeframe"].default
EXPECTED_CRONS = {
    "ingest": cron_for(DEFAULT_TIMEFRAME),
    "retention": "0 3 * * 1",
    "retrain": "30 3 * * 1",
    "backfill": None,
    "monitor": None,
}


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


def test_ingest_runs_on_the_configured_timeframes_cron_and_the_others_as_written() -> None:
    """prefect.yaml writes the default timeframe's ingest cron (the stock `prefect deploy` needs no setup);
    `hourcast up` and `python -m flows.serve` deploy the configured timeframe's, e.g. every 15 minutes for
    HOURCAST_TIMEFRAME=15m, where the API refuses features older than 30 minutes."""
    from flows.serve import deployments

    assert DEFAULT_TIMEFRAME == "1h" and EXPECTED_CRONS["ingest"] == "5 * * * *"
    for timeframe in SUPPORTED_TIMEFRAMES:
        assert deployment_crons(DEPLOYMENTS["ingest"], timeframe) == [cron_for(timeframe)]
        for name in ("retention", "retrain", "monitor", "backfill"):
            assert deployment_crons(DEPLOYMENTS[name], timeframe) == [
                schedule["cron"] for schedule in DEPLOYMENTS[name]["schedules"]
            ]
    served = {deployment.name: deployment for deployment in deployments(CONFIG, "15m")}
    assert [schedule.schedule.cron for schedule in served["ingest"].schedules] == ["5,20,35,50 * * * *"]
    assert [schedule.schedule.cron for schedule in served["retrain"].schedules] == ["30 3 * * 1"]


def test_backfill_takes_the_documented_parameters() -> None:
    assert set(load(DEPLOYMENTS["backfill"]).parameters.properties) == {"since", "until", "symbols"}


def test_an_invalid_cron_is_rejected() -> None:
    with pytest.raises(ValueError, match="Invalid cron"):
        CronSchedule(cron="61 * * * *", timezone="UTC")


def triggers(name: str) -> list[Any]:
    """A deployment's triggers as Prefect validates them on `prefect deploy`, as the server evaluates them."""
    from prefect.events import DeploymentTriggerTypes
    from prefect.server.events.schemas.automations import EventTrigger
    from pydantic import TypeAdapter

    adapter = TypeAdapter(DeploymentTriggerTypes)
    specs = [adapter.validate_python(spec) for spec in DEPLOYMENTS[name].get("triggers") or []]
    return [
        EventTrigger.model_validate(spec.model_dump(include=set(EventTrigger.model_fields))) for spec in specs
    ]


def received(event: str, resource: dict[str, str], related: list[dict[str, str]] | None = None) -> Any:
    from uuid import uuid4

    from prefect.server.events.schemas.events import ReceivedEvent
    from prefect.types._datetime import now

    return ReceivedEvent(
        id=uuid4(), occurred=now("UTC"), event=event, resource=resource, related=related or []
    )


def test_retrain_is_triggered_by_the_monitors_degraded_event_and_debounced() -> None:
    from flows.monitor_tasks import DEGRADED_EVENT, degraded_event
    from hourcast.monitor.run import MonitorReport
    from hourcast.settings import Settings

    (trigger,) = triggers("retrain")
    settings = Settings()
    report = MonitorReport(None, 0, 0, None, None, None, None, "hourcast_next_hour:abc", ["BTC/USDT: worse"])
    emitted = degraded_event(settings, report)
    assert emitted["event"] == DEGRADED_EVENT
    assert trigger.covers(received(emitted["event"], emitted["resource"]))
    assert not trigger.covers(received("hourcast.model.fine", emitted["resource"]))
    assert trigger.posture == "Reactive" and trigger.threshold == 1
    # the cool-down is the monitor's (data time); Prefect's `within` (real time) only debounces, and stays
    # shorter than the cool-down even for a replay running 60 times faster than real time
    cooldown = Settings.model_fields["retrain_cooldown_hours"].default * 3600
    assert 0 < trigger.within.total_seconds() * 60 < cooldown


def test_monitor_runs_when_an_ingest_run_ends() -> None:
    (trigger,) = triggers("monitor")
    flow = {"prefect.resource.id": "prefect.flow.1", "prefect.resource.role": "flow"}
    run = {"prefect.resource.id": "prefect.flow-run.1"}
    for state in ("Completed", "Failed"):
        assert trigger.covers(
            received(f"prefect.flow-run.{state}", run, [{**flow, "prefect.resource.name": "ingest"}])
        )
    assert not trigger.covers(
        received("prefect.flow-run.Completed", run, [{**flow, "prefect.resource.name": "retrain"}])
    )
    assert not trigger.covers(
        received("prefect.flow-run.Running", run, [{**flow, "prefect.resource.name": "ingest"}])
    )


def test_served_deployments_carry_the_triggers_of_prefect_yaml() -> None:
    """`python -m flows.serve` must register the event triggers too: `monitor` has no schedule of its own."""
    from flows.serve import deployments

    served = {deployment.name: deployment for deployment in deployments(CONFIG, DEFAULT_TIMEFRAME)}
    for spec in CONFIG["deployments"]:
        names = [trigger.name for trigger in served[spec["name"]].triggers]
        assert names == [trigger["name"] for trigger in spec.get("triggers") or []]
    assert served["monitor"].triggers and not served["monitor"].schedules
