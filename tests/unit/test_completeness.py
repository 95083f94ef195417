"""Completeness state: how the exchange's answers about missing candles become re-requested or confirmed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

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


def test_a_quarantined_candle_is_asked_for_again_until_set_aside_retries_times_or_served_clean() -> None:
    state = completeness.ArchiveState()
    state.record((0, 10 * HOUR), [], {5 * HOUR}, oldest_ms=0, retries=2, rejected={5 * HOUR})
    assert state.to_retry(0, 2) == [5 * HOUR] and state.rejected == {5 * HOUR: 1}
    assert state.to_retry(6 * HOUR, 2) == []  # older than the retry window: left alone
    state.record((0, 11 * HOUR), [], {5 * HOUR}, oldest_ms=0, retries=2, rejected={5 * HOUR})
    assert state.to_retry(0, 2) == [] and state.confirmed == set()  # bad every time: stays quarantined
    state.record((0, 11 * HOUR), [], {5 * HOUR}, oldest_ms=0, retries=2)  # a backfill finds it clean
    assert state.rejected == {}
    assert completeness.ArchiveState(rejected={HOUR: 1}).as_json()["rejected"] == {"1970-01-01T01:00:00Z": 1}


def test_the_state_is_derived_from_the_candles_and_the_ledger(
    tmp_path: Path, btc_recorded: pd.DataFrame
) -> None:
    from hourcast.data import ledger
    from hourcast.settings import Settings
    from tests.support.data import as_candle_frame

    settings = Settings(home=tmp_path, gap_retries=3, gap_retry_days=1)
    day = btc_recorded.loc[(btc_recorded["ts"] >= "2024-02-27") & (btc_recorded["ts"] < "2024-03-01")]
    old_gap, new_gap, bad = (
        pd.Timestamp(f"2024-{stamp}", tz="UTC") for stamp in ("02-27 05:00", "02-29 20:00", "02-29 22:00")
    )
    store.upsert(
        settings.candles_dir, SERIES, as_candle_frame(day.loc[~day["ts"].isin([old_gap, new_gap, bad])])
    )

    def run(minute: int, gaps: str, quarantined: str) -> ledger.LedgerEntry:
        at = pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(minutes=minute)
        return ledger.LedgerEntry(
            at,
            "ingest",
            "binance",
            "BTC/USDT",
            "1h",
            1,
            1,
            0,
            1,
            gaps,
            1,
            quarantined,
            None,
            None,
            0.1,
            "ok",
            "",
        )

    ledger.record_many(
        settings.ledger_dir,
        [run(0, "2024-02-27T05:00:00Z+1, 2024-02-29T20:00:00Z+1", "2024-02-29T22:00:00Z+1")],
    )
    ledger.record_many(settings.ledger_dir, [run(1, "2024-02-29T20:00:00Z+1", "2024-02-29T22:00:00Z+1")])
    state = completeness.derive_state(settings, SERIES)
    ms = lambda stamp: int(stamp.value // 1_000_000)  # noqa: E731
    assert (state.start, state.end) == (
        ms(pd.Timestamp("2024-02-27", tz="UTC")),
        ms(pd.Timestamp("2024-02-29 23:00", tz="UTC")),
    )
    assert (
        state.confirmed == {ms(old_gap)}
        and state.tries == {ms(new_gap): 2}
        and state.rejected == {ms(bad): 2}
    )
