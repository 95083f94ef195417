"""The order-flow signals of ``hourcast.features.compute`` on small hand-made frames: each function against an
independent pandas rolling computation, a zero-volume candle (an outage) giving NaN only where it divides,
and no look-ahead (a row at T is the same whatever the candles after T hold, and from the candles up to T)."""

from __future__ import annotations

from functools import partial

import numpy as np
import pandas as pd
import pytest

from hourcast.features import compute
from hourcast.features.compute import LOOKBACK, ORDER_FLOW_FEATURES, compute_features

N = LOOKBACK + 15


def flow_candles(n: int = N, seed: int = 5) -> pd.DataFrame:
    """``n`` hourly BTC/USDT candles with made-up (test) prices and order flow that move every signal."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    volume = rng.uniform(50.0, 150.0, n)
    return pd.DataFrame(
        {
            "symbol": pd.Series(["BTC/USDT"] * n, dtype="string"),
            "ts": pd.date_range("2024-03-04", periods=n, freq="h", tz="UTC").astype("datetime64[ms, UTC]"),
            "open": close * 0.999,
            "high": close * 1.002,
            "low": close * 0.997,
            "close": close,
            "volume": volume,
            "quote_volume": volume * close,
            "trades": np.round(volume * rng.uniform(20.0, 80.0, n)),
            "taker_buy_base": volume * rng.uniform(0.3, 0.7, n),
            "taker_buy_quote": np.nan,
        }
    )


def by_rolling(candles: pd.DataFrame) -> pd.DataFrame:
    """Every order-flow signal per candle, from pandas rolling windows (not the lag blocks), by ``ts``."""
    volume, trades, taker = candles["volume"], candles["trades"], candles["taker_buy_base"]
    mean_volume = volume.rolling(24).mean()
    size = np.log((volume / trades) / (volume.rolling(24).sum() / trades.rolling(24).sum()))
    intensity = np.log(trades / trades.rolling(24).mean())
    share = {span: taker.rolling(span).sum() / volume.rolling(span).sum() for span in (1, 3, 6, 12)}
    values = {
        **{f"taker_buy_share_{span}h": share[span] for span in share},
        **{f"net_taker_flow_{s}h": (2 * taker - volume).rolling(s).sum() / mean_volume for s in (1, 6)},
        "trades_per_volume_12h": np.log(
            (trades / volume) / (trades.rolling(12).sum() / volume.rolling(12).sum())
        ),
        "trade_intensity_24h": intensity,
        "trade_intensity_change_1h": intensity.diff(),
        "trade_size_24h": size,
        "trade_size_change_1h": size.diff(),
        "taker_buy_share_change_1h": share[1].diff(),
    }
    return pd.DataFrame(values).set_index(candles["ts"].rename("as_of"))


def test_the_signal_groups_are_the_one_list_of_order_flow_features() -> None:
    grouped = [name for names in compute.ORDER_FLOW_SIGNALS.values() for name in names]
    assert list(dict.fromkeys(grouped)) == ORDER_FLOW_FEATURES and len(ORDER_FLOW_FEATURES) == 12
    assert ORDER_FLOW_FEATURES[:3] == ["taker_buy_share_1h", "taker_buy_share_12h", "trades_per_volume_12h"]
    assert [*compute.FEATURE_NAMES, *ORDER_FLOW_FEATURES, *compute.CROSS_FEATURES] == compute.FEATURE_COLUMNS
    assert not set(ORDER_FLOW_FEATURES) & set(compute.FEATURE_NAMES)  # never a default model input here


def test_each_signal_equals_its_rolling_definition() -> None:
    candles = flow_candles()
    table = compute_features(candles).set_index("as_of")
    assert len(table) == N - (LOOKBACK - 1)
    expected = by_rolling(candles).loc[table.index]
    assert np.isfinite(table[ORDER_FLOW_FEATURES].to_numpy()).all()
    for name in ORDER_FLOW_FEATURES:
        np.testing.assert_allclose(table[name], expected[name], rtol=1e-9, atol=1e-12, err_msg=name)


def test_the_functions_on_lag_blocks_by_hand() -> None:
    # lag blocks: row 0 is the last candle, one column per feature row
    volumes = np.array([[10.0], [20.0], [30.0]])
    taker = np.array([[6.0], [5.0], [15.0]])
    trades = np.array([[40.0], [10.0], [10.0]])
    assert compute.taker_buy_share(taker, volumes, 1)[0] == pytest.approx(0.6)
    assert compute.taker_buy_share(taker, volumes, 3)[0] == pytest.approx(26 / 60)
    assert compute.trade_intensity(trades, 3)[0] == pytest.approx(np.log(40 / 20))
    assert compute.trade_size(trades, volumes, 3)[0] == pytest.approx(np.log((10 / 40) / (60 / 60)))
    assert compute.trades_per_volume(trades, volumes, 2)[0] == pytest.approx(np.log((40 / 10) / (50 / 30)))
    change = compute.one_candle_change(partial(compute.taker_buy_share, span=1), taker, volumes)
    assert change[0] == pytest.approx(0.6 - 0.25)
    block = np.full((compute.FLOW_SPAN, 1), 10.0)
    block_taker = np.full((compute.FLOW_SPAN, 1), 5.0)
    block_taker[0] = 8.0  # the last candle: 8 bought, 2 sold by takers, mean volume 10
    assert compute.net_taker_flow(block_taker, block, 1)[0] == pytest.approx(0.6)
    assert compute.net_taker_flow(block_taker, block, 6)[0] == pytest.approx(0.6)


def test_an_outage_candle_gives_nan_only_where_it_divides_and_keeps_its_rows() -> None:
    candles = flow_candles()
    outage = LOOKBACK + 5  # flat, zero volume and trades, as Binance published 2023-03-24 12:00
    candles.loc[outage, ["volume", "quote_volume", "trades", "taker_buy_base"]] = 0.0
    table = compute_features(candles).set_index("as_of")
    assert len(table) == N - (LOOKBACK - 1)
    at, after = table.loc[candles["ts"][outage]], table.loc[candles["ts"][outage + 1]]
    assert set(at.index[at.isna()]) == {
        "taker_buy_share_1h",
        "trades_per_volume_12h",
        "trade_intensity_24h",
        "trade_intensity_change_1h",
        "trade_size_24h",
        "trade_size_change_1h",
        "taker_buy_share_change_1h",
    }
    assert set(after.index[after.isna()]) == {
        "trade_intensity_change_1h",
        "trade_size_change_1h",
        "taker_buy_share_change_1h",
    }
    later = table.loc[table.index > candles["ts"][outage + 1], ORDER_FLOW_FEATURES]
    assert np.isfinite(later.to_numpy()).all()


def test_no_look_ahead_a_row_uses_only_candles_up_to_its_own() -> None:
    candles = flow_candles()
    full = compute_features(candles).set_index("as_of", drop=False)
    rng = np.random.default_rng(9)
    for position in range(LOOKBACK - 1, N):
        stamp = candles["ts"][position]
        expected = full.loc[[stamp]].reset_index(drop=True)
        # the candles after T replaced by anything: the row at T does not move
        changed = candles.copy()
        later = changed.index > position
        for column in ("volume", "trades", "taker_buy_base", "close"):
            changed.loc[later, column] = changed.loc[later, column] * rng.uniform(0.1, 10.0, later.sum())
        moved = compute_features(changed).set_index("as_of", drop=False).loc[[stamp]].reset_index(drop=True)
        pd.testing.assert_frame_equal(moved, expected, check_exact=True)
        # and from the candles up to T, or only the last LOOKBACK of them (what serving reads)
        prefix = compute_features(candles.iloc[: position + 1]).iloc[[-1]].reset_index(drop=True)
        pd.testing.assert_frame_equal(prefix, expected, check_exact=True)
        online = compute_features(candles.iloc[position + 1 - LOOKBACK : position + 1])
        pd.testing.assert_frame_equal(online, expected, check_exact=True)
