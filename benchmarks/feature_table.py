"""Feature table and materialization: cost per hourly cycle at 1 and at 12 months of stored history.

For each history length, the bundled candles of both recorded pairs (BTC/USDT, ETH/USDT) are stored up to
a month end, the table is built once, then hour by hour one new candle per symbol is stored and timed:

1. the project: `feature_table.update` (incremental: only the new rows) and `featurestore.materialize`
   (update, Feast apply, materialize of the new window into the SQLite online store);
2. the bare call doing the same work the way hourcast did before the table was incremental: every stored
   candle loaded, the whole table recomputed (`feature_table.build`) and written as one Parquet file.

Run: `uv run python benchmarks/feature_table.py [--hours 6]`; prints and writes
benchmarks/results/feature_table.json. Retention is the default (367 days), so 12 months of history is a
12-month table.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
from _common import REPO, argument_parser, summarize, timed, write_results

from hourcast import atomic
from hourcast.data import store
from hourcast.dev.replay.data import load_candles_file
from hourcast.dev.samples import sample_files
from hourcast.features import dataset, feature_table, featurestore
from hourcast.settings import Settings

END = pd.Timestamp("2026-03-01", tz="UTC")  # the recorded files end in March 2026


def put(
    settings: Settings, candles: dict[str, pd.DataFrame], start: pd.Timestamp, stop: pd.Timestamp
) -> None:
    for symbol, frame in candles.items():
        rows = frame.loc[(frame["ts"] >= start) & (frame["ts"] < stop)].copy()
        for column, value in (("timeframe", "1h"), ("symbol", symbol), ("exchange", "binance")):
            rows.insert(0, column, pd.Series([value] * len(rows), dtype="string", index=rows.index))
        store.upsert(settings.candles_dir, store.Series("binance", symbol, "1h"), rows.reset_index(drop=True))


def full_recomputation(settings: Settings, target: Path) -> int:
    """The bare work: every stored candle, the whole table, one file."""
    table = feature_table.build(dataset.load_candles(settings), settings)
    atomic.write_parquet(table, target)
    return len(table)


def measure(months: int, hours: int, candles: dict[str, pd.DataFrame]) -> dict:
    home = Path(tempfile.mkdtemp(prefix=f"hourcast-table-{months}m-"))
    settings = Settings(home=home, symbols=list(candles), feature_repo=REPO / "feature_repo", _env_file=None)
    put(settings, candles, END - pd.DateOffset(months=months), END)
    first_s, first = timed(lambda: featurestore.materialize(settings))
    update_s, materialize_s, bare_s = [], [], []
    for hour in range(hours):
        now = END + pd.Timedelta(hours=hour)
        put(settings, candles, now, now + pd.Timedelta(hours=1))
        seconds, update = timed(lambda: feature_table.update(settings))
        update_s.append(seconds)
        assert len(update.rows) == len(candles), update.rows  # one new row per symbol
        put(settings, candles, now, now + pd.Timedelta(hours=1))  # nothing new: materialize's own update
        materialize_s.append(timed(lambda: featurestore.materialize(settings))[0])
        bare_s.append(timed(lambda: full_recomputation(settings, home / "bare.parquet"))[0])
    update_ms, bare_ms = summarize(update_s), summarize(bare_s)
    return {
        "months": months,
        "table_rows": first.feature_rows,
        "files": len(feature_table.files(settings.feature_table_path)),
        "first_materialize_s": round(first_s, 2),
        "update": update_ms,
        "materialize": summarize(materialize_s),
        "bare_full_recomputation": bare_ms,
        "update_over_bare": round(update_ms["median_ms"] / bare_ms["median_ms"], 3),
    }


def main() -> None:
    parser = argument_parser(__doc__, "feature_table")
    parser.add_argument("--hours", type=int, default=6, help="hourly cycles timed per history length")
    args = parser.parse_args()
    candles = {symbol: load_candles_file(path) for symbol, path in sample_files().items()}
    results = [measure(months, args.hours, candles) for months in (1, 12)]
    one, twelve = results
    write_results(
        args.output,
        {
            "symbols": len(candles),
            "by_history": results,
            "update_12_over_1_month": round(twelve["update"]["median_ms"] / one["update"]["median_ms"], 3),
            "materialize_12_over_1_month": round(
                twelve["materialize"]["median_ms"] / one["materialize"]["median_ms"], 3
            ),
            "bare_12_over_1_month": round(
                twelve["bare_full_recomputation"]["median_ms"] / one["bare_full_recomputation"]["median_ms"],
                3,
            ),
        },
    )


if __name__ == "__main__":
    main()
