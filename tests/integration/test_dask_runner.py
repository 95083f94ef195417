"""The ingest and backfill flows' per-symbol fan-out on prefect-dask's DaskTaskRunner (a LocalCluster of 2
worker processes) stores exactly what Prefect's default thread pool stores."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any
from uuid import uuid4

import pandas as pd
import pytest
from distributed import Client, LocalCluster, get_task_stream
from prefect import Flow
from prefect.client.schemas.objects import State

from flows.backfill import backfill
from flows.ingest import ingest
from hourcast.data import ledger, store
from hourcast.dev.replay.data import synthetic_datasets
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COUNTS = ["symbol", "command", "fetched", "new", "duplicates", "gaps", "quarantined", "status"]


def run_flow(
    monkeypatch: pytest.MonkeyPatch,
    home: Path,
    server: ReplayServer,
    symbols: list[str],
    flow: Flow[..., Any],
    **parameters: object,
) -> State:
    """One run of ``flow`` against the replay exchange into ``home``; its final state."""
    variables = {
        "HOME": home,
        "EXCHANGE_URL": server.url,
        "SYMBOLS": ",".join(symbols),
        "FEATURE_REPO": REPO / "feature_repo",
        "DEFAULT_BACKFILL_DAYS": 2,
        "INGEST_SHARD_SYMBOLS": 2,  # 3 pull tasks for 6 symbols
        "EXCHANGE_TIMEOUT_MS": 2000,
        "RETRY_BASE_SECONDS": 0.01,
        "RETRY_MAX_SECONDS": 0.05,
        "WRITER_LIMIT": f"hourcast-ingest-{home.name}-{uuid4().hex[:12]}",  # its own: the server is shared
    }
    for name, value in variables.items():
        monkeypatch.setenv(f"HOURCAST_{name}", str(value))
    return flow(**parameters, return_state=True)


BACKFILL = {"since": "2024-02-25", "until": "2024-02-27"}  # the two days before the ingest's two


def backfilled(state: State) -> list[dict[str, Any]]:
    """A completed backfill run's summaries, by symbol."""
    assert state.name == "Completed"
    return sorted(state.result(), key=lambda summary: summary["symbol"])


def stored(home: Path, symbol: str) -> pd.DataFrame:
    return store.load_candles(home / "candles", store.Series("binance", symbol, "1h"))


@pytest.mark.timeout(600)  # two Dask worker processes start and import the project
@pytest.mark.usefixtures("prefect_server")
def test_a_dask_cluster_ingests_and_backfills_the_same_store_as_the_thread_pool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    synthetic = synthetic_datasets(6, recorded_files)
    symbols = list(synthetic)
    exchange = ReplayExchange(synthetic, now="2024-03-01T00:00:00Z")
    with ReplayServer(exchange) as server:
        threads = tmp_path / "threads"
        monkeypatch.delenv("HOURCAST_DASK_ADDRESS", raising=False)
        assert run_flow(monkeypatch, threads, server, symbols, ingest).name == "Completed"
        threads_backfill = tmp_path / "threads-backfill"
        backfill_threads = backfilled(
            run_flow(monkeypatch, threads_backfill, server, symbols, backfill, **BACKFILL)
        )

        dask, dask_backfill = tmp_path / "dask", tmp_path / "dask-backfill"
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            monkeypatch.setenv("HOURCAST_DASK_ADDRESS", cluster.scheduler_address)
            assert Settings().dask_address == cluster.scheduler_address
            with Client(cluster) as client, get_task_stream(client) as stream:
                assert run_flow(monkeypatch, dask, server, symbols, ingest).name == "Completed"
                backfill_dask = backfilled(
                    run_flow(monkeypatch, dask_backfill, server, symbols, backfill, **BACKFILL)
                )
            # the pulls ran in the workers, not in this process: 3 tasks of 2 symbols per flow run
            assert Counter(task["key"].rsplit("-", 1)[0] for task in stream.data) == {
                "pull_candles": 3,
                "pull_history": 3,
            }
            assert {task["worker"] for task in stream.data} <= set(cluster.scheduler_info["workers"])

    assert backfill_dask == backfill_threads
    assert [summary["symbol"] for summary in backfill_dask] == sorted(symbols)
    assert all(summary["new"] == 48 and summary["status"] == "ok" for summary in backfill_dask)
    for on_dask, on_threads in ((dask, threads), (dask_backfill, threads_backfill)):
        for symbol in symbols:
            candles = stored(on_dask, symbol)
            assert len(candles) == 48, symbol
            pd.testing.assert_frame_equal(candles, stored(on_threads, symbol))
    by_threads = ledger.read(threads / "ledger")[COUNTS].sort_values("symbol")
    by_dask = ledger.read(dask / "ledger")[COUNTS].sort_values("symbol")
    pd.testing.assert_frame_equal(by_dask.reset_index(drop=True), by_threads.reset_index(drop=True))
    assert by_dask["symbol"].tolist() == symbols and (by_dask["new"] == 48).all()
