"""The hourly ``ingest`` flow: pull new closed candles, materialize the online features, report."""

from __future__ import annotations

from typing import Any

from prefect import flow, unmapped
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flows.ingest_tasks import (
    PullFailed,
    materialize_features,
    publish_ingest_report,
    publish_online_features,
    pull_candles,
    raise_for_problems,
)
from flows.tasks import writer_slot
from hourcast.ingest import SymbolSummary, resolve_settings
from hourcast.settings import Settings


def task_runner(settings: Settings) -> TaskRunner:
    """Prefect's thread pool, or prefect-dask's ``DaskTaskRunner`` on the scheduler at ``dask_address``."""
    if settings.dask_address is None:
        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(address=settings.dask_address)


def pull_symbols(settings: Settings, symbols: list[str]) -> list[SymbolSummary]:
    """Fan the symbols out to pull tasks of this flow run, ``ingest_shard_symbols`` per task, on the task
    runner ``task_runner`` picks; ``PullFailed`` with every symbol's summary if the exchange failed for
    any."""
    size = settings.ingest_shard_symbols
    shards = [symbols[start : start + size] for start in range(0, len(symbols), size)]
    summaries: list[SymbolSummary] = []
    failed = False
    with task_runner(settings) as runner:
        for future in runner.map(pull_candles, {"settings": unmapped(settings), "symbols": shards}):
            try:
                summaries += future.result()
            except PullFailed as failure:
                summaries += failure.summaries
                failed = True
    if failed:
        raise PullFailed(summaries)
    return summaries


@flow(name="ingest")
def ingest(symbols: list[str] | None = None) -> list[dict[str, Any]]:
    """Pull every closed candle since the last stored one (validated and stored by the pull), publish the
    ingestion and validation reports, and materialize the online features, all inside the single
    ``hourcast-ingest`` slot; then fail the run if any symbol failed or was quarantined. The pull fans the
    symbols out on the task runner ``task_runner`` picks (HOURCAST_DASK_ADDRESS: a Dask cluster).
    """
    settings = resolve_settings(Settings())  # a selector such as all-usdt: the markets it picks now
    with writer_slot():
        try:
            summaries = pull_symbols(settings, symbols or settings.symbols)
        except PullFailed as failure:  # retries exhausted: still materialize what was stored
            summaries = failure.summaries
        publish_ingest_report(settings, summaries, "ingest")
        online = materialize_features(settings)
    publish_online_features(online)
    raise_for_problems(summaries)
    return [summary.as_json() for summary in summaries]


if __name__ == "__main__":
    ingest()
