"""Everything the commands print: the one error line, the tables (rich, imported only when a table is
printed) and the ``--json`` output. Commands compute; this module only formats."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd
    from rich.table import Table

    from hourcast.data.completeness import Hole
    from hourcast.data.ingest import SymbolSummary
    from hourcast.data.quarantine import Entry
    from hourcast.features.featurestore import MaterializeSummary
    from hourcast.model.evaluation import EvaluationReport
    from hourcast.model.registry import ModelRecord
    from hourcast.model.training import TrainingResult
    from hourcast.monitor.run import MonitorReport


def error(message: str) -> None:
    """The one error shape of every command, on stderr: ``hourcast: <what is wrong>; <what to do>``, on one
    line (a message's own line breaks become `` | ``)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    print(f"hourcast: {' | '.join(lines)}", file=sys.stderr)


def _table(*columns: str, **options: Any) -> Table:
    from rich.table import Table

    return Table(*columns, **options)


def _show(*renderables: object) -> None:
    from rich.console import Console

    console = Console()
    for renderable in renderables:
        console.print(renderable)


def _json_lines(rows: list[dict[str, Any]]) -> None:
    for row in rows:
        print(json.dumps(row))


def _figure(value: object, digits: int = 4) -> str:
    return "" if value is None or value != value else f"{value:.{digits}f}"  # NaN != NaN


def run_summaries(summaries: list[SymbolSummary], as_json: bool) -> None:
    """An ingestion run (``backfill``, ``ingest``, ``repair``): one JSON line per symbol, or a table that
    fits 80 columns (no box, short headers, candle times to the minute; seconds and more: ``--json``)."""
    if as_json:
        _json_lines([summary.as_json() for summary in summaries])
        return
    table = _table(box=None, collapse_padding=True, pad_edge=False)
    table.add_column("symbol", no_wrap=True)
    for name in ("fetched", "new", "dup", "gaps", "quar"):
        table.add_column(name, justify="right")
    for name in ("first", "last"):
        table.add_column(name, no_wrap=True)
    table.add_column("status")
    for summary in summaries:
        row = summary.as_json()
        counts = (row[key] for key in ("fetched", "new", "duplicates", "gaps", "quarantined"))
        stamps = ((row[key] or "").replace("T", " ")[:16] for key in ("first", "last"))
        table.add_row(row["symbol"], *map(str, counts), *stamps, row["status"])
    _show(table)


def ledger(frame: pd.DataFrame, as_json: bool) -> None:
    """The ingestion ledger: one JSON array, or a table that fits the terminal, 80 columns too (the ranges,
    every column and the exact durations: ``--json``)."""
    if as_json:
        print(frame.to_json(orient="records", date_format="iso"))
        return
    if frame.empty:
        print("the ledger is empty")
        return

    def stamp(value: object) -> str:
        return "" if value is None or value != value else f"{value:%m-%d %H:%M}"  # NaT != NaT

    table = _table(box=None, collapse_padding=True, pad_edge=False)
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
            *map(str, (row.fetched, row.new, row.duplicates, row.gaps)),
            "" if row.open_gaps is None else str(row.open_gaps),
            str(row.quarantined),
            stamp(row.last),
            f"{row.duration_seconds:.0f}",
            row.status if not row.message else f"{row.status}: {row.message}",
        )
    _show(table)


def holes(found: list[Hole], as_json: bool) -> None:
    """The missing candle ranges of the archive: one JSON line or one text line each."""
    if as_json:
        _json_lines([hole.as_json() for hole in found])
        return
    if not found:
        print("no missing candles in the stored archive")
    for hole in found:
        row = hole.as_json()
        span = f"{row['start']} .. {row['end']}"
        print(f"{row['symbol']} {row['timeframe']}  {span}  {row['candles']:>5}  {row['state']}")


def quarantine_entries(found: list[Entry], state: str | None, as_json: bool) -> None:
    """Quarantine entries: one JSON line each, or their series, rows, span, state and reasons."""
    if as_json:
        _json_lines([entry.as_json() for entry in found])
        return
    if not found:
        print("the quarantine is empty" if state is None else f"no {state} quarantine entries")
    for entry in found:
        print(
            f"{entry.id}  {entry.symbol} {entry.timeframe}  {entry.kind}: {entry.rows} rows  "
            f"{entry.first} .. {entry.last}  {entry.state}\n    " + "\n    ".join(entry.reasons)
        )


def quarantine_entry(entry: Entry, rows: pd.DataFrame, report: Path, as_json: bool) -> None:
    """One quarantine entry with its rows as received: one JSON object, or text and the rows."""
    if as_json:
        records = json.loads(rows.to_json(orient="records", date_format="iso"))
        print(json.dumps({**entry.as_json(), "candles": records}))
        return
    print(f"{entry.id} ({entry.kind}, {entry.state}): {entry.symbol} {entry.timeframe}, {entry.rows} rows")
    print("failed rules:\n  " + "\n  ".join(entry.reasons))
    print(f"report: {report}")
    print(rows.to_string(index=False))


def materialize_summary(summary: MaterializeSummary, as_json: bool) -> None:
    """What a materialization wrote and how far the online store now reaches."""
    if as_json:
        print(json.dumps(summary.as_json()))
        return
    newest = ", ".join(f"{symbol} {stamp}" for symbol, stamp in summary.symbols.items())
    print(f"{summary.feature_rows} feature rows; online up to: {newest} ({summary.seconds:.1f} s)")


def training_result(result: TrainingResult, as_json: bool) -> None:
    """The trained model, the gate's verdict and its walk-forward figure."""
    if as_json:
        print(json.dumps(result.as_json(), default=str))
        return
    verdict = "promoted to production" if result.promoted else "saved, not promoted"
    print(f"{result.tag}: {verdict}: {result.reason}")
    print(
        f"window {result.window['start']} .. {result.window['end']} ({result.rows} rows); "
        f"walk-forward MAE ratio to persistence {result.metrics['mae_ratio']:.4f}"
    )


def evaluation_report(report: EvaluationReport, as_json: bool) -> None:
    """The walk-forward report: one JSON object, or the metrics, calibration and comparison tables and
    where the report and the chart were written."""
    if as_json:
        print(json.dumps(report.as_json(), default=str))
        return
    metrics_table(report.metrics)
    calibration_table(report.metrics)
    for compared in (report.windows, report.cross_asset, report.order_flow):
        if compared:
            windows_table(compared)
    spans = [fold["train_days"] for fold in report.folds]
    shortest, longest = min(spans), max(spans)
    span = f"{shortest:g}" if shortest == longest else f"{shortest:g} to {longest:g}"
    print(f"{len(spans)} weekly refits, each on {span} days of history")
    print(f"report: {report.json_path}\nchart:  {report.chart_path}\nforecasts: {report.forecasts_path}")


def _direction(figures: dict) -> str:
    """Directional accuracy with its 95 % interval."""
    low, high = figures["directional_low"], figures["directional_high"]
    return f"{figures['directional_accuracy']:.3f} [{low:.3f}, {high:.3f}]"


def metrics_table(metrics: dict) -> None:
    """Error figures of the model and of persistence, overall and per symbol."""
    table = _table("scope", "forecast", "MAE", "RMSE", "MAPE %", "direction", "MAE ratio", "DM p")
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
    _show(table)


def calibration_table(metrics: dict) -> None:
    """Direction (against "the last move reverses": McNemar), band coverage, width and interval score
    against persistence's band, and the Brier scores, overall and per symbol."""
    table = _table(
        "scope",
        "direction [95 % CI]",
        "reversal",
        "McNemar p",
        "band coverage",
        "band width %",
        "vs persistence band",
        "interval score % (persistence)",
        "Brier p_up",
        "Brier climatology",
    )
    for scope, values in [("all", metrics), *metrics.get("by_symbol", {}).items()]:
        model, band, p_up, direction = values["model"], values["band"], values["p_up"], values["direction"]
        table.add_row(
            scope,
            _direction(model),
            f"{direction['reversal_accuracy']:.3f}",
            f"{direction['mcnemar_p_value']:.4f}",
            f"{band['model']['coverage']:.3f} (nominal {band['nominal']:.2f})",
            f"{band['model']['width_pct']:.3f}",
            f"{band['width_ratio']:.3f}",
            f"{band['model']['interval_score']:.4f} ({band['persistence']['interval_score']:.4f})",
            f"{p_up['brier']:.5f}",
            f"{p_up['brier_climatology']:.5f}",
        )
    _show(table)


def windows_table(windows: list[dict]) -> None:
    """Compared training windows or inputs, each against the default on the same hours."""
    table = _table(
        "window (days)",
        "inputs",
        "MAE ratio",
        "DM p",
        "direction [95 % CI]",
        "McNemar p",
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
            f"{row['mcnemar_p_value']:.3f}",
            f"{row['coverage']:.3f}",
            f"{row['width_ratio']:.3f}",
            f"{row['brier_skill']:.4f}",
            f"{versus['mae_ratio']:.4f}, {versus['dm_p_value']:.3f}" if versus else "",
            f"{row['fit_seconds']:.1f}",
        )
    _show(table)


def monitor_report(report: MonitorReport, as_json: bool) -> None:
    """A monitor run: one JSON object, or what it scored, the scoreboard, unscorable hours, the most
    drifted features and the verdict."""
    if as_json:
        print(json.dumps(report.as_json(), default=str))
        return
    now = f"{report.now:%Y-%m-%d %H:%M} UTC" if report.now is not None else "none"
    shown: list[object] = [
        f"newest stored hour {now}: {report.added} predictions newly scored, {report.pending} waiting for "
        f"their candle; production model {report.production or 'none'}"
    ]
    table = _table(
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
    shown.append(table if len(report.scoreboard) else "nothing scored yet: no logged prediction has closed")
    shown += [
        f"unscorable: {row.symbol} as of {row.as_of:%Y-%m-%d %H:%M}: target hour "
        f"{row.target_time:%Y-%m-%d %H:%M} is a gap in the stored candles"
        for row in report.newly_unscorable.itertuples()
    ]
    worst = report.worst_drift(3)
    if not worst.empty:
        drift_table = _table("window", "symbol", "feature", "PSI", "hours", title="Most drifted features")
        for row in worst.itertuples():
            drift_table.add_row(row.window, row.symbol, row.feature, _figure(row.psi, 3), str(row.hours))
        shown.append(drift_table)
    shown += [f"[bold red]degraded[/]: {reason}" for reason in report.degraded]
    _show(*shown)


def models(records: list[ModelRecord], model_name: str, as_json: bool) -> None:
    """The stored models, newest first: one JSON line each, or one text line each and, under it, the
    training window and how the model compared with persistence on its promotion gate (``model.card``)."""
    from hourcast.model import card

    if as_json:
        for record in records:
            comparison = record.metadata.get("walk_forward", {}).get("comparison", {})
            row = {"tag": record.tag, "created": record.created.isoformat(), "status": record.status}
            gate = card.gate(record.metadata)
            print(
                json.dumps(
                    {
                        **row,
                        "reason": record.reason,
                        "mae_ratio": comparison.get("mae_ratio"),
                        "training_days": card.training_days(record.metadata),
                        "gate": gate.as_json() if gate is not None else None,
                    }
                )
            )
        return
    if not records:
        print(f"no models of {model_name} in the BentoML store yet: run `hourcast train`")
    for record in records:
        print(f"{record.tag}  {record.created:%Y-%m-%d %H:%M}  {record.status:<10}  {record.reason}")
        print(f"    {card.summary(record.metadata)}")
