"""The dataset: the one loader of stored candles and the one definition of labelled rows.

Training (through Feast's point-in-time join), evaluation (pure, over the whole archive) and the feature
table all start from ``load_candles``; ``labels`` are the entity rows with their targets, and
``labelled_rows`` are the pure equivalent of Feast's training rows (a test checks they are equal).
"""

from __future__ import annotations

import pandas as pd

from hourcast.data import store
from hourcast.errors import HourcastError
from hourcast.features.compute import feature_rows, next_hour_targets
from hourcast.settings import Settings
from hourcast.timeframe import timeframe_ms


class NoCandles(HourcastError):
    """A configured symbol has no stored candle."""


def load_candles(settings: Settings) -> pd.DataFrame:
    """Every stored candle of the configured symbols (``store.load_candles`` columns), symbol by symbol.

    Raises ``NoCandles`` naming every symbol that has none: a dataset silently missing a symbol would
    train, evaluate or serve without it.
    """
    frames = {
        symbol: store.load_candles(
            settings.candles_dir, store.Series(settings.exchange, symbol, settings.timeframe)
        )
        for symbol in settings.symbols
    }
    empty = [symbol for symbol, frame in frames.items() if frame.empty]
    if empty:
        raise no_candles(settings, empty)
    return pd.concat(frames.values(), ignore_index=True)


def no_candles(settings: Settings, symbols: list[str]) -> NoCandles:
    """The error for configured ``symbols`` that have no stored candle."""
    return NoCandles(
        f"no candles stored for {', '.join(symbols)} in {settings.candles_dir}; "
        "run `hourcast ingest` (or `hourcast backfill`) first"
    )


def labels(candles: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Entity rows ``symbol, event_timestamp`` (close time of candle T) with the label ``target_return``,
    ``next_close`` and the context to score it: ``as_of`` (open time of T) and ``last_close``."""
    targets = next_hour_targets(candles, timeframe)
    context = candles[["symbol", "ts", "close"]].rename(columns={"ts": "as_of", "close": "last_close"})
    step = pd.Timedelta(milliseconds=timeframe_ms(timeframe))
    opened = (targets["event_timestamp"] - step).astype(context["as_of"].dtype)
    labelled = targets.assign(as_of=opened).merge(context, on=["symbol", "as_of"])
    labelled["symbol"] = labelled["symbol"].astype(str)
    return labelled


def labelled_rows(candles: pd.DataFrame, timeframe: str) -> pd.DataFrame:
    """Features (``feature_rows``: cross-asset inputs included, NaN where the reference row is missing) and
    labels computed from ``candles`` alone, in time order: the rows Feast's point-in-time join returns for
    ``labels(candles)`` (every feature at T uses candles up to T only)."""
    targets = labels(candles, timeframe)[["symbol", "event_timestamp", "target_return", "next_close"]]
    joined = feature_rows(candles, timeframe).merge(targets, on=["symbol", "event_timestamp"])
    return joined.sort_values(["event_timestamp", "symbol"]).reset_index(drop=True)
