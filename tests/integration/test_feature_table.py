"""The incremental feature table against a full recomputation, bit for bit, over 48 simulated hours of
ingest into the real candle store: new candles every hour, holes filled later (in a symbol and in the
reference of another), a month repaired in place, a run killed before its state was written, a
symbol added to the configuration, and every update run twice."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from hourcast import atomic
from hourcast.data import store
from hourcast.features import dataset, feature_table
from hourcast.features.compute import CROSS_FEATURES, LOOKBACK
from hourcast.settings import Settings
from tests.support.data import as_candle_frame

HOUR = pd.Timedelta(hours=1)
CHECKED = {5, 11, 12, 13, 20, 21, 30, 31, 35, 36, 37, 40, 41, 47, *range(0, 48, 5)}
START = pd.Timestamp("2024-03-30 12:00", tz="UTC")  # the first simulated hour; the candles start in 2024
SYMBOLS = ["BTC/USDT", "ETH/USDT"]


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """59 days of features: the 48 hours move the oldest row from January into February (split into days)
    and the newest from March into April (March compacted into one file)."""
    return Settings(home=tmp_path, symbols=SYMBOLS, train_days=58, feature_retention_days=59)


def put(settings: Settings, recorded: pd.DataFrame, symbol: str, stamps: list[pd.Timestamp]) -> None:
    """Store the recorded candles of ``symbol`` opening at ``stamps`` (what an ingest stores)."""
    rows = recorded.loc[recorded["ts"].isin(stamps)]
    store.upsert(settings.candles_dir, store.Series("binance", symbol, "1h"), as_candle_frame(rows, symbol))


def assert_equals_full_recomputation(settings: Settings) -> feature_table.Update:
    """Update the table, check it is the table built from scratch, and that a second update adds nothing."""
    update = feature_table.update(settings)
    full = feature_table.build(dataset.load_candles(settings), settings)
    pd.testing.assert_frame_equal(feature_table.read(settings.feature_table_path), full, check_exact=True)
    assert update.total_rows == len(full) and update.newest_event == full["event_timestamp"].max()
    again = feature_table.update(settings)
    assert again.rows.empty and again.removed_rows == 0 and not again.rebuilt and not again.recomputed
    return update


def test_hour_by_hour_the_table_is_the_full_recomputation(settings: Settings, recorded_files: dict) -> None:
    btc, eth = (recorded_files[symbol] for symbol in SYMBOLS)
    history = list(pd.date_range(START - pd.Timedelta(days=61), START - HOUR, freq="h"))
    for symbol in SYMBOLS:
        put(settings, recorded_files[symbol], symbol, history)
    first = assert_equals_full_recomputation(settings)
    assert first.rebuilt and first.total_rows == 2 * 59 * 24
    assert [key for key, _ in feature_table.files(settings.feature_table_path)][:2] == [
        "2024-01-31",
        "2024-02",
    ]

    eth_hole, btc_hole = START + 5 * HOUR, START + 20 * HOUR  # filled at hours 30 and 40
    # compared with the full recomputation: the holes, their fills, the month changes (12: the oldest row
    # enters February, 36: the newest April), every fifth hour and the last (the others update only)
    for hour in range(48):
        now = START + hour * HOUR
        put(settings, btc, "BTC/USDT", [now] if now != btc_hole else [])
        put(settings, eth, "ETH/USDT", [now] if now != eth_hole else [])
        if hour == 30:
            put(settings, eth, "ETH/USDT", [eth_hole])
        if hour == 40:
            put(settings, btc, "BTC/USDT", [btc_hole])
        if hour not in CHECKED:
            assert len(feature_table.update(settings).rows) <= len(SYMBOLS)
            continue
        update = assert_equals_full_recomputation(settings)
        assert not update.rebuilt
        # only the new hour's rows; after a hole is filled, the rows whose lookback holds a candle of its
        # day (a day's candles are compared as a whole unless some were only appended), of both symbols:
        # the other one's cross-asset inputs there change too
        hole = {30: eth_hole, 40: btc_hole}.get(hour)
        table = feature_table.read(settings.feature_table_path)
        fresh = table["as_of"].eq(now)
        if hole is not None:
            day = hole.floor("D")
            fresh |= table["as_of"].between(day, day + pd.Timedelta(days=1) + (LOOKBACK - 2) * HOUR)
            assert set(update.rows["symbol"]) == set(SYMBOLS)
        pd.testing.assert_frame_equal(update.rows, table.loc[fresh].reset_index(drop=True), check_exact=True)
        if hour == 35:  # ETH's row while BTC, its reference, has none (its hole): kept, NaN inputs
            assert update.rows["symbol"].tolist() == ["ETH/USDT"]
            assert update.rows[CROSS_FEATURES].isna().all(axis=None)

    keys = [key for key, _ in feature_table.files(settings.feature_table_path)]
    assert keys[0] == "2024-02-02" and "2024-03" in keys and keys[-1].startswith("2024-04-")
    assert not any(key.startswith("2024-03-") for key in keys)

    # a month repaired in place (one candle's close differs), as `hourcast repair` fetches it again
    month = (
        settings.candles_dir / "exchange=binance/symbol=BTC%2FUSDT/timeframe=1h/month=2024-03/data.parquet"
    )
    candles = pd.read_parquet(month)
    fixed = candles["ts"] == pd.Timestamp("2024-03-28 06:00", tz="UTC")
    candles.loc[fixed, "close"] *= 1.001
    atomic.write_parquet(candles, month)
    update = assert_equals_full_recomputation(settings)
    assert len(update.rows) == 2 * (24 + LOOKBACK - 1)  # both symbols' rows whose lookback holds its day

    # a run killed after writing its day files, before its state: the next one redoes it, the same
    state = feature_table.state_path(settings.feature_table_path)
    before = state.read_bytes()
    put(settings, btc, "BTC/USDT", [START + 48 * HOUR])
    feature_table.update(settings)
    atomic.write_bytes(state, before)
    redone = assert_equals_full_recomputation(settings)
    assert (
        redone.rows["symbol"].tolist() == ["BTC/USDT"] and (redone.rows["as_of"] == START + 48 * HOUR).all()
    )

    # a symbol added to the configuration: its rows, and the cross-asset inputs of the symbols it is the
    # reference of; a symbol removed: the table is rebuilt without it
    solo = settings.model_copy(update={"symbols": ["BTC/USDT"]})
    assert assert_equals_full_recomputation(solo).rebuilt
    assert feature_table.read(solo.feature_table_path)[CROSS_FEATURES].isna().all(axis=None)  # no ETH
    added = assert_equals_full_recomputation(settings)
    assert not added.rebuilt and set(added.recomputed) == set(SYMBOLS)


def test_a_single_file_table_is_replaced_by_the_folder(settings: Settings, recorded_files: dict) -> None:
    """A feature table from before the folder layout (one Parquet file) is rebuilt as a folder."""
    for symbol in SYMBOLS:
        put(
            settings,
            recorded_files[symbol],
            symbol,
            list(pd.date_range(START - pd.Timedelta(days=2), START, freq="h")),
        )
    atomic.write_parquet(pd.DataFrame({"x": [1]}), settings.feature_table_path)
    update = assert_equals_full_recomputation(settings)
    assert update.rebuilt and settings.feature_table_path.is_dir()


def test_a_state_of_another_layout_rebuilds_the_table(settings: Settings, recorded_files: dict) -> None:
    """A state written by another version of the module (here: one without the layout and counts) is not
    read as this one's: the next update rebuilds, and the table is the full recomputation."""
    history = list(pd.date_range(START - pd.Timedelta(days=3), START - HOUR, freq="h"))
    for symbol in SYMBOLS:
        put(settings, recorded_files[symbol], symbol, history)
    assert feature_table.update(settings).rebuilt
    state = feature_table.state_path(settings.feature_table_path)
    table = pq.read_table(state)
    key = b"hourcast.features.feature_table"
    meta = json.loads(table.schema.metadata[key])
    older = {name: value for name, value in meta.items() if name not in ("layout", "counts")}
    pq.write_table(table.replace_schema_metadata({key: json.dumps(older)}), state)
    assert feature_table.update(settings).rebuilt
    assert_equals_full_recomputation(settings)
