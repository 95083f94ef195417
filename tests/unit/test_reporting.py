"""The artifact reports: tables and Markdown built from ingestion, materialization, training and retention."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd

from hourcast.data.candles import Gap
from hourcast.data.ingest import SymbolSummary
from hourcast.features.featurestore import MaterializeSummary
from hourcast.model.training import TrainingResult
from hourcast.ops import reporting
from hourcast.ops.retention import RetentionReport

T = pd.Timestamp("2024-03-01 05:00", tz="UTC")


def summaries() -> list[SymbolSummary]:
    ok = SymbolSummary("BTC/USDT", fetched=3, new=2, duplicates=1, first=T, last=T + pd.Timedelta(hours=3))
    ok.gaps = [Gap(T + pd.Timedelta(hours=1), 1)]
    bad = SymbolSummary("ETH/USDT", fetched=2, quarantined=2, status="quarantined", message="high | low")
    idle = SymbolSummary("SOL/USDT")
    return [ok, bad, idle]


def metrics(mae: float) -> dict[str, float]:
    return {"mae": mae, "rmse": 2 * mae, "mape": 0.1, "directional_accuracy": 0.5, "n": 168}


def result(promoted: bool, production: dict | None = None) -> TrainingResult:
    return TrainingResult(
        tag="hourcast_next_hour:abc",
        promoted=promoted,
        reason="walk-forward MAE 1.0000, persistence 1.1000",
        window={"start": "2024-02-01", "end": "2024-03-01"},
        rows=1440,
        metrics=metrics(1.0) | {"mae_ratio": 0.9091},
        baseline=metrics(1.1),
        production=production,
        pruned=["hourcast_next_hour:old"] if promoted else [],
    )


def test_problems_lists_only_symbols_that_did_not_finish_cleanly() -> None:
    assert reporting.problems(summaries()) == "ETH/USDT: quarantined: high | low"
    assert reporting.problems(summaries()[:1]) is None


def test_ingest_rows_count_candles_and_locate_gaps() -> None:
    rows = reporting.ingest_rows(summaries())
    assert rows[0] == {
        "symbol": "BTC/USDT",
        "status": "ok",
        "fetched": 3,
        "new": 2,
        "duplicates": 1,
        "missing": 1,
        "gaps": "2024-03-01T06:00Z+1",
        "quarantined": 0,
        "first": "2024-03-01T05:00:00Z",
        "last": "2024-03-01T08:00:00Z",
    }
    assert rows[2]["first"] == "" and rows[1]["status"] == "quarantined"


def test_validation_markdown_gives_each_outcome_and_report_path(tmp_path: Path) -> None:
    path = reporting.validation_report_path(tmp_path, "binance", "BTC/USDT", "1h")
    assert path == tmp_path / "binance_BTC-USDT_1h_latest.html"
    text = reporting.validation_markdown(summaries(), {"BTC/USDT": path, "ETH/USDT": None})
    assert f"| BTC/USDT | passed (3 candles) | `{path}` |" in text
    assert "| ETH/USDT | **quarantined** 2 candles: high \\| low | none yet |" in text
    assert "| SOL/USDT | nothing new to validate | none yet |" in text


def test_online_markdown_shows_the_newest_row_per_symbol() -> None:
    summary = MaterializeSummary("redis (x)", 96, {"BTC/USDT": T.isoformat(), "ETH/USDT": None}, T, 0.25)
    text = reporting.online_markdown(summary)
    assert "| BTC/USDT | 2024-03-01T05:00:00+00:00 |" in text and "| ETH/USDT | none |" in text
    assert "96 feature rows; online store redis (x)" in text


def test_training_markdown_compares_with_persistence_and_production() -> None:
    text = reporting.training_markdown(result(True))
    assert "| model | 1.0000 | 2.0000 | 0.1000 | 0.5000 | 0.9091 | 168 |" in text
    assert "| persistence | 1.1000 | 2.2000 | 0.1000 | 0.5000 | 1.0000 | 168 |" in text
    assert "production" not in text
    versus = {
        "tag": "hourcast_next_hour:prod",
        "hours": 48,
        "candidate": metrics(1.0),
        "production": metrics(1.2),
    }
    text = reporting.training_markdown(result(False, versus))
    assert "48 checked hours production (hourcast_next_hour:prod)" in text
    assert "| production | 1.2000 | 2.4000 |" in text


def test_promotion_markdown_states_the_decision() -> None:
    promoted = reporting.promotion_markdown(result(True))
    assert "**hourcast_next_hour:abc: promoted to production**" in promoted and "old" in promoted
    assert "rejected: production unchanged" in reporting.promotion_markdown(result(False))
    failed = reporting.training_failure_markdown("too little data", "hourcast_next_hour:prod")
    assert "production unchanged** (hourcast_next_hour:prod)" in failed and "too little data" in failed
    assert "no production model yet" in reporting.training_failure_markdown("x", None)


def test_retention_markdown_lists_cutoffs_and_removed_partitions() -> None:
    report = RetentionReport(
        now=T,
        candle_cutoff=T - pd.Timedelta(days=400),
        feature_cutoff=T - pd.Timedelta(days=32),
        prediction_cutoff=T - pd.Timedelta(days=90),
        partitions_removed=["exchange=binance/symbol=BTC%2FUSDT/timeframe=1h/month=2023-01"],
        feature_rows_removed=5,
        feature_rows_kept=10,
        files_removed=2,
        bytes_removed=1234,
    )
    text = reporting.retention_markdown(report)
    assert (
        "| candle month partitions | 2023-01-26T05:00:00+00:00 | 1 |" in text and "1,234 bytes freed" in text
    )
    assert "| feature rows | 2024-01-29T05:00:00+00:00 | 5 (10 kept) |" in text
    assert "- removed `exchange=binance/symbol=BTC%2FUSDT/timeframe=1h/month=2023-01`" in text
    keep_all = replace(report, candle_cutoff=None, partitions_removed=[])
    assert "| candle month partitions | keep all | 0 |" in reporting.retention_markdown(keep_all)
    assert "| ingestion ledger files | keep all | 0 |" in text
