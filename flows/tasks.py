"""The Prefect tasks of the hourcast flows: each is one short call into the package.

Retries live in one layer per kind of I/O. The exchange pull does not retry as a task: the exchange
client (``hourcast.exchange.CandleSource``) already retries each transient request with backoff that
honours ``Retry-After``, which a task-level retry cannot see, and a permanent error (an unknown market,
rejected credentials) must fail at once rather than be repeated; when the client's retries run out the
run fails with what it stored, and the next scheduled run resumes. The online-store materialization
retries as a task (2 retries, only while the store is unreachable), the one layer it has. Training,
retention and reporting never retry. Tasks take the ``Settings`` object, so none is cached
and no result is persisted.

Every flow that writes the candle store or the feature table does it inside ``writer_slot()``: one slot
of the Prefect global concurrency limit ``hourcast-ingest`` (limit 1), so two such runs never overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd
from prefect import Task, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NONE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import State, TaskRun
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.tasks import exponential_backoff

from hourcast import featurestore, registry, reporting, retention, training
from hourcast.featurestore import MaterializeSummary, OnlineStoreUnavailable
from hourcast.ingest import SymbolSummary, make_ingestor
from hourcast.retention import RetentionReport
from hourcast.settings import Settings
from hourcast.training import TrainingResult

WRITER_LIMIT = "hourcast-ingest"
"""Global concurrency limit held while the candle store or the feature table is written."""
ONE_SLOT = GlobalConcurrencyLimitCreate(name=WRITER_LIMIT, limit=1)
"""The limit ``ensure_writer_limit`` creates when it is missing."""
WRITER_SLOT_TIMEOUT_SECONDS = 45 * 60.0
"""How long a writer waits for the slot before its run fails (well inside the hourly schedule)."""


class PullFailed(RuntimeError):
    """The exchange failed for some symbols; carries every symbol's summary of the attempt."""

    def __init__(self, summaries: list[SymbolSummary]) -> None:
        super().__init__(summaries)  # the only argument, so the exception pickles
        self.summaries = summaries

    def __str__(self) -> str:
        return reporting.problems(self.summaries) or "exchange pull failed"

    def __repr__(self) -> str:
        return f"PullFailed({str(self)!r})"


class IngestProblems(RuntimeError):
    """Some symbols failed or were quarantined; raised after what was stored is materialized."""


def _retry_on(*errors: type[BaseException]) -> Callable[[Task, TaskRun, State], bool]:
    """A ``retry_condition_fn`` retrying a failed task only when it raised one of ``errors``."""

    def condition(task: Task, task_run: TaskRun, state: State) -> bool:
        try:
            state.result()
        except errors:
            return True
        except BaseException:
            return False
        return False

    return condition


def ensure_writer_limit() -> None:
    """Create the ``hourcast-ingest`` limit (1 slot) on first use; fail loudly if it allows overlap.

    Prefect 3.8 skips acquisition (with only a warning) when a limit does not exist, which would
    silently let writers overlap; operators normally create it once with
    ``prefect gcl create hourcast-ingest --limit 1``.
    """
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(WRITER_LIMIT)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(ONE_SLOT)
                get_run_logger().warning("created the missing concurrency limit %s (1 slot)", WRITER_LIMIT)
            except ObjectAlreadyExists:  # another run created it at the same moment
                pass
            limit = client.read_global_concurrency_limit_by_name(WRITER_LIMIT)
    if limit.limit != 1 or not limit.active:
        raise RuntimeError(
            f"global concurrency limit {WRITER_LIMIT} has limit={limit.limit}, active={limit.active}: "
            f"writers could overlap; run `prefect gcl update {WRITER_LIMIT} --limit 1` and "
            f"`prefect gcl enable {WRITER_LIMIT}`"
        )


@contextmanager
def writer_slot() -> Iterator[None]:
    """Hold the single ``hourcast-ingest`` slot (waiting up to ``WRITER_SLOT_TIMEOUT_SECONDS``)."""
    ensure_writer_limit()
    with concurrency(WRITER_LIMIT, occupy=1, timeout_seconds=WRITER_SLOT_TIMEOUT_SECONDS, strict=True):
        yield


def _checked(summaries: list[SymbolSummary]) -> list[SymbolSummary]:
    """Log each symbol's outcome; raise ``PullFailed`` (not retried) if the exchange failed for any."""
    logger = get_run_logger()
    for summary in summaries:
        logger.info("%s", summary.as_json())
    if any(summary.status == "failed" for summary in summaries):
        raise PullFailed(summaries)
    return summaries


EXCHANGE_PULL: dict[str, Any] = {"retries": 0, "cache_policy": NONE, "persist_result": False}
"""Options of the exchange-pull tasks: no task-level retry (the exchange client is the retry layer)."""


@task(name="pull-candles", **EXCHANGE_PULL)
def pull_candles(settings: Settings, symbols: list[str] | None) -> list[SymbolSummary]:
    """Pull, validate and store every closed candle after the last stored one."""
    return _checked(make_ingestor(settings).ingest(symbols))


@task(name="pull-history", **EXCHANGE_PULL)
def pull_history(
    settings: Settings, since: pd.Timestamp, until: pd.Timestamp | None, symbols: list[str] | None
) -> list[SymbolSummary]:
    """Pull, validate and store every closed candle with ``since <= open time < until``."""
    return _checked(make_ingestor(settings).backfill(since, until, symbols))


@task(
    name="materialize",
    retries=2,
    retry_delay_seconds=exponential_backoff(5),
    retry_jitter_factor=0.5,
    retry_condition_fn=_retry_on(OnlineStoreUnavailable),
    cache_policy=NONE,
    persist_result=False,
)
def materialize_features(settings: Settings) -> MaterializeSummary:
    """Refresh the feature table from the stored candles and push the new rows to the online store."""
    summary = featurestore.materialize(settings)
    get_run_logger().info("%s", summary.as_json())
    return summary


@task(name="apply-retention", cache_policy=NONE, persist_result=False)
def apply_retention(settings: Settings) -> RetentionReport:
    """Delete candles, feature rows and prediction logs older than their retention windows."""
    report = retention.apply_retention(settings)
    get_run_logger().info("%s", report.as_json())
    return report


@task(name="train", cache_policy=NONE, persist_result=False)
def train_model(settings: Settings) -> TrainingResult:
    """Build the training set, fit, check walk-forward, save and apply the promotion gate."""
    result = training.train(settings)
    get_run_logger().info("%s: promoted=%s: %s", result.tag, result.promoted, result.reason)
    return result


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


@task(name="publish-retention-report", cache_policy=NONE, persist_result=False)
def publish_retention_report(report: RetentionReport) -> None:
    """Artifact ``retention-report``."""
    create_markdown_artifact(
        reporting.retention_markdown(report), key="retention-report", description="what retention removed"
    )


@task(name="publish-training-report", cache_policy=NONE, persist_result=False)
def publish_training_report(result: TrainingResult) -> None:
    """Artifacts ``training-metrics`` (walk-forward vs persistence) and ``promotion-decision``."""
    create_markdown_artifact(
        reporting.training_markdown(result),
        key="training-metrics",
        description="walk-forward metrics of the new model vs persistence",
    )
    create_markdown_artifact(
        reporting.promotion_markdown(result), key="promotion-decision", description="promotion gate"
    )


@task(name="publish-training-failure", cache_policy=NONE, persist_result=False)
def publish_training_failure(settings: Settings, error: str) -> None:
    """Artifact ``promotion-decision`` for a run that could not train: production is unchanged."""
    production = registry.production_tag(settings.registry_dir, settings.model_name)
    create_markdown_artifact(
        reporting.training_failure_markdown(error, production),
        key="promotion-decision",
        description="promotion gate",
    )


def raise_for_problems(summaries: list[SymbolSummary]) -> None:
    """Fail the run (after everything else was done) if any symbol failed or was quarantined."""
    message = reporting.problems(summaries)
    if message is not None:
        raise IngestProblems(message)
