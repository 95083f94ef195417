import numpy as np
import pandas as pd
import pytest

from hourcast.features import compute
from hourcast.features.compute import (
    FEATURE_NAMES,
    LOOKBACK,
    ORDER_FLOW_FEATURES,
    compute_features,
    next_hour_targets,
)
from tests.support.data import ETH_FILE, read_recorded
from tests.support.order_flow import with_test_order_flow

HOUR = pd.Timedelta(hours=1)


def public_frame(recorded: pd.DataFrame, symbol: str = "BTC/USDT") -> pd.DataFrame:
    """Recorded rows as a public candle frame (what ``store.load_candles`` returns)."""
    frame = recorded.reset_index(drop=True)
    frame.insert(0, "symbol", pd.Series([symbol] * len(frame), dtype="string"))
    return frame


def assert_finite(table: pd.DataFrame) -> None:
    values = table[["last_close", *FEATURE_NAMES]].to_numpy()
    assert values.dtype == np.float64 and np.isfinite(values).all()


@pytest.fixture(scope="module")
def btc(btc_recorded: pd.DataFrame) -> pd.DataFrame:
    return public_frame(btc_recorded)


def test_rows_never_depend_on_later_or_earlier_candles(btc: pd.DataFrame) -> None:
    candles = with_test_order_flow(btc.iloc[5000:7000].reset_index(drop=True))  # order flow: test data
    full = compute_features(candles).set_index("as_of", drop=False)
    assert np.isfinite(full[ORDER_FLOW_FEATURES].to_numpy()).all()
    for position in np.random.default_rng(7).choice(np.arange(LOOKBACK - 1, len(candles)), 5, replace=False):
        expected = full.loc[[candles["ts"].iloc[position]]].reset_index(drop=True)
        prefix = compute_features(candles.iloc[: position + 1]).iloc[[-1]].reset_index(drop=True)
        pd.testing.assert_frame_equal(prefix, expected, check_exact=True)
        # what serving computes: only the last LOOKBACK candles
        online = compute_features(candles.iloc[position + 1 - LOOKBACK : position + 1])
        pd.testing.assert_frame_equal(online, expected, check_exact=True)


def test_rows_whose_lookback_spans_a_gap_are_dropped(btc: pd.DataFrame) -> None:
    candles = btc.iloc[:200]
    hole = [100, 101, 102]
    gapped = candles.drop(index=hole).reset_index(drop=True)
    full, kept = compute_features(candles), compute_features(gapped)

    assert len(full) == 200 - (LOOKBACK - 1)
    assert len(kept) == len(full) - len(hole) - (LOOKBACK - 1)  # 24 rows lost beyond the missing 3
    as_of = candles["ts"]
    expected_as_of = pd.concat([as_of.iloc[LOOKBACK - 1 : 100], as_of.iloc[103 + LOOKBACK - 1 :]])
    assert kept["as_of"].tolist() == expected_as_of.tolist()
    assert not kept["as_of"].between(as_of[100], as_of[103 + LOOKBACK - 2]).any()
    # surviving rows are exactly the rows of the unbroken series
    pd.testing.assert_frame_equal(
        kept, full.loc[full["as_of"].isin(kept["as_of"])].reset_index(drop=True), check_exact=True
    )
    # every step must be exactly one timeframe: hourly candles read as 15m candles are all gaps
    assert compute_features(candles, timeframe="15m").empty


def test_feature_names_match_the_output_and_are_always_finite(btc: pd.DataFrame) -> None:
    ohlc = [f"{p}_lag_{k}" for k in range(12) for p in ("open", "high", "low", "close")]
    returns = ["ret_1h", "ret_3h", "ret_6h", "ret_12h", "ret_24h"]
    assert FEATURE_NAMES[:48] == ohlc and FEATURE_NAMES[48:53] == returns
    assert FEATURE_NAMES[53:] == [
        "volatility_12h",
        "volatility_24h",
        "range_hl",
        "range_hl_12h",
        "log_volume",
        "volume_z_24h",
        "hour_of_day",
        "day_of_week",
    ]
    assert len(FEATURE_NAMES) == len(set(FEATURE_NAMES)) == 61

    table = compute_features(btc)
    assert list(table.columns) == [*compute.ROW_COLUMNS, *FEATURE_NAMES, *ORDER_FLOW_FEATURES]
    assert table[ORDER_FLOW_FEATURES].isna().all(axis=None)  # the recorded candles carry no order flow
    assert str(table["symbol"].dtype) == "string"
    assert str(table["event_timestamp"].dtype) == str(table["as_of"].dtype) == "datetime64[ms, UTC]"
    assert len(btc) == 19_704 and len(table) == 19_704 - (LOOKBACK - 1)
    assert (table["close_lag_0"] == 0.0).all()
    assert_finite(table)

    # a quiet market: flat prices and a flat volume (zero, or one whose mean is inexact) for 40 hours
    for volume in (0.0, 0.1):
        quiet = btc.iloc[:100].copy()
        quiet.loc[30:69, ["open", "high", "low", "close"]] = quiet.loc[29, "close"]
        quiet.loc[30:69, "volume"] = volume
        table = compute_features(quiet)
        assert len(table) == 100 - (LOOKBACK - 1)
        assert_finite(table)
        still = table.loc[table["as_of"].between(quiet["ts"][30 + 23], quiet["ts"][69])]  # 24 quiet hours
        assert len(still) == 69 - 53 + 1
        assert (still[["volume_z_24h", "volatility_24h", "range_hl_12h"]] == 0.0).all(axis=None)
        assert (still["log_volume"] == np.log1p(volume)).all()


def test_values_by_hand() -> None:
    n = LOOKBACK + 1
    start = pd.Timestamp("2024-03-03 23:00", tz="UTC")  # a Sunday
    close = 100.0 + np.arange(n)
    candles = pd.DataFrame(
        {
            "symbol": pd.Series(["BTC/USDT"] * n, dtype="string"),
            "ts": pd.date_range(start, periods=n, freq="h").astype("datetime64[ms, UTC]"),
            "open": close - 0.5,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": np.arange(n, dtype="float64"),
        }
    )
    table = compute_features(candles)
    assert len(table) == 2
    first, last = table.iloc[0], table.iloc[1]
    assert first["as_of"] == start + 24 * HOUR and first["event_timestamp"] == start + 25 * HOUR
    assert (first["hour_of_day"], first["day_of_week"]) == (23.0, 0.0)  # Monday 23:00
    assert (last["hour_of_day"], last["day_of_week"]) == (0.0, 1.0)  # Tuesday 00:00
    assert last["last_close"] == 125.0
    assert last["ret_1h"] == pytest.approx(np.log(125 / 124), rel=1e-12)
    assert last["ret_24h"] == pytest.approx(np.log(125 / 101), rel=1e-12)
    assert last["close_lag_1"] == pytest.approx(np.log(124 / 125), rel=1e-12)
    assert last["open_lag_0"] == pytest.approx(np.log(124.5 / 125), rel=1e-12)
    assert last["high_lag_11"] == pytest.approx(np.log(115 / 125), rel=1e-12)
    assert last["range_hl"] == pytest.approx(np.log(126 / 124), rel=1e-12)
    assert last["range_hl_12h"] == pytest.approx(
        np.mean(np.log((close[14:] + 1) / (close[14:] - 1))), rel=1e-12
    )
    assert last["log_volume"] == pytest.approx(np.log(26.0), rel=1e-12)
    # last 24 volumes are 2..25: mean 13.5, sample variance 24 * 25 / 12 = 50
    assert last["volume_z_24h"] == pytest.approx((25 - 13.5) / np.sqrt(50), rel=1e-12)
    hourly = np.diff(np.log(close))
    assert last["volatility_12h"] == pytest.approx(np.std(hourly[-12:], ddof=1), rel=1e-9)
    assert last["volatility_24h"] == pytest.approx(np.std(hourly[-24:], ddof=1), rel=1e-9)


def test_order_flow_features_by_hand() -> None:
    n = LOOKBACK + 1
    close = 100.0 + np.arange(n)
    volume = 1.0 + np.arange(n, dtype="float64")
    trades = 10.0 * volume + np.arange(n) % 3
    taker = volume * (0.4 + 0.01 * np.arange(n))
    candles = pd.DataFrame(
        {
            "symbol": pd.Series(["BTC/USDT"] * n, dtype="string"),
            "ts": pd.date_range("2024-03-04", periods=n, freq="h", tz="UTC").astype("datetime64[ms, UTC]"),
            "open": close,
            "high": close + 1.0,
            "low": close - 1.0,
            "close": close,
            "volume": volume,
            "quote_volume": volume * close,
            "trades": trades,
            "taker_buy_base": taker,
            "taker_buy_quote": taker * close,
        }
    )
    candles.loc[13, "trades"] = np.nan  # in the 12-candle window of T = 24 only
    first, last = compute_features(candles).iloc[0], compute_features(candles).iloc[1]
    window = slice(14, 26)  # the 12 candles ending at T = 25
    assert last["taker_buy_share_1h"] == pytest.approx(taker[25] / volume[25], rel=1e-12)
    assert last["taker_buy_share_12h"] == pytest.approx(taker[window].sum() / volume[window].sum(), rel=1e-12)
    per_volume = (trades[25] / volume[25]) / (trades[window].sum() / volume[window].sum())
    assert last["trades_per_volume_12h"] == pytest.approx(np.log(per_volume), rel=1e-12)
    assert first["taker_buy_share_1h"] == pytest.approx(taker[24] / volume[24], rel=1e-12)
    assert np.isnan(first["trades_per_volume_12h"]) and np.isfinite(first["taker_buy_share_12h"])

    # a zero volume at T: the shares of T are NaN, never inf; the row itself is kept
    quiet = candles.assign(volume=candles["volume"].where(candles.index != 25, 0.0))
    quiet.loc[25, ["trades", "taker_buy_base", "taker_buy_quote", "quote_volume"]] = 0.0
    row = compute_features(quiet).iloc[1]
    assert np.isnan(row["taker_buy_share_1h"]) and np.isnan(row["trades_per_volume_12h"])
    assert np.isfinite(row["taker_buy_share_12h"]) and np.isfinite(row[FEATURE_NAMES].to_numpy(float)).all()


def test_symbols_are_processed_independently(btc: pd.DataFrame) -> None:
    eth = public_frame(read_recorded(ETH_FILE), "ETH/USDT")
    both = pd.concat([btc, eth]).sort_values("ts", kind="stable").reset_index(drop=True)  # interleaved
    table = compute_features(both)
    assert table["symbol"].unique().tolist() == ["BTC/USDT", "ETH/USDT"]
    for alone in (btc, eth):
        symbol = alone["symbol"].iloc[0]
        pd.testing.assert_frame_equal(
            table.loc[table["symbol"] == symbol].reset_index(drop=True),
            compute_features(alone),
            check_exact=True,
        )


def test_next_hour_targets_are_aligned_and_never_span_a_gap(btc: pd.DataFrame) -> None:
    candles = btc.iloc[:300].drop(index=[150, 151]).reset_index(drop=True)  # hole after candle 149
    targets = next_hour_targets(candles)
    assert list(targets.columns) == ["symbol", "event_timestamp", "target_return", "next_close"]
    assert len(targets) == len(candles) - 2  # neither the candle before the hole nor the last one
    before_hole = btc["ts"][149] + HOUR
    assert before_hole not in set(targets["event_timestamp"])

    by_close = candles.assign(event_timestamp=candles["ts"] + HOUR).set_index("event_timestamp")
    now = by_close.loc[targets["event_timestamp"], "close"].to_numpy()
    after = by_close.loc[targets["event_timestamp"] + HOUR, "close"].to_numpy()
    np.testing.assert_array_equal(targets["next_close"].to_numpy(), after)
    np.testing.assert_array_equal(targets["target_return"].to_numpy(), np.log(after / now))

    # the target of row T is the 1 h return the feature row of T + 1 will show
    table = compute_features(candles)
    joined = table.merge(targets, on=["symbol", "event_timestamp"]).set_index("as_of")
    follows = joined.index + HOUR
    present = follows.isin(joined.index)
    assert present.sum() > 200
    np.testing.assert_array_equal(
        joined["target_return"].to_numpy()[present], joined.loc[follows[present], "ret_1h"].to_numpy()
    )


def test_invalid_prices_do_not_crash_and_never_leak_non_finite_values(btc: pd.DataFrame) -> None:
    candles = btc.iloc[:60].copy()
    candles.loc[40, "low"] = 0.0
    table = compute_features(candles)
    assert_finite(table)
    assert len(table) == 60 - (LOOKBACK - 1) - 12  # the 12 rows whose 12 h window holds the bad low
    assert compute_features(candles.iloc[:0]).columns.tolist() == [
        *compute.ROW_COLUMNS,
        *FEATURE_NAMES,
        *ORDER_FLOW_FEATURES,
    ]


@pytest.mark.parametrize("timeframe", ["15m", "4h", "1d"])
def test_features_and_targets_count_candles_of_any_timeframe(btc: pd.DataFrame, timeframe: str) -> None:
    """The same candles on a 15m, 4h or 1d grid give the same values as on the 1h grid (features count
    candles), stamped one timeframe after each candle opens; only the calendar features follow the clock."""
    hourly = btc.iloc[:300].reset_index(drop=True)
    step = pd.Timedelta(timeframe)
    other = hourly.assign(
        ts=pd.Series(hourly["ts"].iloc[0] + step * np.arange(len(hourly))).astype(hourly["ts"].dtype)
    )
    expected, table = compute_features(hourly), compute_features(other, timeframe)
    assert compute_features(other).empty  # read as hourly candles, every step is a gap
    values = [name for name in FEATURE_NAMES if name not in ("hour_of_day", "day_of_week")]
    pd.testing.assert_frame_equal(table[values], expected[values], check_exact=True)
    assert (table["event_timestamp"] == table["as_of"] + step).all()
    targets = next_hour_targets(other, timeframe)
    assert len(targets) == len(other) - 1
    np.testing.assert_array_equal(targets["next_close"], other["close"].iloc[1:])
    assert (targets["event_timestamp"] == other["ts"].iloc[:-1].reset_index(drop=True) + step).all()


def test_cross_asset_inputs_are_the_reference_at_the_same_hour_and_never_see_later_candles(
    btc: pd.DataFrame,
) -> None:
    assert compute.reference_of("ETH/USDT") == "BTC/USDT" and compute.reference_of("BTC/USDT") == "ETH/USDT"
    eth = public_frame(read_recorded(ETH_FILE), "ETH/USDT")
    start, end = btc["ts"].iloc[5000], btc["ts"].iloc[5600]
    candles = pd.concat(
        [frame.loc[frame["ts"].between(start, end)] for frame in (btc, eth)], ignore_index=True
    )
    own = compute_features(candles)
    full = compute.with_reference(own)
    assert list(full.columns) == [*own.columns, *compute.CROSS_FEATURES]
    assert len(full) == len(own) and np.isfinite(full[compute.CROSS_FEATURES].to_numpy()).all()
    by_hour = own.set_index(["symbol", "event_timestamp"])
    for symbol, reference in (("ETH/USDT", "BTC/USDT"), ("BTC/USDT", "ETH/USDT")):
        rows = full.loc[full["symbol"] == symbol]
        expected = by_hour.loc[reference].loc[rows["event_timestamp"], compute.REFERENCE_INPUTS].to_numpy()
        np.testing.assert_array_equal(rows[compute.CROSS_FEATURES].to_numpy(), expected)

    # truncation: a row at T is the same when computed from the candles up to T only
    keyed = full.set_index(["symbol", "as_of"])
    for position in np.random.default_rng(11).choice(np.arange(LOOKBACK, 600), 4, replace=False):
        cut = btc["ts"].iloc[5000 + position]
        prefix = compute.with_reference(compute_features(candles.loc[candles["ts"] <= cut]))
        newest = prefix.loc[prefix["as_of"] == cut].set_index(["symbol", "as_of"])
        assert len(newest) == 2
        pd.testing.assert_frame_equal(newest, keyed.loc[newest.index], check_exact=True)

    # a gap in the reference drops the rows that would need it: nothing is filled in
    missing = btc["ts"].iloc[5300]
    gapped = compute.with_reference(
        compute_features(candles.loc[~candles["ts"].eq(missing) | candles["symbol"].eq("ETH/USDT")])
    )
    eth_hours = gapped.loc[gapped["symbol"] == "ETH/USDT", "as_of"]
    assert not eth_hours.between(missing, missing + (LOOKBACK - 1) * HOUR).any()
    assert len(eth_hours) == len(full.loc[full["symbol"] == "ETH/USDT"]) - LOOKBACK


def test_table_rows_keep_every_own_row_and_never_see_later_candles(btc: pd.DataFrame) -> None:
    """``feature_rows`` (the feature table, read through Feast): cross-asset inputs NaN where the reference
    row is missing, never a lost row; each row, cross-asset and order-flow inputs included, the same from
    the candles up to T only, and from the last ``LOOKBACK`` candles of each symbol (what an incremental
    update reads)."""
    eth = public_frame(read_recorded(ETH_FILE), "ETH/USDT")
    start, end = btc["ts"].iloc[5000], btc["ts"].iloc[5300]
    missing = btc["ts"].iloc[5200]  # a hole in the reference of ETH
    candles = pd.concat(
        [
            btc.loc[btc["ts"].between(start, end) & btc["ts"].ne(missing)],
            eth.loc[eth["ts"].between(start, end)],
        ],
        ignore_index=True,
    )
    candles = with_test_order_flow(candles)  # test data: the truncation checks cover the order flow too
    table = compute.feature_rows(candles)
    assert np.isfinite(table[ORDER_FLOW_FEATURES].to_numpy()).all()
    own = compute_features(candles).assign(symbol=lambda frame: frame["symbol"].astype(str))
    pd.testing.assert_frame_equal(table[own.columns], own, check_exact=True)  # every own row, unchanged
    assert list(table.columns) == [
        *compute.ROW_COLUMNS,
        *FEATURE_NAMES,
        *ORDER_FLOW_FEATURES,
        *compute.CROSS_FEATURES,
    ]
    eth_rows = table.loc[table["symbol"] == "ETH/USDT"]
    lost = eth_rows["as_of"].between(missing, missing + (LOOKBACK - 1) * HOUR)
    assert lost.sum() == LOOKBACK and eth_rows.loc[lost, compute.CROSS_FEATURES].isna().all(axis=None)
    assert np.isfinite(eth_rows.loc[~lost, compute.CROSS_FEATURES].to_numpy()).all()
    # a symbol whose reference is not configured keeps its rows, with NaN cross-asset inputs
    alone = compute.feature_rows(candles.loc[candles["symbol"] == "ETH/USDT"])
    assert len(alone) == len(eth_rows) and alone[compute.CROSS_FEATURES].isna().all(axis=None)

    keyed = table.set_index(["symbol", "as_of"])
    stamps = candles["ts"].drop_duplicates().sort_values().reset_index(drop=True)
    for cut in [
        missing + 3 * HOUR,
        *stamps.iloc[np.random.default_rng(5).choice(np.arange(LOOKBACK, 300), 4)],
    ]:
        for window in (
            candles.loc[candles["ts"] <= cut],
            candles.loc[candles["ts"].between(cut - 24 * HOUR, cut)],
        ):
            rows = compute.feature_rows(window)
            newest = rows.loc[rows["as_of"] == cut].set_index(["symbol", "as_of"])
            assert len(newest) == (table["as_of"] == cut).sum() > 0
            pd.testing.assert_frame_equal(newest, keyed.loc[newest.index], check_exact=True)
