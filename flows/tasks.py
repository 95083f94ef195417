"""What every hourcast flow that writes shares: the single writer slot, and the retry condition of I/O tasks.

The tasks themselves live beside their flows, each module importing only what its flow needs, since the
process worker runs every flow run in a fresh interpreter that pays for each import: ``flows.ingest_tasks``
(``ingest`` and ``backfill``: the exchange, validation and the feature store), ``flows.retention_tasks``,
``flows.retrain_tasks`` (CatBoost and the model store) and ``flows.monitor_tasks``.

Retries live in one layer per kind of I/O (see ``flows.ingest_tasks``). Tasks take the ``Settings`` object, so
none is cached and no result is persisted.

Every flow that writes the candle store or the feature table does it inside ``writer_slot(name)``: one slot
of the Prefect global concurrency limit ``HOURCAST_WRITER_LIMIT`` names (``hourcast-ingest``; limit 1), so two
such runs never overlap.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from prefect import Task, get_run_logger
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate
from prefect.client.schemas.objects import State, TaskRun
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound

from hourcast.errors import HourcastError

WRITER_SLOT_TIMEOUT_SECONDS = 45 * 60.0
"""How long a writer waits for the slot before its run fails (well inside the hourly schedule)."""

WRITER_SLOT_LEASE_SECONDS = 60.0
"""The lease of the writer slot: Prefect renews it from the holder's process every 45 s (three quarters of it)
while the holder lives, so a killed writer's slot is free again a minute after its last renewal, plus one pass
of the server's repossessor (15 s), instead of Prefect's default 300 s. 60 s is the shortest lease the server
takes. As before (``strict``), a holder whose renewal keeps failing is stopped, not left writing unguarded."""


def retry_on(*errors: type[BaseException]) -> Callable[[Task, TaskRun, State], bool]:
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


def ensure_writer_limit(name: str) -> None:
    """Create the writer limit ``name`` (1 slot) on first use; fail loudly if it allows overlap.

    Prefect 3.8 skips acquisition (with only a warning) when a limit does not exist, which would
    silently let writers overlap; operators normally create it once with
    ``prefect gcl create hourcast-ingest --limit 1``.
    """
    with get_client(sync_client=True) as client:
        try:
            limit = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
                get_run_logger().warning("created the missing concurrency limit %s (1 slot)", name)
            except ObjectAlreadyExists:  # another run created it at the same moment
                pass
            limit = client.read_global_concurrency_limit_by_name(name)
    if limit.limit != 1 or not limit.active:
        raise HourcastError(
            f"global concurrency limit {name} has limit={limit.limit}, active={limit.active}: "
            f"writers could overlap; run `prefect gcl update {name} --limit 1` and "
            f"`prefect gcl enable {name}`"
        )


@contextmanager
def writer_slot(name: str) -> Iterator[None]:
    """Hold the single slot of the writer limit ``name`` (waiting up to ``WRITER_SLOT_TIMEOUT_SECONDS``) on a
    lease of ``WRITER_SLOT_LEASE_SECONDS``."""
    ensure_writer_limit(name)
    with concurrency(
        name,
        occupy=1,
        timeout_seconds=WRITER_SLOT_TIMEOUT_SECONDS,
        lease_duration=WRITER_SLOT_LEASE_SECONDS,
        strict=True,
    ):
        yield
