"""Scale: synthetic symbols of the replay exchange, symbol selectors, and many symbols ingested at once."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import ccxt
import numpy as np
import pandas as pd
import pytest
from prefect import flow
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

from flows.ingest_tasks import publish_ingest_report
from hourcast.data import ledger, quarantine, store
from hourcast.data.exchange import rebase_urls, resolve_symbols
from hourcast.data.ingest import Ingestor, SymbolSummary, make_ingestor
from hourcast.data.validation import CandleValidator
from hourcast.dev.replay.data import synthetic_datasets
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.errors import UserError
from hourcast.settings import Settings
from tests.support.data import replay_settings

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


class CountingValidator(CandleValidator):
    """The real GX validator, counting its GX runs."""

    def __init__(self, timeframe: str) -> None:
        super().__init__(timeframe)
        self.gx_runs = 0

    def _run(self, frame: pd.DataFrame, exchange_now_ms: int) -> dict[str, Any]:
        self.gx_runs += 1
        return super()._run(frame, exchange_now_ms)


def window(frame: pd.DataFrame, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    return frame.loc[(frame["ts"] >= first) & (frame["ts"] <= last)].reset_index(drop=True)


FAULTS: dict[str, dict[str, Any]] = {
    "SYN003/USDT": {"server_error": {"rate": 1.0}},  # down for good: the run fails for it
    "SYN007/USDT": {"malformed": {"count": 1}, "seed": 3},  # one bad row: quarantined, the rest stored
    "SYN011/USDT": {"slow": {"count": 1}, "slow_seconds": 1.5},  # one request beyond the client's timeout
    "SYN013/USDT": {"missing": {"count": 1}, "seed": 1},  # one candle left out: a gap, asked for again
    "SYN017/USDT": {"rate_limit": {"count": 2}, "retry_after": 0},  # 429 twice, then answers
}


@dataclass
class ScaleRun:
    """The first ingest of the 50 synthetic symbols with faults on five of them."""

    server: ReplayServer
    settings: Settings
    ingestor: Ingestor
    summaries: list[SymbolSummary]
    retries: int


@pytest.fixture(scope="module")
def scale_run(
    tmp_path_factory: pytest.TempPathFactory,
    recorded_files: dict[str, pd.DataFrame],
    synthetic: dict[str, pd.DataFrame],
) -> Iterator[ScaleRun]:
    exchange = ReplayExchange(recorded_files | synthetic, now="2024-03-01T00:00:00Z")
    with ReplayServer(exchange) as server:
        home = tmp_path_factory.mktemp("scale")
        settings = replay_settings(home, server, symbols=list(synthetic), retry_attempts=3)
        source = make_ingestor(settings).source
        ingestor = Ingestor(settings, source, partial(CountingValidator, settings.timeframe))
        for symbol, fault in FAULTS.items():
            exchange.set_faults(fault, symbol=symbol)
        summaries = ingestor.ingest()
        yield ScaleRun(server, settings, ingestor, summaries, source.retries)


def test_50_symbols_with_faults_on_some_all_end_exact(
    scale_run: ScaleRun, synthetic: dict[str, pd.DataFrame]
) -> None:
    exchange, settings, counting = scale_run.server.exchange, scale_run.settings, scale_run.ingestor
    symbols = list(synthetic)
    by_symbol = {summary.symbol: summary for summary in scale_run.summaries}
    assert [summary.symbol for summary in scale_run.summaries] == symbols
    assert counting.validator.gx_runs <= 2  # one GX run for all 50 (two if the slow page came late)
    failed = by_symbol["SYN003/USDT"]
    assert failed.status == "failed" and "after 3 tries" in failed.message and failed.new == 0
    bad = by_symbol["SYN007/USDT"]
    assert (bad.status, bad.quarantined, bad.new) == ("quarantined", 1, 47)
    assert (by_symbol["SYN013/USDT"].new, by_symbol["SYN013/USDT"].missing_candles) == (47, 1)
    healthy = [s for s in symbols if s not in ("SYN003/USDT", "SYN007/USDT", "SYN013/USDT")]
    assert all((by_symbol[s].status, by_symbol[s].new) == ("ok", 48) for s in healthy)
    assert exchange.fault_counts("SYN011/USDT")["slow"] == 1 and scale_run.retries >= 4

    # the ledger: one entry per symbol of the run, with its counts
    entries = ledger.read(settings.ledger_dir).set_index("symbol")
    assert sorted(entries.index) == sorted(symbols) and entries["run_at"].nunique() == 1
    assert entries.loc["SYN007/USDT", ["quarantined", "new", "status"]].tolist() == [1, 47, "quarantined"]
    assert entries.loc["SYN013/USDT", ["gaps", "new", "status"]].tolist() == [1, 47, "ok"]
    assert entries.loc["SYN003/USDT", "status"] == "failed" and (entries.loc[healthy, "new"] == 48).all()

    # an hour later, the exchange healthy again: the failed symbol resumes, the gap is filled, the
    # quarantined hour heals (asked for again, served clean); two GX runs: SYN013 and SYN007 ask for their
    # hole and the new hour apart
    exchange.clear_faults()
    exchange.advance(3600)
    counting.validator.gx_runs = 0
    later = {summary.symbol: summary for summary in counting.ingest()}
    assert counting.validator.gx_runs == 2
    # SYN003 gets the default window (48 h) before the new hour; SYN013 the gap and the new hour
    assert later["SYN003/USDT"].new == 48 and later["SYN013/USDT"].new == later["SYN007/USDT"].new == 2
    exchange.advance(3600)  # the hour after: one new candle each, one GX run for all 50
    counting.validator.gx_runs = 0
    assert [summary.new for summary in counting.ingest()] == [1] * 50 and counting.validator.gx_runs == 1
    last = pd.Timestamp("2024-03-01T01:00Z")
    first = last - pd.Timedelta(hours=49)  # the 48 h before the first clock, then two new hours
    for symbol, frame in synthetic.items():
        candles = store.load_candles(settings.candles_dir, store.Series("binance", symbol, "1h"))
        expected = window(frame, first + pd.Timedelta(hours=int(symbol == "SYN003/USDT")), last)
        pd.testing.assert_frame_equal(candles[expected.columns], expected, check_exact=False, rtol=1e-8)
    [entry] = quarantine.entries(settings.quarantine_dir)
    assert (entry.symbol, entry.state) == ("SYN007/USDT", "resolved")


@pytest.mark.usefixtures("prefect_server")
def test_the_ingest_artifacts_count_every_symbol(scale_run: ScaleRun) -> None:
    settings, summaries = scale_run.settings, scale_run.summaries

    @flow(name="scale-report")
    def report() -> None:
        publish_ingest_report(settings, summaries, "ingest")

    state = report(return_state=True)
    with get_client(sync_client=True) as client:
        [table] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
                key=ArtifactFilterKey(any_=["ingest-counts"]),
            )
        )
    rows = {row["symbol"]: row for row in json.loads(table.data)}
    assert set(rows) == {summary.symbol for summary in summaries} and len(rows) == 50
    assert (rows["SYN007/USDT"]["quarantined"], rows["SYN013/USDT"]["missing"]) == (1, 1)
    assert rows["SYN003/USDT"]["status"] == "failed" and rows["SYN001/USDT"]["new"] == 48


def test_all_usdt_resolves_the_active_usdt_markets_by_quote_volume(
    tmp_path: Path, scale_replay: ReplayServer
) -> None:
    tickers = client(scale_replay).fetch_tickers()
    volume = {symbol: ticker["quoteVolume"] for symbol, ticker in tickers.items()}
    threshold = volume["SYN020/USDT"]
    settings = replay_settings(tmp_path, scale_replay, symbols="all-usdt", min_quote_volume=threshold)
    source = make_ingestor(settings).source
    resolved = resolve_symbols(settings, source)
    expected = sorted((s for s in volume if volume[s] >= threshold), key=lambda s: -volume[s])
    assert resolved.symbols == expected and "SYN020/USDT" in expected and "SYN021/USDT" not in expected
    assert settings.symbols == ["all-usdt"]  # the settings given are left as they are
    mixed = settings.model_copy(update={"symbols": ["ETH/USDT", "all-usdt"], "min_quote_volume": 0})
    by_volume = sorted(volume, key=lambda symbol: -volume[symbol])
    assert resolve_symbols(mixed, source).symbols == ["ETH/USDT", *(s for s in by_volume if s != "ETH/USDT")]
    with pytest.raises(UserError, match="selects no market"):
        resolve_symbols(settings.model_copy(update={"min_quote_volume": 1e30}), source)
