"""The weekly ``retention`` flow: bound the candle archive, the feature table and the prediction log."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.retention_tasks import apply_retention, publish_retention_report
from flows.tasks import writer_slot
from hourcast.settings import Settings


@flow(name="retention")
def retention() -> dict[str, Any]:
    """Delete data older than the HOURCAST_*_RETENTION_DAYS windows (inside the writer slot,
    since it rewrites the feature table and candle partitions) and publish what was removed.
    """
    settings = Settings()
    with writer_slot(settings.writer_limit):
        report = apply_retention(settings)
    publish_retention_report(report)
    return report.as_json()


if __name__ == "__main__":
    retention()
