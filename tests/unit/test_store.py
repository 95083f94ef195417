import textwrap
from pathlib import Path

import pandas as pd

from hourcast.data import store
from hourcast.data.candles import ORDER_FLOW_COLUMNS
from tests.support.data import as_candle_frame
from tests.support.processes import kill_writer_when

SERIES = store.Series("binance", "BTC/USDT", "1h")


def test_upsert_is_idempotent_and_partitioned_by_month(tmp_path: Path, btc_recorded: pd.DataFrame) -> None:
    batch = as_candle_frame(btc_recorded.iloc[:1000])  # 2024-01-01 .. 2024-02-11
    assert store.upsert(tmp_path, SERIES, batch) == store.UpsertResult(new=1000, duplicates=0)
    assert store.upsert(tmp_path, SERIES, batch) == store.UpsertResult(new=0, duplicates=1000)
    overlapping = as_candle_frame(btc_recorded.iloc[990:1010])
    assert store.upsert(tmp_path, SERIES, overlapping) == store.UpsertResult(new=10, duplicates=10)

    months = sorted(p.parent.name for p in SERIES.directory(tmp_path).glob("month=*/data.parquet"))
    assert months == ["month=2024-01", "month=2024-02"]
    loaded = store.load_candles(tmp_path, SERIES)
    assert len(loaded) == 1010 and loaded["ts"].is_unique and loaded["ts"].is_monotonic_increasing
    pd.testing.assert_frame_equal(
        loaded[btc_recorded.columns], btc_recorded.iloc[:1010].reset_index(drop=True), check_dtype=True
    )
    assert loaded[ORDER_FLOW_COLUMNS].isna().all(axis=None)  # the recorded candles carry no order flow
    assert store.last_stored(tmp_path, SERIES) == btc_recorded["ts"].iloc[1009]


def test_load_candles_is_typed_and_filters_by_time(tmp_path: Path, btc_recorded: pd.DataFrame) -> None:
    store.upsert(tmp_path, SERIES, as_candle_frame(btc_recorded.iloc[:2000]))
    start, end = pd.Timestamp("2024-01-31 20:00", tz="UTC"), pd.Timestamp("2024-02-01 03:00", tz="UTC")
    window = store.load_candles(tmp_path, SERIES, start, end)
    assert list(window.columns) == [
        "symbol",
        "ts",
        "open",
        "high",
        "low",
        "close",
        "volume",
        *ORDER_FLOW_COLUMNS,
    ]
    assert (window.dtypes[ORDER_FLOW_COLUMNS] == "float64").all()
    assert str(window["ts"].dtype) == "datetime64[ms, UTC]"
    assert window["ts"].iloc[0] == start and window["ts"].iloc[-1] == end and len(window) == 8
    assert (window["symbol"] == "BTC/USDT").all()
    assert store.load_candles(tmp_path, store.Series("binance", "ETH/USDT", "1h")).empty


def test_only_the_months_asked_for_are_looked_into(tmp_path: Path, btc_recorded: pd.DataFrame) -> None:
    store.upsert(tmp_path, SERIES, as_candle_frame(btc_recorded.iloc[:3000]))  # 2024-01 .. 2024-05
    folder = SERIES.directory(tmp_path)
    (folder / "month=2024-06").mkdir()  # a folder whose writer never finished: no data file, no month
    (folder / "month=2024-02" / "data.parquet").rename(folder / "month=2024-02" / "aside")
    assert [month for month, _ in store.month_files(tmp_path, SERIES)] == [
        "2024-01",
        "2024-03",
        "2024-04",
        "2024-05",
    ]
    assert [month for month, _ in store.month_files(tmp_path, SERIES, "2024-02", "2024-04")] == [
        "2024-03",
        "2024-04",
    ]
    assert store.last_stored(tmp_path, SERIES) == btc_recorded["ts"].iloc[2999]
    assert (
        store.month_files(tmp_path / "nowhere", SERIES) == []
        and store.last_stored(tmp_path / "x", SERIES) is None
    )


def test_order_flow_is_stored_and_candles_without_it_store_it_null(
    tmp_path: Path, btc_recorded: pd.DataFrame
) -> None:
    """Test values for the order flow (derived from the candles) round-trip; candles without order-flow
    columns are stored with them NaN, and a candle already stored keeps what it was stored with
    (re-ingesting never rewrites history)."""
    candles = as_candle_frame(btc_recorded.iloc[:30])
    flow = candles.assign(
        quote_volume=candles["volume"] * candles["close"],
        trades=(candles["volume"] * 30.0).round(),
        taker_buy_base=candles["volume"] * 0.4,
        taker_buy_quote=candles["volume"] * 0.4 * candles["close"],
    )
    without = candles.loc[:19, ["symbol", "ts", "open", "high", "low", "close", "volume"]]
    assert store.upsert(tmp_path, SERIES, without) == store.UpsertResult(new=20, duplicates=0)
    assert store.load_candles(tmp_path, SERIES)[ORDER_FLOW_COLUMNS].isna().all(axis=None)

    assert store.upsert(tmp_path, SERIES, flow) == store.UpsertResult(new=10, duplicates=20)
    loaded = store.load_candles(tmp_path, SERIES)
    assert loaded.loc[:19, ORDER_FLOW_COLUMNS].isna().all(axis=None)  # stored before: left as it was
    pd.testing.assert_frame_equal(
        loaded.loc[20:, ["ts", *ORDER_FLOW_COLUMNS]].reset_index(drop=True),
        flow.loc[20:, ["ts", *ORDER_FLOW_COLUMNS]].reset_index(drop=True),
    )


def test_dataset_reads_as_one_hive_table(tmp_path: Path, btc_recorded: pd.DataFrame) -> None:
    store.upsert(tmp_path, SERIES, as_candle_frame(btc_recorded.iloc[:800]))
    table = pd.read_parquet(tmp_path)
    assert len(table) == 800
    assert set(table["symbol"].astype(str)) == {"BTC/USDT"}


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from hourcast.data import store
    from tests.support.data import BTC_FILE, as_candle_frame, read_recorded

    root = Path(sys.argv[1])
    recorded = read_recorded(BTC_FILE)
    series = store.Series("binance", "BTC/USDT", "1h")
    print("ready", flush=True)
    for start in range(0, len(recorded), 24):
        store.upsert(root, series, as_candle_frame(recorded.iloc[start : start + 24]))
    """
)


def test_a_writer_killed_mid_write_leaves_a_complete_dataset(
    tmp_path: Path, btc_recorded: pd.DataFrame
) -> None:
    def three_months() -> bool:  # well inside the loop (a day per upsert, 27 months)
        return len(list(SERIES.directory(tmp_path).glob("month=*/data.parquet"))) >= 3

    kill_writer_when(WRITER, tmp_path, three_months, "the writer's third month")

    loaded = store.load_candles(tmp_path, SERIES)
    assert 0 < len(loaded) < len(btc_recorded), "the writer was meant to be killed mid-way"
    expected = btc_recorded.iloc[: len(loaded)].reset_index(drop=True)
    pd.testing.assert_frame_equal(loaded[expected.columns], expected)

    # the next writer resumes cleanly and sweeps up any temporary file the killed one left behind
    rest = as_candle_frame(btc_recorded.iloc[len(loaded) - 5 : len(loaded) + 48])
    assert store.upsert(tmp_path, SERIES, rest) == store.UpsertResult(new=48, duplicates=5)
    assert len(store.load_candles(tmp_path, SERIES)) == len(loaded) + 48
