"""The prediction log on a real filesystem: round trip, a failing write (the log's folder is blocked by a
file, so every write raises) that loses nothing, the background writer logging the failure and catching up."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from hourcast.features.compute import FEATURE_NAMES
from hourcast.serving.prediction_log import PredictionLog, log_frame, read_log
from hourcast.serving.schema import Band, Prediction


def prediction(symbol: str = "BTC/USDT", close: float = 61_000.0) -> Prediction:
    answer = Prediction(
        symbol=symbol,
        as_of="2024-02-29T23:00:00Z",
        target_time="2024-03-01T00:00:00Z",
        last_close=close,
        predicted_close=close * 1.001,
        predicted_return=0.000999,
        direction="up",
        persistence_close=close,
        model="hourcast_next_hour:abc",
        features_age_seconds=600.0,
        stale=False,
        band=Band(low=close * 0.99, high=close * 1.01, quantiles=[0.05, 0.95]),
        clock="exchange",
    )
    return answer.with_features({name: float(index) for index, name in enumerate(FEATURE_NAMES)})


def eventually(condition: Callable[[], bool], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)


def test_round_trip_keeps_the_answer_its_band_and_features(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions")
    requested = datetime(2024, 3, 1, 0, 10, tzinfo=UTC)
    log.record(requested, [prediction(), prediction("ETH/USDT", 3_400.0)])
    assert log.flush() is not None and log.unwritten == 0
    assert log.flush() is None  # nothing new

    frame = read_log(tmp_path / "predictions")
    assert list(frame["symbol"]) == ["BTC/USDT", "ETH/USDT"]
    assert frame["requested_at"].iloc[0] == pd.Timestamp(requested)
    assert frame["as_of"].iloc[0] == pd.Timestamp("2024-02-29T23:00:00Z")
    assert list(frame["band_low"]) == pytest.approx([61_000.0 * 0.99, 3_400.0 * 0.99])
    assert list(frame["band_high"]) == pytest.approx([61_000.0 * 1.01, 3_400.0 * 1.01])
    assert frame["clock"].iloc[0] == "exchange" and frame["direction"].iloc[0] == "up"
    assert list(frame[FEATURE_NAMES[:3]].iloc[0]) == [0.0, 1.0, 2.0]


def test_the_log_frame_is_one_row_per_answer_as_served(tmp_path: Path) -> None:
    """Built column by column, it holds what a row per answer holds: the request time, its source, every
    field but the band, the band's edges, a missing ``p_up`` as NaN, the features (a feature an answer lacks
    as NaN)."""
    first = datetime(2024, 3, 1, 0, 10, tzinfo=UTC)
    calibrated = prediction().model_copy(update={"p_up": 0.53})
    partial = prediction("ETH/USDT", 3_400.0).with_features({FEATURE_NAMES[0]: 7.0})
    answers = [(first, calibrated), (first, prediction()), (datetime.now(UTC), partial)]
    expected = pd.DataFrame(
        [
            {
                "requested_at": requested_at,
                "source": "request",
                **answer.model_dump(exclude={"band"}),
                "p_up": float("nan") if answer.p_up is None else answer.p_up,
                "band_low": answer.band.low,
                "band_high": answer.band.high,
                **answer.features,
            }
            for requested_at, answer in answers
        ]
    )
    for column in ("requested_at", "as_of", "target_time"):
        expected[column] = pd.to_datetime(expected[column], utc=True)
    pd.testing.assert_frame_equal(log_frame(answers), expected)


def test_a_failing_write_keeps_its_rows_for_the_next_flush(tmp_path: Path) -> None:
    directory = tmp_path / "predictions"
    directory.write_text("a file where the log's folder should be")  # every write now fails for real
    log = PredictionLog(directory)
    log.record(datetime.now(UTC), [prediction()] * 3)
    with pytest.raises(OSError):
        log.flush()
    log.record(datetime.now(UTC), [prediction("ETH/USDT")] * 2)
    with pytest.raises(OSError):
        log.flush()
    assert log.unwritten == 5

    directory.unlink()  # the disk works again
    log.flush()
    assert log.unwritten == 0
    frame = read_log(directory)
    assert list(frame["symbol"]) == ["BTC/USDT"] * 3 + ["ETH/USDT"] * 2  # each row once, in order
    assert len(list(directory.glob("date=*/part-*.parquet"))) == 2  # one file per recorded batch


def test_the_background_writer_logs_failures_and_catches_up(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = tmp_path / "predictions"
    directory.write_text("blocked")
    log = PredictionLog(directory, flush_seconds=0.05)
    caplog.set_level(logging.WARNING, logger="hourcast.serving.prediction_log")
    log.start()
    try:
        log.record(datetime.now(UTC), [prediction()] * 4)
        eventually(lambda: log.last_error is not None, "the failed write to be recorded")
        eventually(lambda: "failed again" in caplog.text, "repeated failures to be logged")
        assert "prediction log flush failed" in caplog.text and "Traceback" in caplog.text
        assert log.unwritten == 4
        directory.unlink()
        eventually(lambda: log.unwritten == 0, "the writer to catch up")
        assert log.last_error is None and "works again" in caplog.text
    finally:
        log.close()
    assert len(read_log(directory)) == 4


def test_close_writes_what_is_buffered(tmp_path: Path) -> None:
    log = PredictionLog(tmp_path / "predictions", flush_seconds=3600)
    log.start()
    log.record(datetime.now(UTC), [prediction()] * 7)
    log.close()
    assert len(read_log(tmp_path / "predictions")) == 7


def test_p_up_reads_back_across_files_with_and_without_it(tmp_path: Path) -> None:
    """A calibrated model's answers (``p_up``) then an older model's (no ``p_up``, e.g. after a rollback):
    the newest file's layout must still read the older files."""
    log = PredictionLog(tmp_path / "predictions")
    log.record(datetime(2024, 3, 1, 0, 10, tzinfo=UTC), [prediction().model_copy(update={"p_up": 0.53})])
    log.flush()
    log.record(datetime(2024, 3, 1, 1, 10, tzinfo=UTC), [prediction()])
    log.flush()
    frame = read_log(tmp_path / "predictions")
    assert frame["p_up"].iloc[0] == 0.53 and pd.isna(frame["p_up"].iloc[1])
