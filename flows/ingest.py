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
    pull_symbols,
    raise_for_problems,
)
from flows.tasks import writer_slot
from hourcast.data.ingest import resolve_settings
from hourcast.settings import Settings


@flow(name="ingest")
def ingest(symbols: list[str] | None = None) -> list[dict[str, Any]]:
    """Pull every closed candle since the last stored one (validated and stored by the pull), publish the
    ingestion and validation reports, and materialize the online features, all inside the single writer
    slot (HOURCAST_WRITER_LIMIT); then fail the run if any symbol failed or was quarantined. The pull fans
    the symbols out on the task runner ``pull_symbols`` picks (HOURCAST_DASK_ADDRESS: a Dask cluster).
    """
    settings = resolve_settings(Settings())  # a selector such as all-usdt: the markets it picks now
    with writer_slot(settings.writer_limit):
        try:
            summaries = pull_symbols(settings, symbols or settings.symbols, pull_candles)
        except PullFailed as failure:  # retries exhausted: still materialize what was stored
            summaries = failure.summaries
        publish_ingest_report(settings, summaries, "ingest")
        online = materialize_features(settings)
    publish_online_features(online)
    raise_for_problems(summaries)
    return [summary.as_json() for summary in summaries]


if __name__ == "__main__":
    ingest()
