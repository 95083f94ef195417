"""The deployments' cron schedules: the ones ``prefect.yaml`` writes, except the ingest deployment's, which
follows the configured timeframe (``timeframe.cron_for``: 5 minutes after every candle closes).

``prefect.yaml`` writes the ingest cron of the default timeframe (1h), so the stock ``prefect deploy --all``
needs no setup; a unit test keeps the two equal. hourcast's own ways of deploying (``hourcast up``,
``python -m flows.serve``) put the cron of ``HOURCAST_TIMEFRAME`` in its place, so with ``15m`` ingest runs
every 15 minutes. Imports only the timeframe module.
"""

from __future__ import annotations

from typing import Any

from hourcast.timeframe import cron_for

FOLLOWS_TIMEFRAME = "ingest"
"""The deployment whose schedule follows the timeframe (the others are weekly, or event-driven)."""


def deployment_cron(deployment: str, written: str, timeframe: str) -> str:
    """The cron deployment ``deployment`` runs on, given the cron ``prefect.yaml`` writes for it:
    ``cron_for(timeframe)`` for the ingest deployment, ``written`` for the others."""
    return cron_for(timeframe) if deployment == FOLLOWS_TIMEFRAME else written


def deployment_crons(spec: dict[str, Any], timeframe: str) -> list[str]:
    """The crons (UTC) of the ``prefect.yaml`` deployment ``spec`` for ``timeframe`` (``deployment_cron``)."""
    return [
        deployment_cron(spec["name"], schedule["cron"], timeframe) for schedule in spec.get("schedules") or []
    ]
