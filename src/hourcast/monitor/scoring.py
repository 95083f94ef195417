"""Scoring: every logged prediction scored against the candle that then closed, kept in the scores dataset.

* **Scoring.** A prediction made ``as_of`` hour T forecasts the close of the candle opening at
  ``target_time`` (T + 1 timeframe). Once that candle is stored it is scored: the realised close, the
  model's error (predicted - realised), persistence's error (last close - realised), whether the direction
  from the last close was right (undefined when the close did not move) and whether the realised close fell
  inside the served band. A target hour missing from the store while later candles are stored is a gap:
  the prediction is recorded as ``unscorable``, never guessed. A target not stored yet is left for a
  later run.
* **Duplicates.** The API may answer the same hour thousands of times: predictions are keyed by
  ``(symbol, as_of, model)`` and the first answer of a key is the one scored, once; the hour's forecast of
  record (``source="record"``, logged by the hourly ingest whatever the traffic) comes before any client's
  answer of its key (the same forecast, from the same features and model).
* **The scores dataset** ``HOURCAST_HOME/scores/date=YYYY-MM-DD/scores.parquet`` (by the target's day)
  holds one row per key; a run adds only keys it does not hold yet, rewriting each touched day file
  atomically under a lock, so re-running adds nothing and a run killed part-way loses nothing (what it
  did not write is scored again next time).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from hourcast import atomic
from hourcast.data import store
from hourcast.settings import Settings

KEY = ["symbol", "as_of", "model"]
SCORED, UNSCORABLE = "scored", "unscorable"
RECORD, REQUEST = "record", "request"
"""The ``source`` of a logged forecast (``hourcast.serving.schema.Source``)."""
LOG_COLUMNS = [
    "requested_at",
    "source",
    "symbol",
    "as_of",
    "target_time",
    "last_close",
    "predicted_close",
    "model",
    "stale",
    "band_low",
    "band_high",
]
"""What scoring reads from the prediction log (the band is absent from logs written before it was)."""
SCORE_COLUMNS = [
    "symbol",
    "as_of",
    "model",
    "target_time",
    "requested_at",
    "source",
    "status",
    "last_close",
    "predicted_close",
    "realised_close",
    "error",
    "persistence_error",
    "direction_hit",
    "band_low",
    "band_high",
    "in_band",
    "stale",
]
SCORES_FILE = "scores.parquet"
RESCAN = pd.Timedelta(days=2)
"""How far before each symbol's newest scored hour a run re-reads the log. Keys logged for older hours are
already scored (or unscorable), except answers that reach the log more than this late with a model never
scored for that hour (stale answers after a promotion): those are not scored."""
_TIME = "datetime64[ms, UTC]"


def _times(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame.astype({column: _TIME for column in columns if column in frame.columns})


def with_source(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with its ``source`` column filled in: ``request`` for rows logged before it existed."""
    if "source" not in frame.columns:
        return frame.assign(source=REQUEST)
    return frame.assign(source=frame["source"].astype(object).where(frame["source"].notna(), REQUEST))


def records_first(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with the forecasts of record first, then the rest, each in request order."""
    rank = (with_source(frame)["source"] != RECORD).to_numpy()
    order = np.lexsort((frame["requested_at"].to_numpy(), rank))  # the last key sorts first
    return frame.iloc[order]


def distinct_predictions(log: pd.DataFrame) -> pd.DataFrame:
    """One row per ``(symbol, as_of, model)``: the forecast of record of each key, else its earliest answer
    (log in request order)."""
    frame = records_first(with_source(log)).drop_duplicates(KEY, keep="first")
    return _times(frame.reset_index(drop=True), ["as_of", "target_time"])


def empty_scores() -> pd.DataFrame:
    """A scores frame with no rows and the dataset's columns."""
    frame = pd.DataFrame({column: pd.Series(dtype="float64") for column in SCORE_COLUMNS})
    frame = frame.astype({"symbol": object, "model": object, "source": object, "status": object})
    frame = frame.astype({"direction_hit": "boolean", "in_band": "boolean", "stale": "boolean"})
    return _times(frame.astype({"requested_at": _TIME}), ["as_of", "target_time"])


def score_predictions(predictions: pd.DataFrame, candles: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Score distinct predictions against stored candles: ``(scores, pending)``.

    ``candles`` holds ``symbol, ts, close`` of every stored candle of the predictions' symbols from their
    first target hour on, up to the newest stored one. ``scores`` has ``SCORE_COLUMNS`` with status
    ``scored``, or ``unscorable`` when the target hour is missing although a later candle is stored (a gap);
    ``pending`` holds the predictions whose target candle is not stored yet.
    """
    if predictions.empty:
        return empty_scores(), predictions
    realised = candles[["symbol", "ts", "close"]].astype({"symbol": object})
    realised = _times(
        realised.rename(columns={"ts": "target_time", "close": "realised_close"}), ["target_time"]
    )
    frame = predictions.astype({"symbol": object}).merge(realised, on=["symbol", "target_time"], how="left")
    newest = _times(
        realised.groupby("symbol")["target_time"].max().rename("newest").reset_index(), ["newest"]
    )
    frame = frame.merge(newest, on="symbol", how="left")
    found = frame["realised_close"].notna().to_numpy()
    gap = ~found & (frame["target_time"] < frame["newest"]).fillna(False).to_numpy(dtype=bool)
    pending = predictions.loc[~(found | gap)].reset_index(drop=True)
    done = with_source(frame.loc[found | gap].reset_index(drop=True))
    for column in ("band_low", "band_high"):
        if column not in done.columns:
            done[column] = np.nan
    if "stale" not in done.columns:
        done["stale"] = pd.NA

    actual = done["realised_close"].to_numpy(dtype="float64")
    last = done["last_close"].to_numpy(dtype="float64")
    predicted = done["predicted_close"].to_numpy(dtype="float64")
    low, high = done["band_low"].to_numpy(dtype="float64"), done["band_high"].to_numpy(dtype="float64")
    moved = np.isfinite(actual) & (actual != last)
    banded = np.isfinite(actual) & np.isfinite(low) & np.isfinite(high)
    hit = pd.array(np.sign(predicted - last) == np.sign(actual - last), dtype="boolean")
    inside = pd.array((low <= actual) & (actual <= high), dtype="boolean")
    hit[~moved] = pd.NA
    inside[~banded] = pd.NA
    scores = done.assign(
        status=np.where(np.isfinite(actual), SCORED, UNSCORABLE),
        error=predicted - actual,
        persistence_error=last - actual,
        direction_hit=hit,
        in_band=inside,
        stale=done["stale"].astype("boolean"),
    )
    return scores.astype({"requested_at": _TIME})[SCORE_COLUMNS], pending


def _readable(path: Path) -> bool:
    """Whether a scores file can be read; a damaged one is set aside as ``<name>.damaged-<time>`` (one
    warning line): its hours are scored again from the prediction log."""
    try:
        pq.read_schema(path)
    except (pa.ArrowException, OSError) as error:
        atomic.set_aside_damaged(path, error, "its hours are scored again from the prediction log")
        return False
    return True


def read_scores(directory: Path) -> pd.DataFrame:
    """Every stored score, one row per key (empty frame if none; a damaged day file is set aside)."""
    files = sorted(str(path) for path in directory.glob(f"date=*/{SCORES_FILE}") if _readable(path))
    if not files:
        return empty_scores()
    schemas = [pq.read_schema(name) for name in files]  # days scored before a column existed lack it
    schema = pa.unify_schemas(schemas, promote_options="permissive")
    frame = with_source(pads.dataset(files, schema=schema, format="parquet").to_table().to_pandas())
    frame = frame.astype({"direction_hit": "boolean", "in_band": "boolean", "stale": "boolean"})
    frame = _times(frame.astype({"requested_at": _TIME}), ["as_of", "target_time"])
    return frame.drop_duplicates(KEY, keep="first").reset_index(drop=True)[SCORE_COLUMNS]


def write_scores(directory: Path, scores: pd.DataFrame) -> int:
    """Add the rows whose key is not stored yet, per target day (each day file replaced atomically,
    under the dataset's lock); returns how many rows were added."""
    if scores.empty:
        return 0
    added = 0
    with store.series_lock(directory):
        for day, rows in scores.groupby(scores["target_time"].dt.strftime("%Y-%m-%d"), sort=True):
            path = directory / f"date={day}" / SCORES_FILE
            if path.exists() and _readable(path):
                atomic.remove_stale_temporaries(path.parent)
                stored = pd.read_parquet(path)
                stored = _times(stored.astype({"requested_at": _TIME}), ["as_of", "target_time"])
                stored_keys = pd.MultiIndex.from_frame(stored[KEY])
                rows = rows.loc[~pd.MultiIndex.from_frame(rows[KEY]).isin(stored_keys)]
                if rows.empty:
                    continue
                rows = pd.concat([stored, rows], ignore_index=True)
                new = len(rows) - len(stored)
            else:
                new = len(rows)
            atomic.write_parquet(rows.sort_values(["target_time", "symbol"]).reset_index(drop=True), path)
            added += new
    return added


def not_scored(predictions: pd.DataFrame, stored: pd.DataFrame) -> pd.DataFrame:
    """The predictions whose key the scores dataset does not hold yet."""
    if predictions.empty or stored.empty:
        return predictions
    done = pd.MultiIndex.from_frame(stored[KEY])
    return predictions.loc[~pd.MultiIndex.from_frame(predictions[KEY]).isin(done)].reset_index(drop=True)


def target_candles(settings: Settings, predictions: pd.DataFrame) -> pd.DataFrame:
    """Stored candles of each predicted symbol from its first target hour on."""
    frames = [
        store.load_candles(
            settings.candles_dir,
            store.Series(settings.exchange, str(symbol), settings.timeframe),
            start=rows["target_time"].min(),
        )
        for symbol, rows in predictions.groupby("symbol", sort=True)
    ]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["symbol", "ts", "close"])


def log_since(stored: pd.DataFrame, symbols: list[str]) -> pd.Timestamp | None:
    """Where the log needs reading from: ``RESCAN`` before the oldest of the symbols' newest scored hours
    (None, everything, while a symbol has no score yet)."""
    newest = stored.groupby("symbol")["as_of"].max()
    if stored.empty or any(symbol not in newest.index for symbol in symbols):
        return None
    return newest.loc[symbols].min() - RESCAN
