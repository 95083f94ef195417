"""Real ccxt.binance against the replay exchange on 127.0.0.1, serving the recorded BTC/USDT file."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import ccxt
import numpy as np
import pandas as pd
import pytest

from hourcast.dev.replay.data import load_candles_file, parse_data_option
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.series import ReplayData
from hourcast.dev.replay.server import ReplayServer
from hourcast.errors import UsageError
from tests.support.data import BTC_FILE as DATA_FILE
from tests.support.processes import wait_for

HOUR_MS = 3_600_000
SYMBOL = "BTC/USDT"


def ms(text: str) -> int:
    return int(pd.Timestamp(text).value // 1_000_000)


def rebase(urls: Any, base: str) -> Any:
    """Replace scheme://host of every URL string in a (nested) ccxt ``urls`` structure with ``base``."""
    if isinstance(urls, dict):
        return {key: rebase(value, base) for key, value in urls.items()}
    if isinstance(urls, str):
        parts = urlsplit(urls)
        return base + urls[len(f"{parts.scheme}://{parts.netloc}") :]
    return urls


@pytest.fixture(scope="module")
def candles() -> pd.DataFrame:
    assert DATA_FILE.exists(), f"recorded candles missing: {DATA_FILE}"
    return load_candles_file(DATA_FILE)


@pytest.fixture(scope="module")
def exchange(candles: pd.DataFrame) -> ReplayExchange:
    return ReplayExchange({SYMBOL: candles})


@pytest.fixture(scope="module")
def server(exchange: ReplayExchange) -> Iterator[ReplayServer]:
    with ReplayServer(exchange) as running:
        yield running


@pytest.fixture(scope="module")
def default_now(exchange: ReplayExchange) -> int:
    return exchange.now_ms()


@pytest.fixture(autouse=True)
def _reset(exchange: ReplayExchange, default_now: int) -> Iterator[None]:
    exchange.clear_faults()
    exchange.clock.set_speed(0.0)
    exchange.set_now(default_now)
    yield
    exchange.clear_faults()


@pytest.fixture
def client(server: ReplayServer) -> Callable[..., ccxt.binance]:
    def make(timeout: int = 2000) -> ccxt.binance:
        ex = ccxt.binance({"enableRateLimit": False, "timeout": timeout, "options": {"defaultType": "spot"}})
        ex.urls["api"] = rebase(ex.urls["api"], server.url)
        return ex

    return make


def control(server: ReplayServer, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(server.url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.loads(response.read())


def backfill(ex: ccxt.binance, since: int, until: int | None = None) -> list[list[Any]]:
    rows: list[list[Any]] = []
    params = {} if until is None else {"until": until}
    while True:
        page = ex.fetch_ohlcv(SYMBOL, "1h", since=since, limit=1000, params=params)
        if not page:
            return rows
        rows.extend(page)
        since = page[-1][0] + HOUR_MS


def test_load_markets_finds_btc_usdt_spot(client: Callable[..., ccxt.binance]) -> None:
    markets = client().load_markets()
    market = markets[SYMBOL]
    assert market["type"] == "spot" and market["spot"] and market["active"]
    assert market["id"] == "BTCUSDT"
    assert market["precision"]["price"] == 0.01 and market["precision"]["amount"] == 0.00001
    assert market["limits"]["cost"]["min"] == 5.0


def test_fetch_time_follows_clock(
    client: Callable[..., ccxt.binance], server: ReplayServer, exchange: ReplayExchange
) -> None:
    ex = client()
    assert ex.fetch_time() == exchange.now_ms()
    state = control(server, "POST", "/_replay/clock", {"now": "2024-03-01T00:00:00Z"})
    assert state["now_ms"] == ms("2024-03-01") == ex.fetch_time()
    assert control(server, "GET", "/_replay/clock")["now"].startswith("2024-03-01T00:00:00")


def test_default_clock_has_every_candle_closed(exchange: ReplayExchange, candles: pd.DataFrame) -> None:
    last_open = int(candles["ts"].iloc[-1].value // 1_000_000)
    assert exchange.now_ms() == last_open + HOUR_MS
    assert ReplayData.load_csv(DATA_FILE).last_open_ms == last_open


def test_clock_speed_runs_faster_than_real_time(server: ReplayServer, exchange: ReplayExchange) -> None:
    began = time.monotonic()
    start = control(server, "POST", "/_replay/clock", {"now": "2024-02-01T00:00:00Z", "speed": 3600})
    assert start["speed"] == 3600
    # a simulated hour passes in about a real second
    wait_for(lambda: exchange.now_ms() - start["now_ms"] >= HOUR_MS, 10, "a simulated hour")
    elapsed_real = time.monotonic() - began
    assert exchange.now_ms() - start["now_ms"] <= (elapsed_real + 0.1) * 3600 * 1000  # never ahead of speed
    frozen = control(server, "POST", "/_replay/clock", {"speed": 0})
    assert control(server, "GET", "/_replay/clock")["now_ms"] == frozen["now_ms"] == exchange.now_ms()


def test_paginated_backfill_matches_file(client: Callable[..., ccxt.binance], candles: pd.DataFrame) -> None:
    start, end = ms("2024-01-01"), ms("2024-03-01")
    rows = backfill(client(), start, until=end - 1)
    assert len(rows) == 1440
    expected = candles[
        (candles["ts"] >= pd.Timestamp(start, unit="ms", tz="UTC")) & (candles["ts"] < "2024-03-01")
    ]
    got = np.array(rows, dtype="float64")
    np.testing.assert_array_equal(got[:, 0].astype("int64"), np.arange(start, end, HOUR_MS))
    want = expected[["open", "high", "low", "close", "volume"]].to_numpy()
    np.testing.assert_allclose(got[:, 1:], want, rtol=1e-12, atol=1e-8)


def test_full_backfill_returns_every_candle(
    client: Callable[..., ccxt.binance], candles: pd.DataFrame
) -> None:
    # its wall time, against reading the file in-process, is measured by benchmarks/replay.py
    ex = client()
    ex.load_markets()
    rows = backfill(ex, ms("2024-01-01"))
    assert len(rows) == len(candles) == 19_704


def test_in_progress_candle_is_partial_and_future_hidden(
    client: Callable[..., ccxt.binance], exchange: ReplayExchange, candles: pd.DataFrame
) -> None:
    exchange.set_now("2024-02-10T12:30:00Z")
    ex = client()
    rows = ex.fetch_ohlcv(SYMBOL, "1h", since=ms("2024-02-10"), limit=1000)
    assert [row[0] for row in rows] == list(range(ms("2024-02-10"), ms("2024-02-10T12:00") + 1, HOUR_MS))
    latest = ex.fetch_ohlcv(SYMBOL, "1h", limit=5)
    assert latest[-1] == rows[-1] and latest[0][0] == ms("2024-02-10T08:00")

    recorded = candles.set_index("ts").loc[pd.Timestamp("2024-02-10T12:00Z")]
    _, first, high, low, close, volume = rows[-1]
    assert first == recorded["open"]
    assert close != recorded["close"]
    assert close == pytest.approx(recorded["open"] + 0.5 * (recorded["close"] - recorded["open"]), abs=1e-6)
    assert high == max(first, close) and low == min(first, close)
    assert 0 < volume < recorded["volume"] and volume == pytest.approx(recorded["volume"] / 2, rel=1e-6)
    # the candle before is closed and served exactly as recorded
    previous = candles.set_index("ts").loc[pd.Timestamp("2024-02-10T11:00Z")]
    assert rows[-2][1:] == pytest.approx(previous[["open", "high", "low", "close", "volume"]].tolist())


def test_advancing_clock_exposes_exactly_five_more(
    client: Callable[..., ccxt.binance], server: ReplayServer, exchange: ReplayExchange
) -> None:
    exchange.set_now("2024-02-10T12:00:00Z")
    ex = client()
    since = ms("2024-02-09")
    before = ex.fetch_ohlcv(SYMBOL, "1h", since=since, limit=1000)
    state = control(server, "POST", "/_replay/clock", {"advance_seconds": 18000})
    assert state["now_ms"] == ms("2024-02-10T17:00")
    after = ex.fetch_ohlcv(SYMBOL, "1h", since=since, limit=1000)
    assert len(after) == len(before) + 5
    assert after[-1][0] == ms("2024-02-10T17:00")
    assert all(row[0] <= exchange.now_ms() for row in after)


def test_rate_limit_fault_maps_to_ddos_protection_with_retry_after(
    client: Callable[..., ccxt.binance], server: ReplayServer
) -> None:
    ex = client()
    ex.load_markets()
    control(server, "POST", "/_replay/faults", {"rate_limit": {"count": 2}, "retry_after": 7})
    for _ in range(2):
        # binance.handle_errors raises DDoSProtection for 429 (RateLimitExceeded is its subclass)
        with pytest.raises(ccxt.DDoSProtection, match="429"):
            ex.fetch_ohlcv(SYMBOL, "1h", limit=3)
        assert ex.last_response_headers["Retry-After"] == "7"
    assert ex.fetch_time() > 0  # time stays reachable
    assert len(ex.fetch_ohlcv(SYMBOL, "1h", limit=3)) == 3  # count exhausted: switched off
    state = control(server, "GET", "/_replay/faults")
    assert state["fired"]["rate_limit"] == 2 and state["config"]["rate_limit"]["count"] == 0


def test_server_error_fault_maps_to_exchange_not_available(
    client: Callable[..., ccxt.binance], exchange: ReplayExchange
) -> None:
    ex = client()
    ex.load_markets()
    exchange.set_faults({"server_error": {"count": 1}})
    with pytest.raises(ccxt.ExchangeNotAvailable, match="503") as raised:
        ex.fetch_ohlcv(SYMBOL, "1h", limit=3)
    assert isinstance(raised.value, ccxt.NetworkError)
    assert len(ex.fetch_ohlcv(SYMBOL, "1h", limit=3)) == 3
    assert exchange.fault_counts()["server_error"] == 1


def test_slow_fault_times_out_client(client: Callable[..., ccxt.binance], exchange: ReplayExchange) -> None:
    ex = client(timeout=500)
    ex.load_markets()
    exchange.set_faults({"slow": {"count": 1}, "slow_seconds": 30})  # far beyond the client's timeout
    with pytest.raises(ccxt.RequestTimeout):
        ex.fetch_ohlcv(SYMBOL, "1h", limit=3)
    assert len(ex.fetch_ohlcv(SYMBOL, "1h", limit=3)) == 3
    assert exchange.fault_counts()["slow"] == 1


def _page(ex: ccxt.binance) -> list[list[Any]]:
    return ex.fetch_ohlcv(SYMBOL, "1h", since=ms("2024-02-01"), limit=48)


def test_malformed_fault_corrupts_one_row(
    client: Callable[..., ccxt.binance], exchange: ReplayExchange
) -> None:
    ex = client()
    clean = _page(ex)
    for seed in range(6):  # both corruption styles (non-numeric close, high below low) show up
        exchange.set_faults({"malformed": {"count": 1}, "seed": seed})
        bad = _page(ex)
        assert len(bad) == len(clean)
        broken = [i for i, (a, b) in enumerate(zip(clean, bad, strict=True)) if a != b]
        assert len(broken) == 1
        row = bad[broken[0]]
        assert row[4] is None or row[2] < row[3]
    assert _page(ex) == clean
    assert exchange.fault_counts()["malformed"] == 6


def test_duplicate_fault_repeats_adjacent_row(
    client: Callable[..., ccxt.binance], exchange: ReplayExchange
) -> None:
    ex = client()
    clean = _page(ex)
    exchange.set_faults({"duplicate": {"count": 1}})
    dup = _page(ex)
    stamps = [row[0] for row in dup]
    # the page never exceeds the limit: the full page loses its last row, which the next page re-fetches
    assert len(dup) == len(clean) and stamps == sorted(stamps)
    repeated = [i for i in range(1, len(dup)) if stamps[i] == stamps[i - 1]]
    assert len(repeated) == 1 and dup[repeated[0]] == dup[repeated[0] - 1]
    assert sorted(set(stamps)) == [row[0] for row in clean[:-1]]
    assert _page(ex) == clean


def test_missing_fault_leaves_gap(client: Callable[..., ccxt.binance], exchange: ReplayExchange) -> None:
    ex = client()
    clean = _page(ex)
    exchange.set_faults({"missing": {"count": 1}})
    gappy = _page(ex)
    steps = np.diff([row[0] for row in gappy])
    assert len(gappy) == len(clean) - 1
    assert sorted(set(steps.tolist())) == [HOUR_MS, 2 * HOUR_MS] and (steps == 2 * HOUR_MS).sum() == 1
    assert gappy[0] == clean[0] and gappy[-1] == clean[-1]
    assert _page(ex) == clean


def test_missing_fault_leaves_out_the_closed_candle_of_an_hourly_page(
    client: Callable[..., ccxt.binance], exchange: ReplayExchange
) -> None:
    ex = client()
    exchange.set_now("2024-03-01T00:30:00Z")
    since = ms("2024-02-29T23:00:00Z")  # the last closed hour, then the one in progress
    clean = ex.fetch_ohlcv(SYMBOL, "1h", since=since, limit=2)
    exchange.set_faults({"missing": {"count": 1}})
    hourly = ex.fetch_ohlcv(SYMBOL, "1h", since=since, limit=2)
    assert len(clean) == 2 and hourly == clean[1:], "the closed candle is the one left out"
    assert exchange.fault_counts()["missing"] == 1


def test_the_loader_takes_mixed_iso_precision_and_epoch_ms(tmp_path: Path) -> None:
    path = tmp_path / "mixed.csv"
    path.write_text(
        "timestamp,open,high,low,close,volume\n"
        "2020-01-01T04:00:00Z,1,2,0.5,1.5,10\n"
        "2020-01-01T09:28:14.789Z,1,2,0.5,1.5,10\n"
        "2020-01-01 05:00:00+00:00,1,2,0.5,1.5,10\n"
    )
    stamps = load_candles_file(path)["ts"].dt.strftime("%H:%M:%S.%f").tolist()
    assert stamps == ["04:00:00.000000", "05:00:00.000000", "09:28:14.789000"]
    millis = tmp_path / "ms.csv"
    millis.write_text("timestamp,open,high,low,close,volume\n1577851200000,1,2,0.5,1.5,10\n")
    assert load_candles_file(millis)["ts"].tolist() == [pd.Timestamp("2020-01-01 04:00", tz="UTC")]


def test_rate_faults_are_seeded(client: Callable[..., ccxt.binance], exchange: ReplayExchange) -> None:
    ex = client()
    ex.load_markets()

    def pattern() -> list[bool]:
        exchange.set_faults({"server_error": {"rate": 0.5}, "seed": 42})
        outcome = []
        for _ in range(12):
            try:
                ex.fetch_ohlcv(SYMBOL, "1h", limit=2)
                outcome.append(False)
            except ccxt.ExchangeNotAvailable:
                outcome.append(True)
        return outcome

    first = pattern()
    assert pattern() == first and 0 < sum(first) < 12
    exchange.clear_faults()
    assert exchange.fault_counts()["server_error"] == 0


def test_fault_control_endpoint(server: ReplayServer) -> None:
    state = control(server, "POST", "/_replay/faults", {"missing": {"rate": 0.25, "count": 3}, "seed": 5})
    assert state["config"]["missing"] == {"rate": 0.25, "count": 3} and state["config"]["seed"] == 5
    assert set(state["fired"]) == {"rate_limit", "server_error", "slow", "malformed", "duplicate", "missing"}
    with pytest.raises(urllib.error.HTTPError) as raised:
        control(server, "POST", "/_replay/faults", {"explode": {"count": 1}})
    assert raised.value.code == 400
    cleared = control(server, "DELETE", "/_replay/faults")
    assert cleared["config"]["missing"] == {"rate": 0.0, "count": 0}


@pytest.mark.parametrize("path", ["/_replay/clock", "/_replay/faults"])
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
def test_control_posts_must_be_json(
    server: ReplayServer, exchange: ReplayExchange, path: str, content_type: str | None
) -> None:
    """A web page can POST text/plain (or a form) to loopback without a preflight: that must not move
    the clock or switch faults on."""
    before = exchange.now_ms()
    body = b'{"advance_seconds": 3600}' if path.endswith("clock") else b'{"server_error": {"count": 5}}'
    request = urllib.request.Request(server.url + path, data=body, method="POST")
    if content_type is not None:
        request.add_header("Content-Type", content_type)
    with pytest.raises(urllib.error.HTTPError) as raised:
        urllib.request.urlopen(request, timeout=5)
    assert raised.value.code == 415
    assert "application/json" in json.loads(raised.value.read())["msg"]
    assert exchange.now_ms() == before and exchange.fault_state()["config"]["server_error"]["count"] == 0
    # the same body as JSON is accepted (charset parameter allowed)
    request.remove_header("Content-type")
    request.add_header("Content-Type", "application/json; charset=utf-8")
    with urllib.request.urlopen(request, timeout=5) as answer:
        assert answer.status == 200


def test_invalid_interval_and_symbol_raise_ccxt_errors(client: Callable[..., ccxt.binance]) -> None:
    ex = client()
    ex.load_markets()
    with pytest.raises(ccxt.BadRequest, match="Invalid interval"):
        ex.fetch_ohlcv(SYMBOL, "15m", limit=3)  # finer than the recorded 1h candles
    four_hourly = ex.fetch_ohlcv(SYMBOL, "4h", limit=3)  # coarser: aggregated from them
    assert [row[0] % (4 * 3_600_000) for row in four_hourly] == [0, 0, 0]
    with pytest.raises(ccxt.BadSymbol, match="Invalid symbol"):
        ex.publicGetKlines({"symbol": "DOGEUSDT", "interval": "1h"})
    with pytest.raises(ccxt.BadSymbol):  # unknown to load_markets, rejected client-side
        ex.fetch_ohlcv("DOGE/USDT", "1h")


def test_parse_data_option() -> None:
    assert parse_data_option("btc/usdt=data/btc.csv.gz") == ("BTC/USDT", Path("data/btc.csv.gz"))
    for bad in ("BTC/USDT", "BTCUSDT=x.csv", "BTC/USDT="):
        with pytest.raises(UsageError, match=r"is not SYMBOL=PATH; write it like BTC/USDT=btc\.csv\.gz"):
            parse_data_option(bad)
