"""The ingest flow's per-symbol fan-out on prefect-dask's DaskTaskRunner (a LocalCluster of 2 worker
processes) stores exactly what Prefect's default thread pool stores."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd
import pytest
from distributed import Client, LocalCluster

from flows.ingest import ingest
from hourcast import ledger, store
from hourcast.dev.replay import ReplayExchange, ReplayServer, synthetic_datasets
from hourcast.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COUNTS = ["symbol", "command", "fetched", "new", "duplicates", "gaps", "quarantined", "status"]


def run_ingest(monkeypatch: pytest.MonkeyPatch, home: Path, server: ReplayServer, symbols: list[str]) -> str:
    """One ingest flow run against the replay exchange into ``home``; its final state's name."""
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
    }
    for name, value in variables.items():
        monkeypatch.setenv(f"HOURCAST_{name}", str(value))
    return ingest(return_state=True).name


def stored(home: Path, symbol: str) -> pd.DataFrame:
    return store.load_candles(home / "candles", store.Series("binance", symbol, "1h"))


@pytest.mark.timeout(600)  # two Dask worker processes start and import the project
@pytest.mark.usefixtures("prefect_server")
def test_a_dask_cluster_ingests_the_same_store_as_the_thread_pool(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    synthetic = synthetic_datasets(6, recorded_files)
    symbols = list(synthetic)
    exchange = ReplayExchange(synthetic, now="2024-03-01T00:00:00Z")
    with ReplayServer(exchange) as server:
        threads = tmp_path / "threads"
        monkeypatch.delenv("HOURCAST_DASK_ADDRESS", raising=False)
        assert run_ingest(monkeypatch, threads, server, symbols) == "Completed"

        dask = tmp_path / "dask"
        with LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster:
            monkeypatch.setenv("HOURCAST_DASK_ADDRESS", cluster.scheduler_address)
            assert Settings().dask_address == cluster.scheduler_address
            assert run_ingest(monkeypatch, dask, server, symbols) == "Completed"
            with Client(cluster) as client:  # the pulls ran in the workers, not in this process
                ran = client.run(lambda: "hourcast.ingest" in sys.modules)
            assert len(ran) == 2 and any(ran.values())

    for symbol in symbols:
        candles = stored(dask, symbol)
        assert len(candles) == 48, symbol
        pd.testing.assert_frame_equal(candles, stored(threads, symbol))
    by_threads = ledger.read(threads / "ledger")[COUNTS].sort_values("symbol")
    by_dask = ledger.read(dask / "ledger")[COUNTS].sort_values("symbol")
    pd.testing.assert_frame_equal(by_dask.reset_index(drop=True), by_threads.reset_index(drop=True))
    assert by_dask["symbol"].tolist() == symbols and (by_dask["new"] == 48).all()
