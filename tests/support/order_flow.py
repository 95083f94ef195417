"""TEST DATA: order flow derived from recorded candles, for tests of the order-flow path.

The recorded Binance candles bundled with hourcast carry no order flow (quote volume, trades, taker-buy
volume). These values are NOT real: they are made up from each candle's volume and close with a seeded
random taker share and trade size, consistent enough for validation (taker-buy volume never above the
volume) and varied enough that every order-flow feature moves.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FLOW_COLUMNS = ["quote_volume", "trades", "taker_buy_base", "taker_buy_quote"]


def with_test_order_flow(candles: pd.DataFrame, seed: int = 3) -> pd.DataFrame:
    """``candles`` (with ``volume`` and ``close``) plus made-up order-flow columns, rounded to the 8
    decimals Binance (and the replay) publish, trades whole."""
    rng = np.random.default_rng(seed)
    volume = candles["volume"].to_numpy(dtype="float64")
    close = candles["close"].to_numpy(dtype="float64")
    share = rng.uniform(0.3, 0.7, len(candles))
    taker = np.round(volume * share, 8)
    return candles.assign(
        quote_volume=np.round(volume * close, 8),
        trades=np.round(volume * rng.uniform(20.0, 80.0, len(candles))),
        taker_buy_base=taker,
        taker_buy_quote=np.round(taker * close, 8),
    )
