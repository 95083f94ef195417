"""Run reports for the orchestrator's artifacts: tables and Markdown built from the package's results.

Pure functions (no I/O, no Prefect): the flows publish what these return.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hourcast.data.validation import latest_report_stem

if TYPE_CHECKING:
    from hourcast.data.ingest import SymbolSummary
    from hourcast.features.featurestore import MaterializeSummary
    from hourcast.model.training import TrainingResult
    from hourcast.monitor.run import MonitorReport
    from hourcast.ops.retention import RetentionReport

METRIC_COLUMNS = (("MAE", "mae"), ("RMSE", "rmse"), ("MAPE %", "mape"), ("direction", "directional_accuracy"))


def validation_report_path(validation_dir: Path, exchange: str, symbol: str, timeframe: str) -> Path:
    """The HTML page of a series' latest validation result (written by ingestion)."""
    return validation_dir / f"{latest_report_stem(exchange, symbol, timeframe)}.html"


def problems(summaries: list[SymbolSummary]) -> str | None:
    """One line per symbol that failed or was quarantined (None if every symbol is ok)."""
    lines = [f"{s.symbol}: {s.status}: {s.message}" for s in summaries if s.status != "ok"]
    return "\n".join(lines) if lines else None


def ingest_rows(summaries: list[SymbolSummary]) -> list[dict[str, Any]]:
    """The ingestion table: counts per symbol, missing candles and where the gaps start."""
    rows = []
    for summary in summaries:
        row = summary.as_json()
        rows.append(
            {
                "symbol": row["symbol"],
                "status": row["status"],
                "fetched": row["fetched"],
                "new": row["new"],
                "duplicates": row["duplicates"],
                "missing": row["gaps"],
                "gaps": ", ".join(f"{gap.start:%Y-%m-%dT%H:%MZ}+{gap.missing}" for gap in summary.gaps),
                "quarantined": row["quarantined"],
                "first": row["first"] or "",
                "last": row["last"] or "",
            }
        )
    return rows


def validation_markdown(summaries: list[SymbolSummary], reports: Mapping[str, Path | None]) -> str:
    """The validation outcome per symbol with the path of its latest report (None: never validated)."""
    lines = ["# Candle validation", "", "| symbol | outcome | latest report |", "|---|---|---|"]
    for summary in summaries:
        if summary.status == "quarantined":
            outcome = f"**quarantined** {summary.quarantined} candles: {summary.message}"
        elif summary.status == "failed":
            outcome = f"**failed** before validating everything: {summary.message}"
        elif summary.fetched:
            outcome = f"passed ({summary.fetched} candles)"
        else:
            outcome = "nothing new to validate"
        report = reports.get(summary.symbol)
        lines.append(f"| {summary.symbol} | {_cell(outcome)} | {f'`{report}`' if report else 'none yet'} |")
    return "\n".join(lines) + "\n"


def online_markdown(summary: MaterializeSummary) -> str:
    """What the online store serves after a materialization: the newest feature time per symbol."""
    lines = [
        "# Online features",
        "",
        f"{summary.feature_rows} feature rows; online store {summary.online_store}; "
        f"materialized up to {summary.end.isoformat()} in {summary.seconds:.1f} s.",
        "",
        "| symbol | newest feature row (event time) |",
        "|---|---|",
    ]
    lines += [f"| {symbol} | {stamp or 'none'} |" for symbol, stamp in summary.symbols.items()]
    return "\n".join(lines) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _metric_row(name: str, metrics: Mapping[str, Any], ratio: str) -> str:
    values = " | ".join(f"{metrics[key]:.4f}" for _, key in METRIC_COLUMNS)
    return f"| {name} | {values} | {ratio} | {metrics['n']} |"


def training_markdown(result: TrainingResult) -> str:
    """Walk-forward metrics of the new model vs persistence (and vs production on unseen hours)."""
    header = " | ".join(label for label, _ in METRIC_COLUMNS)
    lines = [
        f"# Training {result.tag}",
        "",
        f"Window {result.window['start']} .. {result.window['end']} ({result.rows} rows); "
        "metrics over the walk-forward hours of the promotion gate.",
        "",
        f"| forecast | {header} | MAE ratio | hours |",
        "|---|---|---|---|---|---|---|",
        _metric_row("model", result.metrics, f"{result.metrics['mae_ratio']:.4f}"),
        _metric_row("persistence", result.baseline, "1.0000"),
    ]
    if result.production is not None:
        production = result.production
        lines += [
            "",
            f"On the {production['hours']} checked hours production ({production['tag']}) never trained on:",
            "",
            f"| forecast | {header} | MAE ratio | hours |",
            "|---|---|---|---|---|---|---|",
            _metric_row("new model", production["candidate"], ""),
            _metric_row("production", production["production"], ""),
        ]
    return "\n".join(lines) + "\n"


def promotion_markdown(result: TrainingResult) -> str:
    """The gate's decision on a newly trained model."""
    verdict = "promoted to production" if result.promoted else "rejected: production unchanged"
    lines = ["# Promotion decision", "", f"**{result.tag}: {verdict}**", "", f"Reason: {result.reason}"]
    if result.pruned:
        lines += ["", f"Pruned from the model store: {', '.join(result.pruned)}"]
    return "\n".join(lines) + "\n"


def training_failure_markdown(error: str, production: str | None) -> str:
    """The decision when no model could be trained: production stays as it is."""
    return (
        "# Promotion decision\n\n**no model trained: production unchanged** "
        f"({production or 'no production model yet'})\n\nReason: {error}\n"
    )


def retention_markdown(report: RetentionReport) -> str:
    """What a retention pass removed, and its cutoffs."""
    candle_cutoff = report.candle_cutoff.isoformat() if report.candle_cutoff is not None else "keep all"
    ledger_cutoff = report.ledger_cutoff.isoformat() if report.ledger_cutoff is not None else "keep all"
    lines = [
        "# Retention",
        "",
        f"Data time now: {report.now.isoformat()}; {report.bytes_removed:,} bytes freed.",
        "",
        "| what | cutoff | removed |",
        "|---|---|---|",
        f"| candle month partitions | {candle_cutoff} | {len(report.partitions_removed)} |",
        f"| feature rows | {report.feature_cutoff.isoformat()} | {report.feature_rows_removed} "
        f"({report.feature_rows_kept} kept) |",
        f"| prediction log files | {report.prediction_cutoff.isoformat()} | {report.files_removed} |",
        f"| ingestion ledger files | {ledger_cutoff} | {report.ledger_files_removed} |",
    ]
    if report.partitions_removed:
        lines += ["", *(f"- removed `{partition}`" for partition in report.partitions_removed)]
    return "\n".join(lines) + "\n"


def monitor_markdown(report: MonitorReport, per_symbol: int = 5) -> str:
    """The monitor's verdict on the production model and its most drifted features."""
    verdict = (
        "**degraded**:\n\n" + "\n".join(f"- {reason}" for reason in report.degraded)
        if report.degraded
        else "not degraded"
    )
    lines = [
        "# Forecast monitor",
        "",
        f"Newest stored hour {report.now.isoformat() if report.now is not None else 'none'}; "
        f"{report.added} predictions newly scored, {report.pending} waiting for their candle.",
        "",
        f"Production model {report.production or 'none'}: {verdict}",
        "",
        "| window | symbol | feature | PSI | hours |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {row.window} | {row.symbol} | {row.feature} | {row.psi:.3f} | {row.hours} |"
        for row in report.worst_drift(per_symbol).itertuples()
    ]
    return "\n".join(lines) + "\n"
