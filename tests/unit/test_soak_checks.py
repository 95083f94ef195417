"""The chaos soak's checks (tests.support.soak) on small frames: what they count as lost, duplicated or
changed, which hours need a forecast of record, and availability per window."""

from __future__ import annotations

import pandas as pd

from tests.support.soak import (
    Sample,
    availability,
    candle_differences,
    chaos_plan,
    flow_run_states,
    record_hours,
    recorded_holes,
    up_hours,
)


def candles(hours: list[int], close: float = 1.0) -> pd.DataFrame:
    ts = pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(hours, unit="h")
    return pd.DataFrame({"ts": ts, "open": 1.0, "high": 2.0, "low": 0.5, "close": close, "volume": 3.0})


def test_candle_differences_count_lost_duplicated_and_changed() -> None:
    recorded = candles([0, 1, 2, 3])
    assert candle_differences(candles([0, 1, 2, 3]), recorded)["lost"] == 0
    stored = pd.concat([candles([0, 1, 1]), candles([3], close=1.5)], ignore_index=True)
    figures = candle_differences(stored, recorded)
    assert (figures["lost"], figures["duplicated"], figures["changed"], figures["extra"]) == (1, 1, 1, 0)
    assert figures["lost_first"] == ["2024-01-01 02:00:00+00:00"]
    assert candle_differences(candles([0, 1, 2, 3, 4]), recorded)["extra"] == 1


def test_recorded_holes() -> None:
    start = pd.Timestamp("2024-01-01", tz="UTC")
    assert recorded_holes(candles([0, 2]), start, start + pd.Timedelta(hours=3)) == [
        start + pd.Timedelta(hours=1)
    ]


def test_up_hours_are_the_hours_whose_ingest_fired_while_up() -> None:
    t = pd.Timestamp("2024-01-01", tz="UTC")
    # up from 00:30 to 03:10: ingests at 01:05 (candle 00:00), 02:05 (01:00), 03:05 (02:00)
    hours = up_hours([(t + pd.Timedelta(minutes=30), t + pd.Timedelta(hours=3, minutes=10))])
    assert hours == [t, t + pd.Timedelta(hours=1), t + pd.Timedelta(hours=2)]
    assert up_hours([(t + pd.Timedelta(minutes=30), t + pd.Timedelta(minutes=50))]) == []


def test_record_hours_need_every_symbol_logged_as_record_and_scored() -> None:
    t = pd.Timestamp("2024-01-01", tz="UTC")
    hours = [t + pd.Timedelta(hours=hour) for hour in range(4)]
    log = pd.DataFrame(
        {
            "source": ["record", "record", "record", "request", "request", "record", "record"],
            "symbol": ["A", "B", "A", "B", "A", "A", "B"],
            "as_of": [hours[0], hours[0], hours[1], hours[1], hours[2], hours[3], hours[3]],
            "stale": [False, False, False, False, False, True, False],  # hours[3]'s A: recorded late
        }
    )
    scores = pd.DataFrame(
        {"source": ["record"] * 4, "status": ["scored"] * 4, "symbol": ["A", "B", "A", "B"]}
    )
    scores["as_of"] = [hours[0], hours[0], hours[3], hours[3]]
    figures = record_hours(log, scores, ["A", "B"], hours)
    assert (figures["hours_up"], figures["hours_with_record"], figures["hours_scored"]) == (4, 2, 2)
    assert figures["hours_recorded_late"] == 1
    assert figures["missing_first"] == [str(hours[1]), str(hours[2])]


def test_availability_per_window_and_longest_outage() -> None:
    oks = [True, True, False, False, False, True, True, True, True, True]
    samples = [Sample(float(i), "predict", ok) for i, ok in enumerate(oks)]
    report = availability(samples, {"redis": [(2.0, 4.5)], "slow": [(6.0, 9.0)]})
    assert report["all"]["predict"] == {"calls": 10, "share_2xx": 0.7, "longest_outage_s": 3.0}
    assert report["redis"]["predict"]["share_2xx"] == 0.0
    assert report["outside_redis_down"]["predict"]["share_2xx"] == 1.0
    assert report["slow"]["predict"]["calls"] == 4


def test_flow_run_states_name_the_runs_not_final() -> None:
    runs = [
        {"name": "a", "state": {"type": "COMPLETED"}},
        {"name": "b", "state": {"type": "RUNNING"}},
        {"name": "c", "state": {"type": "CRASHED"}},
    ]
    assert flow_run_states(runs)["not_final"] == ["b (RUNNING)"]


def test_the_chaos_plan_is_fixed_by_its_seed_and_covers_every_kind() -> None:
    plan = chaos_plan(7, 2.0, 6.0, 5.0, ("flow_run", "redis"))
    assert plan == chaos_plan(7, 2.0, 6.0, 5.0, ("flow_run", "redis"))
    assert plan != chaos_plan(8, 2.0, 6.0, 5.0, ("flow_run", "redis"))
    kinds = {event.kind for event in plan}
    assert {
        "rate_limit",
        "server_error",
        "slow",
        "malformed",
        "duplicate",
        "missing",
        "flow_run",
        "redis",
    } == kinds
    assert all(pd.Timedelta(hours=1) <= event.after <= pd.Timedelta(days=2, hours=-1) for event in plan)
