"""The forecast of record, pure and file parts: the log's record files (one per hour, written once per
symbol whatever how often the record step runs, read back with ``since`` beside client answers, listed per
symbol and hour), the hours a record step still owes after a run missed its record step and the features it
makes them from, and the monitor preferring the record over client answers of the same hour (scoring, the
served track) while old logs and score files without a ``source`` read as client answers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd

from hourcast.features.compute import FEATURE_COLUMNS
from hourcast.monitor import scoreboard, scoring
from hourcast.serving.prediction_log import PredictionLog, read_log, record_path, recorded, write_records
from hourcast.serving.record import CATCH_UP, ONLINE_COLUMNS, hour_values, owed_hours
from hourcast.serving.schema import Band, Prediction

HOUR = pd.Timedelta(hours=1)
START = pd.Timestamp("2024-03-01", tz="UTC")


def forecast(symbol: str, as_of: pd.Timestamp, close: float, model: str = "m:1") -> Prediction:
    return Prediction(
        symbol=symbol,
        as_of=f"{as_of:%Y-%m-%dT%H:%M:%SZ}",
        target_time=f"{as_of + HOUR:%Y-%m-%dT%H:%M:%SZ}",
        last_close=close,
        predicted_close=close * 1.001,
        predicted_return=0.000999,
        direction="up",
        persistence_close=close,
        model=model,
        features_age_seconds=5.0,
        stale=False,
        band=Band(low=close * 0.99, high=close * 1.01, quantiles=[0.05, 0.95]),
        clock="system",
    ).with_features({"ret_1": 0.001})


def made(minutes: int) -> datetime:
    return (START + HOUR + pd.Timedelta(minutes=minutes)).to_pydatetime().astimezone(UTC)


def test_an_hour_is_recorded_once_per_symbol_however_often_the_step_runs(tmp_path: Path) -> None:
    directory = tmp_path / "predictions"
    first = write_records(directory, made(1), [forecast("BTC/USDT", START, 100.0)])
    assert first == [record_path(directory, START)]
    assert first[0].name == "part-20240301T000000000000-record.parquet"
    assert first[0].parent.name == "date=2024-03-01"

    # again, with a different answer for BTC (another model since) and ETH now online: BTC keeps its first
    again = [forecast("BTC/USDT", START, 200.0, model="m:2"), forecast("ETH/USDT", START, 10.0)]
    assert write_records(directory, made(2), again) == first
    assert write_records(directory, made(3), again) == []  # nothing new: nothing written

    log = read_log(directory)
    assert sorted(log["symbol"]) == ["BTC/USDT", "ETH/USDT"]
    assert (log["source"] == "record").all()
    btc = log.loc[log["symbol"] == "BTC/USDT"].iloc[0]
    assert (btc["last_close"], btc["model"]) == (100.0, "m:1")
    assert btc["requested_at"] == pd.Timestamp(made(1))
    assert btc["band_low"] == 99.0 and btc["ret_1"] == 0.001
    assert list(directory.rglob("*.parquet")) == first  # one file per hour, no temporaries left


def test_records_of_several_hours_go_to_their_own_files_and_since_reads_them(tmp_path: Path) -> None:
    directory = tmp_path / "predictions"
    hours = [START - HOUR, START, START + HOUR]
    written = write_records(directory, made(0), [forecast("BTC/USDT", hour, 100.0) for hour in hours])
    assert written == [record_path(directory, hour) for hour in hours]

    answers = PredictionLog(directory)  # a client's answer of the newest hour, beside the records
    answers.record(made(5), [forecast("BTC/USDT", START + HOUR, 100.0)])
    answers.flush()

    recent = read_log(directory, columns=["symbol", "as_of", "source"], since=START)
    assert sorted(zip(recent["as_of"], recent["source"], strict=True)) == [
        (START, "record"),
        (START + HOUR, "record"),
        (START + HOUR, "request"),
    ]


def log_row(as_of: pd.Timestamp, source: str | None, requested: int, close: float, model: str) -> dict:
    return {
        "requested_at": as_of + HOUR + pd.Timedelta(minutes=requested),
        "symbol": "BTC/USDT",
        "as_of": as_of,
        "target_time": as_of + HOUR,
        "last_close": 100.0,
        "predicted_close": close,
        "model": model,
        "stale": False,
        "band_low": 99.0,
        "band_high": 101.0,
        "source": source,
    }


def test_the_record_is_scored_before_an_earlier_client_answer_of_its_key() -> None:
    log = pd.DataFrame(
        [
            log_row(START, "request", 0, 100.5, "m:1"),  # a client asked before the record was logged
            log_row(START, "record", 1, 100.2, "m:1"),
            log_row(START + HOUR, None, 0, 100.7, "m:1"),  # logged before the source column existed
        ]
    )
    predictions = scoring.distinct_predictions(log)
    assert list(zip(predictions["as_of"], predictions["source"], strict=True)) == [
        (START, "record"),
        (START + HOUR, "request"),
    ]
    candles = pd.DataFrame(
        {"symbol": "BTC/USDT", "ts": [START, START + HOUR, START + 2 * HOUR], "close": [100.0, 101.0, 99.0]}
    )
    scores, pending = scoring.score_predictions(predictions, candles)
    assert pending.empty
    assert scores["source"].tolist() == ["record", "request"]
    assert scores["error"].tolist() == [100.2 - 101.0, 100.7 - 99.0]


def test_the_served_track_is_the_forecast_of_record_whichever_model_answered_first() -> None:
    log = pd.DataFrame(
        [
            log_row(START, "request", 0, 100.5, "old"),  # the previous model, still cached by a worker
            log_row(START, "record", 1, 100.2, "new"),
            log_row(START + HOUR, "request", 0, 100.7, "new"),
        ]
    )
    candles = pd.DataFrame(
        {"symbol": "BTC/USDT", "ts": [START, START + HOUR, START + 2 * HOUR], "close": [100.0, 101.0, 99.0]}
    )
    scores, _ = scoring.score_predictions(scoring.distinct_predictions(log), candles)
    assert len(scores) == 3  # every key is scored
    track = scoreboard.served(scores)
    assert list(zip(track["model"], track["source"], strict=True)) == [("new", "record"), ("new", "request")]
    view = scoreboard.performance(scores, "BTC/USDT", START + 2 * HOUR, 48)
    assert view["history"]["source"].tolist() == ["record", "request"]
    assert view["history"]["predicted_close"].tolist() == [100.2, 100.7]


def test_score_files_written_before_the_source_column_read_as_client_answers(tmp_path: Path) -> None:
    directory = tmp_path / "scores"
    log = pd.DataFrame(
        [log_row(START, "record", 1, 100.2, "m:1"), log_row(START + HOUR, None, 0, 100.7, "m:1")]
    )
    candles = pd.DataFrame(
        {"symbol": "BTC/USDT", "ts": [START, START + HOUR, START + 2 * HOUR], "close": [100.0, 101.0, 99.0]}
    )
    scores, _ = scoring.score_predictions(scoring.distinct_predictions(log), candles)
    older = scores.iloc[[1]].drop(columns="source")  # a day scored by an older hourcast
    older_path = directory / "date=2024-03-01" / scoring.SCORES_FILE
    older_path.parent.mkdir(parents=True)
    older.to_parquet(older_path, index=False)
    scoring.write_scores(directory, scores.iloc[[0]])  # the same day: the file now holds both layouts
    later = scores.iloc[[0]].assign(as_of=START + 23 * HOUR, target_time=START + 24 * HOUR)
    scoring.write_scores(directory, later)  # the next day, with the column

    stored = scoring.read_scores(directory).sort_values("as_of")
    assert stored["source"].tolist() == ["record", "request", "record"]


def test_a_record_step_owes_the_hours_since_the_last_recorded_one_within_a_day() -> None:
    newest = START + 10 * HOUR
    assert owed_hours(newest - HOUR, newest, HOUR) == []  # on time: only the newest, from the online read
    assert owed_hours(newest, newest, HOUR) == []  # the hour again
    assert owed_hours(newest + HOUR, newest, HOUR) == []  # a newer hour recorded already
    # one run killed before its record step: the hour it missed
    assert owed_hours(newest - 2 * HOUR, newest, HOUR) == [newest - HOUR]
    assert owed_hours(newest - 4 * HOUR, newest, HOUR) == [
        newest - 3 * HOUR,
        newest - 2 * HOUR,
        newest - HOUR,
    ]
    # at most a day back: 23 hours before the newest, however old the last record
    day = owed_hours(newest - 30 * HOUR, newest, HOUR)
    assert day == [newest - back * HOUR for back in range(23, 0, -1)]
    assert newest - day[0] < CATCH_UP < scoring.RESCAN  # every late record is still read by the monitor
    # no record within the day (the first one: no production model before it; or down for longer)
    assert owed_hours(None, newest, HOUR) == []
    # the bound is the same day at any timeframe: none at a candle of a day
    assert owed_hours(newest - 6 * HOUR, newest, 4 * HOUR) == [newest - 4 * HOUR]
    assert owed_hours(newest - 5 * 24 * HOUR, newest, 24 * HOUR) == []


def test_recorded_lists_each_symbols_record_hours_from_the_record_files_only(tmp_path: Path) -> None:
    directory = tmp_path / "predictions"
    assert recorded(directory, START, START + HOUR).empty
    hours = [START - 2 * HOUR, START - HOUR, START + 23 * HOUR, START + 24 * HOUR]  # across three days
    write_records(directory, made(0), [forecast("BTC/USDT", hour, 100.0) for hour in hours])
    write_records(directory, made(0), [forecast("ETH/USDT", START - HOUR, 10.0)])
    answers = PredictionLog(directory)  # client answers are not records
    answers.record(made(5), [forecast("ETH/USDT", START + 23 * HOUR, 10.0)])
    answers.flush()

    found = recorded(directory, START - HOUR, START + 23 * HOUR)
    assert sorted(zip(found["symbol"], found["as_of"], strict=True)) == [
        ("BTC/USDT", START - HOUR),
        ("BTC/USDT", START + 23 * HOUR),
        ("ETH/USDT", START - HOUR),
    ]


def test_an_owed_hour_is_forecast_from_that_hours_feature_rows_as_an_online_read_returns_them() -> None:
    row = dict.fromkeys(FEATURE_COLUMNS, 0.5) | {"last_close": 100.0}
    table = pd.DataFrame(
        [
            {"symbol": "BTC/USDT", "as_of": START - HOUR, **row, "last_close": 99.0},
            {"symbol": "BTC/USDT", "as_of": START, **row, "ref_ret_1h": float("nan")},
            {"symbol": "ETH/USDT", "as_of": START + HOUR, **row},
        ]
    ).astype({"as_of": "datetime64[ms, UTC]"})
    values = hour_values(table, START, ["ETH/USDT", "BTC/USDT"])
    assert list(values) == ONLINE_COLUMNS
    assert values["as_of"] == [None, START]  # ETH has no row that hour
    assert values["last_close"] == [None, 100.0]
    assert values["ref_ret_1h"] == [None, None]  # null, as the online store returns it
    assert values["ret_1h"] == [None, 0.5]
