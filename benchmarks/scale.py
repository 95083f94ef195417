"""Scale benchmark: the hourly cycle for 10, 100 and 500 SYNTHETIC symbols (the replay exchange's
``SYN001/USDT``.., the bundled recordings rotated in time and rescaled: not real markets).

Per symbol count, in a child process of its own (so its memory peak is the cycle's): the store is filled
with N symbols' candles and the ingestion ledger with an hourly run of the N symbols (1 month before the
clock), one cycle warms up (first feature build, imports), then 3 timed hourly cycles each call what the
flows call:

* ingest (``Ingestor.ingest``: concurrent fetch within ccxt's rate limit, ONE GX run, per-symbol stores),
  split into validation (the GX run), storage (the wall time during which any month-file upsert ran) and
  fetch (the rest: the exchange requests, paced by the rate limit);
* features + materialize (``featurestore.materialize``: the feature helper's incremental table, Feast);
* monitor (``monitor_run.run``).

Beside them, in the same process, the bare calls doing the ingest's work: ccxt's ``fetch_ohlcv`` for each
symbol one after the other with ccxt's own rate limiter, one GX validation of the same batch, and a pandas
read + concat + write of each month file. The ledger's share alone: one run's two writes (``started``,
then the outcome: ``ledger.record_many``) against pyarrow's bare ``write_table`` of the same rows, and
``hourcast ledger``'s read of the last 20 rows.

Then, in the child whose symbol count is the history comparison's: training (``training.train``, reported
per 100k rows) and a 100-symbol batch prediction (as many symbols as there are, if fewer), in process
through ``serving.Predictor.predict`` (the code behind ``/predict_batch``) and over HTTP: ``POST
/predict_batch`` to the real service (``hourcast serve``, i.e. ``bentoml serve``, its default workers),
p50/p99 of sequential calls; each against the bare Feast online lookup + CatBoost predict in the same process
(for the HTTP figure, a bare call right after each HTTP call while the service runs, so both see the same
load).

The history comparison (1 against 12 months of stored history, ``--history-symbols`` symbols) is paired,
in ONE child process: two data homes for the same symbols, one filled with 1 month and one with 12 months
of candles and hourly ledger runs, each with its own Feast registry and its own Redis database. One cycle
warms up each; then for each of ``--history-cycles`` hours the clock advances once and each home runs one
cycle (the same stages, timed alike), the home going first alternating hour by hour: both ingest the same
new candles under the machine's load of the same minutes. Reported per home: the median cycle and stages;
and the 12/1 ratio as the median over the hours of the paired ratio (the figure the 10 % target is judged
on; with its min and max) and as the ratio of the medians. (Separate processes per history length, minutes
apart, spread more than 10 % on an idle machine.) Then the ledger's share at each home (1 and 12 months of
ledger history; flat: a run writes only its own file, a reader of the latest rows reads only the newest
files), one home after the other.

The online store is a Redis of the benchmark's own on a free port (database 0 for the per-size children,
1 and 2 for the history homes).

Run: uv run python benchmarks/scale.py [--sizes 10,100,500] [--history-symbols 100] [--history-cycles 7]
     (a quick check: --sizes 10 --history-symbols 10 --history-cycles 3)
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from statistics import median
from typing import Any

import pandas as pd
from _common import REPO, argument_parser, timed, write_results

from hourcast.dev.redis_server import RedisServer
from hourcast.dev.replay.data import load_candles_file, synthetic_datasets
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.dev.samples import sample_files

NOW = pd.Timestamp("2025-03-01T00:00Z")  # 14 months of recordings before it
CYCLES = 3
HISTORY_MONTHS = (1, 12)  # months of stored candles and ledger runs of the paired history homes
HISTORY_CYCLES = 7  # timed hours of the paired history run (--history-cycles)
LEDGER_RUNS = 10  # timed ledger writes (each a run's two) per symbol count
HTTP_CALLS = 50  # timed /predict_batch calls (and bare calls)
TARGETS = {"cycle_500_symbols_s": 60, "history_12_vs_1_month_within": 0.10}


def recorded() -> dict[str, pd.DataFrame]:
    return {symbol: load_candles_file(path) for symbol, path in sample_files().items()}


def advance(url: str) -> None:
    """One hour on the replay exchange's clock."""
    request = urllib.request.Request(
        f"{url}/_replay/clock", data=json.dumps({"advance_seconds": 3600}).encode(), method="POST"
    )
    request.add_header("Content-Type", "application/json")
    urllib.request.urlopen(request, timeout=10).read()


def prefill(settings: Any, frames: dict[str, pd.DataFrame], months: int) -> int:
    """The ``months`` of candles before the clock, straight into the store (as earlier ingests left them)."""
    from hourcast.data import store

    start, rows = NOW - pd.DateOffset(months=months), 0
    for symbol, frame in frames.items():
        window = frame.loc[(frame["ts"] >= start) & (frame["ts"] < NOW)]
        window = window.assign(exchange="binance", symbol=symbol, timeframe="1h")
        rows += store.upsert(settings.candles_dir, store.Series("binance", symbol, "1h"), window).new
    return rows


def prefill_ledger(settings: Any, symbols: list[str], months: int) -> int:
    """An ``ok`` ingest run of every symbol each hour of the ``months`` before the clock, one file per run
    as the ledger writes it (``ledger.run_file``; without its fsync, to fill fast); returns the files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hourcast.data import ledger

    hours = pd.date_range(NOW - pd.DateOffset(months=months), NOW, freq="h", inclusive="left")
    rows = ledger.table(ledger_entries(symbols, hours[0], "ok"))
    for hour in hours:
        path = ledger.run_file(settings.ledger_dir, hour, "ingest", symbols)
        path.parent.mkdir(parents=True, exist_ok=True)
        stamps = pa.array([hour] * len(symbols), ledger.SCHEMA.field("run_at").type)
        pq.write_table(rows.set_column(0, "run_at", stamps), path)
    return len(hours)


def ledger_entries(symbols: list[str], run_at: pd.Timestamp, status: str) -> list[Any]:
    """One run's ledger entries: a new candle per symbol."""
    from hourcast.data.ledger import LedgerEntry

    last = run_at.floor("h") - pd.Timedelta(hours=1)
    return [
        LedgerEntry(run_at, "ingest", "binance", s, "1h", 2, 1, 1, 0, "", 0, "", last, last, 0.5, status, "")
        for s in symbols
    ]


def ledger_cost(settings: Any, symbols: list[str]) -> dict[str, Any]:
    """One run's two ledger writes against pyarrow's bare ``write_table`` of the same rows, and the read
    of the last 20 rows (``hourcast ledger``)."""
    import pyarrow.parquet as pq

    from hourcast.data import ledger

    files = len(ledger.parts(settings.ledger_dir))
    writes, bare = [], []
    folder = Path(tempfile.mkdtemp(prefix="bare-ledger-", dir=settings.home))
    for run in range(LEDGER_RUNS):
        run_at = pd.Timestamp.now(tz="UTC").floor("ms")
        started, done = ledger_entries(symbols, run_at, "started"), ledger_entries(symbols, run_at, "ok")
        began = time.perf_counter()
        ledger.record_many(settings.ledger_dir, started)
        ledger.record_many(settings.ledger_dir, done)
        writes.append(time.perf_counter() - began)
        rows, path = ledger.table(done), folder / f"{run}.parquet"
        began = time.perf_counter()
        pq.write_table(rows, path)
        pq.write_table(rows, path)
        bare.append(time.perf_counter() - began)
    last_20 = [timed(lambda: ledger.read(settings.ledger_dir, last=20))[0] for _ in range(5)]
    return {
        "files_before": files,
        "run_write_ms": round(median(writes) * 1000, 2),
        "bare_write_table_ms": round(median(bare) * 1000, 2),
        "ratio_write_to_bare": round(median(writes) / median(bare), 2),
        "read_last_20_ms": round(median(last_20) * 1000, 2),
    }


def wall(intervals: list[tuple[float, float]]) -> float:
    """Seconds during which at least one of the (concurrent) intervals was running."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(intervals):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def bare_ingest(settings: Any, symbols: list[str], batch: pd.DataFrame, now_ms: int) -> dict[str, float]:
    """The ingest's work as bare library calls: ccxt fetches, one GX validation, pandas month rewrites."""
    import ccxt

    from hourcast.data.exchange import rebase_urls
    from hourcast.data.validation import CandleValidator

    client = ccxt.binance({"enableRateLimit": True, "options": {"defaultType": "spot"}})
    client.urls["api"] = rebase_urls(client.urls["api"], settings.exchange_url)
    client.load_markets()
    since = now_ms - 2 * 3_600_000
    fetch, _ = timed(lambda: [client.fetch_ohlcv(s, "1h", since=since, limit=2) for s in symbols])
    validator = CandleValidator("1h")
    validator.validate(batch, now_ms)  # warm
    validation, _ = timed(lambda: validator.validate(batch, now_ms))
    folder = Path(tempfile.mkdtemp(prefix="bare-store-", dir=settings.home))
    month = f"{NOW:%Y-%m}"
    for symbol in symbols:  # a month file of a day's candles per symbol, as the store holds after 1 day
        path = folder / symbol.replace("/", "-") / f"{month}.parquet"
        path.parent.mkdir(parents=True)
        batch.loc[batch["symbol"] == symbol, ["ts", "open", "high", "low", "close", "volume"]].to_parquet(
            path
        )

    def rewrite() -> None:
        for symbol in symbols:
            path = folder / symbol.replace("/", "-") / f"{month}.parquet"
            rows = batch.loc[batch["symbol"] == symbol, ["ts", "open", "high", "low", "close", "volume"]]
            pd.concat([pd.read_parquet(path), rows]).to_parquet(path)

    storage, _ = timed(rewrite)
    return {"fetch_s": fetch, "validation_s": validation, "storage_s": storage}


def cycle_settings(symbols: list[str], url: str, redis_url: str, home: Path) -> Any:
    """The settings of one data home of the benchmark: the replay exchange, Redis, 30 days of training."""
    from hourcast.settings import Settings

    return Settings(
        home=home,
        exchange_url=url,
        symbols=symbols,
        online_store="redis",
        redis_url=redis_url,
        feature_repo=REPO / "feature_repo",
        train_days=30,
        feature_retention_days=32,
        max_feature_age_seconds=10**9,
        _env_file=None,
    )


class StageTimer:
    """The ingest's validation and storage shares of the cycles run while it is entered: the seconds spent in
    GX runs (through ``validator``, the validator factory an ``Ingestor`` gets) and the intervals of the
    month-file upserts (``store.upsert`` wrapped, on any thread)."""

    def __init__(self) -> None:
        self.validation = 0.0
        self.storing: list[tuple[float, float]] = []
        self._upsert: Callable[..., Any] | None = None

    def __enter__(self) -> StageTimer:
        from hourcast.data import store

        self._upsert = store.upsert
        store.upsert = self._timed_upsert  # instrumentation: the storage share of the ingest
        return self

    def __exit__(self, *_: object) -> None:
        from hourcast.data import store

        store.upsert = self._upsert

    def _timed_upsert(self, *args: Any) -> Any:
        assert self._upsert is not None
        start = time.perf_counter()
        result = self._upsert(*args)
        self.storing.append((start, time.perf_counter()))
        return result

    def validator(self) -> Any:
        """A ``CandleValidator`` adding the seconds of its GX runs to ``validation``."""
        from hourcast.data.validation import CandleValidator

        timer = self

        class TimedValidator(CandleValidator):
            def validate_batches(self, batches: list[pd.DataFrame], now_ms: int) -> list[Any]:
                seconds, reports = timed(
                    lambda: super(TimedValidator, self).validate_batches(batches, now_ms)
                )
                timer.validation += seconds
                return reports

        return TimedValidator("1h")


def hourly_cycle(settings: Any, timer: StageTimer) -> tuple[Callable[[], dict[str, float]], Any]:
    """One data home's hourly cycle as the flows run it (ingest, features + materialize, monitor), returning
    the seconds of the cycle and of each stage (fetch: the ingest's time outside validation and storage);
    and the home's exchange source."""
    from hourcast.data.ingest import Ingestor, make_ingestor
    from hourcast.features import featurestore
    from hourcast.monitor import run as monitor_run

    source = make_ingestor(settings).source
    ingestor = Ingestor(settings, source, timer.validator)

    def cycle() -> dict[str, float]:
        timer.validation = 0.0
        timer.storing.clear()
        ingest_s, summaries = timed(ingestor.ingest)
        storage_s = wall(timer.storing)
        assert all(s.status == "ok" and s.new == 1 for s in summaries), [s.as_json() for s in summaries][:3]
        materialize_s, _ = timed(lambda: featurestore.materialize(settings))
        monitor_s, _ = timed(lambda: monitor_run.run(settings))
        stages = {
            "fetch": ingest_s - timer.validation - storage_s,
            "validation": timer.validation,
            "storage": storage_s,
            "features_materialize": materialize_s,
            "monitor": monitor_s,
        }
        return {"cycle_s": ingest_s + materialize_s + monitor_s, **{f"{k}_s": v for k, v in stages.items()}}

    return cycle, source


def cycle_medians(runs: list[dict[str, float]]) -> dict[str, Any]:
    """The median of the cycle and of each stage over ``runs``, and each stage's share of the median cycle."""
    medians: dict[str, Any] = {key: round(median(run[key] for run in runs), 3) for key in runs[0]}
    medians["shares"] = {
        key.removesuffix("_s"): round(medians[key] / medians["cycle_s"], 3)
        for key in runs[0]
        if key != "cycle_s"
    }
    return medians


def memory_peak_mib() -> float:
    """This process's peak resident memory so far."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def child(count: int, months: int, url: str, redis_url: str, home: Path, extras: bool) -> dict[str, Any]:
    """Fill, warm up and time ``CYCLES`` hourly cycles of ``count`` symbols (see the module docstring)."""
    from hourcast.data import store

    frames = synthetic_datasets(count, recorded())
    symbols = list(frames)
    settings = cycle_settings(symbols, url, redis_url, home)
    filled, fill_s = timed(lambda: prefill(settings, frames, months))[::-1]
    ledger_files = prefill_ledger(settings, symbols, months)
    with StageTimer() as timer:
        cycle, source = hourly_cycle(settings, timer)
        advance(url)
        warm_s, _ = timed(cycle)
        runs = []
        for _ in range(CYCLES):
            advance(url)
            runs.append(cycle())
    result: dict[str, Any] = {
        "symbols": count,
        "months_stored": months,
        "candles_stored": filled,
        "ledger_runs_stored": ledger_files,
        "fill_s": round(fill_s, 1),
        "warm_up_cycle_s": round(warm_s, 2),
        **cycle_medians(runs),
    }
    now_ms = source.now_ms()
    batch = pd.concat(
        store.load_candles(settings.candles_dir, store.Series("binance", s, "1h"))
        .tail(1)
        .assign(exchange="binance", timeframe="1h")[
            ["exchange", "symbol", "timeframe", "ts", "open", "high", "low", "close", "volume"]
        ]
        for s in symbols
    ).astype({"exchange": "string", "symbol": "string", "timeframe": "string"})
    bare = bare_ingest(settings, symbols, batch.reset_index(drop=True), now_ms)
    result["bare"] = {key: round(value, 3) for key, value in bare.items()}
    ingest_s = result["fetch_s"] + result["validation_s"] + result["storage_s"]
    result["ratio_ingest_to_bare"] = round(ingest_s / sum(bare.values()), 2)
    result["ratio_cycle_to_bare_stages"] = round(
        result["cycle_s"] / (sum(bare.values()) + result["features_materialize_s"] + result["monitor_s"]), 2
    )
    result["ledger"] = ledger_cost(settings, symbols)
    if extras:
        result |= train_and_predict(settings, symbols)
    result["memory_peak_mib"] = memory_peak_mib()
    return result


def paired_history(count: int, hours: int, url: str, redis_urls: list[str], root: Path) -> dict[str, Any]:
    """Both history lengths of ``count`` symbols in this process, hour by hour (see the module docstring):
    ``redis_urls`` gives each home of ``HISTORY_MONTHS`` its online store."""
    frames = synthetic_datasets(count, recorded())
    symbols = list(frames)
    homes: dict[int, Any] = {}
    figures: dict[int, dict[str, Any]] = {}
    for months, redis_url in zip(HISTORY_MONTHS, redis_urls, strict=True):
        settings = homes[months] = cycle_settings(symbols, url, redis_url, root / f"{months}-months")
        started = time.perf_counter()
        filled = prefill(settings, frames, months)
        figures[months] = {
            "months_stored": months,
            "candles_stored": filled,
            "fill_s": round(time.perf_counter() - started, 1),
            "ledger_runs_stored": prefill_ledger(settings, symbols, months),
        }
    runs: dict[int, list[dict[str, float]]] = {months: [] for months in HISTORY_MONTHS}
    firsts = []
    with StageTimer() as timer:
        cycles = {months: hourly_cycle(settings, timer)[0] for months, settings in homes.items()}
        advance(url)
        for months, cycle in cycles.items():
            figures[months]["warm_up_cycle_s"] = round(timed(cycle)[0], 2)
        for hour in range(hours):
            advance(url)
            order = HISTORY_MONTHS if hour % 2 == 0 else HISTORY_MONTHS[::-1]
            firsts.append(order[0])
            for months in order:
                runs[months].append(cycles[months]())
    short, long = HISTORY_MONTHS
    ratios = [b["cycle_s"] / a["cycle_s"] for a, b in zip(runs[short], runs[long], strict=True)]
    for months, settings in homes.items():
        figures[months] |= {
            "cycles_s": [round(run["cycle_s"], 3) for run in runs[months]],
            **cycle_medians(runs[months]),
            "ledger": ledger_cost(settings, symbols),
        }
    return {
        "symbols": count,
        "hours": hours,
        "homes": [figures[months] for months in HISTORY_MONTHS],
        "first_each_hour_months": firsts,
        "paired_ratios": [round(ratio, 3) for ratio in ratios],
        "median_paired_ratio": round(median(ratios), 3),
        "min_paired_ratio": round(min(ratios), 3),
        "max_paired_ratio": round(max(ratios), 3),
        "ratio_of_medians": round(figures[long]["cycle_s"] / figures[short]["cycle_s"], 3),
        "memory_peak_mib": memory_peak_mib(),
    }


def train_and_predict(settings: Any, symbols: list[str]) -> dict[str, Any]:
    """Training per 100k rows, and a 100-symbol batch prediction, in process and over HTTP, against the
    bare Feast + CatBoost call."""
    import numpy as np

    from hourcast.features import featurestore
    from hourcast.features.compute import FEATURE_NAMES
    from hourcast.model import registry, training
    from hourcast.serving.predictor import Predictor

    os.environ.update({"BENTOML_HOME": str(settings.home / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"})
    train_s, trained = timed(lambda: training.train(settings))
    rows = int(getattr(trained, "rows", 0) or 0)
    batch = symbols[:100]
    predictor = Predictor(settings)
    predictor.predict(batch, True)
    project = [timed(lambda: predictor.predict(batch, True))[0] for _ in range(20)]
    feature_store = featurestore.open_store(settings)
    service = feature_store.get_feature_service(featurestore.SERVING_SERVICE)
    _, model, _ = registry.load_production(settings.registry_dir, settings.model_name)

    def bare_call() -> None:
        values = feature_store.get_online_features(
            features=service, entity_rows=[{"symbol": s} for s in batch]
        ).to_dict()
        model.predict([[s, *(values[name][i] for name in FEATURE_NAMES)] for i, s in enumerate(batch)])

    bare_call()
    bare = [timed(bare_call)[0] for _ in range(20)]
    http, bare_beside = predict_batch_http(settings, batch, bare_call)
    bare_p50 = float(np.median(bare_beside))
    return {
        "training": {
            "rows": rows,
            "seconds": round(train_s, 1),
            "seconds_per_100k_rows": round(train_s / rows * 100_000, 1) if rows else None,
            "promoted": getattr(trained, "promoted", None),
        },
        "predict_batch_100": {
            "symbols": len(batch),
            "project_median_ms": round(float(np.median(project)) * 1000, 1),
            "bare_feast_catboost_median_ms": round(float(np.median(bare)) * 1000, 1),
            "ratio": round(float(np.median(project) / np.median(bare)), 2),
        },
        "predict_batch_http": {
            "symbols": len(batch),
            "calls": len(http),
            "p50_ms": round(float(np.median(http)) * 1000, 1),
            "p99_ms": round(float(np.quantile(http, 0.99)) * 1000, 1),
            "bare_feast_catboost_p50_ms": round(bare_p50 * 1000, 1),
            "bare_feast_catboost_p99_ms": round(float(np.quantile(bare_beside, 0.99)) * 1000, 1),
            "ratio_p50_to_bare_p50": round(float(np.median(http)) / bare_p50, 2),
        },
    }


def predict_batch_http(
    settings: Any, batch: list[str], bare_call: Callable[[], None]
) -> tuple[list[float], list[float]]:
    """Seconds of ``HTTP_CALLS`` sequential ``POST /predict_batch`` calls for ``batch`` to the real service
    (``hourcast serve``, which execs ``bentoml serve``) over the benchmark's Redis, after a warm-up, and of
    as many bare calls, each right after an HTTP call (so both see the machine's load of the moment)."""
    import httpx
    from _common import free_port, hourcast_serve

    from hourcast.cli.serve import serve_environment
    from hourcast.ops.stack import settings_environment

    port = free_port()
    env = serve_environment(settings, {**os.environ, **settings_environment(settings)})
    body = {"symbols": batch, "allow_stale": True}
    with (
        hourcast_serve(env, port, settings.home / "serve.log"),
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
    ):

        def call() -> None:
            response = client.post("/predict_batch", json=body)
            assert response.status_code == 200 and len(response.json()) == len(batch), response.text[:500]

        for _ in range(5):
            call()
        pairs = [(timed(call)[0], timed(bare_call)[0]) for _ in range(HTTP_CALLS)]
        return [http for http, _ in pairs], [bare for _, bare in pairs]


def run_child(label: str, args: list[str]) -> dict[str, Any]:
    """This script run with ``args`` and a new temporary home folder, in a process of its own; the JSON of
    its last line of output."""
    with tempfile.TemporaryDirectory(prefix="hourcast-scale-") as home:
        command = [sys.executable, str(Path(__file__).resolve()), *args, home]
        done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
        if done.returncode:
            raise SystemExit(f"scale child ({label}) failed:\n{done.stderr[-4000:]}")
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        return result


def redis_database(url: str, number: int) -> str:
    """``url`` (``redis://host:port/db``) naming database ``number`` of the same server."""
    return f"{url.rsplit('/', 1)[0]}/{number}"


def table(figures: dict[str, Any]) -> str:
    lines = [
        "| symbols | months stored | cycle s | fetch | validation | storage | features+materialize | monitor "
        "| memory peak MiB | ingest / bare | cycle / bare stages |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for run in figures["runs"]:
        shares = run["shares"]
        lines.append(
            f"| {run['symbols']} | {run['months_stored']} | {run['cycle_s']:.2f} | {shares['fetch']:.0%} | "
            f"{shares['validation']:.0%} | {shares['storage']:.0%} | {shares['features_materialize']:.0%} | "
            f"{shares['monitor']:.0%} | {run['memory_peak_mib']:.0f} | {run['ratio_ingest_to_bare']} | "
            f"{run['ratio_cycle_to_bare_stages']} |"
        )
    history = figures["history"]
    lines += [
        "",
        f"History, paired: {history['symbols']} symbols, one process, a home with 1 and one with 12 months "
        f"stored; {history['hours']} hours, each one clock advance then one cycle per home (the home going "
        "first alternating), medians over the hours:",
        "",
        "| months stored | candles stored | cycle s | fetch s | validation s | storage s "
        "| features+materialize s | monitor s | cycles s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for home in history["homes"]:
        lines.append(
            f"| {home['months_stored']} | {home['candles_stored']:,} | {home['cycle_s']:.2f} | "
            f"{home['fetch_s']:.2f} | {home['validation_s']:.2f} | {home['storage_s']:.2f} | "
            f"{home['features_materialize_s']:.2f} | {home['monitor_s']:.2f} | "
            f"{', '.join(f'{s:.2f}' for s in home['cycles_s'])} |"
        )
    verdict = "met" if figures["history_within_target"] else "NOT met"
    within = TARGETS["history_12_vs_1_month_within"]
    lines += [
        "",
        f"Cycle 12 / 1 month: median paired ratio **{history['median_paired_ratio']}** (min "
        f"{history['min_paired_ratio']}, max {history['max_paired_ratio']}; hourly "
        f"{', '.join(str(r) for r in history['paired_ratios'])}); ratio of medians "
        f"{history['ratio_of_medians']}; target within {within:.0%}: {verdict}",
        "",
        "| symbols | ledger runs stored | a run's ledger writes ms | bare write_table ms | ratio "
        "| last 20 rows ms |",
        "|---|---|---|---|---|---|",
    ]
    ledgers = [(str(run["symbols"]), run["ledger_runs_stored"], run["ledger"]) for run in figures["runs"]]
    ledgers += [
        (
            f"{history['symbols']} (history home, {home['months_stored']} mo.)",
            home["ledger_runs_stored"],
            home["ledger"],
        )
        for home in history["homes"]
    ]
    for symbols, stored, cost in ledgers:
        lines.append(
            f"| {symbols} | {stored} | {cost['run_write_ms']} | {cost['bare_write_table_ms']} | "
            f"{cost['ratio_write_to_bare']} | {cost['read_last_20_ms']} |"
        )
    for run in figures["runs"]:
        if "predict_batch_http" in run:
            http, local = run["predict_batch_http"], run["predict_batch_100"]
            lines += [
                "",
                f"/predict_batch of {http['symbols']} symbols over HTTP: p50 {http['p50_ms']} ms, p99 "
                f"{http['p99_ms']} ms; bare Feast lookup + CatBoost p50 {http['bare_feast_catboost_p50_ms']} "
                f"ms, p99 {http['bare_feast_catboost_p99_ms']} ms; ratio {http['ratio_p50_to_bare_p50']} "
                f"(in process: {local['project_median_ms']} ms, ratio {local['ratio']})",
            ]
    return "\n".join(lines)


def parse_arguments() -> argparse.Namespace:
    """The command line; ``--child`` and ``--paired`` are this script's own runs of one measurement."""
    parser = argument_parser(__doc__, "scale")
    parser.add_argument(
        "--sizes",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[10, 100, 500],
        help="symbol counts of the cycle runs, comma-separated (default: 10,100,500)",
    )
    parser.add_argument(
        "--history-symbols",
        type=int,
        default=100,
        help="symbols of the paired history run (default: %(default)s)",
    )
    parser.add_argument(
        "--history-cycles",
        type=int,
        default=HISTORY_CYCLES,
        help="timed hours of the paired history run (default: %(default)s)",
    )
    parser.add_argument("--child", nargs=6, help=argparse.SUPPRESS)
    parser.add_argument("--paired", nargs=6, help=argparse.SUPPRESS)
    return parser.parse_args()


def main(args: argparse.Namespace) -> None:
    sizes, history, hours = args.sizes, args.history_symbols, args.history_cycles
    exchange = ReplayExchange(synthetic_datasets(max(*sizes, history), recorded()), now=NOW)
    redis = RedisServer().start()
    figures: dict[str, Any] = {"cpus": os.cpu_count(), "load_average_start": os.getloadavg(), "runs": []}
    try:
        with ReplayServer(exchange) as server:
            for count in sizes:
                exchange.set_now(NOW)
                args = ["--child", str(count), "1", server.url, redis.url, str(count == history)]
                figures["runs"].append(run_child(f"{count} symbols", args))
            exchange.set_now(NOW)
            databases = [redis_database(redis.url, number) for number in (1, 2)]
            args = ["--paired", str(history), str(hours), server.url, *databases]
            figures["history"] = run_child(f"paired history, {history} symbols", args)
    finally:
        redis.stop()
    one, twelve = figures["history"]["homes"]
    figures["history_cycle_12_over_1_month"] = figures["history"]["median_paired_ratio"]
    figures["history_within_target"] = (
        abs(figures["history_cycle_12_over_1_month"] - 1) <= TARGETS["history_12_vs_1_month_within"]
    )
    figures["history_ledger_write_12_over_1_month"] = round(
        twelve["ledger"]["run_write_ms"] / one["ledger"]["run_write_ms"], 3
    )
    figures["load_average_end"] = os.getloadavg()
    figures["targets"] = TARGETS
    figures["table"] = table(figures)
    write_results(args.output, figures)
    print(figures["table"])


if __name__ == "__main__":
    arguments = parse_arguments()
    if arguments.child:
        count, months, url, redis_url, extras, home = arguments.child
        out = child(int(count), int(months), url, redis_url, Path(home), extras == "True")
        print(json.dumps(out, default=str))
    elif arguments.paired:
        count, hours, url, redis_one, redis_twelve, home = arguments.paired
        out = paired_history(int(count), int(hours), url, [redis_one, redis_twelve], Path(home))
        print(json.dumps(out, default=str))
    else:
        main(arguments)
