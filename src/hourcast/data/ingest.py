"""Ingestion: fetch closed candles, validate each batch, store it, record the run in the ledger.

Rows failing a row rule (nulls, non-positive prices, OHLC consistency, alignment, a conflicting duplicate)
are quarantined with the validation report and the valid rows of their batch are stored: a dirty page
never stops history. Their hours are recorded in the ledger (``quarantined_ranges``) beside the gaps, never
filled in; the features see them as gaps. Later ingests ask for them again like missing candles (bounded
retries within recent days, see ``completeness``): one the exchange then serves clean is stored and its
quarantine entry marked ``resolved``, as after a backfill that stores it. A failing batch rule (columns,
dtypes, a candle from the exchange's future) quarantines the whole batch and stops that symbol's run, so
the store never gets a hole behind a page it could not read: the next run fetches the same range again.

All symbols of a run go at once: their pages are fetched concurrently (``exchange_concurrency`` requests in
flight, within the exchange's rate limit), each round of pages is validated in ONE Great Expectations run
(``CandleValidator.validate_batches``) and stored per symbol concurrently. Each symbol's outcome is its own:
a failing, slow or quarantined symbol never stops the others.
"""

from __future__ import annotations

import os
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hourcast.data import completeness, ledger, quarantine, selection, store
from hourcast.data.candles import (
    Gap,
    closed_only,
    frame_from_ohlcv,
    from_ms,
    last_closed_open_ms,
    slot_ms,
    to_ms,
    ts_ms,
)
from hourcast.data.exchange import CandleSource, ExchangeFailure, UnknownSymbol, resolve_symbols
from hourcast.errors import UsageError, UserError
from hourcast.settings import Settings
from hourcast.timeframe import timeframe_ms

if TYPE_CHECKING:
    from hourcast.data.validation import CandleValidator, ValidationReport

ProgressCallback = Callable[[str, int, int], None]
"""Called after each stored page with ``(symbol, candles_done, candles_expected)``."""
STRAGGLER_SECONDS = 2.0
"""How long a validation round waits for the pages still being fetched once no page has come in."""


@dataclass
class SymbolSummary:
    """The outcome of one run for one symbol."""

    symbol: str
    fetched: int = 0
    new: int = 0
    duplicates: int = 0
    gaps: list[Gap] = field(default_factory=list)
    quarantined: int = 0
    quarantined_at: list[pd.Timestamp] = field(default_factory=list)
    entries: list[str] = field(default_factory=list)
    first: pd.Timestamp | None = None
    last: pd.Timestamp | None = None
    status: str = "ok"
    message: str = ""

    @property
    def missing_candles(self) -> int:
        """Candles absent from the exchange's answer inside the fetched range."""
        return sum(gap.missing for gap in self.gaps)

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` line: counts, and the first/last candle fetched (ISO-8601 UTC)."""
        return {
            "symbol": self.symbol,
            "fetched": self.fetched,
            "new": self.new,
            "duplicates": self.duplicates,
            "gaps": self.missing_candles,
            "quarantined": self.quarantined,
            "quarantine_entries": self.entries,
            "first": _iso(self.first),
            "last": _iso(self.last),
            "status": self.status,
            "message": self.message,
        }


def _iso(stamp: pd.Timestamp | None) -> str | None:
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ") if stamp is not None else None


def _on_grid(stamps: pd.Series, step: int) -> pd.Series:
    """The distinct open times on the timeframe's grid, sorted (off-grid and null ones left out)."""
    stamps = stamps.dropna()
    aligned = stamps.loc[
        (stamps - pd.Timestamp(0, tz="UTC")) % pd.Timedelta(milliseconds=step) == pd.Timedelta(0)
    ]
    return aligned.drop_duplicates().sort_values().reset_index(drop=True)


def runs(stamps: list[pd.Timestamp], timeframe: str) -> str:
    """``start+count`` per run of consecutive candles (one timeframe apart), like the ledger's gap ranges."""
    step = pd.Timedelta(milliseconds=timeframe_ms(timeframe))
    parts: list[str] = []
    start = last = None
    count = 0
    for stamp in sorted(set(stamps)):
        if last is not None and stamp - last == step:
            count += 1
        else:
            if start is not None:
                parts.append(f"{_iso(start)}+{count}")
            start, count = stamp, 1
        last = stamp
    if start is not None:
        parts.append(f"{_iso(start)}+{count}")
    return ", ".join(parts)


ValidateRound = Callable[[list[pd.DataFrame], int], list["ValidationReport"]]
"""Validates a round's pages (one per symbol) against the exchange's clock in one GX run."""


@dataclass
class Ingestor:
    """The ingestion commands (``ingest``, ``backfill``, ``repair``) for the configured exchange, with one
    source and one validator (reuse it); each runs every symbol at once (``_run``)."""

    settings: Settings
    source: CandleSource
    make_validator: Callable[[], CandleValidator]
    progress: ProgressCallback | None = None

    @cached_property
    def validator(self) -> CandleValidator:
        """The GX validator, built on first use (GX is slow to import; a run with nothing new skips it)."""
        return self.make_validator()

    def ingest(self, symbols: list[str] | None = None) -> list[SymbolSummary]:
        """Pull every closed candle after the last stored one (a default window into an empty store)."""
        return self._run("ingest", symbols or self.symbols(), None, None)

    def backfill(
        self, since: pd.Timestamp, until: pd.Timestamp | None = None, symbols: list[str] | None = None
    ) -> list[SymbolSummary]:
        """Pull every closed candle with ``since <= open time < until`` (until defaults to now) that the
        store is missing; ``UsageError`` if the window is empty or starts after the newest closed candle."""
        if until is not None and until <= since:
            raise UsageError(
                f"--until {_iso(until)} is not after --since {_iso(since)}; give a later --until"
            )
        try:
            newest = from_ms(last_closed_open_ms(self.settings.timeframe, self.source.now_ms()))
        except ExchangeFailure:
            newest = None  # each symbol's run reports the exchange's failure itself
        if newest is not None and since > newest:
            raise UsageError(
                f"--since {_iso(since)} is after the exchange's newest closed candle ({_iso(newest)}): "
                "nothing to fetch; give an earlier --since"
            )
        return self._run("backfill", symbols or self.symbols(), since, until)

    def symbols(self) -> list[str]:
        """The configured symbols, a selector such as ``all-usdt`` resolved through the exchange (and the
        resolution recorded: ``resolve_settings``)."""
        return resolve_settings(self.settings, self.source).symbols

    def repair(self, symbols: list[str] | None = None) -> list[SymbolSummary]:
        """Set every unreadable month file and every stray ``month=`` entry (``month=bogus/``) aside
        (under ``HOURCAST_HOME/damaged``, bytes untouched) and fetch a damaged month again from the
        exchange; a symbol with neither is left alone. A damaged side file of a series (completeness
        state, quarantine entry) is set aside and rebuilt or skipped on the way, with a warning each."""
        summaries = []
        root, damaged = self.settings.candles_dir, self.settings.home / "damaged"
        for symbol in symbols or self.symbols():
            series = _series(self.settings, symbol)
            for stray in store.stray_months(root, series):
                aside = store.set_aside(root, stray, damaged)
                message = f"{stray} is no month of the store: set aside as {aside}"
                summaries.append(SymbolSummary(symbol, message=message))
            months = [  # all set aside before any is fetched: a fetch reads the series' other months
                (month, path, store.set_aside(root, path, damaged))
                for month, path in store.damaged_months(root, series)
            ]
            for month, path, aside in months:
                since = pd.Timestamp(f"{month}-01", tz="UTC")
                [summary] = self.backfill(since, since + pd.offsets.MonthBegin(1), [symbol])
                summary.message = (
                    f"{path} set aside as {aside}; month fetched again. {summary.message}".strip()
                )
                summaries.append(summary)
            # reading them sets a damaged state (rebuilt) or quarantine entry (skipped) aside
            completeness.load_state(self.settings, series)
            quarantine.entries(self.settings.quarantine_dir, series)
        return summaries

    def _validate(self, batches: list[pd.DataFrame], now_ms: int) -> list[ValidationReport]:
        return self.validator.validate_batches(batches, now_ms)

    def _run(
        self, command: str, symbols: list[str], since: pd.Timestamp | None, until: pd.Timestamp | None
    ) -> list[SymbolSummary]:
        """Run ``command`` for every symbol at once (see ``run_rounds``); each symbol's outcome is its own: a
        failing or quarantined symbol never stops or holds up the others. The ledger gets every symbol's
        ``started`` entry first and its outcome at the end (two writes per run, whatever the number of
        symbols); an error that is not the exchange's or the user's is re-raised once all are recorded."""
        context = RunContext(
            self.settings,
            self.source,
            command,
            run_at=pd.Timestamp.now(tz="UTC").floor("ms"),  # as the ledger stores it
            started=time.monotonic(),
        )
        runs = [SymbolRun(context, symbol) for symbol in dict.fromkeys(symbols)]
        ledger.record_many(self.settings.ledger_dir, [run.entry() for run in runs])
        for run in runs:
            run.summary.status, run.summary.message = "ok", ""
        try:
            with ThreadPoolExecutor(self.settings.exchange_concurrency, "ingest") as pool:
                try:
                    now_ms = self.source.now_ms()  # one exchange clock for every symbol of the run
                except ExchangeFailure as error:
                    for run in runs:
                        run.fail(error)
                else:
                    _each(
                        pool, [run for run in runs if run.active], lambda run: run.plan(since, until, now_ms)
                    )
                    run_rounds(
                        pool, [run for run in runs if run.active], now_ms, self._validate, self.progress
                    )
                _each(pool, runs, SymbolRun.finish)
        except BaseException as error:
            for run in runs:
                if run.ended is None:
                    run.fail(error)
            raise
        finally:
            ledger.record_many(self.settings.ledger_dir, [run.entry() for run in runs])
        unexpected = [run.unexpected for run in runs if run.unexpected is not None]
        if unexpected:
            raise unexpected[0]
        return [run.summary for run in runs]


def run_rounds(
    pool: ThreadPoolExecutor,
    runs: list[SymbolRun],
    now_ms: int,
    validate: ValidateRound,
    progress: ProgressCallback | None = None,
) -> None:
    """Fetch every symbol's next page concurrently (within the exchange's rate limit), validate all the
    pages of a round at once (``validate``: one GX run), then store them concurrently, until every symbol
    is done.

    A round is validated once every symbol has answered, or once no page has come for
    ``STRAGGLER_SECONDS``: a slow symbol's page then joins a later round, never holding up the rest.
    """
    fetching: dict[Future[pd.DataFrame | None], SymbolRun] = {
        pool.submit(run.next_batch, now_ms): run for run in runs
    }
    ready: list[tuple[SymbolRun, pd.DataFrame]] = []
    while fetching or ready:
        done: set[Future[pd.DataFrame | None]] = set()
        if fetching:
            timeout = STRAGGLER_SECONDS if ready else None
            done, _ = wait(fetching, timeout=timeout, return_when=FIRST_COMPLETED)
        for future in done:
            run = fetching.pop(future)
            try:
                batch = future.result()
            except Exception as error:
                run.fail(error)
                continue
            if batch is not None:
                ready.append((run, batch))
        if not ready or (fetching and done):
            continue
        reports = validate([batch for _, batch in ready], now_ms)
        stores = {
            pool.submit(run.take, batch, report): run
            for (run, batch), report in zip(ready, reports, strict=True)
        }
        ready = []
        for future in as_completed(stores):
            run = stores[future]
            try:
                future.result()
            except Exception as error:
                run.fail(error)
                continue
            if progress is not None:
                progress(run.summary.symbol, run.progress_done, run.expected)
            if run.active:
                fetching[pool.submit(run.next_batch, now_ms)] = run


def _each(pool: ThreadPoolExecutor, runs: list[SymbolRun], step: Callable[[SymbolRun], None]) -> None:
    """Apply ``step`` to every run concurrently; a run whose step raises fails alone."""
    futures = {pool.submit(step, run): run for run in runs}
    for future in as_completed(futures):
        try:
            future.result()
        except Exception as error:
            futures[future].fail(error)


def _series(settings: Settings, symbol: str) -> store.Series:
    return store.Series(settings.exchange, symbol, settings.timeframe)


def plan_ranges(
    settings: Settings,
    series: store.Series,
    archive: completeness.ArchiveState,
    since_ms: int | None,
    until_ms: int,
) -> tuple[list[tuple[int, int]], set[int], int]:
    """The ranges to ask the exchange for, the stored open times inside them, and where the run's span
    starts. ``ingest`` (``since_ms`` None): the holes and quarantined candles still re-requested, then
    everything after the last stored (or quarantined) candle; ``backfill``: only what ``since..until`` is
    missing (neither stored nor confirmed missing), so a re-run resumes where a killed one stopped;
    quarantined candles are asked for again (stored if they now come clean, never quarantined twice)."""
    root, step = settings.candles_dir, timeframe_ms(series.timeframe)
    if since_ms is None:
        stamps = [store.last_stored(root, series), quarantine.examined_until(settings.quarantine_dir, series)]
        previous = max((stamp for stamp in stamps if stamp is not None), default=None)
        default_start = until_ms - (settings.default_backfill_days * 86_400_000) + step
        start = to_ms(previous) + step if previous is not None else default_start
        horizon = completeness.retry_horizon_ms(settings, until_ms)
        retry = [s for s in archive.to_retry(horizon, settings.gap_retries) if s < start]
        ranges = completeness.runs(retry, step) + ([(start, until_ms)] if start <= until_ms else [])
        return ranges, set(), start if previous is None else (retry[0] if retry else start)
    stored = completeness.stored_slots(root, series, since_ms, until_ms + step - 1)
    wanted = np.setdiff1d(completeness.grid(since_ms, until_ms, step), stored)
    wanted = [s for s in wanted.tolist() if s not in archive.confirmed]
    ranges: list[tuple[int, int]] = []
    for first, last in completeness.runs(wanted, step):  # one page may cover two close ranges
        if ranges and (last - ranges[-1][0]) // step < settings.fetch_limit:
            ranges[-1] = (ranges[-1][0], last)
        else:
            ranges.append((first, last))
    return ranges, set((stored // step * step).tolist()), since_ms


def publish_last_report(validation_dir: Path, series: store.Series, report: ValidationReport) -> None:
    """Keep the series' latest validation result (JSON and GX's HTML page) in ``validation_dir``, rewritten
    only when its outcome changed."""
    from hourcast.data.validation import latest_report_stem, publish_latest

    stem = latest_report_stem(series.exchange, series.symbol, series.timeframe)
    publish_latest(report, validation_dir, stem)


@dataclass(frozen=True)
class RunContext:
    """What every symbol's part of one run shares: the settings, the exchange, the command and when the
    run started (``run_at`` for the ledger, ``started`` for its durations)."""

    settings: Settings
    source: CandleSource
    command: str
    run_at: pd.Timestamp
    started: float


@dataclass(eq=False)
class SymbolRun:
    """One symbol's part of a run: its plan, the page it is reading, what it has examined and its outcome.

    Its steps run on the pool's threads, one at a time: ``plan``, then ``next_batch`` / ``take`` per page,
    then ``finish``; ``entry`` is its ledger entry as it stands.
    """

    context: RunContext
    symbol: str
    active: bool = True
    stopped: bool = False  # a batch rule failed: the run stopped before that page
    unexpected: Exception | None = None
    ended: float | None = None
    planned: bool = False
    expected: int = 0
    progress_done: int = 0
    summary: SymbolSummary = field(init=False)

    def __post_init__(self) -> None:
        self.summary = SymbolSummary(self.symbol, status="started", message=ledger.STARTED_MESSAGE)
        self.settings = self.context.settings
        self.step = timeframe_ms(self.settings.timeframe)
        self.series = _series(self.settings, self.symbol)
        self.returned: set[int] = set()
        self.judged: set[int] = set()
        self.clean: set[int] = set()  # periods with a valid candle stored (or already stored)
        self.examined: list[tuple[int, int]] = []
        self.done = 0  # candles of the ranges finished
        self.report: ValidationReport | None = None
        self._range = -1
        self._pages: Iterator[list[list]] | None = None
        self._reached = 0

    def fail(self, error: BaseException) -> None:
        """End the symbol's run with ``error`` as its outcome (kept to re-raise when it is a bug)."""
        self.active = False
        if isinstance(error, UnknownSymbol | UserError):
            message = str(error)
        elif isinstance(error, ExchangeFailure):
            message = f"{error} (stored everything before it; re-run to resume)"
        else:
            message = f"{type(error).__name__}: {error}"
            if isinstance(error, Exception):
                self.unexpected = error
        self.summary.status, self.summary.message = "failed", message

    def plan(self, since: pd.Timestamp | None, until: pd.Timestamp | None, now_ms: int) -> None:
        """Check the symbol and plan the ranges to ask for (``plan_ranges``)."""
        self.context.source.check_symbol(self.symbol)
        step = self.step
        self.last_closed = last_closed_open_ms(self.settings.timeframe, now_ms)
        until_ms = min(self.last_closed, to_ms(until) - 1 if until is not None else self.last_closed)
        self.until_ms = until_ms // step * step
        self.archive = completeness.load_state(self.settings, self.series)
        since_ms = -(-to_ms(since) // step) * step if since is not None else None  # the first period after it
        self.ranges, self.known, self.span_start = plan_ranges(
            self.settings, self.series, self.archive, since_ms, self.until_ms
        )
        self.expected = sum((last - first) // step + 1 for first, last in self.ranges)
        self.planned = True

    def next_batch(self, now_ms: int) -> pd.DataFrame | None:
        """The next page of closed candles (duplicates dropped) from the exchange, or None when every range
        has been read; records each range (or the part of it reached) in ``examined``."""
        timeframe, step = self.settings.timeframe, self.step
        while True:
            if self._pages is None:
                if self._range + 1 >= len(self.ranges):
                    self.active = False
                    return None
                self._range += 1
                first, last = self.ranges[self._range]
                self._reached = first - step
                self.examined.append((first, self._reached))
                limit = min(self.settings.fetch_limit, (last - first) // step + 2)
                self._pages = iter(self.context.source.pages(self.symbol, timeframe, first, last, limit))
            first, last = self.ranges[self._range]
            page = next(self._pages, None)
            if page is None:
                self.examined[-1] = (first, last)
                self.done += (last - first) // step + 1
                self._pages = None
                continue
            batch = closed_only(
                frame_from_ohlcv(page, self.settings.exchange, self.symbol, timeframe), timeframe, now_ms
            )
            batch = batch.loc[slot_ms(ts_ms(batch), timeframe) >= first]
            if batch.empty:
                continue
            self.summary.fetched += len(batch)
            unique = batch.drop_duplicates().reset_index(drop=True)  # the same candle twice is one
            self.summary.duplicates += len(batch) - len(unique)
            return unique

    def take(self, unique: pd.DataFrame, report: ValidationReport) -> None:
        """Store a validated page: rows failing a row rule quarantined, the valid ones stored; a failing
        batch rule quarantines the page and stops the symbol's run."""
        summary, series, step = self.summary, self.series, self.step
        timeframe = self.settings.timeframe
        if report.batch_failed:
            held = self._quarantine(unique, report, quarantine.BATCH)
            summary.message = (
                f"batch of {len(unique)} candles quarantined ({held}) and the run stopped before it "
                "(the next run fetches it again): " + "; ".join(report.failures)
            )
            publish_last_report(self.settings.validation_dir, series, report)
            self.active, self.stopped = False, True
            return
        self.report = report
        rejected = unique.iloc[report.rejected_rows]
        valid = unique.drop(index=rejected.index).reset_index(drop=True)
        if not rejected.empty:
            self._quarantine(rejected, report, quarantine.ROWS)
        result = store.upsert(self.settings.candles_dir, series, valid)
        summary.new += result.new
        summary.duplicates += result.duplicates
        slots = _on_grid(pd.concat([valid["ts"], rejected["ts"]]), step)
        self.returned.update(ts_ms(slots.to_frame("ts")).tolist())
        self.clean.update(ts_ms(_on_grid(valid["ts"], step).to_frame("ts")).tolist())
        self.judged.update(slot_ms(ts_ms(rejected.dropna(subset=["ts"])), timeframe).tolist())
        page_slots = slot_ms(ts_ms(unique.dropna(subset=["ts"])), timeframe)
        self._reached = max(self._reached, int(page_slots.max()) if len(page_slots) else self._reached)
        first, last = self.ranges[self._range]
        self.examined[-1] = (first, min(self._reached, last))
        if not valid.empty:
            summary.first = summary.first if summary.first is not None else valid["ts"].min()
            summary.last = valid["ts"].max() if summary.last is None else max(summary.last, valid["ts"].max())
        self.progress_done = self.done + (min(self._reached, last) - first) // step + 1

    def _quarantine(self, rows: pd.DataFrame, report: ValidationReport, kind: str) -> str:
        """Set ``rows`` aside with the report, unless an entry of that kind already holds them; returns
        the new entry's id (or ``already held``)."""
        root, summary = self.settings.quarantine_dir, self.summary
        summary.quarantined += len(rows)
        summary.quarantined_at += rows["ts"].dropna().tolist()
        summary.status = "quarantined"
        fresh = rows.loc[~quarantine.already_held(root, self.series, rows, kind)]
        if fresh.empty:
            return "already held"
        entry = quarantine.put(root, self.series, fresh, report, self.context.run_at, kind)
        quarantine.supersede(root, entry)
        summary.entries.append(entry.id)
        return entry.id

    def finish(self) -> None:
        """Record what the exchange answered in the completeness state, publish the latest validation
        report and word the outcome."""
        self.active = False
        self.ended = time.monotonic()
        summary = self.summary
        if self.planned:
            self._record_answers()
        if summary.first is not None and summary.last is not None:
            root, candles = self.settings.quarantine_dir, self.settings.candles_dir
            quarantine.resolve_stored(root, candles, self.series, summary.first, summary.last)
        if summary.status == "failed":
            return
        if self.report is not None and not self.stopped:
            publish_last_report(self.settings.validation_dir, self.series, self.report)
        if summary.quarantined and summary.status == "quarantined" and not summary.message:
            summary.message = (
                f"{summary.quarantined} of {summary.fetched} candles quarantined "
                f"({', '.join(summary.entries) or 'already held'}; see `hourcast quarantine list`), "
                "the valid ones stored"
            )
        elif self.expected and summary.last is None and not summary.message:
            first, last = self.ranges[0][0], self.ranges[-1][1]
            summary.message = f"no closed candles in {_iso(from_ms(first))}..{_iso(from_ms(last))}"

    def _record_answers(self) -> None:
        """The gaps of the run, and the exchange's answers saved in the series' completeness state."""
        step = self.step
        asked = {s for first, last in self.examined for s in completeness.grid(first, last, step).tolist()}
        # a period whose only answer was set aside (an off-hour candle alone in it) is quarantined,
        # not a gap: `hourcast gaps` and the ledger say the same
        left_out = sorted(asked - self.returned - self.judged - self.known)
        self.summary.gaps = [
            Gap(from_ms(first), (last - first) // step + 1)
            for first, last in completeness.runs(left_out, step)
        ]
        if self.examined or self.archive.start is None:
            horizon = completeness.retry_horizon_ms(self.settings, self.last_closed)
            reached = max((last for _, last in self.examined), default=self.until_ms)
            span = (min(self.span_start, self.until_ms), reached)
            answered = self.returned | self.judged
            rejected = self.judged - self.clean  # every answer for the period set aside
            if rejected:  # an off-hour candle beside its stored hour is no quarantined hour
                stored = completeness.stored_slots(
                    self.settings.candles_dir, self.series, min(rejected), max(rejected) + step - 1
                )
                rejected -= set((stored // step * step).tolist())
            retries = self.settings.gap_retries
            completeness.update_state(  # on the state as saved now: a concurrent run may have saved
                self.settings.candles_dir,
                self.series,
                lambda state: state.record(span, left_out, answered, horizon, retries, rejected),
                partial(completeness.derive_state, self.settings, self.series),
            )

    def entry(self) -> ledger.LedgerEntry:
        """The symbol's ledger entry as it stands."""
        summary, settings, context = self.summary, self.settings, self.context
        return ledger.LedgerEntry(
            run_at=context.run_at,
            command=context.command,
            exchange=settings.exchange,
            symbol=summary.symbol,
            timeframe=settings.timeframe,
            fetched=summary.fetched,
            new=summary.new,
            duplicates=summary.duplicates,
            gaps=summary.missing_candles,
            gap_ranges=", ".join(f"{_iso(gap.start)}+{gap.missing}" for gap in summary.gaps),
            quarantined=summary.quarantined,
            quarantined_ranges=runs(summary.quarantined_at, settings.timeframe),
            first=summary.first,
            last=summary.last,
            duration_seconds=round((self.ended or time.monotonic()) - context.started, 3),
            status=summary.status,
            message=summary.message,
        )


def check_home(home: Path) -> None:
    """``UserError`` unless ``home`` is (or can be made) a folder this process can write in."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        # a probe file of its own: concurrent pull tasks of one process check the same home at once
        descriptor, probe = tempfile.mkstemp(prefix=".write-check-", dir=home)
        os.close(descriptor)
        os.unlink(probe)
    except OSError as error:
        raise UserError(
            f"HOURCAST_HOME={str(home)!r} is not a writable folder ({error.strerror or error}); "
            "point HOURCAST_HOME at a folder you can write to"
        ) from None


def resolve_settings(settings: Settings, source: CandleSource | None = None) -> Settings:
    """``settings`` with every symbol selector (``all-usdt``) resolved through the exchange (``source``, or
    a client of the configured one), for ingestion's entry points to pass down; the same object when there
    is none (no request made). The resolution is recorded in ``HOURCAST_HOME/symbols.json`` for every
    other entry point (``selection.resolved``)."""
    from hourcast.data.exchange import RetryPolicy, make_client

    if not selection.has_selector(settings):
        return settings
    if source is None:
        source = CandleSource(make_client(settings), retry=RetryPolicy.from_settings(settings))
    resolved = resolve_symbols(settings, source)
    selection.record(settings, resolved.symbols)
    return resolved


def make_ingestor(settings: Settings, progress: ProgressCallback | None = None) -> Ingestor:
    """An ``Ingestor`` wired to the configured exchange (through ccxt) and the GX candle suite."""
    from hourcast.data.exchange import RetryPolicy, make_client
    from hourcast.data.validation import CandleValidator

    check_home(settings.home)
    source = CandleSource(make_client(settings), retry=RetryPolicy.from_settings(settings))
    return Ingestor(settings, source, partial(CandleValidator, settings.timeframe), progress)
