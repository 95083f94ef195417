"""The ingestion ledger's folder: a file per run (its own rows only), atomic writes, day partitions that
retention deletes whole."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from hourcast.cli.app import app
from hourcast.data import ledger
from hourcast.ops import retention
from hourcast.settings import Settings
from tests.support.processes import kill_writer_when

RUN = pd.Timestamp("2024-03-01 00:05", tz="UTC")


def entry(run_at: pd.Timestamp = RUN, symbol: str = "BTC/USDT", status: str = "ok") -> ledger.LedgerEntry:
    return ledger.LedgerEntry(
        run_at=run_at,
        command="ingest",
        exchange="binance",
        symbol=symbol,
        timeframe="1h",
        fetched=3,
        new=2,
        duplicates=1,
        gaps=1,
        gap_ranges="2024-01-01T01:00:00Z+1",
        quarantined=0,
        quarantined_ranges="",
        first=pd.Timestamp("2024-01-01", tz="UTC"),
        last=None,
        duration_seconds=0.5,
        status=status,
        message="" if status != "started" else ledger.STARTED_MESSAGE,
    )


def hourly_runs(folder: Path, start: pd.Timestamp, hours: int, symbols: list[str]) -> None:
    for hour in range(hours):
        run_at = start + pd.Timedelta(hours=hour)
        ledger.record_many(folder, [entry(run_at, symbol) for symbol in symbols])


def test_a_run_writes_one_file_of_its_own_rows_and_its_outcome_replaces_its_start(tmp_path: Path) -> None:
    folder = tmp_path / "ledger"
    hourly_runs(folder, RUN - pd.Timedelta(days=2), 48, ["BTC/USDT", "ETH/USDT"])
    before = {path: path.stat().st_mtime_ns for path in ledger.parts(folder)}
    assert len(before) == 48 and len({path.parent.name for path in before}) == 2  # two day folders

    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT"]
    ledger.record_many(folder, [entry(symbol=symbol, status="started") for symbol in symbols])
    [started] = set(ledger.parts(folder)) - set(before)
    assert started.parent.name == "date=2024-03-01" and len(pd.read_parquet(started)) == 3
    ledger.record_many(folder, [entry(symbol=symbol) for symbol in symbols])

    # the older runs' files were never rewritten: a run's cost does not grow with the history
    assert {path: path.stat().st_mtime_ns for path in before} == before
    assert set(ledger.parts(folder)) - set(before) == {started}
    frame = ledger.read(folder)
    assert len(frame) == 99 and frame["run_at"].is_monotonic_increasing
    assert frame.tail(3)[["symbol", "status"]].values.tolist() == [[s, "ok"] for s in symbols]
    assert frame["last"].isna().all() and str(frame["run_at"].dtype) == "datetime64[ms, UTC]"


def test_shards_of_one_run_keep_each_others_entries(tmp_path: Path) -> None:
    ledger.record_many(tmp_path, [entry(symbol="BTC/USDT", status="started")])
    ledger.record_many(tmp_path, [entry(symbol="ETH/USDT", status="started")])
    ledger.record_many(tmp_path, [entry(symbol="ETH/USDT")])
    frame = ledger.read(tmp_path).sort_values("symbol")
    assert frame[["symbol", "status"]].values.tolist() == [["BTC/USDT", "started"], ["ETH/USDT", "ok"]]


def test_the_latest_rows_are_read_from_the_newest_files_only(tmp_path: Path) -> None:
    hourly_runs(tmp_path, RUN, 10, ["BTC/USDT", "ETH/USDT"])
    oldest = ledger.parts(tmp_path)[0]
    whole = ledger.read(tmp_path)
    oldest.write_bytes(oldest.read_bytes()[:50])  # a reader of the last rows never opens it
    pd.testing.assert_frame_equal(ledger.read(tmp_path, last=5), whole.tail(5).reset_index(drop=True))
    assert oldest.exists()
    assert len(ledger.read(tmp_path)) == 18  # a full read sets the damaged file aside and goes on
    [aside] = oldest.parent.glob(f"{oldest.name}.damaged-*")
    assert not oldest.exists() and len(aside.read_bytes()) == 50


def test_the_ledger_reads_in_run_order_and_its_day_folders_expire_with_retention(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, ledger_retention_days=30, _env_file=None)
    for day in (40, 39):
        ledger.record_many(
            settings.ledger_dir, [entry(RUN - pd.Timedelta(days=day), s) for s in ("A/USDT", "B/USDT")]
        )
    hourly_runs(settings.ledger_dir, RUN - pd.Timedelta(days=10), 2, ["BTC/USDT"])

    frame = ledger.read(settings.ledger_dir)
    assert frame["symbol"].tolist() == ["A/USDT", "B/USDT", "A/USDT", "B/USDT", "BTC/USDT", "BTC/USDT"]
    assert frame["run_at"].is_monotonic_increasing
    pd.testing.assert_frame_equal(
        ledger.read(settings.ledger_dir, last=3), frame.tail(3).reset_index(drop=True)
    )
    shown = CliRunner().invoke(app, ["ledger", "--json"], env={"HOURCAST_HOME": str(tmp_path)})
    assert [row["symbol"] for row in json.loads(shown.output)] == frame["symbol"].tolist()

    # retention: a day folder goes once its whole day has expired
    kept = retention.apply_retention(settings, now=RUN - pd.Timedelta(days=10))
    assert kept.ledger_files_removed == 0 and len(ledger.parts(settings.ledger_dir)) == 4
    report = retention.apply_retention(settings, now=RUN - pd.Timedelta(days=5))
    assert report.ledger_files_removed == 2
    assert len(ledger.read(settings.ledger_dir)) == 2
    report = retention.apply_retention(settings, now=RUN + pd.Timedelta(days=21))
    assert report.ledger_files_removed == 2 and ledger.parts(settings.ledger_dir) == []
    assert not list(settings.ledger_dir.glob("date=*"))


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    import pandas as pd
    from hourcast.data import ledger
    from tests.unit.test_ledger import entry

    folder = Path(sys.argv[1])
    symbols = [f"SYN{n:05d}/USDT" for n in range(2_000)]
    print("ready", flush=True)
    for hour in range(1000):
        run_at = pd.Timestamp("2024-03-01", tz="UTC") + pd.Timedelta(hours=hour)
        ledger.record_many(folder, [entry(run_at, symbol, "started") for symbol in symbols])
        ledger.record_many(folder, [entry(run_at, symbol) for symbol in symbols])
    """
)


def test_a_run_killed_mid_write_leaves_no_partial_file_visible(tmp_path: Path) -> None:
    kill_writer_when(WRITER, tmp_path, lambda: len(ledger.parts(tmp_path)) >= 3, "the writer's third run")

    frame = ledger.read(tmp_path)
    assert not list(tmp_path.rglob("*.damaged-*")), "a reader met a partial file"
    runs = frame.groupby("run_at")["symbol"].nunique()
    assert len(runs) >= 3 and (runs == 2_000).all()  # every visible run complete
    assert 3 <= len(ledger.parts(tmp_path)) < 1000, "the writer was meant to be killed mid-way"
