"""The ``monitor`` flow, run after every ``ingest``: score the predictions whose hour has closed, publish
the scoreboard and drift, and ask for a retrain (the ``hourcast.model.degraded`` event) when the model is
degraded and the cool-down has passed."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.monitor_tasks import publish_monitor_report, request_retrain, score_predictions
from hourcast.data.selection import resolved
from hourcast.settings import Settings


@flow(name="monitor")
def monitor() -> dict[str, Any]:
    """Score, publish the ``monitor-scoreboard`` and ``monitor-drift`` artifacts, and emit
    ``hourcast.model.degraded`` when due; returns the report with ``retrain_requested``."""
    settings = resolved(Settings())  # a selector such as all-usdt: the symbols ingest resolved
    report = score_predictions(settings)
    publish_monitor_report(report)
    requested = request_retrain(settings, report)
    return {**report.as_json(), "retrain_requested": requested}


if __name__ == "__main__":
    monitor()
