"""Ingestion: fetch closed candles, validate each batch, store it, record the run in the ledger.

A batch that fails validation is quarantined with its report and stops that symbol's run, so the
store never gets a hole behind a rejected batch: the next run resumes from the last stored candle.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property, partial
from typing import TYPE_CHECKING, Any

import pandas as pd

from hourcast import ledger, store
from hourcast.candles import (
    Gap,
    closed_only,
    find_gaps,
    frame_from_ohlcv,
    from_ms,
    last_closed_open_ms,
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
            "first": _iso(self.first),
            "last": _iso(self.last),
            "status": self.status,
            "message": self.message,
        }


def _iso(stamp: pd.Timestamp | None) -> str | None:
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ") if stamp is not None else None


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
            previous = store.last_stored(self.settings.candles_dir, series)
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
            batch = batch.loc[ts_ms(batch) >= since_ms].reset_index(drop=True)
            if batch.empty:
                continue
            summary.fetched += len(batch)
            report = self.validator.validate(batch, now_ms)
            if not report.success:
                self._quarantine(summary, series, batch, report, run_at)
                self._publish_last_report(series, report)
                return
            result = store.upsert(self.settings.candles_dir, series, batch)
            summary.new += result.new
            summary.duplicates += result.duplicates
            summary.gaps += find_gaps(batch["ts"], timeframe, previous)
            previous = batch["ts"].iloc[-1]
            summary.first = summary.first if summary.first is not None else batch["ts"].iloc[0]
            summary.last = previous
            if self.progress is not None:
                self.progress(summary.symbol, (to_ms(previous) - since_ms) // step + 1, expected)
        if report is not None:
            self._publish_last_report(series, report)
        if expected and summary.last is None:
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
        batch: pd.DataFrame,
        report: ValidationReport,
        run_at: pd.Timestamp,
    ) -> None:
        from hourcast.validation import write_report

        stem = f"{run_at:%Y%m%dT%H%M%SZ}-{batch['ts'].iloc[0]:%Y%m%dT%H%M}"
        folder = store.write_quarantine(self.settings.quarantine_dir, series, batch, stem)
        write_report(report, folder, stem)
        summary.quarantined += len(batch)
        summary.status = "quarantined"
        summary.message = (
            f"batch of {len(batch)} candles quarantined in {folder / stem}.parquet: "
            + "; ".join(report.failures)
        )

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
