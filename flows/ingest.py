"""The hourly ``ingest`` flow: pull new closed candles, materialize the online features, report."""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.ingest_tasks import pull_candles, run_cycle


@flow(name="ingest")
def ingest(symbols: list[str] | None = None) -> list[dict[str, Any]]:
    """Pull every closed candle since the last stored one (validated and stored by the pull), publish the
    ingestion and validation reports, and materialize the online features, all inside the single writer
    slot (HOURCAST_WRITER_LIMIT); then log the hour's forecast of record for every symbol
    (``record-forecasts``) and fail the run if any symbol failed or was quarantined. The pull fans the symbols
    out on the task runner ``pull_symbols`` picks (HOURCAST_DASK_ADDRESS: a Dask cluster).
    The cycle's steps and their order are ``hourcast.ops.ingest_cycle``'s.
    """
    return run_cycle("ingest", pull_candles, symbols)


if __name__ == "__main__":
    ingest()
