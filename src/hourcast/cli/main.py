"""The ``hourcast`` command line. Each command builds ``Settings`` and calls the package; heavy
libraries are imported inside the commands that need them."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import click
import typer
from pydantic import ValidationError
from typer.core import TyperGroup

from hourcast.errors import UserError
from hourcast.settings import Settings

if TYPE_CHECKING:
    from hourcast.monitor.run import MonitorReport


def settings_error_line(error: ValidationError) -> str:
    """One line for invalid ``HOURCAST_*`` settings: each variable, its value and what is wrong."""
    problems = []
    for item in error.errors(include_url=False):
        name = "HOURCAST_" + "_".join(str(part) for part in item["loc"]).upper()
        reason = str(item["msg"]).removeprefix("Value error, ")
        problems.append(f"{name}={item.get('input')!r}: {reason}")
    return "; ".join(problems) + "; fix it in the environment or .env"


class HourcastGroup(TyperGroup):
    """The command group: a ``UserError`` or invalid settings end the command with one line on stderr
    (``hourcast: <what is wrong>; <what to do>``) and exit 1; any other exception keeps its traceback."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except UserError as error:
            print(f"hourcast: {error}", file=sys.stderr)
            ctx.exit(1)
        except ValidationError as error:
            if error.title != Settings.__name__:
                raise
            print(f"hourcast: {settings_error_line(error)}", file=sys.stderr)
            ctx.exit(1)


app = typer.Typer(
    cls=HourcastGroup,
    help="hourcast: next-hour close forecasts for crypto pairs.",
    no_args_is_help=True,
    rich_markup_mode=None,  # click's plain help: flags without a type column, no rich import at start-up
)


def _normalise_symbols(symbols: list[str] | None) -> list[str] | None:
    """``btc/usdt`` means ``BTC/USDT``: unified ccxt symbols are upper case."""
    return [symbol.strip().upper() for symbol in symbols] if symbols else symbols


SymbolOption = Annotated[
    list[str] | None,
    typer.Option(
        "--symbol",
        "-s",
        metavar="SYMBOL",
        callback=_normalise_symbols,
        help="Symbol to pull, e.g. BTC/USDT (any case; repeatable); default: HOURCAST_SYMBOLS.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON summary line per symbol.")]


def _json_option(prints: str) -> typer.models.OptionInfo:
    """A ``--json`` flag whose help says what it prints."""
    return typer.Option("--json", help=f"Print {prints}.")


def _report(summaries: list, as_json: bool) -> None:
    """Print the run's summaries and exit non-zero if any symbol did not finish cleanly."""
    if as_json:
        for summary in summaries:
            print(json.dumps(summary.as_json()))
    else:
        from rich.console import Console
        from rich.table import Table

        # fits 80 columns: no box, short headers, candle times to the minute (seconds and more: --json)
        table = Table(box=None, collapse_padding=True, pad_edge=False)
        table.add_column("symbol", no_wrap=True)
        for name in ("fetched", "new", "dup", "gaps", "quar"):
            table.add_column(name, justify="right")
        for name in ("first", "last"):
            table.add_column(name, no_wrap=True)
        table.add_column("status")
        for s in summaries:
            row = s.as_json()
            counts = (row[key] for key in ("fetched", "new", "duplicates", "gaps", "quarantined"))
            stamps = ((row[key] or "").replace("T", " ")[:16] for key in ("first", "last"))
            table.add_row(row["symbol"], *map(str, counts), *stamps, row["status"])
        Console().print(table)
    problems = [s for s in summaries if s.status != "ok"]
    for summary in problems:
        print(f"error: {summary.symbol}: {summary.message}", file=sys.stderr)
    if problems:
        raise typer.Exit(1)


def _resolved_settings() -> Settings:
    """``Settings`` with a symbol selector (``all-usdt``) replaced by the symbols ingestion last resolved
    it to (``hourcast.data.selection.resolved``): for every command but the ingesting ones."""
    from hourcast.data import selection

    return selection.resolved(Settings())


def _fail(message: str) -> typer.Exit:
    """Print a one-line error (no stack trace) and return the exit to raise."""
    print(f"error: {message}", file=sys.stderr)
    return typer.Exit(1)


def _progress_bar(enabled: bool):
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


@app.command()
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
    _report(summaries, as_json)


@app.command()
def ingest(symbol: SymbolOption = None, as_json: JsonOption = False) -> None:
    """Pull every closed candle since the last stored one (a default window into an empty store)."""
    from hourcast.data.ingest import make_ingestor

    summaries = make_ingestor(Settings()).ingest(symbol)
    _report(summaries, as_json)


@app.command("ledger")
def show_ledger(
    last: Annotated[int, typer.Option(help="How many of the latest runs to show.")] = 20,
    as_json: Annotated[bool, _json_option("the rows as one JSON array")] = False,
) -> None:
    """Show the ingestion ledger: one row per run and symbol. ``open_gaps``: how many of the run's gaps
    the store still misses now (later runs re-request them); ``started``: a run that never recorded its
    outcome (still running, or killed)."""
    from hourcast.data import completeness, ledger, store

    settings = Settings()
    frame = ledger.read(settings.ledger_dir, last)
    frame["open_gaps"] = [
        completeness.still_missing(
            settings, store.Series(row.exchange, row.symbol, row.timeframe), row.gap_ranges
        )
        for row in frame.itertuples()
    ]
    if as_json:
        print(frame.to_json(orient="records", date_format="iso"))
    elif frame.empty:
        print("the ledger is empty")
    else:
        _print_ledger(frame)


def _print_ledger(frame: object) -> None:
    """The ledger as a rich table that fits the terminal, 80 columns too (the ranges, every column and the
    exact durations: ``--json``)."""
    from rich.console import Console
    from rich.table import Table

    def stamp(value: object) -> str:
        return "" if value is None or value != value else f"{value:%m-%d %H:%M}"  # NaT != NaT

    table = Table(box=None, collapse_padding=True, pad_edge=False)
    for name in ("run (UTC)", "command", "symbol"):
        table.add_column(name, no_wrap=True)
    for name in ("fetch", "new", "dup", "gaps", "open", "quar"):
        table.add_column(name, justify="right")
    table.add_column("last candle", no_wrap=True)
    for name in ("s", "status"):
        table.add_column(name)
    for row in frame.itertuples():
        table.add_row(
            stamp(row.run_at),
            row.command,
            row.symbol,
            *map(str, (row.fetched, row.new, row.duplicates, row.gaps, row.open_gaps, row.quarantined)),
            stamp(row.last),
            f"{row.duration_seconds:.0f}",
            row.status if not row.message else f"{row.status}: {row.message}",
        )
    Console().print(table)


@app.command()
def gaps(
    symbol: SymbolOption = None,
    as_json: Annotated[bool, _json_option("one JSON line per missing range")] = False,
) -> None:
    """Every missing candle range of the stored archive, read from the store, with its state:
    re-requested (every ingest asks again), confirmed (the exchange has none), quarantined, or missing
    (never asked for: a backfill of it fetches it)."""
    from hourcast.data import completeness, store

    settings = Settings() if symbol else _resolved_settings()
    found = [
        hole
        for name in symbol or settings.symbols
        for hole in completeness.holes(settings, store.Series(settings.exchange, name, settings.timeframe))
    ]
    if as_json:
        for hole in found:
            print(json.dumps(hole.as_json()))
        return
    if not found:
        print("no missing candles in the stored archive")
    for hole in found:
        row = hole.as_json()
        span = f"{row['start']} .. {row['end']}"
        print(f"{row['symbol']} {row['timeframe']}  {span}  {row['candles']:>5}  {row['state']}")


@app.command()
def repair(symbol: SymbolOption = None, as_json: JsonOption = False) -> None:
    """Set every unreadable month file of the store aside (under HOURCAST_HOME/damaged, untouched) and
    fetch its month again from the exchange."""
    from hourcast.data.ingest import make_ingestor

    summaries = make_ingestor(Settings()).repair(symbol)
    if not summaries:
        print("no damaged candle files")
        return
    for summary in summaries:
        print(summary.message, file=sys.stderr)
    _report(summaries, as_json)


quarantine_app = typer.Typer(
    help="Candles validation set aside: inspect them, release them (re-validated) or mark them reviewed."
)
app.add_typer(quarantine_app, name="quarantine")


@quarantine_app.command("list")
def quarantine_list(
    state: Annotated[
        str | None, typer.Option(help="Only entries in this state: pending, released or reviewed.")
    ] = None,
    as_json: Annotated[bool, _json_option("one JSON line per entry")] = False,
) -> None:
    """Every quarantine entry, oldest first: id, series, rows, first/last candle, reasons, state."""
    from hourcast.data import quarantine

    found = [e for e in quarantine.entries(Settings().quarantine_dir) if state in (None, e.state)]
    if as_json:
        for entry in found:
            print(json.dumps(entry.as_json()))
        return
    if not found:
        print("the quarantine is empty" if state is None else f"no {state} quarantine entries")
    for entry in found:
        print(
            f"{entry.id}  {entry.symbol} {entry.timeframe}  {entry.kind}: {entry.rows} rows  "
            f"{entry.first} .. {entry.last}  {entry.state}\n    " + "\n    ".join(entry.reasons)
        )


@quarantine_app.command("show")
def quarantine_show(
    entry_id: Annotated[str, typer.Argument(help="Entry id.")],
    as_json: Annotated[bool, _json_option("the entry and its rows as one JSON object")] = False,
) -> None:
    """The rows of an entry as received, and the rules they failed."""
    from hourcast.data import quarantine

    root = Settings().quarantine_dir
    try:
        entry = quarantine.find(root, entry_id)
    except quarantine.QuarantineError as error:
        raise _fail(str(error)) from None
    rows = quarantine.read_rows(root, entry)
    if as_json:
        records = json.loads(rows.to_json(orient="records", date_format="iso"))
        print(json.dumps({**entry.as_json(), "candles": records}))
        return
    print(f"{entry.id} ({entry.kind}, {entry.state}): {entry.symbol} {entry.timeframe}, {entry.rows} rows")
    print("failed rules:\n  " + "\n  ".join(entry.reasons))
    print(f"report: {entry.stem(root).with_suffix('.html')}")
    print(rows.to_string(index=False))


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
    try:
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
    except quarantine.QuarantineError as error:
        raise _fail(str(error)) from None
    print(f"{entry.id}: released, {result.new} candles merged ({result.duplicates} already stored)")


@app.command()
def materialize(as_json: Annotated[bool, _json_option("the summary as one JSON object")] = False) -> None:
    """Refresh the feature table from the stored candles and materialize it into the online store."""
    from hourcast.features import featurestore

    settings = _resolved_settings()
    print(f"online store: {featurestore.describe_online_store(settings)}", file=sys.stderr)
    try:
        summary = featurestore.materialize(settings)
    except (featurestore.OnlineStoreUnavailable, ValueError) as error:
        raise _fail(str(error)) from None
    if as_json:
        print(json.dumps(summary.as_json()))
    else:
        newest = ", ".join(f"{symbol} {stamp}" for symbol, stamp in summary.symbols.items())
        print(f"{summary.feature_rows} feature rows; online up to: {newest} ({summary.seconds:.1f} s)")


@app.command()
def train(as_json: Annotated[bool, _json_option("the result as one JSON object")] = False) -> None:
    """Train on the last HOURCAST_TRAIN_DAYS days, check it walk-forward, save it, apply the gate."""
    from hourcast.features import featurestore
    from hourcast.model import training

    settings = _resolved_settings()
    try:
        result = training.train(settings)
    except (training.TrainingError, featurestore.OnlineStoreUnavailable) as error:
        raise _fail(str(error)) from None
    if as_json:
        print(json.dumps(result.as_json(), default=str))
        return
    verdict = "promoted to production" if result.promoted else "saved, not promoted"
    print(f"{result.tag}: {verdict}: {result.reason}")
    print(
        f"window {result.window['start']} .. {result.window['end']} ({result.rows} rows); "
        f"walk-forward MAE ratio to persistence {result.metrics['mae_ratio']:.4f}"
    )


@app.command()
def evaluate(
    weeks: Annotated[int, typer.Option(help="Weeks of walk-forward (weekly refits).")] = 4,
    windows: Annotated[
        str,
        typer.Option(help="Also compare these training windows (days, comma-separated) on the same hours."),
    ] = "",
    cross_asset: Annotated[
        bool,
        typer.Option("--cross-asset", help="Also compare with the reference symbol's features as inputs."),
    ] = False,
    order_flow: Annotated[
        bool,
        typer.Option(
            "--order-flow", help="Also compare with the order-flow features (Binance candles) as inputs."
        ),
    ] = False,
    as_json: Annotated[bool, _json_option("the report as one JSON object")] = False,
) -> None:
    """Walk-forward evaluation against persistence; writes a JSON report and a PNG chart under reports/."""
    from hourcast.model import evaluation, training

    try:
        days = [int(part) for part in windows.split(",") if part.strip()]
    except ValueError:
        raise _fail(
            f"--windows takes days separated by commas, e.g. 30,90,180,365; got {windows!r}"
        ) from None
    try:
        report = evaluation.run(_resolved_settings(), weeks, days, cross_asset, order_flow)
    except training.TrainingError as error:
        raise _fail(str(error)) from None
    if as_json:
        print(json.dumps(report.as_json(), default=str))
        return
    _print_metrics_table(report.metrics)
    _print_calibration_table(report.metrics)
    for compared in (report.windows, report.cross_asset, report.order_flow):
        if compared:
            _print_windows_table(compared)
    print(f"report: {report.json_path}\nchart:  {report.chart_path}")


def _direction(figures: dict) -> str:
    """Directional accuracy with its 95 % interval."""
    low, high = figures["directional_low"], figures["directional_high"]
    return f"{figures['directional_accuracy']:.3f} [{low:.3f}, {high:.3f}]"


def _print_calibration_table(metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "scope",
        "direction [95 % CI]",
        "band coverage",
        "band width %",
        "vs persistence band",
        "Brier p_up",
        "Brier climatology",
    )
    for scope, values in [("all", metrics), *metrics.get("by_symbol", {}).items()]:
        model, band, p_up = values["model"], values["band"], values["p_up"]
        table.add_row(
            scope,
            _direction(model),
            f"{band['model']['coverage']:.3f} (nominal {band['nominal']:.2f})",
            f"{band['model']['width_pct']:.3f}",
            f"{band['width_ratio']:.3f}",
            f"{p_up['brier']:.5f}",
            f"{p_up['brier_climatology']:.5f}",
        )
    Console().print(table)


def _print_windows_table(windows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        "window (days)",
        "inputs",
        "MAE ratio",
        "DM p",
        "direction [95 % CI]",
        "coverage",
        "band vs persistence",
        "Brier skill",
        "head to head: MAE ratio, DM p",
        "fits s",
    )
    for row in windows:
        # against the default window (--windows) or the base inputs (--cross-asset, --order-flow), same hours
        versus = row.get("versus_default") or row.get("versus_base")
        table.add_row(
            str(row["train_days"]),
            row["inputs"],
            f"{row['mae_ratio']:.4f}",
            f"{row['dm_p_value']:.3f}",
            _direction(row),
            f"{row['coverage']:.3f}",
            f"{row['width_ratio']:.3f}",
            f"{row['brier_skill']:.4f}",
            f"{versus['mae_ratio']:.4f}, {versus['dm_p_value']:.3f}" if versus else "",
            f"{row['fit_seconds']:.1f}",
        )
    Console().print(table)


def _print_metrics_table(metrics: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("scope", "forecast", "MAE", "RMSE", "MAPE %", "direction", "MAE ratio", "DM p")
    scopes = [("all", metrics), *metrics.get("by_symbol", {}).items()]
    for scope, values in scopes:
        for forecast in ("model", "persistence"):
            row = values[forecast]
            ratio = values["comparison"]["mae_ratio"] if forecast == "model" else 1.0
            p_value = values["comparison"]["dm_p_value"] if forecast == "model" else ""
            table.add_row(
                scope,
                forecast,
                f"{row['mae']:.4f}",
                f"{row['rmse']:.4f}",
                f"{row['mape']:.4f}",
                f"{row['directional_accuracy']:.3f}",
                f"{ratio:.4f}",
                f"{p_value:.4f}" if p_value != "" else "",
            )
    Console().print(table)


@app.command()
def monitor(as_json: Annotated[bool, _json_option("the report as one JSON object")] = False) -> None:
    """Score logged predictions against the closed candles; rolling metrics vs persistence and drift."""
    from hourcast.monitor import run as monitor_run

    report = monitor_run.run(_resolved_settings())
    if as_json:
        print(json.dumps(report.as_json(), default=str))
        return
    _print_scoreboard(report)


def _figure(value: object, digits: int = 4) -> str:
    return "" if value is None or value != value else f"{value:.{digits}f}"  # NaN != NaN


def _print_scoreboard(report: MonitorReport) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    now = f"{report.now:%Y-%m-%d %H:%M} UTC" if report.now is not None else "none"
    console.print(
        f"newest stored hour {now}: {report.added} predictions newly scored, {report.pending} waiting for "
        f"their candle; production model {report.production or 'none'}"
    )
    table = Table(
        "window",
        "symbol",
        "model",
        "hours",
        "MAE",
        "RMSE",
        "direction",
        "MAE ratio",
        "DM p",
        "coverage",
        "unscorable",
        title="Scoreboard (vs persistence)",
    )
    for row in report.scoreboard.itertuples():
        table.add_row(
            row.window,
            row.symbol,
            row.model,
            str(row.hours),
            _figure(row.mae),
            _figure(row.rmse),
            _figure(row.directional_accuracy, 3),
            _figure(row.mae_ratio),
            _figure(row.dm_p_value),
            _figure(row.coverage, 3),
            str(row.unscorable),
        )
    console.print(table if len(report.scoreboard) else "nothing scored yet: no logged prediction has closed")
    for row in report.newly_unscorable.itertuples():
        console.print(
            f"unscorable: {row.symbol} as of {row.as_of:%Y-%m-%d %H:%M}: target hour "
            f"{row.target_time:%Y-%m-%d %H:%M} is a gap in the stored candles"
        )
    worst = report.worst_drift(3)
    if not worst.empty:
        drift_table = Table("window", "symbol", "feature", "PSI", "hours", title="Most drifted features")
        for row in worst.itertuples():
            drift_table.add_row(row.window, row.symbol, row.feature, _figure(row.psi, 3), str(row.hours))
        console.print(drift_table)
    for reason in report.degraded:
        console.print(f"[bold red]degraded[/]: {reason}")


models_app = typer.Typer(help="The versioned models in the BentoML store and which one is production.")
app.add_typer(models_app, name="models")


@models_app.command("list")
def models_list(as_json: Annotated[bool, _json_option("one JSON line per model")] = False) -> None:
    """Every stored model, newest first, with its status and the reason for it."""
    from hourcast.model import registry

    settings = Settings()
    records = registry.list_models(settings.registry_dir, settings.model_name)
    if not records and not as_json:
        print(f"no models of {settings.model_name} in the BentoML store yet: run `hourcast train`")
    if as_json:
        for record in records:
            mae_ratio = record.metadata.get("walk_forward", {}).get("comparison", {}).get("mae_ratio")
            print(
                json.dumps(
                    {
                        "tag": record.tag,
                        "created": record.created.isoformat(),
                        "status": record.status,
                        "reason": record.reason,
                        "mae_ratio": mae_ratio,
                    }
                )
            )
        return
    for record in records:
        print(f"{record.tag}  {record.created:%Y-%m-%d %H:%M}  {record.status:<10}  {record.reason}")


@models_app.command("promote")
def models_promote(tag: str, reason: Annotated[str, typer.Option(help="Why.")] = "promoted by hand") -> None:
    """Make TAG the production model."""
    from hourcast.model import registry

    settings = Settings()
    try:
        registry.promote(settings.registry_dir, settings.model_name, tag, reason)
    except (LookupError, ValueError) as error:
        raise _fail(str(error)) from None
    print(f"{tag} is production")


@models_app.command("rollback")
def models_rollback(reason: Annotated[str, typer.Option(help="Why.")] = "manual rollback") -> None:
    """Restore the previous production model."""
    from hourcast.model import registry

    settings = Settings()
    try:
        tag = registry.rollback(settings.registry_dir, settings.model_name, reason)
    except LookupError as error:
        raise _fail(str(error)) from None
    print(f"{tag} is production again")


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default HOURCAST_SERVE_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default HOURCAST_SERVE_PORT, 3000).")] = None,
) -> None:
    """Start the prediction API (`bentoml serve bento_service.service:NextHour`) from the project folder.

    The process becomes `bentoml serve` (exec), so a signal reaches BentoML itself and its graceful
    shutdown (the prediction log's last flush) is never cut short by a parent that kills its child."""
    import os

    from hourcast.model import registry

    settings = _resolved_settings()  # the service reads the same resolution: fail here, in one line
    if not registry.list_models(settings.registry_dir, settings.model_name):
        raise _fail(f"no model yet: run `hourcast train` (the BentoML store has no {settings.model_name})")
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "bento_service.service:NextHour",
        "--host",
        host or settings.serve_host,
        "--port",
        str(port or settings.serve_port),
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, serve_environment(settings, os.environ))


# Deprecation warnings raised while `bentoml` imports itself, in every process of `bentoml serve`, before the
# service module (and its filters, `warning_filters.quiet_known_deprecations`) is imported: these
# `PYTHONWARNINGS` filters (message prefix, category, module) go after any of the user's own, to win.
BENTOML_IMPORT_WARNINGS = (
    # pathspec, as BentoML builds its default Bento excludes with the "gitwildmatch" pattern name
    "ignore:GitWildMatchPattern ('gitwildmatch') is deprecated:DeprecationWarning",
    # pydantic 2.11, as BentoML's IO models call BaseModel.__get_pydantic_core_schema__
    "ignore:The `__get_pydantic_core_schema__` method of the `BaseModel` class is deprecated"
    ":DeprecationWarning:_bentoml_sdk.io_models",
)


def serve_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for ``bentoml serve``: the settings' BentoML configuration in ``BENTOML_CONFIG_OVERRIDES``
    (JSON), merged under any the user already set there (theirs win), and ``BENTOML_IMPORT_WARNINGS`` added
    to ``PYTHONWARNINGS``."""
    from hourcast.serving.predictor import bentoml_config_overrides

    name = "BENTOML_CONFIG_OVERRIDES"
    try:
        given = json.loads(environ.get(name) or "{}")
    except json.JSONDecodeError:
        given = None
    if not isinstance(given, dict):
        example = '{"services": {"hourcast": {"workers": 2}}}'
        raise UserError(f"{name}={environ[name]!r} is not a JSON object; write it like {example}")
    warning_filters = ",".join(filter(None, [environ.get("PYTHONWARNINGS"), *BENTOML_IMPORT_WARNINGS]))
    overrides = json.dumps(_merged(bentoml_config_overrides(settings), given))
    return {**environ, name: overrides, "PYTHONWARNINGS": warning_filters}


def _merged(base: dict, over: dict) -> dict:
    """``base`` with ``over`` laid on top, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        merged[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


@app.command()
def ui(
    host: Annotated[str | None, typer.Option(help="Address to bind (default HOURCAST_UI_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default HOURCAST_UI_PORT, 7860).")] = None,
) -> None:
    """Start the Gradio dashboard; it talks to the prediction API at HOURCAST_API_URL."""
    from hourcast.dashboard.layout import build_app

    settings = _resolved_settings()
    app_ui = build_app(settings)
    app_ui.launch(server_name=host or settings.ui_host, server_port=port or settings.ui_port, share=False)


@app.command()
def up(
    replay: Annotated[
        bool, typer.Option("--replay", help="Run against the replay exchange (offline).")
    ] = False,
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="With --replay: SYMBOL=PATH of a recorded candle file (repeatable); "
            "default: the bundled BTC/USDT and ETH/USDT candles."
        ),
    ] = None,
    now: Annotated[
        str | None, typer.Option(help="With --replay: the exchange clock to start at (ISO).")
    ] = None,
    speed: Annotated[float, typer.Option(help="With --replay: simulated seconds per real second.")] = 60.0,
) -> None:
    """Bring the whole system up, from the project folder: a Prefect server (or the one PREFECT_API_URL
    names), the work pool, a worker and the deployments of prefect.yaml, data, features and a first
    model, the API and the dashboard."""
    from hourcast.ops.stack import Stack

    project_dir = Path.cwd()
    if not (project_dir / "prefect.yaml").exists():
        raise _fail(f"no prefect.yaml in {project_dir}: run `hourcast up` from the project folder")
    if data and not replay:
        raise _fail("--data only applies with --replay")
    replay_data = _replay_files(data) if replay else None
    stack = Stack(Settings(), project_dir, replay_data=replay_data, replay_now=now, replay_speed=speed)
    try:
        code = stack.run()
    except Exception as error:
        from hourcast import training  # imported by then: not before the stack starts
        from hourcast.features import featurestore

        expected = (featurestore.OnlineStoreUnavailable, training.TrainingError, RuntimeError, ValueError)
        if isinstance(error, expected):
            raise _fail(str(error)) from None
        raise
    raise typer.Exit(code)


def _replay_files(data: list[str] | None) -> dict[str, Path]:
    """The recorded files of ``--data SYMBOL=PATH`` options, or the bundled ones; fails on a missing file."""
    from hourcast.dev.replay import parse_data_option
    from hourcast.dev.samples import sample_files

    try:
        files = dict(parse_data_option(item) for item in data) if data else sample_files()
    except ValueError as error:
        raise _fail(str(error)) from None
    missing = [f"{symbol}={path}" for symbol, path in files.items() if not path.is_file()]
    if missing:
        raise _fail(f"recorded candle file not found: {', '.join(missing)}")
    return files


@app.command("replay-exchange")
def replay_exchange(
    data: Annotated[
        list[str] | None,
        typer.Option(help="SYMBOL=PATH of a recorded candle CSV (repeatable); default: the bundled candles."),
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    now: Annotated[str | None, typer.Option(help="Initial exchange clock (ISO-8601 UTC).")] = None,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second (0 = frozen).")] = 0.0,
    synthetic: Annotated[
        int,
        typer.Option(
            min=0,
            max=999,
            help="Also serve N synthetic symbols SYN001/USDT.. (not real markets: the recorded series "
            "rotated in time and rescaled), for scale runs.",
        ),
    ] = 0,
) -> None:
    """Serve recorded candles over Binance's public REST API, for offline runs and tests."""
    from hourcast.dev.replay import serve_forever

    serve_forever(_replay_files(data), host, port, now, speed, synthetic)
