"""The durable prediction log: every answered forecast, with its features, for later scoring.

Requests only append to an in-memory buffer; a background thread writes the buffer every
``flush_seconds`` as one small Parquet file (atomically), and ``close()`` flushes the rest. A crash
loses at most the last ``flush_seconds`` of predictions.
"""

from __future__ import annotations

import itertools
import os
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from hourcast import atomic
from hourcast.serving import Prediction

_TIME_COLUMNS = ("requested_at", "as_of", "target_time")


class PredictionLog:
    """Buffered, periodically flushed Parquet log of predictions under ``directory/date=YYYY-MM-DD/``."""

    def __init__(self, directory: Path, flush_seconds: float = 2.0) -> None:
        self.directory = directory
        self.flush_seconds = flush_seconds
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._sequence = itertools.count()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None

    def record(self, requested_at: datetime, predictions: list[Prediction]) -> None:
        """Queue answered predictions (cheap: no I/O on the request path)."""
        rows = [
            {
                "requested_at": requested_at,
                "symbol": p.symbol,
                "as_of": p.as_of,
                "target_time": p.target_time,
                "last_close": p.last_close,
                "predicted_close": p.predicted_close,
                "predicted_return": p.predicted_return,
                "model": p.model,
                "stale": p.stale,
                "features_age_seconds": p.features_age_seconds,
                **p.features,
            }
            for p in predictions
        ]
        with self._lock:
            self._buffer.extend(rows)

    def flush(self) -> Path | None:
        """Write what is buffered as one Parquet file; returns it (None if there was nothing)."""
        with self._lock:
            rows, self._buffer = self._buffer, []
        if not rows:
            return None
        frame = pd.DataFrame(rows)
        for column in _TIME_COLUMNS:
            frame[column] = pd.to_datetime(frame[column], utc=True)
        written = datetime.now(UTC)
        name = f"part-{written:%Y%m%dT%H%M%S%f}-{os.getpid()}-{next(self._sequence)}.parquet"
        return atomic.write_parquet(frame, self.directory / f"date={written:%Y-%m-%d}" / name)

    def start(self) -> None:
        """Flush every ``flush_seconds`` in a background thread until ``close()``."""

        def loop() -> None:
            while not self._stop.wait(self.flush_seconds):
                self.flush()

        self._writer = threading.Thread(target=loop, name="hourcast-prediction-log", daemon=True)
        self._writer.start()

    def close(self) -> None:
        """Stop the writer and flush what is left."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout=10)
        self.flush()


def read_log(directory: Path, columns: list[str] | None = None) -> pd.DataFrame:
    """Every logged prediction, oldest request first (empty frame if none).

    ``columns``: read only these (plus ``requested_at``); a column no file has is left out, and rows
    from files written before a column existed hold nulls in it (the newest file's layout is used).
    """
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    files = sorted(str(path) for path in directory.glob("date=*/part-*.parquet"))
    if not files:
        return pd.DataFrame(
            columns=columns or ["requested_at", "symbol", "as_of", "target_time", "predicted_close"]
        )
    schema = pq.read_schema(files[-1])
    wanted = None if columns is None else ["requested_at", *columns]
    selected = [name for name in schema.names if wanted is None or name in wanted]
    table = pads.dataset(files, schema=schema, format="parquet").to_table(columns=selected)
    frame = table.to_pandas()
    return frame.sort_values("requested_at", kind="stable").reset_index(drop=True)
