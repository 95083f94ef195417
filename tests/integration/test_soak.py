"""The chaos soak, short: `hourcast up --replay` over a few simulated hours while the driver of
benchmarks/soak.py (tests.support.soak) injects exchange faults and SIGKILLs flow-run processes and an API
worker with a fixed seed, then the same checks as the full soak: no candle lost, duplicated or changed
against the recorded files, no pending quarantine for stored candles, a forecast of record for every hour the
stack was up, every one scored, the API available outside the kills, every flow run in a final state."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.soak import SoakConfig, run_soak, write_json

DAYS = 0.2  # about 5 simulated hours
SPEED = 60.0  # the default: an hour a minute, so each hour's ingest and monitor runs finish in it


@pytest.mark.slow
@pytest.mark.timeout(1200)  # start-up 1-2 minutes, 5 simulated hours 5 minutes, settling
def test_a_short_chaos_soak_loses_nothing_and_records_every_hour(tmp_path: Path) -> None:
    config = SoakConfig(
        home=tmp_path,
        days=DAYS,
        speed=SPEED,
        seed=22,
        faults_per_day=15.0,
        kills_per_day=10.0,
        kill_kinds=("flow_run", "api_worker"),
        serve_workers=2,
    )
    figures = run_soak(config)
    write_json(tmp_path / "soak.json", figures)  # the figures, for a look after a failure
    shown = json.dumps({k: v for k, v in figures.items() if k != "events"}, indent=1, default=str)
    assert figures["ended_early"] is None, shown
    for symbol, candles in figures["candles"].items():
        assert (candles["lost"], candles["duplicated"], candles["changed"]) == (0, 0, 0), (symbol, shown)
        assert candles["pending_quarantine_for_stored"] == 0, (symbol, shown)
    records = figures["records"]
    assert records["hours_up"] >= 3, shown
    assert records["hours_with_record"] == records["hours_up"], shown
    assert records["hours_scored"] == records["hours_up"], shown
    assert figures["flow_runs"]["not_final"] == [], shown
    assert sum(figures["faults_fired"].values()) > 0, shown
    assert any(" kill " in event and "pid" in event for event in figures["events"]), figures["events"]
    readyz = figures["availability"]["outside_redis_down"]["readyz"]
    assert readyz["share_2xx"] >= 0.995, shown
