"""The Prefect tasks of the ``monitor`` flow: each is one short call into ``hourcast.monitor``.

Nothing here retries: scoring is local I/O, and a failed run is simply repeated by the next one (the scores
dataset takes each prediction once).
"""

from __future__ import annotations

from typing import Any

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.events import emit_event

from hourcast.monitor import run as monitor_run
from hourcast.monitor.run import MonitorReport
from hourcast.ops import reporting
from hourcast.settings import Settings

DEGRADED_EVENT = "hourcast.model.degraded"
"""Emitted when the production model is degraded and the retrain cool-down has passed; ``retrain``'s
deployment trigger in ``prefect.yaml`` expects it."""


@task(name="score-predictions", cache_policy=NONE, persist_result=False)
def score_predictions(settings: Settings) -> MonitorReport:
    """Score the newly answerable predictions; rolling metrics, drift and the verdict."""
    report = monitor_run.run(settings)
    get_run_logger().info(
        "%d newly scored, %d pending, production %s, degraded: %s",
        report.added,
        report.pending,
        report.production,
        report.degraded or "no",
    )
    return report


@task(name="publish-monitor-report", cache_policy=NONE, persist_result=False)
def publish_monitor_report(report: MonitorReport) -> None:
    """Artifacts ``monitor-scoreboard`` (table) and ``monitor-drift`` (Markdown, with the verdict)."""
    create_table_artifact(
        report.as_json()["scoreboard"],
        key="monitor-scoreboard",
        description="rolling metrics vs persistence per window, symbol and model",
    )
    create_markdown_artifact(
        reporting.monitor_markdown(report),
        key="monitor-drift",
        description="most drifted features and the verdict on the production model",
    )


def degraded_event(settings: Settings, report: MonitorReport) -> dict[str, Any]:
    """The arguments of the ``hourcast.model.degraded`` event for a report."""
    return {
        "event": DEGRADED_EVENT,
        "resource": {
            "prefect.resource.id": f"hourcast.model.{settings.model_name}",
            "prefect.resource.name": settings.model_name,
            "hourcast.model.tag": report.production or "",
        },
        "payload": {
            "model": report.production,
            "newest_hour": report.now.isoformat() if report.now is not None else None,
            "reasons": report.degraded,
        },
    }


@task(name="request-retrain", cache_policy=NONE, persist_result=False)
def request_retrain(settings: Settings, report: MonitorReport) -> bool:
    """Emit ``hourcast.model.degraded`` if the model is degraded and the cool-down has passed."""

    def emit(report: MonitorReport) -> None:
        if emit_event(**degraded_event(settings, report)) is None:
            raise RuntimeError(f"Prefect did not emit {DEGRADED_EVENT}: events are off for this client")
        get_run_logger().warning("%s: %s", DEGRADED_EVENT, "; ".join(report.degraded))

    return monitor_run.request_retrain_if_due(settings, report, emit)
