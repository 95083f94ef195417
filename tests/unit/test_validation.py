"""Candle batch validation: the GX suite accepts real data and each rule rejects the batch breaking it."""

from __future__ import annotations

import html
import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from hourcast.data.candles import frame_from_ohlcv, ts_ms
from hourcast.data.validation import (
    SUITE_NAME,
    CandleValidator,
    ValidationReport,
    build_candle_suite,
    render_html,
    write_report,
)
from hourcast.timeframe import timeframe_ms
from tests.support.data import BTC_FILE

DATA = BTC_FILE
ROWS = 1000
HOUR_MS = timeframe_ms("1h")
COLUMNS_RULE = (
    "columns are exactly exchange, symbol, timeframe, ts, open, high, low, close, volume, "
    "quote_volume, trades, taker_buy_base, taker_buy_quote"
)


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    """The first ``ROWS`` real BTC/USDT hourly candles as a candle frame."""
    raw = pd.read_csv(DATA, nrows=ROWS)
    stamps = pd.to_datetime(raw["timestamp"], utc=True).astype("datetime64[ms, UTC]").astype("int64")
    values = raw[["open", "high", "low", "close", "volume"]].to_numpy().tolist()
    rows = [[stamp, *row] for stamp, row in zip(stamps.tolist(), values, strict=True)]
    return frame_from_ohlcv(rows, "binance", "BTC/USDT", "1h")


@pytest.fixture(scope="module")
def now_ms(candles: pd.DataFrame) -> int:
    """The exchange clock at the exact close of the last candle (every candle is closed)."""
    return int(ts_ms(candles).iloc[-1]) + HOUR_MS


@pytest.fixture(scope="module")
def validator() -> CandleValidator:
    return CandleValidator("1h")


@pytest.fixture(scope="module")
def alone(
    validator: CandleValidator, candles: pd.DataFrame, now_ms: int
) -> Callable[[Callable[[pd.DataFrame], pd.DataFrame], int], tuple[pd.DataFrame, ValidationReport]]:
    """``alone(breaker, now_shift_ms)``: the broken batch and its report when validated on its own, made once
    per breaker (validation is deterministic; three tests read each report)."""
    made: dict[tuple[Callable, int], tuple[pd.DataFrame, ValidationReport]] = {}

    def broken_and_report(
        breaker: Callable[[pd.DataFrame], pd.DataFrame], now_shift_ms: int
    ) -> tuple[pd.DataFrame, ValidationReport]:
        if (breaker, now_shift_ms) not in made:
            broken = breaker(candles.copy())
            made[breaker, now_shift_ms] = broken, validator.validate(broken, now_ms + now_shift_ms)
        return made[breaker, now_shift_ms]

    return broken_and_report


def _row(frame: pd.DataFrame, bullish: bool) -> int:
    """Index of a candle whose close is more than 10 above (bullish) or below its open."""
    move = frame["close"] - frame["open"]
    return int((move > 10 if bullish else move < -10).idxmax())


def _set(column: str, value: Callable[[pd.DataFrame, int], object], bullish: bool = True) -> Callable:
    """A breaker setting ``column`` of one (bullish or bearish) candle to ``value(frame, row)``."""

    def breaker(frame: pd.DataFrame) -> pd.DataFrame:
        row = _row(frame, bullish)
        frame.loc[row, column] = value(frame, row)
        return frame

    return breaker


BREAKERS = [
    pytest.param(
        lambda f: f.drop(columns="volume"),
        0,
        [
            COLUMNS_RULE,
            "volume has dtype float64",
            "volume is not null",
            "volume >= 0",
        ],
        id="missing-column",
    ),
    pytest.param(lambda f: f.assign(extra=1), 0, [COLUMNS_RULE], id="extra-column"),
    pytest.param(
        lambda f: f.astype({"exchange": object}), 0, ["exchange has dtype string"], id="object-dtype"
    ),
    pytest.param(
        lambda f: f.astype({"ts": "datetime64[ns, UTC]"}),
        0,
        ["ts has dtype datetime64[ms, UTC]"],
        id="ts-unit-dtype",
    ),
    pytest.param(_set("close", lambda f, r: float("nan")), 0, ["close is not null"], id="null-close"),
    pytest.param(_set("symbol", lambda f, r: pd.NA), 0, ["symbol is not null"], id="null-symbol"),
    pytest.param(_set("low", lambda f, r: 0.0), 0, ["low > 0"], id="non-positive-price"),
    pytest.param(
        _set("high", lambda f, r: f.loc[r, "close"] - 0.5), 0, ["high >= close"], id="high-below-close"
    ),
    pytest.param(
        _set("high", lambda f, r: f.loc[r, "open"] - 0.5, bullish=False),
        0,
        ["high >= open"],
        id="high-below-open",
    ),
    pytest.param(_set("low", lambda f, r: f.loc[r, "open"] + 0.5), 0, ["low <= open"], id="low-above-open"),
    pytest.param(
        _set("low", lambda f, r: f.loc[r, "close"] + 0.5, bullish=False),
        0,
        ["low <= close"],
        id="low-above-close",
    ),
    pytest.param(_set("volume", lambda f, r: -1.0), 0, ["volume >= 0"], id="negative-volume"),
    pytest.param(_set("timeframe", lambda f, r: "4h"), 0, ["timeframe is 1h"], id="other-timeframe"),
    pytest.param(
        lambda f: pd.concat([f, f.iloc[[5]]], ignore_index=True),
        0,
        ["(exchange, symbol, timeframe, ts) is unique"],
        id="duplicated-key",
    ),
    pytest.param(
        _set("ts", lambda f, r: f.loc[r, "ts"] + pd.Timedelta(minutes=30)),
        0,
        ["ts is aligned to 1h"],
        id="ts-not-aligned",
    ),
    pytest.param(lambda f: f, -1, ["candle is closed at exchange_now_ms"], id="candle-not-closed"),
]


def test_suite_builds_on_its_own() -> None:
    suite = build_candle_suite("1h")
    rules = [expectation.meta["rule"] for expectation in suite.expectations]
    assert suite.name == SUITE_NAME
    assert len(rules) == len(set(rules))
    assert all(expectation.description for expectation in suite.expectations)


def test_importing_module_does_not_import_great_expectations() -> None:
    code = "import sys, hourcast.data.validation; sys.exit('great_expectations' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_real_data_passes(validator: CandleValidator, candles: pd.DataFrame, now_ms: int) -> None:
    report = validator.validate(candles, now_ms)
    assert report.success, report.failures
    assert report.failures == []
    assert report.rows == ROWS
    assert report.result["success"] is True


def test_single_latest_candle_passes(validator: CandleValidator, candles: pd.DataFrame, now_ms: int) -> None:
    report = validator.validate(candles.tail(1), now_ms)
    assert report.success, report.failures
    assert report.rows == 1


@pytest.mark.parametrize(("breaker", "now_shift_ms", "rules"), BREAKERS)
def test_each_rule_rejects_the_batch_breaking_it(
    alone: Callable, breaker: Callable[[pd.DataFrame], pd.DataFrame], now_shift_ms: int, rules: list[str]
) -> None:
    _, report = alone(breaker, now_shift_ms)
    assert not report.success
    assert [line.split(": ")[0] for line in report.failures] == rules, report.failures
    assert json.loads(json.dumps(report.result))["success"] is False


def test_failure_names_rule_row_count_and_examples(validator: CandleValidator, candles: pd.DataFrame) -> None:
    batch = candles.copy()
    batch.loc[[3, 4, 5, 6], "volume"] = -1.0
    report = validator.validate(batch, int(ts_ms(candles).iloc[-1]) + HOUR_MS)
    assert report.failures == [
        f"volume >= 0: 4 of {ROWS} rows fail "
        "(e.g. ts=2024-01-01T03:00:00Z, 2024-01-01T04:00:00Z, 2024-01-01T05:00:00Z)"
    ]


def test_report_json_is_serialisable(validator: CandleValidator, candles: pd.DataFrame, now_ms: int) -> None:
    batch = candles.drop(columns="volume")
    batch.loc[2, "close"] = float("nan")
    report = validator.validate(batch, now_ms)
    assert not report.success
    assert json.loads(json.dumps(report.result))["success"] is False


def test_write_report_writes_json_and_html(
    validator: CandleValidator, candles: pd.DataFrame, now_ms: int, tmp_path: Path
) -> None:
    batch = candles.copy()
    row = _row(batch, bullish=True)
    batch.loc[row, "high"] = batch.loc[row, "close"] - 0.5
    report = validator.validate(batch, now_ms)

    json_path, html_path = write_report(report, tmp_path / "reports", "btc-1h")

    assert (json_path.name, html_path.name) == ("btc-1h.json", "btc-1h.html")
    assert sorted(path.name for path in json_path.parent.iterdir()) == ["btc-1h.html", "btc-1h.json"]
    assert ValidationReport(**json.loads(json_path.read_text())) == report
    page = html.unescape(html_path.read_text())
    assert "high >= close: high >= max(open, close)" in page


BATCH_BREAKERS = {"missing-column", "extra-column", "object-dtype", "ts-unit-dtype", "other-timeframe"}


@pytest.mark.parametrize(("breaker", "now_shift_ms", "rules"), BREAKERS)
def test_row_rules_name_their_rows_and_batch_rules_condemn_the_batch(
    request: pytest.FixtureRequest,
    alone: Callable,
    candles: pd.DataFrame,
    breaker: Callable[[pd.DataFrame], pd.DataFrame],
    now_shift_ms: int,
    rules: list[str],
) -> None:
    name = request.node.callspec.id
    broken, report = alone(breaker, now_shift_ms)
    if name in BATCH_BREAKERS or name == "candle-not-closed":
        assert report.batch_failed, report.failures
        return
    assert not report.batch_failed, report.failures
    reference = candles.reindex(broken.index)
    same = broken.eq(reference).astype("boolean").fillna(False) | (broken.isna() & reference.isna())
    expected = sorted(set(np.flatnonzero(~same.all(axis=1))))
    if name == "duplicated-key":
        expected = [5, len(broken) - 1]  # both rows of the key: which one is right cannot be told
    assert report.rejected_rows == expected


def test_a_zero_volume_candle_is_valid(
    validator: CandleValidator, candles: pd.DataFrame, now_ms: int
) -> None:
    flat = candles.copy()
    flat.loc[10, ["open", "high", "low", "close"]] = flat.loc[9, "close"]
    flat.loc[10, "volume"] = 0.0
    assert validator.validate(flat, now_ms).success


def test_order_flow_may_be_null_and_is_checked_where_present(
    validator: CandleValidator, candles: pd.DataFrame
) -> None:
    """Order flow (test values derived from the candles): null passes (the recorded candles have none),
    a negative value or a taker-buy volume above the total is a row failure."""
    assert candles[["quote_volume", "trades", "taker_buy_base", "taker_buy_quote"]].isna().all(axis=None)
    candles = candles.iloc[:50]
    flow = candles.assign(
        quote_volume=candles["volume"] * candles["close"],
        trades=np.floor(candles["volume"] * 30.0),
        taker_buy_base=candles["volume"] * 0.45,
        taker_buy_quote=candles["volume"] * 0.45 * candles["close"],
    )
    now_ms = int(ts_ms(flow).iloc[-1]) + HOUR_MS
    assert validator.validate(flow, now_ms).success
    flow.loc[3, "trades"] = -1.0
    flow.loc[7, "taker_buy_base"] = flow.loc[7, "volume"] * 1.01
    flow.loc[9, "taker_buy_quote"] = flow.loc[9, "quote_volume"] * 1.01
    flow.loc[11, ["quote_volume", "trades", "taker_buy_base", "taker_buy_quote"]] = float("nan")
    report = validator.validate(flow, now_ms)
    assert not report.batch_failed and report.rejected_rows == [3, 7, 9]
    assert report.failures == [
        "order flow >= 0, taker_buy_base <= volume, taker_buy_quote <= quote_volume: 3 of 50 rows fail "
        f"(e.g. ts={', '.join(flow['ts'].iloc[[3, 7, 9]].dt.strftime('%Y-%m-%dT%H:%M:%SZ'))})"
    ]


def _as_symbol(frame: pd.DataFrame, symbol: str) -> pd.DataFrame:
    return frame.assign(symbol=pd.Series([symbol] * len(frame), dtype="string", index=frame.index))


@pytest.mark.parametrize(("breaker", "now_shift_ms", "rules"), BREAKERS)
def test_one_run_over_many_symbols_reports_each_batch_as_if_alone(
    validator: CandleValidator,
    alone: Callable,
    candles: pd.DataFrame,
    now_ms: int,
    breaker: Callable[[pd.DataFrame], pd.DataFrame],
    now_shift_ms: int,
    rules: list[str],
) -> None:
    """Three symbols' batches, one broken, in one GX run: the broken batch gets the report it gets alone
    (same rows rejected, same batch verdict, same lines), the others pass; the same open times in other
    symbols are no duplicate key."""
    broken, by_itself = alone(breaker, now_shift_ms)
    others = [_as_symbol(candles.iloc[:300], "ETH/USDT"), _as_symbol(candles.iloc[:300], "SOL/USDT")]
    first, split, last = validator.validate_batches([others[0], broken, others[1]], now_ms + now_shift_ms)
    assert (split.success, split.batch_failed, split.rejected_rows, split.failures, split.rows) == (
        by_itself.success,
        by_itself.batch_failed,
        by_itself.rejected_rows,
        by_itself.failures,
        by_itself.rows,
    )
    assert first.success and last.success and not first.failures and first.rows == 300
    assert set(rules) <= {line.split(":")[0] for line in split.failures}
    assert split.result["success"] is split.success
    assert "<html" in render_html(split).lower()
