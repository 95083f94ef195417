"""``HOURCAST_SYMBOLS=all-usdt``: ingestion resolves it through the exchange and records the symbols; the
monitor, the feature store, the training dataset and the API see exactly those, the exchange gone."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hourcast.cli.app import app
from hourcast.data import selection
from hourcast.data.ingest import make_ingestor
from hourcast.dev.replay.data import synthetic_datasets
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.features import dataset
from hourcast.serving import predictor
from hourcast.settings import Settings
from tests.support.data import replay_settings


def test_ingest_resolves_all_usdt_and_every_entry_point_sees_its_symbols(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    exchange = ReplayExchange(synthetic_datasets(6, recorded_files), now="2024-03-01T00:00:00Z")
    with ReplayServer(exchange) as server:
        source = make_ingestor(replay_settings(tmp_path, server)).source
        volume = {symbol: ticker["quoteVolume"] for symbol, ticker in source.client.fetch_tickers().items()}
        expected = sorted(volume, key=lambda symbol: -volume[symbol])[:4]  # the 4 most traded of 6
        variables = {
            "HOME": tmp_path,
            "EXCHANGE_URL": server.url,
            "SYMBOLS": "all-usdt",
            "MIN_QUOTE_VOLUME": volume[expected[-1]],
            "DEFAULT_BACKFILL_DAYS": 2,
            "EXCHANGE_TIMEOUT_MS": 2000,
            "RETRY_BASE_SECONDS": 0.01,
            "RETRY_MAX_SECONDS": 0.05,
        }
        for name, value in variables.items():
            monkeypatch.setenv(f"HOURCAST_{name}", str(value))
        cli = CliRunner()

        early = cli.invoke(app, ["monitor", "--json"])
        assert (early.exit_code, early.stderr) == (
            1,
            "hourcast: all-usdt not resolved yet; run `hourcast ingest` first\n",
        )
        ingested = cli.invoke(app, ["ingest", "--json"])
        assert ingested.exit_code == 0, ingested.output
        assert [json.loads(line)["symbol"] for line in ingested.stdout.splitlines()] == expected
    recorded = selection.read(Settings().symbols_path)
    assert recorded is not None and recorded.symbols == expected and recorded.configured == ["all-usdt"]

    # the exchange is gone: nothing below may ask it which markets all-usdt means
    monitored = cli.invoke(app, ["monitor", "--json"])
    assert monitored.exit_code == 0, monitored.output
    assert json.loads(monitored.stdout)["now"] == "2024-02-29T23:00:00+00:00"  # the symbols' data clock
    materialized = cli.invoke(app, ["materialize", "--json"])
    assert materialized.exit_code == 0, materialized.output
    assert list(json.loads(materialized.stdout)["symbols"]) == expected

    settings = selection.resolved(Settings())  # as the retrain flow and the Bento service build theirs
    assert dataset.load_candles(settings).groupby("symbol").size().to_dict() == dict.fromkeys(expected, 48)
    live = predictor.Predictor(settings)
    try:
        assert live.check_symbols(expected[::-1]) == expected[::-1]
        left_out = next(symbol for symbol in volume if symbol not in expected)
        with pytest.raises(predictor.UnknownSymbol, match=f"this service forecasts {', '.join(expected)}$"):
            live.check_symbols([left_out])
    finally:
        live.stop()
