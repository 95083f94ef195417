"""The hourly ``ingest`` flow: pull new closed candles, materialize the online features, report."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ingest_tasks import (
    PullFailed,
    materialize_features,
    publish_ingest_report,
    publish_online_features,
    pull_candles,
    raise_for_problems,
)
from flows.tasks import writer_slot
from hourcast.settings import Settings


@flow(name="ingest")
def ingest(symbols: list[str] | None = None) -> list[dict[str, Any]]:
    """Pull every closed candle since the last stored one (validated and stored by the pull), publish the
    ingestion and validation reports, and materialize the online features, all inside the single
    ``hourcast-ingest`` slot; then fail the run if any symbol failed or was quarantined.
    """
    settings = Settings()
    with writer_slot():
        try:
            summaries = pull_candles(settings, symbols)
        except PullFailed as failure:  # retries exhausted: still materialize what was stored
            summaries = failure.summaries
        publish_ingest_report(settings, summaries, "ingest")
        online = materialize_features(settings)
    publish_online_features(online)
    raise_for_problems(summaries)
    return [summary.as_json() for summary in summaries]


if __name__ == "__main__":
    ingest()
