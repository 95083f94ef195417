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
from tests.unit.test_monitor import START, log_rows

GARBAGE = b"\x00garbage\xff" * 9


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
    scores, _ = scoring.score_predictions(
        scoring.distinct_predictions(log_rows(candles, range(0, 10))), candles
    )
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
