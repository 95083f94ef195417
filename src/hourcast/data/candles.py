"""Pure functions over candle frames: schema, parsing, closedness, gaps.

A *candle frame* is a pandas DataFrame with the columns of ``CANDLE_COLUMNS``:
``exchange, symbol, timeframe`` (str), ``ts`` (open time, tz-aware UTC),
``open, high, low, close, volume`` (float64) and the order flow ``ORDER_FLOW_COLUMNS``
``quote_volume, trades, taker_buy_base, taker_buy_quote`` (float64, NaN where the exchange does not
publish them: only Binance's raw klines carry them, see ``exchange.CandleSource.pages``). Nothing here
does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from hourcast.timeframe import timeframe_ms

KEY_COLUMNS = ["exchange", "symbol", "timeframe", "ts"]
PRICE_COLUMNS = ["open", "high", "low", "close"]
VALUE_COLUMNS = [*PRICE_COLUMNS, "volume"]
ORDER_FLOW_COLUMNS = ["quote_volume", "trades", "taker_buy_base", "taker_buy_quote"]
"""Binance klines' fields 7..10 (quote volume, number of trades, taker-buy base and quote volume), which
ccxt's ``fetch_ohlcv`` drops; NaN for an exchange (or a stored candle) without them."""
CANDLE_COLUMNS = [*KEY_COLUMNS, *VALUE_COLUMNS, *ORDER_FLOW_COLUMNS]
PUBLIC_COLUMNS = ["symbol", "ts", *VALUE_COLUMNS, *ORDER_FLOW_COLUMNS]


def to_ms(moment: pd.Timestamp | str) -> int:
    """Milliseconds since the epoch of a timestamp (naive values are taken as UTC)."""
    stamp = pd.Timestamp(moment)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value // 1_000_000)


def to_utc(moment: object) -> pd.Timestamp:
    """A date, time or ISO string as a UTC timestamp (a naive value is taken as UTC)."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


# An ISO-8601 date, or date and time with an optional offset (UTC when none): what users may give.
_ISO_MOMENT = re.compile(r"\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?")
ISO_EXAMPLE = "use e.g. 2024-01-01 or 2024-01-01T05:00Z"


def parse_moment(text: str, name: str) -> pd.Timestamp:
    """The one parser of a user's date or time (``--since``, the ``backfill`` deployment's ``since``): an
    ISO-8601 date or time as UTC; anything else (``2024/01/01``, ``yesterday``) is a ``UserError`` naming
    ``name``."""
    from hourcast.errors import UserError

    value = str(text).strip()
    if not _ISO_MOMENT.fullmatch(value):
        raise UserError(f"{name}={text!r} is not an ISO date or time; {ISO_EXAMPLE}")
    try:
        return to_utc(value)
    except ValueError as error:  # e.g. 2024-02-30
        raise UserError(f"{name}={text!r} is not a valid date or time: {error}; {ISO_EXAMPLE}") from None


def from_ms(ms: int) -> pd.Timestamp:
    """UTC timestamp of an epoch-milliseconds value."""
    return pd.Timestamp(ms, unit="ms", tz="UTC")


def empty_frame() -> pd.DataFrame:
    """A candle frame with no rows and the right dtypes."""
    return pd.DataFrame(
        {
            "exchange": pd.Series(dtype="string"),
            "symbol": pd.Series(dtype="string"),
            "timeframe": pd.Series(dtype="string"),
            "ts": pd.Series(dtype="datetime64[ms, UTC]"),
            **{column: pd.Series(dtype="float64") for column in [*VALUE_COLUMNS, *ORDER_FLOW_COLUMNS]},
        }
    )


def with_order_flow(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every ``ORDER_FLOW_COLUMNS`` column it lacks added as NaN (float64), e.g. candles from
    a source that gives no order flow; the same object when it has them all."""
    missing = [column for column in ORDER_FLOW_COLUMNS if column not in frame.columns]
    if not missing:
        return frame
    return frame.assign(**{column: pd.Series(float("nan"), index=frame.index) for column in missing})


def _number(value: object) -> float:
    """A float, or NaN for anything that is not a finite-looking number."""
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")


def frame_from_ohlcv(
    rows: Sequence[Sequence[object]], exchange: str, symbol: str, timeframe: str
) -> pd.DataFrame:
    """Build a candle frame from ccxt ``fetch_ohlcv`` rows ``[ts_ms, o, h, l, c, v]``, or rows that go on
    with the order flow ``[..., quote_volume, trades, taker_buy_base, taker_buy_quote]``.

    Values that are not numbers become NaN (validation rejects them where a value is required; order flow
    may be null); nothing is dropped.
    """
    if not rows:
        return empty_frame()
    stamps = [_number(row[0]) if len(row) > 0 else float("nan") for row in rows]
    values = {
        column: [_number(row[i + 1]) if len(row) > i + 1 else float("nan") for row in rows]
        for i, column in enumerate([*VALUE_COLUMNS, *ORDER_FLOW_COLUMNS])
    }
    frame = pd.DataFrame(
        {
            "exchange": pd.Series([exchange] * len(rows), dtype="string"),
            "symbol": pd.Series([symbol] * len(rows), dtype="string"),
            "timeframe": pd.Series([timeframe] * len(rows), dtype="string"),
            "ts": pd.to_datetime(pd.Series(stamps, dtype="float64"), unit="ms", utc=True).astype(
                "datetime64[ms, UTC]"
            ),
            **{column: pd.Series(values[column], dtype="float64") for column in values},
        }
    )
    return frame


def slot_ms(open_ms: pd.Series | int, timeframe: str) -> pd.Series | int:
    """The grid period an open time falls in (its open time floored to the timeframe), epoch ms.

    An off-grid candle (10:30 in an hourly feed) belongs to the 10:00 period: it is fetched, judged and
    closed with it, so it reaches validation (and the quarantine) instead of slipping between two runs.
    """
    step = timeframe_ms(timeframe)
    return open_ms // step * step


def closed_only(frame: pd.DataFrame, timeframe: str, exchange_now_ms: int) -> pd.DataFrame:
    """Keep the candles whose period has ended by the exchange's clock."""
    if frame.empty:
        return frame
    close_ms = slot_ms(ts_ms(frame), timeframe) + timeframe_ms(timeframe)
    return frame.loc[close_ms <= exchange_now_ms].reset_index(drop=True)


def last_closed_open_ms(timeframe: str, exchange_now_ms: int) -> int:
    """Open time of the most recent candle that is closed at ``exchange_now_ms``."""
    step = timeframe_ms(timeframe)
    return (exchange_now_ms // step) * step - step


def ts_ms(frame: pd.DataFrame) -> pd.Series:
    """The ``ts`` column as epoch milliseconds (int64)."""
    return frame["ts"].dt.as_unit("ms").astype("int64")


@dataclass(frozen=True)
class Gap:
    """A run of missing candles: ``start`` is the first missing open time, ``missing`` how many."""

    start: pd.Timestamp
    missing: int
