"""One ingest cycle, defined once: resolve the configured symbols, pull their new closed candles (validated
with Great Expectations and stored), report them, materialize the online features from what was stored, then
log the hour's forecast of record (``hourcast.serving.record``).

``run_ingest_cycle`` fixes the order of the steps and what a failed pull does; the steps are handed in. The
``ingest`` and ``backfill`` flows hand in Prefect tasks that are short calls to the functions here
(``pull_new``, ``pull_range``, ``featurestore.materialize``, ``record.record_forecasts``); `hourcast up`'s
bootstrap (``hourcast.ops.bootstrap``) hands in the same functions, called directly.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hourcast.data.ingest import SymbolSummary, make_ingestor, resolve_settings
from hourcast.errors import HourcastError
from hourcast.ops import reporting
from hourcast.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

    from hourcast.features.featurestore import MaterializeSummary
    from hourcast.serving.record import RecordSummary

SymbolCallback = Callable[[SymbolSummary], None]
"""Told each symbol's outcome as a pull finishes (a run logger, or a line on the console)."""


class PullFailed(HourcastError):
    """The exchange failed for some symbols; carries every symbol's summary of the attempt."""

    def __init__(self, summaries: list[SymbolSummary]) -> None:
        super().__init__(summaries)  # the only argument, so the exception pickles
        self.summaries = summaries

    def __str__(self) -> str:
        return reporting.problems(self.summaries) or "exchange pull failed"

    def __repr__(self) -> str:
        return f"PullFailed({str(self)!r})"


class IngestProblems(HourcastError):
    """Some symbols failed or were quarantined; raised after what was stored is materialized."""


def _ignore(summary: SymbolSummary) -> None:
    """The default ``SymbolCallback``: nobody listens."""


def checked(summaries: list[SymbolSummary], tell: SymbolCallback = _ignore) -> list[SymbolSummary]:
    """Tell each symbol's outcome; raise ``PullFailed`` if the exchange failed for any symbol."""
    for summary in summaries:
        tell(summary)
    if any(summary.status == "failed" for summary in summaries):
        raise PullFailed(summaries)
    return summaries


def pull_new(
    settings: Settings, symbols: list[str] | None = None, tell: SymbolCallback = _ignore
) -> list[SymbolSummary]:
    """Pull, validate and store every closed candle after the last stored one (``checked``)."""
    return checked(make_ingestor(settings).ingest(symbols), tell)


def pull_range(
    settings: Settings,
    since: pd.Timestamp,
    until: pd.Timestamp | None,
    symbols: list[str] | None = None,
    tell: SymbolCallback = _ignore,
) -> list[SymbolSummary]:
    """Pull, validate and store every closed candle with ``since <= open time < until`` (``checked``)."""
    return checked(make_ingestor(settings).backfill(since, until, symbols), tell)


def raise_for_problems(summaries: list[SymbolSummary]) -> None:
    """``IngestProblems`` if any symbol failed or was quarantined."""
    message = reporting.problems(summaries)
    if message is not None:
        raise IngestProblems(message)


@dataclass(frozen=True)
class CycleSteps:
    """The steps of one ingest cycle: ``pull`` (resolved settings, symbols; ``PullFailed`` carrying every
    summary when the exchange failed for some), ``report`` of the summaries (optional), ``materialize``
    and ``record``, the hour's forecast of record from what was materialized (optional)."""

    pull: Callable[[Settings, list[str]], list[SymbolSummary]]
    materialize: Callable[[Settings], MaterializeSummary]
    report: Callable[[Settings, list[SymbolSummary]], None] | None = None
    record: Callable[[Settings], RecordSummary] | None = None


@dataclass(frozen=True)
class CycleOutcome:
    """What one ingest cycle did, with the settings it ran on (symbol selectors resolved); ``record`` is
    None when the cycle had no record step."""

    settings: Settings
    summaries: list[SymbolSummary]
    online: MaterializeSummary
    record: RecordSummary | None = None


def run_ingest_cycle(
    settings: Settings,
    steps: CycleSteps,
    symbols: list[str] | None = None,
    writer_slot: AbstractContextManager[object] | None = None,
    materialize_after_failed_pull: bool = True,
) -> CycleOutcome:
    """Resolve the symbol selectors (``resolve_settings``), then inside ``writer_slot`` (if any) pull
    ``symbols`` (default: the configured ones), report, and materialize; then, outside the slot (it only
    reads the store and appends to the prediction log), record. After a failed pull what was stored is
    still reported, materialized and recorded, unless ``materialize_after_failed_pull`` is false: then the
    ``PullFailed`` propagates and nothing after the pull runs."""
    settings = resolve_settings(settings)  # a selector such as all-usdt: the markets it picks now
    with writer_slot or nullcontext():
        try:
            summaries = steps.pull(settings, symbols or settings.symbols)
        except PullFailed as failure:
            if not materialize_after_failed_pull:
                raise
            summaries = failure.summaries
        if steps.report is not None:
            steps.report(settings, summaries)
        online = steps.materialize(settings)
    record = steps.record(settings) if steps.record is not None else None
    return CycleOutcome(settings, summaries, online, record)
