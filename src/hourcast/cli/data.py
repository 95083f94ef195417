"""The data commands: pull candles (``backfill``, ``ingest``), inspect and mend the archive (``ledger``,
``gaps``, ``repair``) and the validation quarantine (``quarantine list|show|release``)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, Annotated

import typer

from hourcast.cli import render
from hourcast.cli.options import JsonOption, SymbolOption, json_option, resolved_settings
from hourcast.settings import Settings

if TYPE_CHECKING:
    from hourcast.data.ingest import SymbolSummary


def _finish(summaries: list[SymbolSummary], as_json: bool) -> None:
    """Print the run's summaries, then one error line per symbol that did not finish cleanly and exit 1."""
    render.run_summaries(summaries, as_json)
    problems = [summary for summary in summaries if summary.status != "ok"]
    for summary in problems:
        render.error(f"{summary.symbol}: {summary.message}")
    if problems:
        raise typer.Exit(1)


def _progress_bar(
    enabled: bool,
) -> tuple[AbstractContextManager[object], Callable[[str, int, int], None] | None]:
    """A rich progress bar and the ingestion callback that feeds it (a no-op off a terminal)."""
    if not enabled:
        return nullcontext(), None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    tasks: dict[str, int] = {}

    def update(symbol: str, done: int, expected: int) -> None:
        if symbol not in tasks:
            tasks[symbol] = bar.add_task(symbol, total=expected)
        bar.update(tasks[symbol], completed=min(done, expected))

    return bar, update


def backfill(
    since: Annotated[
        str, typer.Option(help="First candle open time, ISO (UTC unless an offset), e.g. 2024-01-01.")
    ],
    until: Annotated[
        str | None, typer.Option(help="Stop before this open time (ISO, UTC); default: now.")
    ] = None,
    symbol: SymbolOption = None,
    as_json: JsonOption = False,
) -> None:
    """Pull every closed candle in [since, until) for each symbol."""
    from hourcast.data.candles import parse_moment
    from hourcast.data.ingest import make_ingestor

    settings = Settings()
    start = parse_moment(since, "--since")
    end = parse_moment(until, "--until") if until is not None else None
    bar, progress = _progress_bar(sys.stderr.isatty() and not as_json)
    with bar:
        summaries = make_ingestor(settings, progress).backfill(start, end, symbol)
    _finish(summaries, as_json)


def ingest(symbol: SymbolOption = None, as_json: JsonOption = False) -> None:
    """Pull every closed candle since the last stored one (a default window into an empty store)."""
    from hourcast.data.ingest import make_ingestor

    _finish(make_ingestor(Settings()).ingest(symbol), as_json)


def show_ledger(
    last: Annotated[int, typer.Option(min=1, help="How many of the latest runs to show.")] = 20,
    as_json: Annotated[bool, json_option("the rows as one JSON array")] = False,
) -> None:
    """Show the ingestion ledger: one row per run and symbol. ``open_gaps``: how many of the run's gaps
    the store still misses now (later runs re-request them); ``started``: a run that never recorded its
    outcome (still running, or killed); left blank when a candle file it needs is damaged (one line says
    which: `hourcast repair` mends it)."""
    import pandas as pd

    from hourcast.data import completeness, ledger, store
    from hourcast.errors import DamagedFile

    settings = Settings()
    frame = ledger.read(settings.ledger_dir, last)
    damaged: list[str] = []

    def open_gaps(series: store.Series, gap_ranges: str) -> int | None:
        try:
            return completeness.still_missing(settings, series, gap_ranges)
        except DamagedFile as error:
            damaged.append(str(error))
            return None

    counts = [
        open_gaps(store.Series(row.exchange, row.symbol, row.timeframe), row.gap_ranges)
        for row in frame.itertuples()
    ]
    frame["open_gaps"] = pd.Series(counts, index=frame.index, dtype=object)  # ints, None where unknown
    render.ledger(frame, as_json)
    for message in dict.fromkeys(damaged):
        render.error(message)


def gaps(
    symbol: SymbolOption = None,
    as_json: Annotated[bool, json_option("one JSON line per missing range")] = False,
) -> None:
    """Every missing candle range of the stored archive, read from the store, with its state:
    re-requested (every ingest asks again), confirmed (the exchange has none), quarantined, or missing
    (never asked for: a backfill of it fetches it)."""
    from hourcast.data import completeness, store

    settings = Settings() if symbol else resolved_settings()
    found = [
        hole
        for name in symbol or settings.symbols
        for hole in completeness.holes(settings, store.Series(settings.exchange, name, settings.timeframe))
    ]
    render.holes(found, as_json)


def repair(symbol: SymbolOption = None, as_json: JsonOption = False) -> None:
    """Set every unreadable month file of the store aside (under HOURCAST_HOME/damaged, untouched) and
    fetch its month again from the exchange."""
    from hourcast.data.ingest import make_ingestor

    summaries = make_ingestor(Settings()).repair(symbol)
    if not summaries:
        print("no damaged candle files or stray month folders")
        return
    for summary in summaries:
        print(summary.message, file=sys.stderr)
    _finish(summaries, as_json)


quarantine_app = typer.Typer(
    help="Candles validation set aside: inspect them, release them (re-validated) or mark them reviewed."
)


@quarantine_app.command("list")
def quarantine_list(
    state: Annotated[
        str | None, typer.Option(help="Only entries in this state: pending, released or reviewed.")
    ] = None,
    as_json: Annotated[bool, json_option("one JSON line per entry")] = False,
) -> None:
    """Every quarantine entry, oldest first: id, series, rows, first/last candle, reasons, state."""
    from hourcast.data import quarantine

    found = [entry for entry in quarantine.entries(Settings().quarantine_dir) if state in (None, entry.state)]
    render.quarantine_entries(found, state, as_json)


@quarantine_app.command("show")
def quarantine_show(
    entry_id: Annotated[str, typer.Argument(help="Entry id.")],
    as_json: Annotated[bool, json_option("the entry and its rows as one JSON object")] = False,
) -> None:
    """The rows of an entry as received, and the rules they failed."""
    from hourcast.data import quarantine

    root = Settings().quarantine_dir
    entry = quarantine.find(root, entry_id)
    render.quarantine_entry(
        entry, quarantine.read_rows(root, entry), entry.stem(root).with_suffix(".html"), as_json
    )


@quarantine_app.command("release")
def quarantine_release(
    entry_id: Annotated[str, typer.Argument(help="Entry id.")],
    reviewed: Annotated[
        bool, typer.Option("--reviewed", help="Do not merge: keep it aside, marked as reviewed.")
    ] = False,
    note: Annotated[str, typer.Option(help="Why (kept with the entry).")] = "",
) -> None:
    """Re-validate an entry's rows (as they are on disk now) and merge them into the store, or mark it
    reviewed."""
    from hourcast.data import quarantine

    settings = Settings()
    root = settings.quarantine_dir
    if reviewed:
        entry = quarantine.mark_reviewed(root, entry_id, note)
        print(f"{entry.id}: marked reviewed, kept aside")
        return
    import pandas as pd

    from hourcast.data.candles import to_ms
    from hourcast.data.validation import CandleValidator

    validator = CandleValidator(settings.timeframe)
    now_ms = to_ms(pd.Timestamp.now(tz="UTC"))  # released candles must have closed by now
    entry, result = quarantine.release(
        root, settings.candles_dir, entry_id, lambda rows: validator.validate(rows, now_ms), note
    )
    print(f"{entry.id}: released, {result.new} candles merged ({result.duplicates} already stored)")
