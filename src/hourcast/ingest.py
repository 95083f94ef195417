"""Ingestion: fetch closed candles, validate each batch, store it, record the run in the ledger.

Rows failing a row rule (nulls, non-positive prices, OHLC consistency, alignment, a conflicting duplicate)
are quarantined with the validation report and the valid rows of their batch are stored: a dirty page
never stops history. Their hours are recorded in the ledger (``quarantined_ranges``) beside the gaps, never
filled in; the features see them as gaps. A failing batch rule (columns, dtypes, a candle from the
exchange's future) quarantines the whole batch and stops that symbol's run, so the store never gets a
hole behind a page it could not read: the next run fetches the same range again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from hourcast import ledger, quarantine, store
from hourcast.candles import (
    Gap,
    closed_only,
    find_gaps,
    frame_from_ohlcv,
    from_ms,
    last_closed_open_ms,
    slot_ms,
    timeframe_ms,
    to_ms,
    ts_ms,
)
from hourcast.exchange import CandleSource, ExchangeFailure
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
        """Pull every closed candle with ``since <= open time < until`` (until defaults to now)."""
        return [self._run("backfill", symbol, since, until) for symbol in symbols or self.settings.symbols]

    def _series(self, symbol: str) -> store.Series:
        return store.Series(self.settings.exchange, symbol, self.settings.timeframe)

    def _run(
        self, command: str, symbol: str, since: pd.Timestamp | None, until: pd.Timestamp | None
    ) -> SymbolSummary:
        started = time.monotonic()
        run_at = pd.Timestamp.now(tz="UTC")
        summary = SymbolSummary(symbol)
        try:
            self._pull(summary, run_at, since, until)
        except ExchangeFailure as error:
            summary.status, summary.message = (
                "failed",
                f"{error} (stored everything before it; re-run to resume)",
            )
        except BaseException as error:
            summary.status, summary.message = "failed", f"{type(error).__name__}: {error}"
            raise
        finally:
            ledger.append(self.settings.ledger_path, [self._entry(command, run_at, started, summary)])
        return summary

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
        previous: pd.Timestamp | None = None
        if since is None:
            stamps = [
                store.last_stored(self.settings.candles_dir, series),
                quarantine.examined_until(self.settings.quarantine_dir, series),
            ]
            previous = max((stamp for stamp in stamps if stamp is not None), default=None)
            default_start = last_closed - (self.settings.default_backfill_days * 86_400_000) + step
            since_ms = to_ms(previous) + step if previous is not None else default_start
        else:
            since_ms = to_ms(since)
        until_ms = min(last_closed, to_ms(until) - 1 if until is not None else last_closed)
        expected = max(0, (until_ms - since_ms) // step + 1)
        report: ValidationReport | None = None
        for page in self.source.pages(
            summary.symbol, timeframe, since_ms, until_ms, self.settings.fetch_limit
        ):
            batch = closed_only(
                frame_from_ohlcv(page, self.settings.exchange, summary.symbol, timeframe), timeframe, now_ms
            )
            batch = batch.loc[slot_ms(ts_ms(batch), timeframe) >= since_ms]
            if batch.empty:
                continue
            summary.fetched += len(batch)
            unique = batch.drop_duplicates().reset_index(drop=True)  # the same candle twice is one candle
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
            returned = _on_grid(pd.concat([valid["ts"], rejected["ts"]]), step)
            summary.gaps += find_gaps(returned, timeframe, previous)
            previous = returned.iloc[-1] if not returned.empty else previous
            if not valid.empty:
                summary.first = summary.first if summary.first is not None else valid["ts"].min()
                summary.last = valid["ts"].max()
            if self.progress is not None and previous is not None:
                self.progress(summary.symbol, (to_ms(previous) - since_ms) // step + 1, expected)
        if report is not None:
            self._publish_last_report(series, report)
        if summary.quarantined:
            summary.message = (
                f"{summary.quarantined} of {summary.fetched} candles quarantined "
                f"({', '.join(summary.entries) or 'already held'}; see `hourcast quarantine list`), "
                "the valid ones stored"
            )
        elif expected and summary.last is None:
            summary.message = f"no closed candles after {_iso(from_ms(since_ms))}"

    def _publish_last_report(self, series: store.Series, report: ValidationReport) -> None:
        """Keep the series' latest validation result (JSON and GX's HTML page) in the validation folder."""
        from hourcast.validation import latest_report_stem, write_report

        stem = latest_report_stem(series.exchange, series.symbol, series.timeframe)
        write_report(report, self.settings.validation_dir, stem)

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
        summary.entries.append(quarantine.put(root, series, fresh, report, run_at, kind).id)
        return summary.entries[-1]

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


def make_ingestor(settings: Settings, progress: ProgressCallback | None = None) -> Ingestor:
    """An ``Ingestor`` wired to the configured exchange (through ccxt) and the GX candle suite."""
    from hourcast.exchange import RetryPolicy, make_client
    from hourcast.validation import CandleValidator

    source = CandleSource(make_client(settings), retry=RetryPolicy.from_settings(settings))
    return Ingestor(settings, source, partial(CandleValidator, settings.timeframe), progress)
