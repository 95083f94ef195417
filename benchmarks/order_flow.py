"""Order flow, decided on evidence: `hourcast evaluate --order-flow` on two years of Binance spot candles with
their order flow (the shared `binance_{btc,eth}_usdt_1h_orderflow.csv.gz`, given by --data-dir).

In one run, as a user would do it:
- the replay exchange serves the two files over HTTP;
- a backfill of both pairs stores every candle through ccxt, validation and the store (order flow included);
- `evaluation.run(..., order_flow=True)` (what `hourcast evaluate --order-flow` calls) walks forward over
  --weeks weeks with the default settings (365-day window, weekly refits, each week calibrated on the one
  before, CatBoost's default parameters): the base inputs, then the base inputs plus each order-flow signal
  group of `hourcast.features.compute.ORDER_FLOW_SIGNALS` and plus all of them, on the same hours.

Prints and writes the table: per signal set, the MAE ratio and Diebold-Mariano p against persistence, the
directional accuracy with its 95 % interval, and head to head with the base inputs (MAE ratio, DM statistic
and p), plus the decision: a group is adopted only if it beats the base inputs head to head with DM p < 0.05
and a lower MAE.

Run: uv run python benchmarks/order_flow.py --data-dir ../shared/data [--weeks 51] [--output PATH]
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
import psutil
from _common import argument_parser, write_results

from hourcast.data.ingest import make_ingestor
from hourcast.dev.replay.data import load_candles_file
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.model import evaluation
from hourcast.settings import Settings

FILES = {
    "BTC/USDT": "binance_btc_usdt_1h_orderflow.csv.gz",
    "ETH/USDT": "binance_eth_usdt_1h_orderflow.csv.gz",
}
WEEKS = 51  # the most whose first fold still trains on a full 365 days of the two years
SIGNIFICANCE = 0.05


def adopted(row: dict[str, Any]) -> bool:
    """Whether a signal set beats the base inputs head to head: DM p below ``SIGNIFICANCE`` and lower MAE."""
    versus = row["versus_base"]
    return versus["dm_p_value"] < SIGNIFICANCE and versus["mae_ratio"] < 1


def table_row(row: dict[str, Any], weeks: int) -> dict[str, Any]:
    """One line of the table from one ``order_flow`` row of the report."""
    versus = row.get("versus_base")
    return {
        "signal_set": row["inputs"],
        "weeks": weeks,
        "hours": row["hours"],
        "first_hour": row["first_hour"],
        "last_hour": row["last_hour"],
        "mae_ratio_vs_persistence": round(row["mae_ratio"], 4),
        "dm_p_vs_persistence": round(row["dm_p_value"], 4),
        "directional_accuracy": [
            round(row[key], 4) for key in ("directional_accuracy", "directional_low", "directional_high")
        ],
        "versus_base": None
        if versus is None
        else {
            "mae_ratio": round(versus["mae_ratio"], 4),
            "mae_ratio_by_symbol": {k: round(v, 4) for k, v in versus["mae_ratio_by_symbol"].items()},
            "dm_statistic": round(versus["dm_statistic"], 3),
            "dm_p_value": round(versus["dm_p_value"], 4),
        },
        "adopted": None if versus is None else adopted(row),
    }


def markdown(rows: list[dict[str, Any]]) -> str:
    """The docs table."""
    lines = [
        "| signal set | weeks | hours | MAE ratio vs persistence | DM p vs persistence "
        "| directional accuracy [95 % CI] | head to head with base: MAE ratio | DM stat | DM p |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        accuracy, low, high = row["directional_accuracy"]
        versus = row["versus_base"]
        head = (
            f"{versus['mae_ratio']} | {versus['dm_statistic']} | {versus['dm_p_value']}"
            if versus
            else "(the reference) | |"
        )
        lines.append(
            f"| {row['signal_set']} | {row['weeks']} | {row['hours']:,} "
            f"| {row['mae_ratio_vs_persistence']} | {row['dm_p_vs_persistence']} "
            f"| {accuracy:.3f} [{low:.3f}, {high:.3f}] | {head} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argument_parser(__doc__, "order_flow")
    parser.add_argument(
        "--data-dir",
        type=Path,
        required=True,
        help=f"the folder holding {' and '.join(FILES.values())} (e.g. ../shared/data)",
    )
    parser.add_argument(
        "--weeks", type=int, default=WEEKS, help="weeks of the walk-forward (default: %(default)s)"
    )
    args = parser.parse_args()
    missing = [name for name in FILES.values() if not (args.data_dir / name).is_file()]
    if missing:
        parser.error(f"{args.data_dir} lacks {', '.join(missing)}")
    datasets = {symbol: load_candles_file(args.data_dir / name) for symbol, name in FILES.items()}
    first = min(frame["ts"].min() for frame in datasets.values())
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as home, ReplayServer(ReplayExchange(datasets)) as server:
        settings = Settings(home=Path(home), exchange_url=server.url, symbols=list(FILES), _env_file=None)
        stored = make_ingestor(settings).backfill(pd.Timestamp(first))
        backfill_s = time.perf_counter() - started
        report = evaluation.run(settings, weeks=args.weeks, order_flow=True)
    rows = [table_row(row, args.weeks) for row in report.order_flow]
    figures = {
        "machine": {
            "cores": os.cpu_count(),
            "memory_gib": round(psutil.virtual_memory().total / 2**30),
            "python": platform.python_version(),
            "load_average_at_end": [round(load, 2) for load in os.getloadavg()],
        },
        "date": pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%d %H:%M UTC"),
        "data": {name: len(frame) for name, frame in zip(FILES.values(), datasets.values(), strict=True)},
        "backfill": [summary.as_json() for summary in stored],
        "backfill_s": round(backfill_s, 1),
        "evaluation_s": round(time.perf_counter() - started - backfill_s, 1),
        "first_fold": report.folds[0],
        "rows": rows,
        "adopted": [row["signal_set"] for row in rows if row["adopted"]],
        "table": markdown(rows),
    }
    write_results(args.output, figures)
    print(figures["table"])


if __name__ == "__main__":
    main()
