"""The replay exchange's order flow (fields 7..10 of a kline): served from the file's optional columns
(TEST DATA here, derived from the recorded candles), summed into longer intervals, scaled for synthetic
symbols, and null where the file has none: never invented."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hourcast.data.candles import ORDER_FLOW_COLUMNS
from hourcast.dev.replay.data import load_candles_file, synthetic_datasets
from hourcast.dev.replay.series import ReplayData
from hourcast.errors import UserError
from tests.support.order_flow import with_test_order_flow

HOUR_MS = 3_600_000


@pytest.fixture(scope="module")
def hourly(btc_recorded: pd.DataFrame) -> pd.DataFrame:
    """48 recorded candles from midnight with test order flow."""
    return with_test_order_flow(btc_recorded.iloc[:48].reset_index(drop=True))


def flow_fields(row: list) -> list:
    return row[7:11]


def test_order_flow_is_served_from_the_file_and_null_without_it(hourly: pd.DataFrame, tmp_path: Path) -> None:
    path = tmp_path / "flow.csv"
    hourly.rename(columns={"ts": "timestamp"}).to_csv(path, index=False, float_format="%.8f")
    data = ReplayData.from_frame(load_candles_file(path))
    now = int(data.open_ms[-1]) + HOUR_MS
    rows = data.klines(now, int(data.open_ms[0]), None, 1000)
    assert len(rows) == 48 and all(len(row) == 12 for row in rows)
    first = hourly.iloc[0]
    assert flow_fields(rows[0]) == [
        f"{first['quote_volume']:.8f}",
        int(first["trades"]),
        f"{first['taker_buy_base']:.8f}",
        f"{first['taker_buy_quote']:.8f}",
    ]
    # the candle in progress: order flow scaled like its volume
    partial = data.klines(int(data.open_ms[-1]) + HOUR_MS // 4, None, None, 1)[0]
    assert float(partial[5]) == pytest.approx(hourly["volume"].iloc[-1] / 4)
    assert float(partial[9]) == pytest.approx(hourly["taker_buy_base"].iloc[-1] / 4)

    bare = ReplayData.from_frame(hourly.drop(columns=ORDER_FLOW_COLUMNS))
    assert all(flow_fields(row) == [None] * 4 for row in bare.klines(now, None, None, 48))
    gappy = hourly.copy()
    gappy.loc[5, ORDER_FLOW_COLUMNS] = np.nan  # one candle without: null for it alone
    served = ReplayData.from_frame(gappy).klines(now, None, None, 48)
    assert flow_fields(served[5]) == [None] * 4 and None not in flow_fields(served[6])

    half = hourly.rename(columns={"ts": "timestamp"}).drop(columns=["trades"])
    half.to_csv(path, index=False)
    with pytest.raises(UserError, match="all four or none"):
        load_candles_file(path)


def test_order_flow_is_summed_into_longer_intervals(hourly: pd.DataFrame) -> None:
    data = ReplayData.from_frame(hourly)
    four = data.aggregate(4 * HOUR_MS)
    assert four.flow is not None and len(four.flow) == 12
    np.testing.assert_allclose(four.flow[0], hourly[ORDER_FLOW_COLUMNS].iloc[:4].sum().to_numpy())
    assert (four.flow[:, 2] <= four.volume).all()
    gappy = hourly.copy()
    gappy.loc[5, ORDER_FLOW_COLUMNS] = np.nan
    summed = ReplayData.from_frame(gappy).aggregate(4 * HOUR_MS).flow
    assert summed is not None and np.isnan(summed[1]).all() and not np.isnan(summed[[0, 2]]).any()
    assert ReplayData.from_frame(hourly.drop(columns=ORDER_FLOW_COLUMNS)).aggregate(4 * HOUR_MS).flow is None


def test_synthetic_symbols_scale_order_flow_like_their_volume(hourly: pd.DataFrame) -> None:
    """Symbol k is the source rotated by k * 97 candles (1 and 2 of these 48), prices and volumes
    rescaled: the taker-buy share and quote volume / (volume x close) move with their candle unchanged."""
    share = (hourly["taker_buy_base"] / hourly["volume"]).to_numpy()
    quote = (hourly["quote_volume"] / (hourly["volume"] * hourly["close"])).to_numpy()
    synthetic = synthetic_datasets(2, {"BTC/USDT": hourly})
    for shift, frame in enumerate(synthetic.values(), start=1):
        assert list(frame.columns) == ["ts", "open", "high", "low", "close", "volume", *ORDER_FLOW_COLUMNS]
        np.testing.assert_allclose(frame["taker_buy_base"] / frame["volume"], np.roll(share, shift))
        np.testing.assert_allclose(
            frame["quote_volume"] / (frame["volume"] * frame["close"]), np.roll(quote, shift)
        )
        np.testing.assert_allclose(frame["trades"], np.roll(hourly["trades"], shift) / shift)
    bare = synthetic_datasets(1, {"BTC/USDT": hourly.drop(columns=ORDER_FLOW_COLUMNS)})
    assert "quote_volume" not in bare["SYN001/USDT"]
