"""The Prefect tasks of the ``retention`` flow: one short call into ``hourcast.ops.retention`` and its report.
Nothing here retries: retention is local I/O, and the next weekly run deletes what this one left."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from hourcast.ops import reporting, retention
from hourcast.ops.retention import RetentionReport
from hourcast.settings import Settings


@task(name="apply-retention", cache_policy=NONE, persist_result=False)
def apply_retention(settings: Settings) -> RetentionReport:
    """Delete candles, feature rows and prediction logs older than their retention windows."""
    report = retention.apply_retention(settings)
    get_run_logger().info("%s", report.as_json())
    return report


@task(name="publish-retention-report", cache_policy=NONE, persist_result=False)
def publish_retention_report(report: RetentionReport) -> None:
    """Artifact ``retention-report``."""
    create_markdown_artifact(
        reporting.retention_markdown(report), key="retention-report", description="what retention removed"
    )
