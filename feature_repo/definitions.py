"""Feast definitions for hourcast: one entity, one Parquet source, one feature view, two services.

The feature table is in the default HOURCAST_HOME beside this folder (../data), written as an absolute path:
`hourcast materialize` applies these same objects with the absolute path its settings name, which in the
default layout is this one, so applying with either after the other changes nothing.
"""

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, UnixTimestamp

from hourcast.features.compute import CROSS_FEATURES, FEATURE_NAMES, ORDER_FLOW_FEATURES

# A traded pair such as "BTC/USDT": every feature row describes one symbol at one hour.
symbol = Entity(
    name="symbol",
    join_keys=["symbol"],
    value_type=ValueType.STRING,
    description="Unified ccxt symbol, e.g. BTC/USDT",
)

# The feature table `hourcast materialize` keeps up to date from the stored candles (HOURCAST_HOME/features):
# a folder of one Parquet file per day, appended hour by hour.
next_hour_source = FileSource(
    name="next_hour_source",
    path=str(Path(__file__).resolve().parent.parent / "data" / "features" / "next_hour.parquet"),
    timestamp_field="event_timestamp",
)

# Features known at the close of each candle (of HOURCAST_TIMEFRAME, 1h by default): the model's own inputs,
# the order flow (taker-buy share, trades per volume; null where the exchange gives none: Binance only), the
# reference symbol's returns and volatility at the same close (ref_*, null when that row is missing), and
# the context serving needs. The TTL covers two candles of the largest supported timeframe (1d); how old
# the features served may be is the API's own check (HOURCAST_MAX_FEATURE_AGE_SECONDS, two timeframes).
next_hour_fv = FeatureView(
    name="next_hour_fv",
    entities=[symbol],
    ttl=timedelta(days=2),
    schema=[
        *(Field(name=name, dtype=Float64) for name in FEATURE_NAMES),
        *(Field(name=name, dtype=Float64) for name in ORDER_FLOW_FEATURES),
        *(Field(name=name, dtype=Float64) for name in CROSS_FEATURES),
        Field(name="last_close", dtype=Float64, description="Close of the last candle used"),
        Field(name="as_of", dtype=UnixTimestamp, description="Open time of the last candle used"),
    ],
    source=next_hour_source,
    online=True,
)

# What the next-hour model may consume (training sets are built from this service): its own features, the
# order-flow and the cross-asset ones (model.MODEL_INPUTS picks its inputs among them).
next_hour_v1 = FeatureService(
    name="next_hour_v1", features=[next_hour_fv[[*FEATURE_NAMES, *ORDER_FLOW_FEATURES, *CROSS_FEATURES]]]
)

# What the prediction API reads online: the model inputs plus last_close and as_of.
next_hour_serving_v1 = FeatureService(name="next_hour_serving_v1", features=[next_hour_fv])
