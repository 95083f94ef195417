"""`hourcast evaluate --order-flow` on candles without order flow (the recorded ones): it says so and how to
get some, instead of comparing two identical models."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hourcast.cli.app import app
from hourcast.data import store
from hourcast.model import evaluation, training
from hourcast.settings import Settings
from tests.support.data import as_candle_frame


def test_evaluate_order_flow_says_no_stored_candle_carries_it(
    tmp_path: Path, btc_recorded: pd.DataFrame
) -> None:
    settings = Settings(home=tmp_path, symbols=["BTC/USDT"], train_days=7, feature_retention_days=8)
    series = store.Series(settings.exchange, "BTC/USDT", settings.timeframe)
    store.upsert(settings.candles_dir, series, as_candle_frame(btc_recorded.iloc[: 24 * 30]))
    with pytest.raises(training.TrainingError) as raised:
        evaluation.run(settings, weeks=1, order_flow=True)
    message = str(raised.value)
    assert message == evaluation.no_order_flow(settings)
    assert "no stored candle of BTC/USDT" in message and "carries order flow" in message
    assert "backfill from Binance" in message and "HOURCAST_EXCHANGE=binance" in message
    assert not settings.reports_dir.exists()  # nothing was fitted nor written

    env = {"HOURCAST_HOME": str(tmp_path), "HOURCAST_SYMBOLS": "BTC/USDT", "COLUMNS": "300"}
    shown = CliRunner().invoke(app, ["evaluate", "--order-flow"], env=env)
    assert shown.exit_code == 1 and "carries order flow" in shown.output, shown.output
