"""The one ingest cycle (``hourcast.ops.ingest_cycle``): its steps in order (the forecast of record last,
outside the writer slot), and what a failed pull does (the flows still report, materialize and record what was
stored; the bootstrap stops). The steps are small real functions handed in, as the flows hand in their Prefect
tasks and the bootstrap the package's functions."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pandas as pd
import pytest

from hourcast.data.ingest import SymbolSummary
from hourcast.features.featurestore import MaterializeSummary
from hourcast.ops.ingest_cycle import (
    CycleSteps,
    IngestProblems,
    PullFailed,
    checked,
    raise_for_problems,
    run_ingest_cycle,
)
from hourcast.serving.record import RecordSummary
from hourcast.settings import Settings

RECORD = RecordSummary(model="m:1")
ONLINE = MaterializeSummary("sqlite", 10, {"BTC/USDT": None}, pd.Timestamp("2024-01-01", tz="UTC"), 0.1)


class Recorder:
    """Steps that record their calls; ``pull`` reports ``statuses`` per symbol (a failure raises)."""

    def __init__(self, statuses: dict[str, str]) -> None:
        self.statuses = statuses
        self.calls: list[str] = []

    def pull(self, settings: Settings, symbols: list[str]) -> list[SymbolSummary]:
        self.calls.append(f"pull {','.join(symbols)}")
        return checked([SymbolSummary(symbol, status=self.statuses[symbol]) for symbol in symbols])

    def report(self, settings: Settings, summaries: list[SymbolSummary]) -> None:
        self.calls.append(f"report {len(summaries)}")

    def materialize(self, settings: Settings) -> MaterializeSummary:
        self.calls.append("materialize")
        return ONLINE

    def record(self, settings: Settings) -> RecordSummary:
        self.calls.append("record")
        return RECORD

    @contextmanager
    def slot(self) -> Iterator[None]:
        self.calls.append("slot taken")
        yield
        self.calls.append("slot given back")

    def steps(self) -> CycleSteps:
        return CycleSteps(
            pull=self.pull, report=self.report, materialize=self.materialize, record=self.record
        )


SETTINGS = Settings(symbols=["BTC/USDT", "ETH/USDT"], _env_file=None)


def test_the_steps_run_in_order_inside_the_writer_slot_then_the_record() -> None:
    steps = Recorder({"BTC/USDT": "ok", "ETH/USDT": "ok"})
    outcome = run_ingest_cycle(SETTINGS, steps.steps(), writer_slot=steps.slot())
    assert steps.calls == [
        "slot taken",
        "pull BTC/USDT,ETH/USDT",
        "report 2",
        "materialize",
        "slot given back",
        "record",
    ]
    assert outcome.online is ONLINE and outcome.settings == SETTINGS and outcome.record is RECORD
    assert [summary.symbol for summary in outcome.summaries] == ["BTC/USDT", "ETH/USDT"]
    raise_for_problems(outcome.summaries)  # nothing to raise


def test_after_a_failed_pull_what_was_stored_is_still_reported_and_materialized() -> None:
    steps = Recorder({"BTC/USDT": "ok", "ETH/USDT": "failed"})
    outcome = run_ingest_cycle(SETTINGS, steps.steps(), symbols=["ETH/USDT", "BTC/USDT"])
    assert steps.calls == ["pull ETH/USDT,BTC/USDT", "report 2", "materialize", "record"]
    with pytest.raises(IngestProblems, match="ETH/USDT: failed"):
        raise_for_problems(outcome.summaries)


def test_the_bootstrap_policy_stops_at_a_failed_pull() -> None:
    steps = Recorder({"BTC/USDT": "failed", "ETH/USDT": "ok"})
    with pytest.raises(PullFailed) as failure:
        run_ingest_cycle(SETTINGS, steps.steps(), materialize_after_failed_pull=False)
    assert steps.calls == ["pull BTC/USDT,ETH/USDT"]
    assert [summary.status for summary in failure.value.summaries] == ["failed", "ok"]
