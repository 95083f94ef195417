"""The side files of the monitor (scores) and of the model registry, damaged for real (garbage bytes):
set aside as ``<name>.damaged-<time>`` with one warning line, never a traceback; the scores of their
hours are computed again, the registry reads as having no production model until one is promoted."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest

from hourcast.model import registry
from hourcast.monitor import scoring

GARBAGE = b"\x00garbage\xff" * 9
START = pd.Timestamp("2024-03-01", tz="UTC")
HOUR = pd.Timedelta(hours=1)


def logged(candles: pd.DataFrame, hours: int) -> pd.DataFrame:
    """One logged answer per hour from START: 0.1 % above the last close, band +-0.5 %."""
    last = candles.set_index("ts")["close"]
    as_of = [START + hour * HOUR for hour in range(hours)]
    closes = last.loc[as_of].to_numpy()
    return pd.DataFrame(
        {
            "requested_at": [stamp + HOUR + pd.Timedelta(minutes=1) for stamp in as_of],
            "symbol": "BTC/USDT",
            "as_of": as_of,
            "target_time": [stamp + HOUR for stamp in as_of],
            "last_close": closes,
            "predicted_close": closes * 1.001,
            "model": "m:1",
            "stale": False,
            "band_low": closes * 0.995,
            "band_high": closes * 1.005,
        }
    )


@pytest.fixture
def candles(btc_recorded: pd.DataFrame) -> pd.DataFrame:
    """24 recorded BTC/USDT hours from START, as ``symbol, ts, close``."""
    frame = btc_recorded.loc[
        (btc_recorded["ts"] >= START) & (btc_recorded["ts"] < START + pd.Timedelta(days=1))
    ]
    return frame.assign(symbol="BTC/USDT")[["symbol", "ts", "close"]].reset_index(drop=True)


def test_a_damaged_scores_file_is_set_aside_and_its_hours_scored_again(
    tmp_path: Path, candles: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "scores"
    scores, _ = scoring.score_predictions(scoring.distinct_predictions(logged(candles, 10)), candles)
    assert scoring.write_scores(directory, scores) == 10
    [day] = directory.glob("date=*/scores.parquet")
    day.write_bytes(GARBAGE)
    with caplog.at_level(logging.WARNING):
        stored = scoring.read_scores(directory)
    assert stored.empty and not day.exists()
    [aside] = day.parent.glob("scores.parquet.damaged-*")
    assert aside.read_bytes() == GARBAGE
    [warning] = caplog.messages
    assert f"{day} cannot be read" in warning and "scored again from the prediction log" in warning

    assert scoring.write_scores(directory, scores) == 10  # the run after: its hours scored again
    day.write_bytes(GARBAGE)  # a damaged day file met by the writer is set aside too
    assert scoring.write_scores(directory, scores) == 10
    assert len(scoring.read_scores(directory)) == 10 and len(list(day.parent.glob("*.damaged-*"))) == 2


def test_a_damaged_registry_reads_as_no_production_model(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "registry" / "hourcast-next-hour.json"
    path.parent.mkdir()
    path.write_bytes(b'{"name": "hourcast-next-hour", "production": "hourcast-next-hour:ab')  # truncated
    with caplog.at_level(logging.WARNING):
        assert registry.production_tag(path.parent, "hourcast-next-hour") is None
    [aside] = path.parent.glob(f"{path.name}.damaged-*")
    assert aside.read_bytes().startswith(b'{"name"') and not path.exists()
    [warning] = caplog.messages
    assert f"{path} cannot be read" in warning and "`hourcast models promote TAG`" in warning
