"""The on-demand ``backfill`` flow: pull a range of history, refresh the features, report."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ingest_tasks import (
    PullFailed,
    materialize_features,
    publish_ingest_report,
    publish_online_features,
    pull_history,
    pull_symbols,
    raise_for_problems,
)
from flows.tasks import writer_slot
from hourcast.data.candles import parse_moment
from hourcast.data.ingest import resolve_settings
from hourcast.settings import Settings


@flow(name="backfill")
def backfill(since: str, until: str | None = None, symbols: list[str] | None = None) -> list[dict[str, Any]]:
    """Pull every closed candle with ``since <= open time < until`` (ISO dates, UTC; until defaults to
    now) for ``symbols`` (default: HOURCAST_SYMBOLS), then refresh and materialize the features, inside
    the writer slot (HOURCAST_WRITER_LIMIT); fail the run if any symbol failed or was quarantined. The pull
    fans the symbols out as the ingest flow's does (HOURCAST_INGEST_SHARD_SYMBOLS per task;
    HOURCAST_DASK_ADDRESS: a Dask cluster).
    """
    settings = resolve_settings(Settings())  # a selector such as all-usdt: the markets it picks now
    start = parse_moment(since, "since")
    end = parse_moment(until, "until") if until is not None else None
    with writer_slot(settings.writer_limit):
        try:
            summaries = pull_symbols(
                settings, symbols or settings.symbols, pull_history, since=start, until=end
            )
        except PullFailed as failure:  # retries exhausted: still materialize what was stored
            summaries = failure.summaries
        publish_ingest_report(settings, summaries, "backfill")
        online = materialize_features(settings)
    publish_online_features(online)
    raise_for_problems(summaries)
    return [summary.as_json() for summary in summaries]


if __name__ == "__main__":
    import sys

    backfill(*sys.argv[1:3])
