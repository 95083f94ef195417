"""Feast definitions for hourcast: one entity, one Parquet source, one feature view, two services.

The feature table is in the default HOURCAST_HOME beside this folder (../data), written as an absolute path:
`hourcast materialize` applies these same objects with the absolute path its settings name, which in the
default layout is this one, so applying with either after the other changes nothing.
"""

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, UnixTimestamp

from hourcast.features import FEATURE_NAMES

# A traded pair such as "BTC/USDT": every feature row describes one symbol at one hour.
symbol = Entity(
    name="symbol",
    join_keys=["symbol"],
    value_type=ValueType.STRING,
    description="Unified ccxt symbol, e.g. BTC/USDT",
)

# The feature table `hourcast materialize` writes from the stored candles (HOURCAST_HOME/features).
next_hour_source = FileSource(
    name="next_hour_source",
    path=str(Path(__file__).resolve().parent.parent / "data" / "features" / "next_hour.parquet"),
    timestamp_field="event_timestamp",
)

# Features known at the close of each candle (of HOURCAST_TIMEFRAME, 1h by default): the model inputs plus
# the context serving needs. The TTL covers two candles of the largest supported timeframe (1d); how old
# the features served may be is the API's own check (HOURCAST_MAX_FEATURE_AGE_SECONDS, two timeframes).
next_hour_fv = FeatureView(
    name="next_hour_fv",
    entities=[symbol],
    ttl=timedelta(days=2),
    schema=[
        *(Field(name=name, dtype=Float64) for name in FEATURE_NAMES),
        Field(name="last_close", dtype=Float64, description="Close of the last candle used"),
        Field(name="as_of", dtype=UnixTimestamp, description="Open time of the last candle used"),
    ],
    source=next_hour_source,
    online=True,
)

# Exactly what the next-hour model consumes (training sets are built from this service).
next_hour_v1 = FeatureService(name="next_hour_v1", features=[next_hour_fv[FEATURE_NAMES]])

# What the prediction API reads online: the model inputs plus last_close and as_of.
next_hour_serving_v1 = FeatureService(name="next_hour_serving_v1", features=[next_hour_fv])
