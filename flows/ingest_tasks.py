"""The Prefect tasks of the ``ingest`` and ``backfill`` flows, each one short call into the package, and
``run_cycle``, which wires them as the steps of the one ingest cycle (``hourcast.ops.ingest_cycle``), the
last of which, ``record-forecasts``, logs the hour's forecast of record (``hourcast.serving.record``).

Retries live in one layer per kind of I/O. The exchange pull does not retry as a task: the exchange
client (``hourcast.data.exchange.CandleSource``) already retries each transient request with backoff that
honours ``Retry-After``, which a task-level retry cannot see, and a permanent error (an unknown market,
rejected credentials) must fail at once rather than be repeated; when the client's retries run out the
run fails with what it stored, and the next scheduled run resumes. The online-store materialization
retries as a task (2 retries, only while the store is unreachable), the one layer it has, and so does the
forecast of record's online read. Reporting never retries.

Imports are those of the ingestion path only (the exchange client; Great Expectations and Feast load when
the pull validates and the features materialize); the production model and its predict path load only
when the forecast of record is made. No training code.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from prefect import Task, get_run_logger, task, unmapped
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner
from prefect.tasks import exponential_backoff

from flows.tasks import retry_on, writer_slot
from hourcast.data.ingest import SymbolSummary
from hourcast.features import featurestore
from hourcast.features.featurestore import MaterializeSummary, OnlineStoreUnavailable
from hourcast.ops import ingest_cycle, reporting
from hourcast.ops.ingest_cycle import CycleSteps, PullFailed, raise_for_problems, run_ingest_cycle
from hourcast.settings import Settings

if TYPE_CHECKING:
    from hourcast.serving.record import RecordSummary


def _log(summary: SymbolSummary) -> None:
    """Log a symbol's outcome on the task run's logger."""
    get_run_logger().info("%s", summary.as_json())


EXCHANGE_PULL: dict[str, Any] = {"retries": 0, "cache_policy": NONE, "persist_result": False}
"""Options of the exchange-pull tasks: no task-level retry (the exchange client is the retry layer)."""


@task(name="pull-candles", **EXCHANGE_PULL)
def pull_candles(settings: Settings, symbols: list[str] | None) -> list[SymbolSummary]:
    """Pull, validate and store every closed candle after the last stored one."""
    return ingest_cycle.pull_new(settings, symbols, _log)


@task(name="pull-history", **EXCHANGE_PULL)
def pull_history(
    settings: Settings, since: pd.Timestamp, until: pd.Timestamp | None, symbols: list[str] | None
) -> list[SymbolSummary]:
    """Pull, validate and store every closed candle with ``since <= open time < until``."""
    return ingest_cycle.pull_range(settings, since, until, symbols, _log)


def task_runner(settings: Settings) -> TaskRunner:
    """Prefect's thread pool, or prefect-dask's ``DaskTaskRunner`` on the scheduler at ``dask_address``."""
    if settings.dask_address is None:
        return ThreadPoolTaskRunner()
    from prefect_dask import DaskTaskRunner

    return DaskTaskRunner(address=settings.dask_address)


def pull_symbols(
    settings: Settings, symbols: list[str], pull: Task[..., list[SymbolSummary]], **window: Any
) -> list[SymbolSummary]:
    """Fan the symbols out to ``pull`` tasks of this flow run (``pull_candles``; ``pull_history`` with the
    ``since`` and ``until`` of ``window``), ``ingest_shard_symbols`` per task, on the task runner
    ``task_runner`` picks; ``PullFailed`` with every symbol's summary if the exchange failed for any."""
    size = settings.ingest_shard_symbols
    shards = [symbols[start : start + size] for start in range(0, len(symbols), size)]
    fixed = {name: unmapped(value) for name, value in {"settings": settings, **window}.items()}
    summaries: list[SymbolSummary] = []
    failed = False
    with task_runner(settings) as runner:
        for future in runner.map(pull, {**fixed, "symbols": shards}):
            try:
                summaries += future.result()
            except PullFailed as failure:
                summaries += failure.summaries
                failed = True
    if failed:
        raise PullFailed(summaries)
    return summaries


ONLINE_STORE_IO: dict[str, Any] = {
    "retries": 2,
    "retry_delay_seconds": exponential_backoff(5),
    "retry_jitter_factor": 0.5,
    "retry_condition_fn": retry_on(OnlineStoreUnavailable),
    "cache_policy": NONE,
    "persist_result": False,
}
"""Options of the tasks that write or read the online store: 2 retries, only while it is unreachable."""


@task(name="materialize", **ONLINE_STORE_IO)
def materialize_features(settings: Settings) -> MaterializeSummary:
    """Refresh the feature table from the stored candles and push the new rows to the online store."""
    summary = featurestore.materialize(settings)
    get_run_logger().info("%s", summary.as_json())
    return summary


@task(name="record-forecasts", **ONLINE_STORE_IO)
def record_forecasts(settings: Settings) -> RecordSummary:
    """Log the production model's forecast of every symbol from the online features just materialized as
    the hour's forecast of record (once per hour, whatever the traffic), and the records of hours a killed
    run missed, made late (``hourcast.serving.record``)."""
    from hourcast.serving import record

    summary = record.record_forecasts(settings)
    if summary.model is None:
        get_run_logger().warning("no forecast of record: no production model yet (`hourcast train`)")
    else:
        get_run_logger().info("%s", summary.as_json())
    return summary


@task(name="publish-ingest-report", cache_policy=NONE, persist_result=False)
def publish_ingest_report(settings: Settings, summaries: list[SymbolSummary], kind: str) -> None:
    """Artifacts ``<kind>-counts`` (table) and ``<kind>-validation`` (Markdown, with report paths)."""
    reports: dict[str, Path | None] = {}
    for summary in summaries:
        path = reporting.validation_report_path(
            settings.validation_dir, settings.exchange, summary.symbol, settings.timeframe
        )
        reports[summary.symbol] = path.resolve() if path.exists() else None
    create_table_artifact(
        reporting.ingest_rows(summaries),
        key=f"{kind}-counts",
        description=f"{kind}: candles fetched, new, duplicate and missing per symbol",
    )
    create_markdown_artifact(
        reporting.validation_markdown(summaries, reports),
        key=f"{kind}-validation",
        description=f"{kind}: validation outcome per symbol",
    )


@task(name="publish-online-features", cache_policy=NONE, persist_result=False)
def publish_online_features(summary: MaterializeSummary) -> None:
    """Artifact ``online-features``: the newest feature row per symbol now served online."""
    create_markdown_artifact(
        reporting.online_markdown(summary), key="online-features", description="online store freshness"
    )


def run_cycle(
    kind: str, pull: Task[..., list[SymbolSummary]], symbols: list[str] | None, **window: Any
) -> list[dict[str, Any]]:
    """One ingest cycle (``hourcast.ops.ingest_cycle``) with these tasks as its steps (``pull`` fanned out by
    ``pull_symbols``, the ``<kind>`` reports, the materialization) inside the writer slot
    (HOURCAST_WRITER_LIMIT), then the forecast of record; then publish the online features and fail the run
    if any symbol failed or was quarantined. Returns each symbol's summary."""
    settings = Settings()
    steps = CycleSteps(
        pull=partial(pull_symbols, pull=pull, **window),
        report=partial(publish_ingest_report, kind=kind),
        materialize=materialize_features,
        record=record_forecasts,
    )
    outcome = run_ingest_cycle(settings, steps, symbols, writer_slot(settings.writer_limit))
    publish_online_features(outcome.online)
    raise_for_problems(outcome.summaries)
    return [summary.as_json() for summary in outcome.summaries]
