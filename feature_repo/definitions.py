"""Feast definitions for hourcast: one entity, one Parquet source, one feature view, two services.

The feature table is the one in the default HOURCAST_HOME beside this folder (../data), as an absolute path
(`hourcast.settings.feature_table_in`, the one definition of where it lives): `hourcast materialize` applies
these same objects with the table under its own HOURCAST_HOME, which in the default layout is this one, so
applying with either after the other changes nothing.
"""

from datetime import timedelta
from pathlib import Path

from feast import Entity, FeatureService, FeatureView, Field, FileSource, ValueType
from feast.types import Float64, UnixTimestamp

from hourcast.features.compute import FEATURE_COLUMNS
from hourcast.settings import feature_table_in

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
    path=str(feature_table_in(Path(__file__).resolve().parent.parent / "data")),
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
        *(Field(name=name, dtype=Float64) for name in FEATURE_COLUMNS),
        Field(name="last_close", dtype=Float64, description="Close of the last candle used"),
        Field(name="as_of", dtype=UnixTimestamp, description="Open time of the last candle used"),
    ],
    source=next_hour_source,
    online=True,
)

# What the next-hour model may consume (training sets are built from this service): its own features, the
# order-flow and the cross-asset ones (model.MODEL_INPUTS picks its inputs among them).
next_hour_v1 = FeatureService(name="next_hour_v1", features=[next_hour_fv[FEATURE_COLUMNS]])

# What the prediction API reads online: the model inputs plus last_close and as_of.
next_hour_serving_v1 = FeatureService(name="next_hour_serving_v1", features=[next_hour_fv])
