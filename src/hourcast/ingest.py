"""Ingestion: fetch closed candles, validate each batch, store it, record the run in the ledger.

Rows failing a row rule (nulls, non-positive prices, OHLC consistency, alignment, a conflicting duplicate)
are quarantined with the validation report and the valid rows of their batch are stored: a dirty page
never stops history. Their hours are recorded in the ledger (``quarantined_ranges``) beside the gaps, never
filled in; the features see them as gaps. A failing batch rule (columns, dtypes, a candle from the
exchange's future) quarantines the whole batch and stops that symbol's run, so the store never gets a
hole behind a page it could not read: the next run fetches the same range again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from hourcast import completeness, ledger, quarantine, store
from hourcast.candles import (
    Gap,
    closed_only,
    frame_from_ohlcv,
    from_ms,
    last_closed_open_ms,
    slot_ms,
    timeframe_ms,
    to_ms,
    ts_ms,
)
from hourcast.errors import UsageError, UserError
from hourcast.exchange import CandleSource, ExchangeFailure, UnknownSymbol
from hourcast.settings import Settings

if TYPE_CHECKING:
    from hourcast.validation import CandleValidator, ValidationReport

ProgressCallback = Callable[[str, int, int], None]
"""Called after each stored page with ``(symbol, candles_done, candles_expected)``."""


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


@dataclass
class Ingestor:
    """Runs ingestion for the configured exchange with one source and one validator (reuse it)."""

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
        return [self._run("ingest", symbol, None, None) for symbol in symbols or self.settings.symbols]

    def backfill(
        self, since: pd.Timestamp, until: pd.Timestamp | None = None, symbols: list[str] | None = None
    ) -> list[SymbolSummary]:
        """Pull every closed candle with ``since <= open time < until`` (until defaults to now) that the
        store is missing; ``UsageError`` if the window is empty or starts after the newest closed candle."""
        if until is not None and until <= since:
            raise UsageError(
                f"--until {_iso(until)} is not after --since {_iso(since)}: give a later --until"
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
        return [self._run("backfill", symbol, since, until) for symbol in symbols or self.settings.symbols]

    def _series(self, symbol: str) -> store.Series:
        return store.Series(self.settings.exchange, symbol, self.settings.timeframe)

    def repair(self, symbols: list[str] | None = None) -> list[SymbolSummary]:
        """Set every unreadable month file aside (under ``HOURCAST_HOME/damaged``, bytes untouched) and
        fetch its month again from the exchange; a symbol with no damaged month is left alone."""
        summaries = []
        for symbol in symbols or self.settings.symbols:
            series = self._series(symbol)
            for month, path in store.damaged_months(self.settings.candles_dir, series):
                aside = store.set_aside(self.settings.candles_dir, path, self.settings.home / "damaged")
                since = pd.Timestamp(f"{month}-01", tz="UTC")
                [summary] = self.backfill(since, since + pd.offsets.MonthBegin(1), [symbol])
                summary.message = (
                    f"{path} set aside as {aside}; month fetched again. {summary.message}".strip()
                )
                summaries.append(summary)
        return summaries

    def _run(
        self, command: str, symbol: str, since: pd.Timestamp | None, until: pd.Timestamp | None
    ) -> SymbolSummary:
        started = time.monotonic()
        run_at = pd.Timestamp.now(tz="UTC").floor("ms")  # as the ledger stores it
        summary = SymbolSummary(symbol, status="started", message=ledger.STARTED_MESSAGE)
        ledger.record(self.settings.ledger_path, self._entry(command, run_at, started, summary))
        summary.status, summary.message = "ok", ""
        try:
            self._pull(summary, run_at, since, until)
        except UnknownSymbol as error:
            summary.status, summary.message = "failed", str(error)
        except ExchangeFailure as error:
            summary.status, summary.message = (
                "failed",
                f"{error} (stored everything before it; re-run to resume)",
            )
        except UserError as error:
            summary.status, summary.message = "failed", str(error)
        except BaseException as error:
            summary.status, summary.message = "failed", f"{type(error).__name__}: {error}"
            raise
        finally:
            ledger.record(self.settings.ledger_path, self._entry(command, run_at, started, summary))
        return summary

    def _plan(
        self, series: store.Series, archive: completeness.ArchiveState, since_ms: int | None, until_ms: int
    ) -> tuple[list[tuple[int, int]], set[int], int]:
        """The ranges to ask the exchange for, the stored open times inside them, and where the run's span
        starts. ``ingest``: the holes still re-requested, then everything after the last stored (or
        quarantined) candle; ``backfill``: only what ``since..until`` is missing (neither stored nor
        confirmed missing), so a re-run resumes where a killed one stopped; quarantined candles are asked
        for again (stored if they now come clean, never quarantined twice)."""
        root, step = self.settings.candles_dir, timeframe_ms(series.timeframe)
        if since_ms is None:
            stamps = [
                store.last_stored(root, series),
                quarantine.examined_until(self.settings.quarantine_dir, series),
            ]
            previous = max((stamp for stamp in stamps if stamp is not None), default=None)
            default_start = until_ms - (self.settings.default_backfill_days * 86_400_000) + step
            start = to_ms(previous) + step if previous is not None else default_start
            horizon = completeness.retry_horizon_ms(self.settings, until_ms)
            retry = [s for s in archive.to_retry(horizon, self.settings.gap_retries) if s < start]
            ranges = completeness.runs(retry, step) + ([(start, until_ms)] if start <= until_ms else [])
            return ranges, set(), start if previous is None else (retry[0] if retry else start)
        stored = completeness.stored_slots(root, series, since_ms, until_ms + step - 1)
        wanted = np.setdiff1d(completeness.grid(since_ms, until_ms, step), stored)
        wanted = [s for s in wanted.tolist() if s not in archive.confirmed]
        ranges: list[tuple[int, int]] = []
        for first, last in completeness.runs(wanted, step):  # one page may cover two close ranges
            if ranges and (last - ranges[-1][0]) // step < self.settings.fetch_limit:
                ranges[-1] = (ranges[-1][0], last)
            else:
                ranges.append((first, last))
        return ranges, set((stored // step * step).tolist()), since_ms

    def _pull(
        self,
        summary: SymbolSummary,
        run_at: pd.Timestamp,
        since: pd.Timestamp | None,
        until: pd.Timestamp | None,
    ) -> None:
        timeframe = self.settings.timeframe
        step = timeframe_ms(timeframe)
        series = self._series(summary.symbol)
        self.source.check_symbol(summary.symbol)
        now_ms = self.source.now_ms()
        last_closed = last_closed_open_ms(timeframe, now_ms)
        until_ms = min(last_closed, to_ms(until) - 1 if until is not None else last_closed)
        until_ms = until_ms // step * step
        archive = completeness.read_state(self.settings.candles_dir, series)
        since_ms = -(-to_ms(since) // step) * step if since is not None else None  # the first period after it
        ranges, known, span_start = self._plan(series, archive, since_ms, until_ms)
        expected = sum((last - first) // step + 1 for first, last in ranges)
        returned: set[int] = set()
        judged: set[int] = set()
        examined: list[tuple[int, int]] = []
        try:
            self._fetch(summary, series, run_at, now_ms, ranges, returned, judged, examined, expected)
        finally:
            asked = {s for first, last in examined for s in completeness.grid(first, last, step).tolist()}
            # a period whose only answer was set aside (an off-hour candle alone in it) is quarantined,
            # not a gap: `hourcast gaps` and the ledger say the same
            left_out = sorted(asked - returned - judged - known)
            summary.gaps = [
                Gap(from_ms(first), (last - first) // step + 1)
                for first, last in completeness.runs(left_out, step)
            ]
            if examined or archive.start is None:
                horizon = completeness.retry_horizon_ms(self.settings, last_closed)
                span = (min(span_start, until_ms), max((last for _, last in examined), default=until_ms))
                completeness.update_state(  # on the state as saved now: a concurrent run may have saved
                    self.settings.candles_dir,
                    series,
                    lambda state: state.record(
                        span, left_out, returned | judged, horizon, self.settings.gap_retries
                    ),
                )
        if summary.quarantined and summary.status == "quarantined" and not summary.message:
            summary.message = (
                f"{summary.quarantined} of {summary.fetched} candles quarantined "
                f"({', '.join(summary.entries) or 'already held'}; see `hourcast quarantine list`), "
                "the valid ones stored"
            )
        elif expected and summary.last is None and not summary.message:
            summary.message = (
                f"no closed candles in {_iso(from_ms(ranges[0][0]))}..{_iso(from_ms(ranges[-1][1]))}"
            )

    def _fetch(
        self,
        summary: SymbolSummary,
        series: store.Series,
        run_at: pd.Timestamp,
        now_ms: int,
        ranges: list[tuple[int, int]],
        returned: set[int],
        judged: set[int],
        examined: list[tuple[int, int]],
        expected: int,
    ) -> None:
        """Fetch, validate and store ``ranges`` in order, adding the grid periods the exchange returned to
        ``returned``, the periods of quarantined rows to ``judged`` (asking for them again would only
        quarantine them again) and each range (or the part of it reached) to ``examined``; stops at a
        failing batch."""
        timeframe = self.settings.timeframe
        step = timeframe_ms(timeframe)
        report: ValidationReport | None = None
        done = 0  # candles of the ranges finished before this one
        for first, last in ranges:
            reached = first - step
            examined.append((first, reached))
            limit = min(self.settings.fetch_limit, (last - first) // step + 2)
            for page in self.source.pages(summary.symbol, timeframe, first, last, limit):
                batch = closed_only(
                    frame_from_ohlcv(page, self.settings.exchange, summary.symbol, timeframe),
                    timeframe,
                    now_ms,
                )
                batch = batch.loc[slot_ms(ts_ms(batch), timeframe) >= first]
                if batch.empty:
                    continue
                summary.fetched += len(batch)
                unique = batch.drop_duplicates().reset_index(drop=True)  # the same candle twice is one
                summary.duplicates += len(batch) - len(unique)
                report = self.validator.validate(unique, now_ms)
                if report.batch_failed:
                    held = self._quarantine(summary, series, unique, report, run_at, quarantine.BATCH)
                    summary.message = (
                        f"batch of {len(unique)} candles quarantined ({held}) and the run stopped before it "
                        "(the next run fetches it again): " + "; ".join(report.failures)
                    )
                    self._publish_last_report(series, report)
                    return
                rejected = unique.iloc[report.rejected_rows]
                valid = unique.drop(index=rejected.index).reset_index(drop=True)
                if not rejected.empty:
                    self._quarantine(summary, series, rejected, report, run_at, quarantine.ROWS)
                result = store.upsert(self.settings.candles_dir, series, valid)
                summary.new += result.new
                summary.duplicates += result.duplicates
                slots = _on_grid(pd.concat([valid["ts"], rejected["ts"]]), step)
                returned.update(ts_ms(slots.to_frame("ts")).tolist())
                judged.update(slot_ms(ts_ms(rejected.dropna(subset=["ts"])), timeframe).tolist())
                page_slots = slot_ms(ts_ms(unique.dropna(subset=["ts"])), timeframe)
                reached = max(reached, int(page_slots.max()) if len(page_slots) else reached)
                examined[-1] = (first, min(reached, last))
                if not valid.empty:
                    summary.first = summary.first if summary.first is not None else valid["ts"].min()
                    summary.last = (
                        valid["ts"].max() if summary.last is None else max(summary.last, valid["ts"].max())
                    )
                if self.progress is not None:
                    self.progress(summary.symbol, done + (min(reached, last) - first) // step + 1, expected)
            examined[-1] = (first, last)
            done += (last - first) // step + 1
        if report is not None:
            self._publish_last_report(series, report)

    def _publish_last_report(self, series: store.Series, report: ValidationReport) -> None:
        """Keep the series' latest validation result (JSON and GX's HTML page) in the validation folder,
        rewritten only when its outcome changed."""
        from hourcast.validation import latest_report_stem, publish_latest

        stem = latest_report_stem(series.exchange, series.symbol, series.timeframe)
        publish_latest(report, self.settings.validation_dir, stem)

    def _quarantine(
        self,
        summary: SymbolSummary,
        series: store.Series,
        rows: pd.DataFrame,
        report: ValidationReport,
        run_at: pd.Timestamp,
        kind: str,
    ) -> str:
        """Set ``rows`` aside with the report, unless an entry of that kind already holds them; returns
        the new entry's id (or ``already held``)."""
        root = self.settings.quarantine_dir
        summary.quarantined += len(rows)
        summary.quarantined_at += rows["ts"].dropna().tolist()
        summary.status = "quarantined"
        fresh = rows.loc[~quarantine.already_held(root, series, rows, kind)]
        if fresh.empty:
            return "already held"
        entry = quarantine.put(root, series, fresh, report, run_at, kind)
        quarantine.supersede(root, entry)
        summary.entries.append(entry.id)
        return entry.id

    def _entry(
        self, command: str, run_at: pd.Timestamp, started: float, summary: SymbolSummary
    ) -> ledger.LedgerEntry:
        return ledger.LedgerEntry(
            run_at=run_at,
            command=command,
            exchange=self.settings.exchange,
            symbol=summary.symbol,
            timeframe=self.settings.timeframe,
            fetched=summary.fetched,
            new=summary.new,
            duplicates=summary.duplicates,
            gaps=summary.missing_candles,
            gap_ranges=", ".join(f"{_iso(gap.start)}+{gap.missing}" for gap in summary.gaps),
            quarantined=summary.quarantined,
            quarantined_ranges=runs(summary.quarantined_at, self.settings.timeframe),
            first=summary.first,
            last=summary.last,
            duration_seconds=round(time.monotonic() - started, 3),
            status=summary.status,
            message=summary.message,
        )


def check_home(home: Path) -> None:
    """``UserError`` unless ``home`` is (or can be made) a folder this process can write in."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        probe = home / f".write-check-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise UserError(
            f"HOURCAST_HOME={str(home)!r} is not a writable folder ({error.strerror or error}): "
            "point HOURCAST_HOME at a folder you can write to"
        ) from None


def make_ingestor(settings: Settings, progress: ProgressCallback | None = None) -> Ingestor:
    """An ``Ingestor`` wired to the configured exchange (through ccxt) and the GX candle suite."""
    from hourcast.exchange import RetryPolicy, make_client
    from hourcast.validation import CandleValidator

    check_home(settings.home)
    source = CandleSource(make_client(settings), retry=RetryPolicy.from_settings(settings))
    return Ingestor(settings, source, partial(CandleValidator, settings.timeframe), progress)
