"""Ingestion benchmark against the replay exchange over the shared BTC/USDT file.

Measures, in one run and one process:
- full backfill of all 19,704 candles through the project (ccxt + GX validation + Parquet store)
  vs the bare ccxt pagination of the same candles;
- the warm hourly ingest storing one new candle for each of 2 symbols (BTC/USDT, ETH/USDT; later
  calls in the same process) vs the bare ccxt calls it needs (fetch_time + one raw klines page per
  symbol: the request hourcast sends to Binance, ``publicGetKlines``, to keep the order flow).
  ``--label before`` with ``PYTHONPATH`` at an older checkout's ``src`` measures that code
  with the same script (the README quotes both);
- the cold command line (`hourcast ingest --json`, interpreter start and imports included) and the
  import times of the heavy libraries on that path.

Run: uv run python benchmarks/ingest.py
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import pandas as pd
from _common import RESULTS, argument_parser, summarize, timed, write_results

from hourcast.data.candles import to_ms
from hourcast.data.ingest import make_ingestor
from hourcast.dev.replay.data import load_candles_file
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.dev.samples import sample_files
from hourcast.settings import Settings
from hourcast.timeframe import timeframe_ms

HOUR_MS = timeframe_ms("1h")


def bare_page(client, symbol: str, since: int) -> list:
    """One page of Binance's raw klines through ccxt, the request hourcast sends (order flow kept)."""
    request = {"symbol": client.market_id(symbol), "interval": "1h", "startTime": since, "limit": 1000}
    return client.publicGetKlines(request)


def bare_backfill(client, since_ms: int, until_ms: int) -> int:
    """Paginate the raw klines exactly as the project does, doing nothing with the rows."""
    fetched, since = 0, since_ms
    while since <= until_ms:
        rows = bare_page(client, "BTC/USDT", since)
        rows = [row for row in rows if row[0] <= until_ms]
        if not rows:
            break
        fetched += len(rows)
        since = rows[-1][0] + HOUR_MS
    return fetched


def import_seconds(module: str) -> float:
    """Cold import time of one module in a fresh interpreter."""
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    return float(
        subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    )


def warm_hourly(exchange: ReplayExchange, home: str, url: str) -> dict:
    """24 hourly ingests of one new candle for each of 2 symbols, against the bare ccxt calls they need."""
    symbols = ["BTC/USDT", "ETH/USDT"]
    settings = Settings(
        home=Path(home) / "hourly", exchange_url=url, symbols=symbols, default_backfill_days=7
    )
    ingestor = make_ingestor(settings)
    client = ingestor.source.client
    ingestor.ingest()  # a week of history, and every import and cache warm
    project, bare = [], []
    for _ in range(24):
        exchange.advance(3600)
        seconds, summaries = timed(ingestor.ingest)
        assert [summary.new for summary in summaries] == [1, 1], summaries
        project.append(seconds)
        since = client.fetch_time() - 2 * HOUR_MS
        pages = [timed(partial(bare_page, client, symbol, since))[0] for symbol in symbols]
        bare.append(sum(pages) + timed(client.fetch_time)[0])
    return {
        "project": summarize(project),
        "bare_ccxt_fetch_time_plus_2_pages": summarize(bare),
        "ratio_median": round(sorted(project)[12] / sorted(bare)[12], 1),
        "target_ms": 1000,
    }


def main() -> None:
    parser = argument_parser(__doc__, "ingest")
    parser.add_argument(
        "--label", default="current", help="the code measured, in the figures (default: %(default)s)"
    )
    parser.set_defaults(output=None)  # results/ingest.json, or results/ingest_<label>.json with --label
    args = parser.parse_args()
    label = args.label
    files = sample_files()
    recorded = load_candles_file(files["BTC/USDT"])
    eth = load_candles_file(files["ETH/USDT"])
    first, last = recorded["ts"].iloc[0], recorded["ts"].iloc[-1]
    exchange = ReplayExchange(
        {"BTC/USDT": recorded, "ETH/USDT": eth}, now=last + pd.Timedelta(hours=1) - pd.Timedelta(hours=48)
    )
    figures: dict = {"code": label, "candles_in_file": len(recorded)}
    with ReplayServer(exchange) as server, tempfile.TemporaryDirectory() as home:
        settings = Settings(home=Path(home), exchange_url=server.url)
        ingestor = make_ingestor(settings)
        client = ingestor.source.client
        client.load_markets()

        until = to_ms(last) - 48 * HOUR_MS
        bare_s, bare_count = timed(lambda: bare_backfill(client, to_ms(first), until))
        project_s, [summary] = timed(lambda: ingestor.backfill(first))
        assert summary.new == bare_count == len(recorded) - 48, (summary, bare_count)
        figures["full_backfill"] = {
            "candles": summary.new,
            "project_s": round(project_s, 2),
            "bare_ccxt_pagination_s": round(bare_s, 2),
            "ratio": round(project_s / bare_s, 1),
            "target_s": 20,
        }

        figures["warm_hourly_ingest_2_symbols"] = warm_hourly(exchange, home, server.url)

        exchange.advance(3600)
        env = {**os.environ, "HOURCAST_HOME": home, "HOURCAST_EXCHANGE_URL": server.url}
        hourcast = str(Path(sys.executable).with_name("hourcast"))
        cold_s, done = timed(
            lambda: subprocess.run([hourcast, "ingest", "--json"], env=env, capture_output=True)
        )
        assert done.returncode == 0, done.stderr
        figures["cold_cli_ingest_s"] = round(cold_s, 2)
        figures["cold_import_s"] = {
            module: round(import_seconds(module), 2)
            for module in ("pandas", "ccxt", "great_expectations", "hourcast.cli.app")
        }
    name = "ingest" if label == "current" else f"ingest_{label}"
    write_results(args.output or RESULTS / f"{name}.json", figures)


if __name__ == "__main__":
    main()
