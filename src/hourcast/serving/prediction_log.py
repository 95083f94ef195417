"""The durable prediction log: every answered forecast, with its band and features, for later scoring.

Requests only append their answers to an in-memory buffer; a background ``Periodic`` job turns it into one
frame (column by column: a few microseconds per answer) and writes it every ``flush_seconds`` as one small
Parquet file (atomically), and ``close()`` flushes the rest. A write that
fails is logged and its rows are kept, under the same file name, for the next flush (so a retry after
a failure that happened after publishing rewrites the same file instead of duplicating it). A crash
loses at most the last ``flush_seconds`` of predictions.

The hour's forecast of record (``hourcast.serving.record``) is logged here too, by ``write_records``: one
file per forecast hour, ``date=<as_of day>/part-<as_of>-record.parquet``, written atomically and only with
symbols it does not hold yet, so making the record of an hour twice logs it once; ``recorded`` lists the
symbols and hours recorded (so a record step can make those a killed run missed).

Columns: ``requested_at``, ``source`` (``record`` or ``request``: ``hourcast.serving.schema.Source``), every
field of the API's ``Prediction`` except ``band``, ``band_low`` and ``band_high`` (the served band), and the
feature values.
"""

from __future__ import annotations

import itertools
import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from hourcast import atomic
from hourcast.background import Periodic
from hourcast.serving.schema import Prediction, Source

_TIME_COLUMNS = ("requested_at", "as_of", "target_time")
MAX_PENDING_ROWS = 200_000  # kept while writes fail; beyond this the oldest unwritten rows are dropped

logger = logging.getLogger("hourcast.serving.prediction_log")


_ANSWER_FIELDS = [name for name in Prediction.model_fields if name != "band"]


def log_frame(answers: list[tuple[datetime, Prediction]], source: Source = "request") -> pd.DataFrame:
    """The log rows of ``(requested_at, answer)`` pairs: the request time, ``source``, the answer as served
    (band as ``band_low``/``band_high``; a missing ``p_up`` as NaN, so the column is a float in every file),
    the features. Built by column, not from a dict per row (which costs pandas about five times as much)."""
    predictions = [prediction for _, prediction in answers]
    columns: dict[str, list[Any]] = {
        "requested_at": [requested_at for requested_at, _ in answers],
        "source": [source] * len(answers),
    }
    for name in _ANSWER_FIELDS:
        columns[name] = [getattr(prediction, name) for prediction in predictions]
    columns["p_up"] = [float("nan") if value is None else value for value in columns["p_up"]]
    columns["band_low"] = [prediction.band.low for prediction in predictions]
    columns["band_high"] = [prediction.band.high for prediction in predictions]
    features = [prediction.features for prediction in predictions]
    distinct = {id(values): values for values in features}.values()  # answers of one forecast share theirs
    for name in dict.fromkeys(name for values in distinct for name in values):
        columns[name] = [values.get(name) for values in features]
    frame = pd.DataFrame(columns)
    for column in _TIME_COLUMNS:
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame


class PredictionLog:
    """Buffered, periodically flushed Parquet log of predictions under ``directory/date=YYYY-MM-DD/``."""

    def __init__(self, directory: Path, flush_seconds: float = 2.0) -> None:
        self.directory = directory
        self.flush_seconds = flush_seconds
        self._buffer: list[tuple[datetime, Prediction]] = []
        self._pending: list[tuple[Path, pd.DataFrame]] = []
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._sequence = itertools.count()
        self._writer = Periodic("prediction log flush", flush_seconds, self.flush, logger)

    @property
    def unwritten(self) -> int:
        """Rows recorded but not yet on disk."""
        with self._lock:
            return len(self._buffer) + sum(len(frame) for _, frame in self._pending)

    @property
    def last_error(self) -> str | None:
        """The failure of the last background flush (``None`` if it succeeded)."""
        return self._writer.last_error

    def record(self, requested_at: datetime, predictions: list[Prediction]) -> None:
        """Queue answered predictions (cheap: no I/O, no row built on the request path)."""
        with self._lock:
            self._buffer.extend((requested_at, prediction) for prediction in predictions)

    def _next_path(self) -> Path:
        written = datetime.now(UTC)
        name = f"part-{written:%Y%m%dT%H%M%S%f}-{os.getpid()}-{next(self._sequence)}.parquet"
        return self.directory / f"date={written:%Y-%m-%d}" / name

    def flush(self) -> Path | None:
        """Write what is buffered; returns the last file written (None if there was nothing). Raises if a
        write fails: the rows stay queued for the next flush."""
        with self._flush_lock:
            with self._lock:
                answers, self._buffer = self._buffer, []
            if answers:
                frame = log_frame(answers)
                with self._lock:
                    self._pending.append((self._next_path(), frame))
            with self._lock:
                self._drop_beyond_limit()
                pending = list(self._pending)
            written = None
            for path, frame in pending:
                written = atomic.write_parquet(frame, path)
                with self._lock:
                    self._pending.pop(0)  # only flush (under _flush_lock) changes _pending
            return written

    def _drop_beyond_limit(self) -> None:
        while sum(len(frame) for _, frame in self._pending) > MAX_PENDING_ROWS and len(self._pending) > 1:
            path, frame = self._pending.pop(0)
            logger.error(
                "prediction log: dropped %d unwritten rows (%s) after repeated write failures",
                len(frame),
                path.name,
            )

    def start(self) -> None:
        """Flush every ``flush_seconds`` in the background until ``close()``."""
        self._writer.start()

    def close(self) -> None:
        """Stop the writer and flush what is left (a failure is logged; the rows are then lost)."""
        self._writer.stop()
        if not self._writer.run_once():
            logger.error("prediction log: %d rows could not be written at shutdown", self.unwritten)


def record_path(directory: Path, as_of: pd.Timestamp) -> Path:
    """Where the forecasts of record of the hour ``as_of`` are logged (named by it, so ``read_log``'s
    ``since`` holds for them too)."""
    as_of = as_of.tz_convert("UTC")
    return directory / f"date={as_of:%Y-%m-%d}" / f"part-{as_of:%Y%m%dT%H%M%S%f}-record.parquet"


def recorded(directory: Path, first: pd.Timestamp, last: pd.Timestamp) -> pd.DataFrame:
    """``symbol, as_of`` of every forecast of record of the hours ``first`` to ``last`` (only the record
    files of those days are listed and read)."""
    days = pd.date_range(first.tz_convert("UTC").floor("D"), last.tz_convert("UTC").floor("D"), freq="D")
    low, high = record_path(directory, first).name, record_path(directory, last).name
    files = [
        path
        for day in days
        for path in sorted((directory / f"date={day:%Y-%m-%d}").glob("part-*-record.parquet"))
        if low <= path.name <= high
    ]
    if not files:
        return pd.DataFrame(
            {"symbol": pd.Series(dtype=object), "as_of": pd.Series(dtype="datetime64[ns, UTC]")}
        )
    frame = pd.concat(
        [pd.read_parquet(path, columns=["symbol", "as_of"]) for path in files], ignore_index=True
    )
    return frame.assign(as_of=pd.to_datetime(frame["as_of"], utc=True))


def write_records(directory: Path, made_at: datetime, predictions: list[Prediction]) -> list[Path]:
    """Log ``predictions`` made at ``made_at`` as forecasts of record, one file per ``as_of`` hour
    (``record_path``): a symbol the hour's file already holds keeps its first record, the others are added
    (the file replaced atomically, under the log's record lock). Returns the files written (none when every
    record was already logged)."""
    written = []
    hours: dict[str, list[Prediction]] = {}
    for prediction in predictions:
        hours.setdefault(prediction.as_of, []).append(prediction)
    with atomic.file_lock(directory / ".record.lock"):
        for as_of, made in sorted(hours.items()):
            path = record_path(directory, pd.Timestamp(as_of))
            frame = log_frame([(made_at, prediction) for prediction in made], source="record")
            if path.exists():
                logged = pd.read_parquet(path)
                frame = frame.loc[~frame["symbol"].isin(logged["symbol"])]
                if frame.empty:
                    continue
                frame = pd.concat([logged, frame], ignore_index=True)
            written.append(atomic.write_parquet(frame, path))
    return written


def read_log(
    directory: Path, columns: list[str] | None = None, since: pd.Timestamp | None = None
) -> pd.DataFrame:
    """Every logged prediction, oldest request first (empty frame if none).

    ``columns``: read only these (plus ``requested_at``); a column no file has is left out, and rows
    from files written before a column existed hold nulls in it (the newest file's layout is used).
    ``since``: only predictions with ``as_of >= since``. Files written before ``since`` (by their name) are
    not opened: an answer is logged after the hour it forecasts from, so they hold only earlier hours.
    """
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    files = sorted(str(path) for path in directory.glob("date=*/part-*.parquet"))
    if since is not None:
        first = f"part-{since.tz_convert('UTC'):%Y%m%dT%H%M%S%f}"
        files = [name for name in files if Path(name).name >= first]
    if not files:
        return pd.DataFrame(
            columns=columns or ["requested_at", "symbol", "as_of", "target_time", "predicted_close"]
        )
    schema = pq.read_schema(files[-1])
    wanted = None if columns is None else ["requested_at", *columns]
    selected = [name for name in schema.names if wanted is None or name in wanted]
    condition = None if since is None else pads.field("as_of") >= since.to_pydatetime()
    table = pads.dataset(files, schema=schema, format="parquet").to_table(columns=selected, filter=condition)
    frame = table.to_pandas()
    return frame.sort_values("requested_at", kind="stable").reset_index(drop=True)
