"""Replay exchange benchmark: a full backfill of the recorded BTC/USDT candles through the HTTP server.

Measures, in one run and one process, with the exchange's clock at its default (every candle closed):
1. the project: ``ccxt.binance`` pointed at a running replay server, ``load_markets`` then ``fetch_ohlcv``
   pages of 1,000 candles from 2024-01-01 until an empty page (19,704 candles, what
   ``tests/integration/test_replay_exchange.py`` backfills; it used to assert this takes under 10 s);
2. the bare calls doing the same work in-process: the same klines pages from the exchange object (no HTTP,
   no ccxt), and reading the candle file itself (``load_candles_file``);
3. the server's start (port bound, uvicorn accepting) and stop.

Run: ``uv run python benchmarks/replay.py [--repeats 5]``; prints and writes benchmarks/results/replay.json.
"""

from __future__ import annotations

from typing import Any

import ccxt
import pandas as pd
from _common import argument_parser, summarize, timed, write_results

from hourcast.data.exchange import rebase_urls
from hourcast.dev.replay.data import load_candles_file
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.dev.samples import sample_files

SYMBOL = "BTC/USDT"
SINCE_MS = int(pd.Timestamp("2024-01-01", tz="UTC").value // 1_000_000)
PAGE = 1000


def http_backfill(url: str) -> int:
    """Candles a fresh ccxt client backfills through the server (markets loaded first)."""
    client = ccxt.binance({"enableRateLimit": False, "timeout": 10_000, "options": {"defaultType": "spot"}})
    client.urls["api"] = rebase_urls(client.urls["api"], url)
    client.load_markets()
    fetched, since = 0, SINCE_MS
    while page := client.fetch_ohlcv(SYMBOL, "1h", since=since, limit=PAGE):
        fetched += len(page)
        since = page[-1][0] + 3_600_000
    return fetched


def in_process_backfill(exchange: ReplayExchange) -> int:
    """Candles the same pages hold when asked of the exchange object directly."""
    fetched, since = 0, SINCE_MS
    query = {"symbol": "BTCUSDT", "interval": "1h", "limit": str(PAGE)}
    while page := exchange.klines({**query, "startTime": str(since)}):
        fetched += len(page)
        since = page[-1][0] + 3_600_000
    return fetched


def file_read(path: Any) -> int:
    """Candles of the file from 2024-01-01, read in-process."""
    candles = load_candles_file(path)
    return int((candles["ts"] >= pd.Timestamp(SINCE_MS, unit="ms", tz="UTC")).sum())


def start_stop(exchange: ReplayExchange) -> None:
    """Start a replay server until it accepts requests, then stop it."""
    ReplayServer(exchange).start().stop()


def main() -> None:
    parser = argument_parser(__doc__, "replay")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs of each measurement")
    args = parser.parse_args()
    path = sample_files()[SYMBOL]
    exchange = ReplayExchange({SYMBOL: load_candles_file(path)})
    names = ("http_ccxt", "in_process_pages", "file_read", "start_stop")
    samples: dict[str, list[float]] = {name: [] for name in names}
    counts: dict[str, int] = {}
    with ReplayServer(exchange) as server:
        http_backfill(server.url)  # imports and caches warm
        for _ in range(args.repeats):
            for name, run in (
                ("http_ccxt", lambda: http_backfill(server.url)),
                ("in_process_pages", lambda: in_process_backfill(exchange)),
                ("file_read", lambda: file_read(path)),
            ):
                seconds, counts[name] = timed(run)
                samples[name].append(seconds)
    for _ in range(args.repeats):
        samples["start_stop"].append(timed(lambda: start_stop(exchange))[0])
    if len(set(counts.values())) != 1:
        raise SystemExit(f"the three ways read different candle counts: {counts}")
    figures = {name: summarize(values) for name, values in samples.items()}
    http_ms = figures["http_ccxt"]["median_ms"]
    write_results(
        args.output,
        {
            "candles": counts["http_ccxt"],
            "pages": counts["http_ccxt"] // PAGE + 1,
            **figures,
            "http_vs_in_process_pages": round(http_ms / figures["in_process_pages"]["median_ms"], 1),
            "http_vs_file_read": round(http_ms / figures["file_read"]["median_ms"], 1),
        },
    )


if __name__ == "__main__":
    main()
