import pytest
from pydantic import ValidationError

from hourcast import timeframe
from hourcast.data import candles
from hourcast.settings import Settings


def test_timeframe_ms_parses_ccxt_notation() -> None:
    assert timeframe.timeframe_ms("1h") == 3_600_000
    assert timeframe.timeframe_ms("15m") == 900_000
    assert timeframe.timeframe_ms("1d") == 86_400_000
    with pytest.raises(ValueError, match="unsupported timeframe"):
        timeframe.timeframe_ms("hourly")


def test_frame_from_ohlcv_types_and_keeps_malformed_values_as_nan() -> None:
    rows = [[1704067200000, "1.5", 2, 1, 1.5, 3], [1704070800000, "oops", 2, 1, None, 3]]
    frame = candles.frame_from_ohlcv(rows, "binance", "BTC/USDT", "1h")
    assert list(frame.columns) == candles.CANDLE_COLUMNS
    assert str(frame["ts"].dtype) == "datetime64[ms, UTC]"
    assert frame.loc[0, "open"] == 1.5
    assert frame.loc[1, ["open", "close"]].isna().all()
    assert len(frame) == 2


def test_frame_from_ohlcv_keeps_order_flow_and_null_where_there_is_none() -> None:
    """Rows with the order flow (as ``CandleSource.page`` cuts Binance klines) keep it; a null is NaN, as
    is every order-flow value of a plain ``fetch_ohlcv`` row."""
    rows = [
        [1704067200000, "1.5", "2", "1", "1.5", "3", "4.5", 7, "1.2", "1.8"],
        [1704070800000, "1.5", "2", "1", "1.5", "3", None, None, None, None],
        [1704074400000, 1.5, 2, 1, 1.5, 3],
    ]
    frame = candles.frame_from_ohlcv(rows, "binance", "BTC/USDT", "1h")
    assert frame.loc[0, candles.ORDER_FLOW_COLUMNS].tolist() == [4.5, 7.0, 1.2, 1.8]
    assert frame.loc[1:, candles.ORDER_FLOW_COLUMNS].isna().all(axis=None)
    assert (frame.dtypes[candles.ORDER_FLOW_COLUMNS] == "float64").all()


def test_closed_only_uses_the_exchange_clock() -> None:
    rows = [[1704067200000, 1, 1, 1, 1, 1], [1704070800000, 1, 1, 1, 1, 1]]
    frame = candles.frame_from_ohlcv(rows, "binance", "BTC/USDT", "1h")
    assert len(candles.closed_only(frame, "1h", 1704074400000)) == 2
    assert len(candles.closed_only(frame, "1h", 1704074399999)) == 1
    assert candles.last_closed_open_ms("1h", 1704074399999) == 1704067200000


def test_supported_timeframes_and_their_ingest_schedules() -> None:
    assert {tf: timeframe.cron_for(tf) for tf in timeframe.SUPPORTED_TIMEFRAMES} == {
        "15m": "5,20,35,50 * * * *",
        "30m": "5,35 * * * *",
        "1h": "5 * * * *",
        "2h": "5 */2 * * *",
        "4h": "5 */4 * * *",
        "1d": "5 0 * * *",
    }
    assert Settings(timeframe="4h").timeframe == "4h" and Settings(timeframe="15m").timeframe == "15m"
    for unsupported in ("3h", "1w", "hourly"):
        with pytest.raises(
            ValidationError, match=f"timeframe '{unsupported}' is not supported: use one of 15m"
        ):
            Settings(timeframe=unsupported)
    with pytest.raises(ValueError, match="not supported"):
        timeframe.cron_for("7m")
