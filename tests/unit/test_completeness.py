"""Completeness state: how the exchange's answers about missing candles become re-requested or confirmed."""

from __future__ import annotations

from pathlib import Path

from hourcast.data import completeness, store

HOUR = 3_600_000
SERIES = store.Series("binance", "BTC/USDT", "1h")


def test_a_hole_is_retried_until_the_exchange_confirms_it() -> None:
    state = completeness.ArchiveState()
    for _ in range(2):
        state.record((0, 10 * HOUR), [5 * HOUR], set(), oldest_ms=0, retries=3)
    assert state.to_retry(0, 3) == [5 * HOUR] and state.to_retry(6 * HOUR, 3) == []  # within the window
    state.record((0, 11 * HOUR), [5 * HOUR], set(), oldest_ms=0, retries=3)
    assert state.to_retry(0, 3) == [] and state.confirmed == {5 * HOUR}
    state.record((0, 11 * HOUR), [], {5 * HOUR}, oldest_ms=0, retries=3)  # served at last
    assert state.confirmed == set() and (state.start, state.end) == (0, 11 * HOUR)


def test_a_hole_older_than_the_retry_window_is_confirmed_at_once() -> None:
    state = completeness.ArchiveState()
    state.record((0, 100 * HOUR), [HOUR, 99 * HOUR], set(), oldest_ms=50 * HOUR, retries=5)
    assert state.confirmed == {HOUR} and state.tries == {99 * HOUR: 1}


def test_the_state_file_round_trips_and_parquet_readers_skip_it(tmp_path: Path) -> None:
    state = completeness.ArchiveState(start=0, end=5 * HOUR, tries={2 * HOUR: 1}, confirmed={3 * HOUR})
    completeness.write_state(tmp_path, SERIES, state)
    assert completeness.read_state(tmp_path, SERIES) == state
    assert completeness.state_path(tmp_path, SERIES).name.startswith("_")


def test_runs_and_ledger_ranges() -> None:
    assert completeness.runs([4 * HOUR, HOUR, 2 * HOUR], HOUR) == [(HOUR, 2 * HOUR), (4 * HOUR, 4 * HOUR)]
    # the hours ingestion found missing become its gaps: one run per stretch of consecutive hours
    assert completeness.runs([3 * HOUR, 6 * HOUR, 7 * HOUR], HOUR) == [
        (3 * HOUR, 3 * HOUR),
        (6 * HOUR, 7 * HOUR),
    ]
    [(start, count)] = completeness.parse_ranges("2024-01-10T05:00:00Z+8")
    assert (start.isoformat(), count) == ("2024-01-10T05:00:00+00:00", 8)


def test_an_update_applies_to_the_state_saved_since_not_to_a_stale_copy(tmp_path: Path) -> None:
    backfill_copy = completeness.read_state(tmp_path, SERIES)  # read when a long backfill started
    completeness.update_state(  # meanwhile an hourly run saves its answers
        tmp_path, SERIES, lambda state: state.record((10 * HOUR, 10 * HOUR), [10 * HOUR], set(), 0, 3)
    )
    saved = completeness.update_state(  # the backfill ends
        tmp_path, SERIES, lambda state: state.record((0, 5 * HOUR), [2 * HOUR], set(), 0, 3)
    )
    assert backfill_copy == completeness.ArchiveState()
    assert saved == completeness.read_state(tmp_path, SERIES)
    assert (saved.start, saved.end, saved.tries) == (0, 10 * HOUR, {2 * HOUR: 1, 10 * HOUR: 1})
