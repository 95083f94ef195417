"""Side files never block the archive: each file the data layer keeps beside the candles is damaged for
real (truncated, or garbage), then the real commands run: the file is set aside as
``<name>.damaged-<time>`` with one warning line and rebuilt from the store or skipped, never a traceback.
A stray month folder is set aside by ``hourcast repair``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hourcast.cli.app import app
from hourcast.data import completeness, quarantine, store
from hourcast.data.ingest import make_ingestor
from hourcast.dev.replay.server import ReplayServer
from hourcast.settings import Settings
from tests.support.data import replay_settings

pytestmark = pytest.mark.slow  # a subprocess per command: two minutes in all

BTC = store.Series("binance", "BTC/USDT", "1h")
HOURCAST = str(Path(sys.executable).with_name("hourcast"))


def damage(path: Path, how: str) -> bytes:
    """Truncate ``path`` to half its size or fill it with garbage; returns the damaged bytes."""
    data = path.read_bytes()[: path.stat().st_size // 2] if how == "truncated" else b"\x00garbage\xff" * 9
    path.write_bytes(data)
    return data


def hourcast(home: Path, replay: ReplayServer, *args: str) -> subprocess.CompletedProcess[str]:
    """The installed ``hourcast ARGS`` aimed at ``home`` and the replay exchange."""
    env = {
        **os.environ,
        "HOME": tempfile.gettempdir(),
        "HOURCAST_HOME": str(home),
        "HOURCAST_EXCHANGE_URL": replay.url,
        "HOURCAST_RETRY_BASE_SECONDS": "0.01",
    }
    return subprocess.run(
        [HOURCAST, *args], env=env, capture_output=True, text=True, timeout=300, check=False
    )


def set_aside(path: Path) -> Path:
    [aside] = path.parent.glob(f"{path.name}.damaged-*")
    return aside


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_a_damaged_completeness_state_is_set_aside_and_rebuilt_from_candles_and_ledger(
    tmp_path: Path, replay: ReplayServer, how: str
) -> None:
    settings = replay_settings(tmp_path, replay, default_backfill_days=1)
    ingestor = make_ingestor(settings)
    ingestor.ingest()
    replay.exchange.advance(3600)
    replay.exchange.set_faults({"missing": {"count": 1}})  # a re-requested hole in the state
    ingestor.ingest()
    state_file = completeness.state_path(settings.candles_dir, BTC)
    before = completeness.read_state(settings.candles_dir, BTC)
    assert len(before.tries) == 1
    damaged = damage(state_file, how)

    gaps = hourcast(tmp_path, replay, "gaps", "--json")
    assert gaps.returncode == 0 and "Traceback" not in gaps.stderr, gaps.stderr
    [warning] = gaps.stderr.strip().splitlines()
    assert f"{state_file} cannot be read" in warning and "rebuilt from the candles and the ledger" in warning
    assert set_aside(state_file).read_bytes() == damaged
    [hole] = [json.loads(line) for line in gaps.stdout.splitlines()]
    assert (hole["candles"], hole["state"]) == (1, "re-requested")
    assert completeness.read_state(settings.candles_dir, BTC) == before  # rebuilt as it was

    damage(state_file, how)  # ingest and backfill heal it the same way, and go on
    replay.exchange.advance(3600)
    ingest = hourcast(tmp_path, replay, "ingest", "--json")
    assert ingest.returncode == 0 and "Traceback" not in ingest.stderr, ingest.stderr
    assert json.loads(ingest.stdout)["new"] == 2  # the hole filled and the new hour
    damage(state_file, how)
    backfill = hourcast(tmp_path, replay, "backfill", "--since", "2024-02-28", "--json")
    assert backfill.returncode == 0 and "Traceback" not in backfill.stderr, backfill.stderr
    assert len(list(state_file.parent.glob(f"{state_file.name}.damaged-*"))) == 3
    assert completeness.read_state(settings.candles_dir, BTC).tries == {}


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_damaged_quarantine_files_never_stop_ingest_or_backfill(
    tmp_path: Path, replay: ReplayServer, how: str
) -> None:
    settings = replay_settings(tmp_path, replay, default_backfill_days=1)
    ingestor = make_ingestor(settings)
    replay.exchange.set_faults({"malformed": {"count": 2}, "seed": 3})
    ingestor.ingest()
    replay.exchange.clear_faults()
    [entry] = quarantine.entries(settings.quarantine_dir)
    rows_file = entry.stem(settings.quarantine_dir).with_suffix(".parquet")
    damaged = damage(rows_file, how)

    backfill = hourcast(tmp_path, replay, "backfill", "--since", "2024-02-27", "--json")
    assert backfill.returncode == 0 and "Traceback" not in backfill.stderr, backfill.stderr
    assert f"{rows_file} cannot be read" in backfill.stderr and set_aside(rows_file).read_bytes() == damaged
    assert len(backfill.stderr.strip().splitlines()) == 1

    show = hourcast(tmp_path, replay, "quarantine", "show", entry.id)
    assert show.returncode == 1 and len(show.stderr.strip().splitlines()) == 1, show.stderr
    assert "missing or damaged" in show.stderr and "--reviewed" in show.stderr

    entry_file = entry.stem(settings.quarantine_dir).with_name(entry.id + quarantine.ENTRY_SUFFIX)
    damage(entry_file, how)
    listed = hourcast(tmp_path, replay, "quarantine", "list", "--json")
    assert listed.returncode == 0 and listed.stdout == "" and f"{entry_file} cannot be read" in listed.stderr
    replay.exchange.advance(3600)
    ingest = hourcast(tmp_path, replay, "ingest")
    assert ingest.returncode == 0 and "Traceback" not in ingest.stderr, ingest.stderr


def test_repair_sets_stray_month_folders_aside_and_ingest_never_loops_on_them(
    tmp_path: Path, replay: ReplayServer
) -> None:
    settings = replay_settings(tmp_path, replay, default_backfill_days=1)
    make_ingestor(settings).ingest()
    series_dir = BTC.directory(settings.candles_dir)
    good = series_dir / "month=2024-02" / "data.parquet"
    strays = [series_dir / "month=bogus", series_dir / "month=2024-13"]
    for stray in strays:
        stray.mkdir()
        (stray / "data.parquet").write_bytes(b"not parquet")

    replay.exchange.advance(3600)
    ingest = hourcast(tmp_path, replay, "ingest", "--json")
    assert ingest.returncode == 0, ingest.stderr
    assert json.loads(ingest.stdout)["new"] == 1
    repair = hourcast(tmp_path, replay, "repair")
    assert repair.returncode == 0, repair.stderr
    for stray in strays:
        assert not stray.exists() and f"{stray} is no month of the store: set aside as" in repair.stderr
    assert len(list((tmp_path / "damaged").rglob("month=*"))) == 2
    again = hourcast(tmp_path, replay, "repair")
    assert again.returncode == 0 and "no damaged candle files" in again.stdout, again.stderr
    assert good.exists() and len(store.load_candles(settings.candles_dir, BTC)) == 25


def test_the_ledger_shows_its_runs_when_a_month_file_is_damaged(tmp_path: Path, replay: ReplayServer) -> None:
    settings = replay_settings(tmp_path, replay, default_backfill_days=1)
    ingestor = make_ingestor(settings)
    replay.exchange.set_faults({"missing": {"count": 1}})
    ingestor.ingest()  # a run with a gap: the ledger counts its open gaps from the store
    month = BTC.directory(settings.candles_dir) / "month=2024-02" / "data.parquet"
    damage(month, "truncated")
    result = hourcast(tmp_path, replay, "ledger", "--json")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    [line] = result.stderr.strip().splitlines()
    assert f"candle file {month} is damaged" in line and "run `hourcast repair`" in line
    [run] = json.loads(result.stdout)
    assert run["gaps"] == 1 and run["open_gaps"] is None
    table = CliRunner().invoke(app, ["ledger"], env={"HOURCAST_HOME": str(tmp_path)})
    assert table.exit_code == 0 and "ingest" in table.stdout, table.output


def test_a_damaged_feature_table_state_is_set_aside_and_the_table_rebuilt(
    tmp_path: Path, recorded_files: dict[str, pd.DataFrame]
) -> None:
    from hourcast.features import feature_table
    from tests.support.data import store_recorded

    settings = Settings(home=tmp_path, symbols=["BTC/USDT"])
    store_recorded(settings, recorded_files, days=20, end="2024-03-01")
    first = feature_table.update(settings)
    state = feature_table.state_path(settings.feature_table_path)
    damaged = damage(state, "garbage")
    again = feature_table.update(settings)
    assert set_aside(state).read_bytes() == damaged
    assert again.rebuilt and again.total_rows == first.total_rows
    latest = feature_table.update(settings)  # the rebuilt state is read again: nothing to do
    assert not latest.rebuilt and latest.total_rows == first.total_rows and len(latest.rows) == 0


def test_repair_and_ledger_set_damaged_state_and_ledger_files_aside(
    tmp_path: Path, replay: ReplayServer
) -> None:
    from hourcast.data import ledger

    settings = replay_settings(tmp_path, replay, default_backfill_days=1)
    ingestor = make_ingestor(settings)
    ingestor.ingest()
    replay.exchange.advance(3600)
    ingestor.ingest()
    state_file = completeness.state_path(settings.candles_dir, BTC)
    before = completeness.read_state(settings.candles_dir, BTC)
    damage(state_file, "truncated")
    first_run = ledger.parts(settings.ledger_dir)[0]
    damaged = damage(first_run, "garbage")

    shown = hourcast(tmp_path, replay, "ledger", "--json")
    assert shown.returncode == 0 and "Traceback" not in shown.stderr, shown.stderr
    assert f"{first_run} cannot be read" in shown.stderr and set_aside(first_run).read_bytes() == damaged
    assert len(json.loads(shown.stdout)) == 1  # the other run

    repair = hourcast(tmp_path, replay, "repair")
    assert repair.returncode == 0 and "Traceback" not in repair.stderr, repair.stderr
    [warning] = repair.stderr.strip().splitlines()
    assert f"{state_file} cannot be read" in warning and "rebuilt from the candles and the ledger" in warning
    assert "no damaged candle files" in repair.stdout
    rebuilt = completeness.read_state(settings.candles_dir, BTC)
    assert (rebuilt.end, rebuilt.tries, rebuilt.confirmed) == (before.end, {}, set())
