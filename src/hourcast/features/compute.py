"""Model features and next-candle targets from a public candle frame (pure, no I/O).

Everything is counted in candles of the timeframe (``HOURCAST_TIMEFRAME``): ``*_lag_k`` is k candles back,
and the windows in the names (``ret_24h``, ``volatility_12h``, ``volume_z_24h``, ...) span that many
candles, hours at the default 1h. The names stay the same for every timeframe, so the Feast schema and the
model's inputs do not depend on it; a model is trained and served for one timeframe (its metadata says so).

The same functions build the offline training table and the online feature values, so training and
serving cannot drift. A feature row for candle ``T`` uses only the ``LOOKBACK`` consecutive candles
ending at ``T``; rows whose lookback crosses a gap (a step between open times other than one
timeframe) are dropped rather than computed from invented values.

Choices:

* ``close_lag_0`` is kept (it is always 0) so the OHLC block is a uniform 48 columns.
* Window sums are taken lag by lag (one vector addition per lag), never with a numpy reduction,
  whose summation order can depend on how many rows are computed at once. A row's values therefore
  depend only on its own window: features from the last ``LOOKBACK`` candles equal, bit for bit, the
  row computed from the whole history.
* A row with a non-finite value (only possible for prices <= 0, which validation rejects upstream)
  is dropped, so the output is always finite.

Cross-asset inputs (``with_reference``, ``CROSS_FEATURES``): each symbol's row at T also carries the
returns and volatility of a reference symbol's row at the same T (BTC/USDT for every symbol, ETH/USDT for
BTC/USDT itself), point in time like every other feature. The feature table (``feature_rows``, read through
Feast) keeps a row whose reference row is missing, with NaN cross-asset inputs (CatBoost takes NaN);
``with_reference`` alone drops it, for comparisons on the same hours. Whether the model uses them is
``model.MODEL_INPUTS``'s decision, measured walk-forward (``hourcast evaluate --cross-asset``).

Order flow (``ORDER_FLOW_FEATURES``, from the candles' optional ``candles.ORDER_FLOW_COLUMNS``, which only
Binance's klines carry), in the signal groups of ``ORDER_FLOW_SIGNALS``; each a pure function of the lag
blocks (lag 0 = candle T), scale-free (no price in it, so it compares across pairs):

* ``taker_buy_share_{1,3,6,12}h``: taker-buy base volume / volume over the last 1, 3, 6, 12 candles (the
  taker-buy imbalance, ``2 * share - 1``, in a form a tree splits the same way; ``taker_buy_share``);
* ``net_taker_flow_{1,6}h``: taker buys minus taker sells over the last 1 or 6 candles, in units of the
  mean volume per candle over the last 24 (``net_taker_flow``);
* ``trades_per_volume_12h``: log of candle T's trades per unit of volume relative to the last 12 candles'
  (``trades_per_volume``);
* ``trade_intensity_24h``: log of candle T's trades relative to their mean over the last 24
  (``trade_intensity``);
* ``trade_size_24h``: log of candle T's average trade size (volume / trades) relative to the last 24
  candles' (``trade_size``);
* ``*_change_1h``: a signal at T minus the same signal one candle earlier (``one_candle_change``).

A value is NaN when an input is missing or a volume or trade count it divides by is 0; its row is kept
(CatBoost takes NaN), like the cross-asset inputs. Not model inputs unless the walk-forward shows a gain
(``hourcast evaluate --order-flow``, each signal group head to head with the base inputs: docs/model.md).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial, reduce
from typing import Literal

import numpy as np
import pandas as pd

from hourcast.data.candles import ts_ms
from hourcast.timeframe import timeframe_ms

WINDOW_HOURS = 12
RETURN_HORIZONS = (1, 3, 6, 12, 24)
LOOKBACK = 25
VOLUME_WINDOW = 24

OHLC_FEATURES = [
    f"{price}_lag_{lag}" for lag in range(WINDOW_HOURS) for price in ("open", "high", "low", "close")
]
FEATURE_NAMES: list[str] = [
    *OHLC_FEATURES,
    *(f"ret_{hours}h" for hours in RETURN_HORIZONS),
    "volatility_12h",
    "volatility_24h",
    "range_hl",
    "range_hl_12h",
    "log_volume",
    "volume_z_24h",
    "hour_of_day",
    "day_of_week",
]
ROW_COLUMNS = ["symbol", "event_timestamp", "as_of", "last_close"]
REFERENCE_SYMBOL = "BTC/USDT"
REFERENCE_OF_REFERENCE = "ETH/USDT"
REFERENCE_INPUTS = ["ret_1h", "ret_3h", "ret_6h", "ret_12h", "ret_24h", "volatility_12h", "volatility_24h"]
CROSS_FEATURES = [f"ref_{name}" for name in REFERENCE_INPUTS]
ORDER_FLOW_SIGNALS: dict[str, list[str]] = {
    "first three": ["taker_buy_share_1h", "taker_buy_share_12h", "trades_per_volume_12h"],
    "taker-buy share 1/3/6/12 h": [
        "taker_buy_share_1h",
        "taker_buy_share_3h",
        "taker_buy_share_6h",
        "taker_buy_share_12h",
    ],
    "net taker flow 1/6 h": ["net_taker_flow_1h", "net_taker_flow_6h"],
    "trade intensity": ["trade_intensity_24h", "trade_intensity_change_1h"],
    "average trade size": ["trade_size_24h", "trade_size_change_1h"],
    "taker-buy share change": ["taker_buy_share_1h", "taker_buy_share_change_1h"],
}
"""The order-flow signal groups ``hourcast evaluate --order-flow`` compares, each with the base inputs."""
ORDER_FLOW_FEATURES: list[str] = list(
    dict.fromkeys(name for names in ORDER_FLOW_SIGNALS.values() for name in names)
)
FLOW_SPAN = 24  # candles of the means trade intensity, trade size and net taker flow are measured against
FEATURE_COLUMNS: list[str] = [*FEATURE_NAMES, *ORDER_FLOW_FEATURES, *CROSS_FEATURES]
"""Every feature column, in table order: the feature table's, the Feast schema's and the training service's
(the model picks its inputs among them: ``model.estimator.MODEL_INPUTS``)."""


def reference_of(symbol: str) -> str:
    """The symbol whose returns and volatility ``symbol``'s rows carry as cross-asset inputs."""
    return REFERENCE_OF_REFERENCE if symbol == REFERENCE_SYMBOL else REFERENCE_SYMBOL


def with_reference(table: pd.DataFrame, how: Literal["inner", "left"] = "inner") -> pd.DataFrame:
    """``compute_features`` rows plus ``CROSS_FEATURES``: the reference symbol's ``REFERENCE_INPUTS`` at
    the same ``event_timestamp``, order kept. ``how="inner"``: only rows whose reference row exists;
    ``how="left"``: every row, its ``CROSS_FEATURES`` NaN where the reference row is missing (the
    reference not configured, or a gap in its candles). ``CROSS_FEATURES`` already in ``table`` are
    replaced."""
    table = table.drop(columns=CROSS_FEATURES, errors="ignore")
    reference = table[["symbol", "event_timestamp", *REFERENCE_INPUTS]].rename(
        columns={"symbol": "reference", **dict(zip(REFERENCE_INPUTS, CROSS_FEATURES, strict=True))}
    )
    keyed = table.assign(
        reference=table["symbol"].astype(str).map(reference_of).astype(reference["reference"].dtype)
    )
    joined = keyed.merge(reference, on=["reference", "event_timestamp"], how=how, sort=False)
    return joined.drop(columns="reference")


def feature_rows(candles: pd.DataFrame, timeframe: str = "1h") -> pd.DataFrame:
    """The feature table's rows for ``candles``: ``compute_features`` plus ``CROSS_FEATURES`` (NaN where the
    reference row is missing: a symbol never loses its own rows to its reference), ``symbol`` as ``str``."""
    rows = with_reference(compute_features(candles, timeframe), how="left")
    return rows.assign(symbol=rows["symbol"].astype(str))


def _by_symbol(candles: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Candles grouped by symbol (first-appearance order, order kept within a symbol), their symbol
    codes and open times in epoch milliseconds."""
    codes = pd.factorize(candles["symbol"])[0]
    order = np.argsort(codes, kind="stable")
    frame = candles.iloc[order].reset_index(drop=True)
    return frame, codes[order], ts_ms(frame).to_numpy()


def _linked(codes: np.ndarray, stamps: np.ndarray, step: int) -> np.ndarray:
    """Whether each candle follows the previous row of the same symbol by exactly one timeframe."""
    linked = np.zeros(len(stamps), dtype=bool)
    linked[1:] = (codes[1:] == codes[:-1]) & (np.diff(stamps) == step)
    return linked


def _sum(block: np.ndarray) -> np.ndarray:
    """Sum over the first axis (lags), one lag at a time, in a fixed order."""
    return reduce(np.add, block)


def _std(block: np.ndarray) -> np.ndarray:
    """Sample standard deviation (ddof=1) over the first axis (lags)."""
    deviations = block - _sum(block) / len(block)
    return np.sqrt(_sum(deviations * deviations) / (len(block) - 1))


def _finite_rows(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    finite = np.isfinite(frame[columns].to_numpy(dtype="float64")).all(axis=1)
    return frame.loc[finite].reset_index(drop=True)


def compute_features(candles: pd.DataFrame, timeframe: str = "1h") -> pd.DataFrame:
    """One feature row per candle ending a gap-free lookback of ``LOOKBACK`` candles, per symbol.

    Columns ``symbol, event_timestamp`` (close time of candle T), ``as_of`` (open time of T),
    ``last_close``, then ``FEATURE_NAMES`` and ``ORDER_FLOW_FEATURES`` (NaN where the candles carry no order
    flow, or lack its columns).
    """
    step = timeframe_ms(timeframe)
    frame, codes, stamps = _by_symbol(candles)
    linked = _linked(codes, stamps, step)
    positions = np.arange(len(frame))
    run_start = np.maximum.accumulate(np.where(linked, 0, positions))
    rows = np.flatnonzero(positions - run_start + 1 >= LOOKBACK)
    lags = rows - np.arange(LOOKBACK)[:, None]  # lags[k] holds the positions of lag k

    opens, highs, lows, closes, volumes = (
        frame[column].to_numpy(dtype="float64")[lags] for column in ("open", "high", "low", "close", "volume")
    )
    last_close = closes[0]
    features: dict[str, np.ndarray] = {}
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        for lag in range(WINDOW_HOURS):
            for price, values in (("open", opens), ("high", highs), ("low", lows), ("close", closes)):
                features[f"{price}_lag_{lag}"] = np.log(values[lag] / last_close)
        for hours in RETURN_HORIZONS:
            features[f"ret_{hours}h"] = np.log(last_close / closes[hours])
        hourly = np.log(closes[:-1] / closes[1:])  # hourly[j]: return of the candle at lag j
        features["volatility_12h"] = _std(hourly[:WINDOW_HOURS])
        features["volatility_24h"] = _std(hourly[:24])
        spans = np.log(highs[:WINDOW_HOURS] / lows[:WINDOW_HOURS])
        features["range_hl"] = spans[0]
        features["range_hl_12h"] = _sum(spans) / WINDOW_HOURS
        features["log_volume"] = np.log1p(volumes[0])
        recent = volumes[:VOLUME_WINDOW]
        flat = recent.max(axis=0) == recent.min(axis=0)
        z_score = (volumes[0] - _sum(recent) / VOLUME_WINDOW) / _std(recent)
        features["volume_z_24h"] = np.where(flat, 0.0, z_score)
        features |= _order_flow(frame, lags, volumes)

    as_of = frame["ts"].iloc[rows].reset_index(drop=True).astype("datetime64[ms, UTC]")
    features["hour_of_day"] = as_of.dt.hour.to_numpy(dtype="float64")
    features["day_of_week"] = as_of.dt.dayofweek.to_numpy(dtype="float64")
    out = pd.DataFrame(
        {
            "symbol": frame["symbol"].iloc[rows].reset_index(drop=True).astype("string"),
            "event_timestamp": (as_of + pd.Timedelta(milliseconds=step)).astype("datetime64[ms, UTC]"),
            "as_of": as_of,
            "last_close": last_close,
            **{name: features[name] for name in [*FEATURE_NAMES, *ORDER_FLOW_FEATURES]},
        }
    )
    return _finite_rows(out, ["last_close", *FEATURE_NAMES])


def taker_buy_share(taker: np.ndarray, volumes: np.ndarray, span: int) -> np.ndarray:
    """Taker-buy base volume / volume over the last ``span`` candles (lag blocks, lag 0 first)."""
    return _sum(taker[:span]) / _sum(volumes[:span])


def net_taker_flow(taker: np.ndarray, volumes: np.ndarray, span: int) -> np.ndarray:
    """Taker buys minus taker sells over the last ``span`` candles, in mean volumes per candle over the last
    ``FLOW_SPAN``."""
    return _sum(2.0 * taker[:span] - volumes[:span]) / (_sum(volumes[:FLOW_SPAN]) / FLOW_SPAN)


def trades_per_volume(trades: np.ndarray, volumes: np.ndarray, span: int) -> np.ndarray:
    """Log of the last candle's trades per unit of volume relative to the last ``span`` candles'."""
    return np.log((trades[0] / volumes[0]) / (_sum(trades[:span]) / _sum(volumes[:span])))


def trade_intensity(trades: np.ndarray, span: int) -> np.ndarray:
    """Log of the last candle's trades relative to their mean over the last ``span`` candles."""
    return np.log(trades[0] / (_sum(trades[:span]) / span))


def trade_size(trades: np.ndarray, volumes: np.ndarray, span: int) -> np.ndarray:
    """Log of the last candle's average trade size (volume / trades) relative to the last ``span``
    candles'."""
    return np.log((volumes[0] / trades[0]) / (_sum(volumes[:span]) / _sum(trades[:span])))


def one_candle_change(signal: Callable[..., np.ndarray], *blocks: np.ndarray) -> np.ndarray:
    """``signal`` of the lag ``blocks`` minus the same signal one candle earlier (the blocks without lag 0);
    the blocks need one lag more than the signal reads."""
    return signal(*blocks) - signal(*(block[1:] for block in blocks))


def _order_flow(frame: pd.DataFrame, lags: np.ndarray, volumes: np.ndarray) -> dict[str, np.ndarray]:
    """``ORDER_FLOW_FEATURES`` of the rows whose lag positions are ``lags`` (NaN where not finite); call
    under ``np.errstate`` (a zero volume divides)."""
    columns = {
        column: frame[column].to_numpy(dtype="float64")[lags]
        if column in frame
        else np.full(lags.shape, np.nan)
        for column in ("trades", "taker_buy_base")
    }
    trades, taker = columns["trades"], columns["taker_buy_base"]
    values = {
        **{f"taker_buy_share_{span}h": taker_buy_share(taker, volumes, span) for span in (1, 3, 6, 12)},
        **{f"net_taker_flow_{span}h": net_taker_flow(taker, volumes, span) for span in (1, 6)},
        "trades_per_volume_12h": trades_per_volume(trades, volumes, WINDOW_HOURS),
        "trade_intensity_24h": trade_intensity(trades, FLOW_SPAN),
        "trade_intensity_change_1h": one_candle_change(partial(trade_intensity, span=FLOW_SPAN), trades),
        "trade_size_24h": trade_size(trades, volumes, FLOW_SPAN),
        "trade_size_change_1h": one_candle_change(partial(trade_size, span=FLOW_SPAN), trades, volumes),
        "taker_buy_share_change_1h": one_candle_change(partial(taker_buy_share, span=1), taker, volumes),
    }
    return {name: np.where(np.isfinite(values[name]), values[name], np.nan) for name in ORDER_FLOW_FEATURES}


def next_hour_targets(candles: pd.DataFrame, timeframe: str = "1h") -> pd.DataFrame:
    """Per candle T with a successor exactly one timeframe later: ``symbol, event_timestamp`` (close
    time of T), ``target_return`` = log(close[T+1] / close[T]) and ``next_close`` = close[T+1]."""
    step = timeframe_ms(timeframe)
    frame, codes, stamps = _by_symbol(candles)
    rows = np.flatnonzero(_linked(codes, stamps, step)[1:])
    closes = frame["close"].to_numpy(dtype="float64")
    next_close = closes[rows + 1]
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        target_return = np.log(next_close / closes[rows])
    out = pd.DataFrame(
        {
            "symbol": frame["symbol"].iloc[rows].reset_index(drop=True).astype("string"),
            "event_timestamp": (
                frame["ts"].iloc[rows].reset_index(drop=True) + pd.Timedelta(milliseconds=step)
            ).astype("datetime64[ms, UTC]"),
            "target_return": target_return,
            "next_close": next_close,
        }
    )
    return _finite_rows(out, ["target_return", "next_close"])
