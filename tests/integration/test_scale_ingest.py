"""Scale: synthetic symbols of the replay exchange, symbol selectors, and many symbols ingested at once."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator

import ccxt
import numpy as np
import pandas as pd
import pytest

from hourcast.dev.replay import ReplayExchange, ReplayServer, synthetic_datasets
from hourcast.exchange import rebase_urls

SYMBOLS = 50


@pytest.fixture(scope="module")
def synthetic(recorded_files: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """50 synthetic symbols derived from the bundled BTC and ETH recordings."""
    return synthetic_datasets(SYMBOLS, recorded_files)


@pytest.fixture
def scale_replay(
    recorded_files: dict[str, pd.DataFrame], synthetic: dict[str, pd.DataFrame]
) -> Iterator[ReplayServer]:
    """A replay exchange serving BTC, ETH and the 50 synthetic symbols, its clock at 2024-03-01T00:00Z."""
    exchange = ReplayExchange(recorded_files | synthetic, now="2024-03-01T00:00:00Z")
    with ReplayServer(exchange) as server:
        yield server


def client(server: ReplayServer) -> ccxt.binance:
    ex = ccxt.binance({"enableRateLimit": False, "timeout": 5000, "options": {"defaultType": "spot"}})
    ex.urls["api"] = rebase_urls(ex.urls["api"], server.url)
    return ex


def test_synthetic_symbols_are_rotated_rescaled_recordings(
    recorded_files: dict[str, pd.DataFrame], synthetic: dict[str, pd.DataFrame]
) -> None:
    assert list(synthetic)[:3] == ["SYN001/USDT", "SYN002/USDT", "SYN003/USDT"] and len(synthetic) == 50
    btc, eth = recorded_files["BTC/USDT"], recorded_files["ETH/USDT"]
    three = synthetic["SYN003/USDT"]  # odd numbers come from BTC, even ones from ETH
    pd.testing.assert_series_equal(three["ts"], btc["ts"])
    shift = 3 * 97
    # past the wrap, the candles are BTC's from the start, prices x 10**-3, quote volume / 3
    np.testing.assert_allclose(three["close"].iloc[shift:], btc["close"].iloc[: len(btc) - shift] * 1e-3)
    quote = (three["close"] * three["volume"]).iloc[shift:].to_numpy()
    np.testing.assert_allclose(quote, (btc["close"] * btc["volume"]).iloc[: len(btc) - shift] / 3)
    # the wrapped part joins continuously: it ends where BTC's recording opens
    assert three["close"].iloc[shift - 1] == pytest.approx(btc["open"].iloc[0] * 1e-3)
    assert not np.allclose(synthetic["SYN002/USDT"]["close"].iloc[:100], eth["close"].iloc[:100] * 1e-2)
    valid = all(
        (
            (f["high"] >= f[["open", "close"]].max(axis=1)) & (f["low"] <= f[["open", "close"]].min(axis=1))
        ).all()
        for f in synthetic.values()
    )
    assert valid and all((f[["open", "high", "low", "close"]] > 0).all().all() for f in synthetic.values())


def test_markets_and_tickers_list_synthetic_symbols_with_quote_volume(scale_replay: ReplayServer) -> None:
    ex = client(scale_replay)
    markets = ex.load_markets()
    assert {"BTC/USDT", "ETH/USDT", "SYN001/USDT", "SYN050/USDT"} <= set(markets) and len(markets) == 52
    tickers = ex.fetch_tickers()
    assert len(tickers) == 52
    volumes = [tickers[f"SYN{n:03d}/USDT"]["quoteVolume"] for n in range(1, 51)]
    assert all(v > 0 for v in volumes)
    # the quote volume of the 24 h closed before the clock, as the candles say
    ohlcv = ex.fetch_ohlcv("SYN007/USDT", "1h", since=ex.parse8601("2024-02-29T00:00:00Z"), limit=24)
    assert tickers["SYN007/USDT"]["quoteVolume"] == pytest.approx(sum(r[4] * r[5] for r in ohlcv), rel=1e-6)
    assert tickers["SYN007/USDT"]["last"] == pytest.approx(ohlcv[-1][4])
    assert ex.fetch_ticker("SYN007/USDT")["quoteVolume"] == tickers["SYN007/USDT"]["quoteVolume"]


def test_faults_are_selectable_per_symbol(scale_replay: ReplayServer) -> None:
    ex = client(scale_replay)
    ex.load_markets()
    body = json.dumps({"symbol": "SYN002/USDT", "server_error": {"count": 1}, "missing": {"count": 1}})
    request = urllib.request.Request(scale_replay.url + "/_replay/faults", data=body.encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=5) as answer:
        state = json.loads(answer.read())
    assert state["symbols"]["SYN002/USDT"]["config"]["server_error"] == {"rate": 0.0, "count": 1}
    assert state["config"]["server_error"] == {"rate": 0.0, "count": 0}  # the exchange-wide faults
    assert len(ex.fetch_ohlcv("SYN001/USDT", "1h", limit=5)) == 5  # another symbol is untouched
    with pytest.raises(ccxt.ExchangeNotAvailable):
        ex.fetch_ohlcv("SYN002/USDT", "1h", limit=5)
    assert len(ex.fetch_ohlcv("SYN002/USDT", "1h", limit=5)) == 4  # then its missing fault
    exchange = scale_replay.exchange
    assert exchange.fault_counts("SYN002/USDT")[
        "server_error"
    ] == 1 and exchange.fault_counts() == dict.fromkeys(exchange.fault_counts(), 0)
    with pytest.raises(ValueError, match="serves no symbol"):
        exchange.set_faults({"slow": {"count": 1}}, symbol="DOGE/USDT")
    exchange.clear_faults()
    assert exchange.fault_state()["symbols"] == {}
