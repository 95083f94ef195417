"""Recorded candles for the replay exchange: the candle files (``timestamp,open,high,low,close,volume``,
optionally with the four order-flow columns), the ``SYMBOL=PATH`` option naming them, and the synthetic
symbols ``SYN001/USDT``.. derived from them for scale runs.

May import: ``hourcast.data.candles`` and the replay's ``binance`` module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from hourcast.data.candles import ORDER_FLOW_COLUMNS
from hourcast.dev.replay.binance import market_id
from hourcast.errors import UsageError, UserError

FILE_COLUMNS = ["timestamp", "open", "high", "low", "close", "volume"]


def _bad_row(path: str | Path, raw: pd.Series, parsed: pd.Series, expected: str) -> UserError:
    """The error naming the file, the line (header = line 1) and the first value of ``raw`` that did not
    parse (null in ``parsed`` but not in ``raw``)."""
    index = int((parsed.isna() & raw.notna()).to_numpy().argmax())
    return UserError(
        f"{path}, line {index + 2}: {raw.name} {raw.iloc[index]!r} is not {expected}; "
        "fix the row or leave it out of the file"
    )


def parse_timestamps(values: pd.Series, path: str | Path = "<data>") -> pd.Series:
    """Open times as UTC: epoch milliseconds (integers), or ISO-8601 text of any precision, mixed freely
    (``2020-01-01T04:00:00Z`` beside ``2020-01-01T09:28:14.789Z``; no offset means UTC).
    ``UserError`` naming the file, the line and the first value that is neither."""
    if pd.api.types.is_numeric_dtype(values):
        return pd.to_datetime(values, unit="ms", utc=True).astype("datetime64[ms, UTC]")
    try:
        return pd.to_datetime(values, utc=True, format="ISO8601").astype("datetime64[ms, UTC]")
    except (ValueError, TypeError):
        parsed = pd.Series([_timestamp_or_none(value) for value in values], dtype=object)
        raise _bad_row(path, values, parsed, "an ISO-8601 UTC timestamp or epoch milliseconds") from None


def _timestamp_or_none(value: object) -> pd.Timestamp | None:
    try:
        return pd.to_datetime(pd.Series([value]), utc=True, format="ISO8601").iloc[0]
    except (ValueError, TypeError):
        return None


def load_candles_file(path: str | Path) -> pd.DataFrame:
    """Read a ``timestamp,open,high,low,close,volume`` CSV (optionally .gz), optionally with the order flow
    ``quote_volume,trades,taker_buy_base,taker_buy_quote`` (all four; an empty cell is a candle without
    it), into a sorted frame with columns ``ts`` (UTC) and the float values. ``UserError`` (one line naming
    the file, and the line of a bad row) if it is not such a file."""
    try:
        raw = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        reason = " ".join(str(error).split())
        raise UserError(f"{path} is not a candles CSV ({reason}); fix the file") from None
    missing = [column for column in FILE_COLUMNS if column not in raw.columns]
    if missing:
        raise UserError(f"{path}: missing columns {missing}; give it the header {','.join(FILE_COLUMNS)}")
    flow = [column for column in ORDER_FLOW_COLUMNS if column in raw.columns]
    if flow and flow != ORDER_FLOW_COLUMNS:
        absent = [column for column in ORDER_FLOW_COLUMNS if column not in flow]
        raise UserError(f"{path}: order-flow columns come all four or none; {absent} missing: add or drop")
    frame = pd.DataFrame({"ts": parse_timestamps(raw["timestamp"], path)})
    for column in [*FILE_COLUMNS[1:], *flow]:
        values = pd.to_numeric(raw[column], errors="coerce")
        if (values.isna() & raw[column].notna()).any():
            raise _bad_row(path, raw[column], values, "a number")
        frame[column] = values.astype("float64")
    return frame.sort_values("ts", kind="stable").drop_duplicates("ts", keep="last").reset_index(drop=True)


SYNTHETIC_QUOTE = "USDT"
SYNTHETIC_ROTATION_HOURS = 97
"""Candles each synthetic symbol is rotated by, times its number (a prime: no two rotations coincide)."""


def synthetic_symbol(number: int) -> str:
    """``SYN001/USDT`` for 1: the name of synthetic symbol ``number`` (1-based)."""
    return f"SYN{number:03d}/{SYNTHETIC_QUOTE}"


def synthetic_datasets(count: int, recorded: Mapping[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """``count`` SYNTHETIC symbols ``SYN001/USDT``.. derived from recorded candle frames, for scale runs.

    They are not markets of any exchange. Symbol ``k`` takes recorded series ``(k - 1) % len(recorded)``
    (in the given order) on the same open times, its candles rotated by ``k * 97`` positions (the
    candles rotated past the end wrap round to the start, rescaled so the join is continuous), its prices
    multiplied by ``10 ** -(k % 4)`` and its quote volume divided by ``k`` (``SYN001`` is the most liquid),
    so every symbol has a series of its own covering the whole recorded span. Order flow, if the recorded
    series has it, follows: base volumes scaled as the volume, quote volumes as price times volume, the
    number of trades divided by ``k``.
    """
    if count < 0 or count > 999:
        raise ValueError(f"synthetic symbols number 0..999, got {count}")
    sources = list(recorded.values())
    if count and not sources:
        raise ValueError("synthetic symbols need at least one recorded series")
    prices = ["open", "high", "low", "close"]
    datasets: dict[str, pd.DataFrame] = {}
    for number in range(1, count + 1):
        source = sources[(number - 1) % len(sources)]
        values = source[prices].to_numpy(dtype="float64")
        volume = source["volume"].to_numpy(dtype="float64")
        shift = number * SYNTHETIC_ROTATION_HOURS % len(source)
        wrapped = values[len(source) - shift :] * (values[0, 0] / values[-1, 3])  # ends where the head opens
        scale = 10.0 ** -(number % 4)
        frame = pd.DataFrame(np.vstack([wrapped, values[: len(source) - shift]]) * scale, columns=prices)
        frame["volume"] = np.concatenate([volume[len(source) - shift :], volume[: len(source) - shift]])
        frame["volume"] /= scale * number  # quote volume (price x volume) shrinks as 1 / number
        if all(column in source for column in ORDER_FLOW_COLUMNS):
            flow = source[ORDER_FLOW_COLUMNS].to_numpy(dtype="float64")
            flow = np.vstack([flow[len(source) - shift :], flow[: len(source) - shift]])
            flow[:shift, [0, 3]] *= values[0, 0] / values[-1, 3]  # quote volumes of the rescaled part
            flow /= np.array([number, number, scale * number, number])
            frame[ORDER_FLOW_COLUMNS] = flow
        frame.insert(0, "ts", source["ts"].reset_index(drop=True))
        datasets[synthetic_symbol(number)] = frame
    return datasets


def parse_data_option(value: str) -> tuple[str, Path]:
    """Parse ``SYMBOL=PATH`` such as ``BTC/USDT=data/btc.csv.gz`` into ``("BTC/USDT", Path)``."""
    symbol, sep, path = value.partition("=")
    symbol = symbol.strip().upper()
    try:
        market_id(symbol)  # a ValueError unless BASE/QUOTE
        well_formed = bool(sep and path.strip())
    except ValueError:
        well_formed = False
    if not well_formed:
        raise UsageError(f"--data {value!r} is not SYMBOL=PATH; write it like BTC/USDT=btc.csv.gz")
    return symbol, Path(path.strip())
