"""The monitor's scoreboard judges the model's direction against "the last move reverses" (McNemar) on the
hours whose previous hour is scored, on recorded candles."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from hourcast.model import drift
from hourcast.monitor import scoreboard, scoring
from hourcast.monitor.run import MonitorReport

HOUR = pd.Timedelta(hours=1)
START = pd.Timestamp("2024-03-01", tz="UTC")


@pytest.fixture
def candles(btc_recorded: pd.DataFrame) -> pd.DataFrame:
    """72 recorded BTC/USDT hours from START, as ``symbol, ts, close``."""
    frame = btc_recorded.loc[(btc_recorded["ts"] >= START) & (btc_recorded["ts"] < START + 72 * HOUR)]
    return frame.assign(symbol="BTC/USDT")[["symbol", "ts", "close"]].reset_index(drop=True)


def logged(candles: pd.DataFrame, hours: list[int], model: str = "m:1") -> pd.DataFrame:
    """One logged answer per hour: up on even hours, down on odd ones."""
    close = candles.set_index("ts")["close"]
    rows = []
    for hour in hours:
        as_of = START + hour * HOUR
        last = float(close[as_of])
        rows.append(
            {
                "requested_at": as_of + HOUR + pd.Timedelta(minutes=1),
                "symbol": "BTC/USDT",
                "as_of": as_of,
                "target_time": as_of + HOUR,
                "last_close": last,
                "predicted_close": last * (1.001 if hour % 2 == 0 else 0.999),
                "model": model,
                "stale": False,
                "band_low": last * 0.995,
                "band_high": last * 1.005,
            }
        )
    return pd.DataFrame(rows)


def test_scoreboard_reports_mcnemar_against_the_reversal(candles: pd.DataFrame) -> None:
    hours = [hour for hour in range(60) if hour != 30]  # hour 30 never answered: hour 31 has no previous
    scores, _ = scoring.score_predictions(scoring.distinct_predictions(logged(candles, hours)), candles)
    now = START + 60 * HOUR
    board = scoreboard.scoreboard(scores, now).set_index(["window", "symbol", "model"])

    close = candles.set_index("ts")["close"]
    # by hand: the 7-day window holds every hour; hours 0 and 31 have no scored hour before them
    judged = [hour for hour in hours if hour - 1 in hours]
    as_of = [START + hour * HOUR for hour in judged]
    last = close[as_of].to_numpy()
    previous = close[[stamp - HOUR for stamp in as_of]].to_numpy()
    actual = close[[stamp + HOUR for stamp in as_of]].to_numpy()
    predicted = np.where(np.array(judged) % 2 == 0, 1.0, -1.0)
    moved = actual != last
    truth = np.sign(actual - last)[moved]
    model, reversal = predicted[moved] == truth, -np.sign(last - previous)[moved] == truth
    b, c = int(np.sum(model & ~reversal)), int(np.sum(~model & reversal))
    assert len(judged) == 57 and b + c > 10  # hours 0 and 31 left out; the calls often differ
    for name in ("m:1", scoreboard.ALL_MODELS):
        row = board.loc[("7d", "BTC/USDT", name)]
        assert row["reversal_accuracy"] == pytest.approx(np.mean(reversal))
        assert row["mcnemar_p_value"] == pytest.approx(stats.binomtest(b, b + c).pvalue, rel=1e-9)

    # in `hourcast monitor --json`, beside the other figures; undefined (None) under two judged hours
    one_hour = scoreboard.scoreboard(scores, now, {"1h": HOUR})
    report = MonitorReport(now, 0, 0, scores.iloc[0:0], scores, one_hour, drift.empty_table(), None)
    [served, _] = report.as_json()["scoreboard"]
    assert {"reversal_accuracy", "mcnemar_p_value"} <= set(served) and served["mcnemar_p_value"] is None
