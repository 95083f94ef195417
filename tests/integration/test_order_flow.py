"""Order flow end to end, on TEST DATA: replay files with order-flow columns derived from the recorded
candles (``tests.order_flow``; the bundled recordings have none) are served by the replay exchange, ingested
through a stock ccxt binance client (raw klines), validated by GX, stored, turned into features,
materialized through Feast, and compared walk-forward with and without (``hourcast evaluate --order-flow``).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from hourcast.cli.app import app
from hourcast.data import store
from hourcast.data.candles import ORDER_FLOW_COLUMNS
from hourcast.data.ingest import make_ingestor
from hourcast.data.validation import latest_report_stem
from hourcast.dev.replay.data import load_candles_file
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.features import feature_table, featurestore
from hourcast.features.compute import ORDER_FLOW_FEATURES, ORDER_FLOW_SIGNALS
from tests.support.data import replay_settings
from tests.support.order_flow import with_test_order_flow

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
NOW = pd.Timestamp("2024-01-29T00:00:00Z")
DAYS = 27
VALUES = ["ts", "open", "high", "low", "close", "volume", *ORDER_FLOW_COLUMNS]


def test_order_flow_from_the_replay_to_features_feast_and_evaluation(
    tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    files = {}
    for number, symbol in enumerate(SYMBOLS):
        recorded = recorded_files[symbol]
        window = recorded.loc[recorded["ts"].between(NOW - pd.Timedelta(days=DAYS + 1), NOW)]
        path = tmp_path / f"{symbol.replace('/', '-')}_with_test_order_flow.csv"
        test_data = with_test_order_flow(window, seed=number).rename(columns={"ts": "timestamp"})
        test_data.to_csv(path, index=False, float_format="%.8f")  # 8 decimals, as Binance publishes
        files[symbol] = load_candles_file(path)
    assert all(list(frame.columns) == VALUES for frame in files.values())

    with ReplayServer(ReplayExchange(files, now=NOW)) as server:
        settings = replay_settings(
            tmp_path / "home",
            server,
            symbols=SYMBOLS,
            default_backfill_days=DAYS,
            train_days=7,
            feature_retention_days=8,
            feature_repo=REPO / "feature_repo",
        )
        summaries = make_ingestor(settings).ingest()
    assert [(s.status, s.new, s.quarantined) for s in summaries] == [("ok", DAYS * 24, 0)] * 2

    # stored exactly as the file holds it, order flow included, and validated with its rules
    for symbol, frame in files.items():
        series = store.Series(settings.exchange, symbol, settings.timeframe)
        stored = store.load_candles(settings.candles_dir, series)[VALUES]
        expected = frame.loc[frame["ts"].between(stored["ts"].iloc[0], NOW - pd.Timedelta(hours=1))]
        assert len(stored) == DAYS * 24
        pd.testing.assert_frame_equal(stored, expected.reset_index(drop=True), check_exact=True)
        stem = latest_report_stem(settings.exchange, symbol, settings.timeframe)
        report = json.loads((settings.validation_dir / f"{stem}.json").read_text())
        checked = {
            outcome["expectation_config"]["meta"]["rule"]: outcome["success"]
            for outcome in report["result"]["results"]
        }
        rule = "order flow >= 0, taker_buy_base <= volume, taker_buy_quote <= quote_volume"
        assert checked[rule] and report["success"]

    # features: the feature table and the online store (Feast) hold the values computed by hand
    summary = featurestore.materialize(settings)
    table = feature_table.read(settings.feature_table_path)
    online = featurestore.open_store(settings).get_online_features(
        features=[f"{featurestore.FEATURE_VIEW}:{name}" for name in ["as_of", *ORDER_FLOW_FEATURES]],
        entity_rows=[{"symbol": symbol} for symbol in SYMBOLS],
    )
    served = online.to_df().set_index("symbol")
    for symbol, frame in files.items():
        by_hand = frame.set_index("ts")
        twelve = by_hand.rolling(12)
        expected = pd.DataFrame(
            {
                "taker_buy_share_1h": by_hand["taker_buy_base"] / by_hand["volume"],
                "taker_buy_share_12h": twelve["taker_buy_base"].sum() / twelve["volume"].sum(),
                "trades_per_volume_12h": np.log(
                    (by_hand["trades"] / by_hand["volume"])
                    / (twelve["trades"].sum() / twelve["volume"].sum())
                ),
            }
        )
        rows = table.loc[table["symbol"] == symbol].set_index("as_of")
        assert len(rows) >= 7 * 24 and np.isfinite(rows[ORDER_FLOW_FEATURES].to_numpy()).all()
        # by hand for the first three (every signal by hand: tests/unit/test_order_flow_features.py)
        np.testing.assert_allclose(rows[expected.columns], expected.loc[rows.index], rtol=1e-9)
        newest = rows.index.max()
        assert summary.symbols[symbol] == (newest + pd.Timedelta(hours=1)).isoformat()
        assert pd.Timestamp(served.loc[symbol, "as_of"]) == newest
        np.testing.assert_allclose(
            served.loc[symbol, ORDER_FLOW_FEATURES].to_numpy(float),
            rows.loc[newest, ORDER_FLOW_FEATURES].to_numpy(float),
            rtol=1e-9,
        )

    # `hourcast evaluate --order-flow`: base and base + order flow on the same hours, head to head
    with pytest.MonkeyPatch.context() as env:
        for name, value in (("HOME", settings.home), ("SYMBOLS", ",".join(SYMBOLS)), ("TRAIN_DAYS", 7)):
            env.setenv(f"HOURCAST_{name}", str(value))
        env.setenv("HOURCAST_FEATURE_RETENTION_DAYS", "8")
        answered = CliRunner().invoke(app, ["evaluate", "--weeks", "1", "--order-flow", "--json"])
    assert answered.exit_code == 0, answered.output
    answer = json.loads(answered.stdout.splitlines()[-1])
    base, *flows = answer["order_flow"]
    groups = [*ORDER_FLOW_SIGNALS, "all"]  # each signal group, then all, head to head with the base
    assert [row["inputs"] for row in [base, *flows]] == [
        "base",
        *(f"base + order flow ({g})" for g in groups),
    ]
    assert answer["cross_asset"] == []
    assert {(row["hours"], row["first_hour"], row["last_hour"]) for row in (base, *flows)} == {
        (2 * 168, "2024-01-22 00:00:00+00:00", "2024-01-28 23:00:00+00:00")
    }
    for flow in flows:
        versus = flow["versus_base"]
        assert versus["mae_ratio"] == pytest.approx(flow["mae_ratio"] / base["mae_ratio"])
        assert 0 <= versus["dm_p_value"] <= 1 and set(versus["mae_ratio_by_symbol"]) == set(SYMBOLS)
        assert versus["mae_ratio"] != 1  # the order-flow inputs changed the forecasts
