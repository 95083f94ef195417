"""The hourly ingest of 100 synthetic symbols at 1 and at 12 months of stored candles, in one process.

`scale.py` times whole cycles, the two history lengths paired hour by hour in one process (the verdict);
this one is the breakdown: one history length after the other, it isolates the ingest (fetch, one GX run,
month-file upserts, completeness state, ledger) and sums, over the ingest's threads, the time spent in each
store, completeness, quarantine and ledger call, to show whether any of them grows with the stored history.
The bare reference is the same ingest at 1 month: the target is a 12/1 ratio within 10 %.

Run: `uv run python benchmarks/ingest_history.py [--symbols 100] [--runs 3]`; prints and writes
benchmarks/results/ingest_history.json.
"""

from __future__ import annotations

import functools
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from statistics import median
from types import ModuleType
from typing import Any

from _common import REPO, argument_parser, write_results
from scale import NOW, advance, prefill, recorded

from hourcast.data import completeness, ledger, quarantine, store
from hourcast.data.ingest import make_ingestor
from hourcast.dev.replay.data import synthetic_datasets
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.settings import Settings

TIMED_CALLS: list[tuple[ModuleType, list[str]]] = [
    (store, ["upsert", "last_stored"]),
    (completeness, ["read_state", "update_state"]),
    (quarantine, ["examined_until"]),
    (ledger, ["record_many"]),
]


def instrument(totals: Counter[str]) -> None:
    """Replace each of ``TIMED_CALLS`` by a wrapper adding its wall time (any thread) to ``totals``."""
    lock = threading.Lock()
    for module, names in TIMED_CALLS:
        for name in names:
            original = getattr(module, name)

            @functools.wraps(original)
            def timed_call(*args: Any, _original: Any = original, _key: str = name, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    with lock:
                        totals[_key] += time.perf_counter() - started

            setattr(module, name, timed_call)


def measure(
    server: ReplayServer, frames: dict[str, Any], months: int, runs: int, totals: Counter[str]
) -> dict:
    """``runs`` hourly ingests (after a warm-up) over ``months`` of prefilled candles."""
    server.exchange.set_now(NOW)
    home = Path(tempfile.mkdtemp(prefix=f"hourcast-ingest-{months}m-"))
    settings = Settings(
        home=home,
        exchange_url=server.url,
        symbols=list(frames),
        feature_repo=REPO / "feature_repo",
        _env_file=None,
    )
    prefill(settings, frames, months)
    ingestor = make_ingestor(settings)
    advance(server.url)
    ingestor.ingest()  # warm-up: imports, GX context, connections
    walls, calls = [], []
    for _ in range(runs):
        totals.clear()
        advance(server.url)
        started = time.perf_counter()
        summaries = ingestor.ingest()
        walls.append(time.perf_counter() - started)
        assert all(s.status == "ok" and s.new == 1 for s in summaries), summaries[:3]
        calls.append({name: round(seconds, 3) for name, seconds in totals.items()})
    return {
        "months": months,
        "ingest_s": [round(w, 3) for w in walls],
        "median_s": round(median(walls), 3),
        "calls_summed_over_threads_s": calls,
    }


def main() -> None:
    parser = argument_parser(__doc__, "ingest_history")
    parser.add_argument("--symbols", type=int, default=100, help="synthetic symbols (default: %(default)s)")
    parser.add_argument(
        "--runs", type=int, default=3, help="timed runs per history length (default: %(default)s)"
    )
    args = parser.parse_args()
    frames = synthetic_datasets(args.symbols, recorded())
    totals: Counter[str] = Counter()
    instrument(totals)
    with ReplayServer(ReplayExchange(frames, now=NOW)) as server:
        results = [measure(server, frames, months, args.runs, totals) for months in (1, 12)]
    one, twelve = results
    figures = {
        "symbols": args.symbols,
        "runs": results,
        "ingest_12_over_1_month": round(twelve["median_s"] / one["median_s"], 3),
        "target_within": 0.1,
    }
    write_results(args.output, figures)
    for result in results:
        print(f"{result['months']:>2} months: ingest {result['ingest_s']} s (median {result['median_s']} s)")
        for calls in result["calls_summed_over_threads_s"]:
            print("    " + ", ".join(f"{name} {seconds} s" for name, seconds in sorted(calls.items())))
    print(f"12 / 1 month: {figures['ingest_12_over_1_month']}x (target within 10 %)")


if __name__ == "__main__":
    main()
