"""The on-demand ``backfill`` flow: pull a range of history, refresh the features, report."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ingest_tasks import pull_history, run_cycle
from hourcast.data.candles import parse_moment


@flow(name="backfill")
def backfill(since: str, until: str | None = None, symbols: list[str] | None = None) -> list[dict[str, Any]]:
    """Pull every closed candle with ``since <= open time < until`` (ISO dates, UTC; until defaults to
    now) for ``symbols`` (default: HOURCAST_SYMBOLS), then refresh and materialize the features, inside
    the writer slot (HOURCAST_WRITER_LIMIT); fail the run if any symbol failed or was quarantined. The pull
    fans the symbols out as the ingest flow's does (HOURCAST_INGEST_SHARD_SYMBOLS per task;
    HOURCAST_DASK_ADDRESS: a Dask cluster). The cycle's steps and their order are
    ``hourcast.ops.ingest_cycle``'s.
    """
    start = parse_moment(since, "since")
    end = parse_moment(until, "until") if until is not None else None
    return run_cycle("backfill", pull_history, symbols, since=start, until=end)


if __name__ == "__main__":
    import sys

    backfill(*sys.argv[1:3])
