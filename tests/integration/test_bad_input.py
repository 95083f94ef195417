"""Bad input is one clear line, a non-zero exit, and nothing lost: the real ``hourcast`` command in a
subprocess, with the bad environment, option or file injected for real."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from click.testing import Result
from typer.testing import CliRunner

from hourcast.cli.app import app
from hourcast.data import ledger, store
from hourcast.data.ingest import make_ingestor
from hourcast.dev.replay.server import ReplayServer
from hourcast.errors import UserError
from tests.support.data import replay_settings

BTC = store.Series("binance", "BTC/USDT", "1h")
HOURCAST = str(Path(sys.executable).with_name("hourcast"))
JAN, MAR = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2024-03-01", tz="UTC")


NO_DAC_OVERRIDE = [
    "setpriv",
    "--inh-caps=-dac_override,-dac_read_search",
    "--bounding-set=-dac_override,-dac_read_search",
]
"""Root without the capabilities that bypass file modes: it still reads the checkout (it owns it, wherever
it was cloned), but a folder's mode 0555 stops it writing there, as it stops any user."""


def start(args: list[str], honour_modes: bool = False, **env: str) -> subprocess.Popen:
    """The installed ``hourcast ARGS`` with ``HOURCAST_*`` overrides; ``honour_modes``: as root, without
    the capabilities that bypass file modes."""
    prefix = NO_DAC_OVERRIDE if honour_modes and os.geteuid() == 0 else []
    environment = {**os.environ, "HOME": tempfile.gettempdir(), **env}
    return subprocess.Popen(
        [*prefix, HOURCAST, *args], env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def one_line_error(process: subprocess.Popen) -> str:
    """The single stderr line of a command that failed cleanly (exit 1, no traceback)."""
    out, err = process.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert process.returncode == 1 and len(lines) == 1 and "Traceback" not in err, (out, err)
    return lines[0]


def cli(args: list[str], **env: str) -> Result:
    """``hourcast ARGS`` in this process (the same command group, faster than a new interpreter)."""
    return CliRunner().invoke(app, args, env=env)


def cli_error(args: list[str], **env: str) -> str:
    """The single stderr line of an in-process command that failed cleanly."""
    result = cli(args, **env)
    lines = result.stderr.strip().splitlines()
    assert isinstance(result.exception, SystemExit), result.exception  # not an uncaught error
    assert result.exit_code == 1 and len(lines) == 1, result.output
    return lines[0]


def test_bad_settings_and_homes_are_one_line(tmp_path: Path) -> None:
    regular_file = tmp_path / "file"
    regular_file.write_text("not a folder")
    read_only = Path(tempfile.mkdtemp(prefix="hourcast-ro-"))
    read_only.chmod(0o555)  # root ignores modes unless it drops CAP_DAC_OVERRIDE (NO_DAC_OVERRIDE)
    read_only_run = start(["ingest"], True, HOURCAST_HOME=str(read_only / "home"))  # the real entry point
    lines = {
        "exchange": cli_error(
            ["ingest"], HOURCAST_EXCHANGE="nosuchexchange", HOURCAST_HOME=str(tmp_path / "a")
        ),
        "timeframe": cli_error(["ingest"], HOURCAST_TIMEFRAME="7x", HOURCAST_HOME=str(tmp_path / "b")),
        "file": cli_error(["ingest"], HOURCAST_HOME=str(regular_file / "home")),
        "window": cli_error(
            ["backfill", "--since", "2024-02-01", "--until", "2024-01-01"], HOURCAST_HOME=str(tmp_path / "c")
        ),
        "read-only": one_line_error(read_only_run),
    }
    assert lines["exchange"].startswith("hourcast: HOURCAST_EXCHANGE='nosuchexchange' is not an exchange")
    assert lines["timeframe"].startswith("hourcast: HOURCAST_TIMEFRAME='7x': timeframe '7x' is not supported")
    assert lines["file"].startswith(
        f"hourcast: HOURCAST_HOME='{regular_file / 'home'}' is not a writable folder"
    )
    assert lines["read-only"].startswith(f"hourcast: HOURCAST_HOME='{read_only / 'home'}' is not a writable")
    assert "point HOURCAST_HOME at a folder you can write to" in lines["read-only"]
    assert lines["window"].startswith("hourcast: --until 2024-01-01T00:00:00Z is not after --since")
    assert regular_file.read_text() == "not a folder" and not list(read_only.iterdir())
    read_only.chmod(0o755)
    read_only.rmdir()


def test_a_future_since_and_an_unknown_symbol_are_one_line(tmp_path: Path, replay: ReplayServer) -> None:
    env = {"HOURCAST_HOME": str(tmp_path), "HOURCAST_EXCHANGE_URL": replay.url}
    assert cli_error(["backfill", "--since", "2024-06-01"], **env).startswith(
        "hourcast: --since 2024-06-01T00:00:00Z is after the exchange's newest closed candle"
    )
    line = cli_error(["ingest", "--symbol", "NOPE/USDT"], **env)
    assert "has no market 'NOPE/USDT'" in line and "re-run" not in line
    assert not (tmp_path / "candles").exists()


def test_a_truncated_month_is_named_left_alone_and_repaired(
    tmp_path: Path, replay: ReplayServer, recorded_files: dict[str, pd.DataFrame]
) -> None:
    settings = replay_settings(tmp_path, replay)
    make_ingestor(settings).backfill(JAN, MAR)
    month = BTC.directory(settings.candles_dir) / "month=2024-02" / "data.parquet"
    damaged = month.read_bytes()[: month.stat().st_size // 2]
    month.write_bytes(damaged)
    env = {"HOURCAST_HOME": str(tmp_path), "HOURCAST_EXCHANGE_URL": replay.url}

    line = cli_error(["ingest"], **env)
    assert f"candle file {month} is damaged" in line and "run `hourcast repair`" in line
    assert month.read_bytes() == damaged, "the damaged file is left as it is"
    assert ledger.read(settings.ledger_dir).iloc[-1]["status"] == "failed"

    repaired = cli(["repair"], **env)
    assert repaired.exit_code == 0, repaired.output
    [aside] = (tmp_path / "damaged").rglob("data.parquet.*")
    assert aside.read_bytes() == damaged and f"{month} set aside as {aside}" in repaired.stderr
    frame = store.load_candles(settings.candles_dir, BTC)
    expected = recorded_files["BTC/USDT"].set_index("ts").loc[frame["ts"]].reset_index()
    assert len(frame) == 1440
    pd.testing.assert_frame_equal(frame[expected.columns], expected)


def test_a_truncated_ledger_never_stops_ingestion(tmp_path: Path, replay: ReplayServer) -> None:
    settings = replay_settings(tmp_path, replay)
    ingestor = make_ingestor(settings)
    ingestor.ingest()
    [first_run] = ledger.parts(settings.ledger_dir)
    damaged = first_run.read_bytes()[:100]
    first_run.write_bytes(damaged)

    replay.exchange.advance(2 * 3600)
    [summary] = ingestor.ingest()
    assert (summary.status, summary.new) == ("ok", 2)
    assert len(ledger.parts(settings.ledger_dir)) == 2
    [entry] = ledger.read(settings.ledger_dir).to_dict("records")  # the damaged run's file set aside
    [aside] = first_run.parent.glob(f"{first_run.name}.damaged-*")
    assert aside.read_bytes() == damaged
    assert (entry["new"], entry["status"]) == (2, "ok")


@pytest.mark.parametrize("bad", ["2024-01-01T00:00:00+05:00x", "yesterday"])
def test_the_replay_loader_names_a_timestamp_it_cannot_read(tmp_path: Path, bad: str) -> None:
    from hourcast.dev.replay.data import load_candles_file

    path = tmp_path / "bad.csv"
    path.write_text(f"timestamp,open,high,low,close,volume\n{bad},1,2,0.5,1.5,10\n")
    with pytest.raises(UserError, match=f"{path}, line 2: timestamp '{re.escape(bad)}' is not an ISO-8601"):
        load_candles_file(path)


def stderr_of(args: list[str], stream: str, tmp_path: Path) -> tuple[int, str]:
    """The exit code and stderr of the installed ``hourcast ARGS`` with stderr a ``pipe``, a ``file`` or a
    ``terminal`` (a pseudo-terminal, its line ends turned back into ``\\n``)."""
    env = {**os.environ, "HOME": tempfile.gettempdir(), "HOURCAST_HOME": str(tmp_path / "home")}
    command = [HOURCAST, *args]
    if stream == "pipe":
        run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, check=False)
        return run.returncode, run.stderr
    if stream == "file":
        path = tmp_path / "stderr.txt"
        with path.open("w") as file:
            run = subprocess.run(command, env=env, stdout=subprocess.PIPE, stderr=file, timeout=120)
        return run.returncode, path.read_text()
    import pty

    terminal, its_end = pty.openpty()
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=its_end)
    os.close(its_end)
    shown = b""
    while True:
        try:
            chunk = os.read(terminal, 4096)
        except OSError:  # EIO: the command closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(terminal)
    process.communicate(timeout=120)
    return process.returncode, shown.decode().replace("\r\n", "\n")


@pytest.mark.parametrize("stream", ["pipe", "file", "terminal"])
@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (
            ["backfill", "--since", "yesterday"],
            1,
            "hourcast: --since='yesterday' is not an ISO date or time; "
            "use e.g. 2024-01-01 or 2024-01-01T05:00Z",
        ),
        (["ingest", "--bogus"], 2, "hourcast: no such option: --bogus; see `hourcast ingest --help`"),
        (
            ["evaluate", "--weeks", "x"],
            2,
            "hourcast: invalid value for '--weeks': Input should be a valid integer, unable to parse string "
            "as an integer; see `hourcast evaluate --help`",
        ),
    ],
    ids=["user-error", "unknown-option", "bad-value"],
)
def test_an_error_is_one_line_whatever_stderr_is(
    tmp_path: Path, stream: str, args: list[str], code: int, line: str
) -> None:
    """A HourcastError exits 1, a usage error click finds exits 2; both are the same single line on a pipe,
    in a file and on a terminal (where typer would otherwise draw rich's boxes)."""
    assert stderr_of(args, stream, tmp_path) == (code, line + "\n")


BUGGY_COMMAND = """
from hourcast.cli.app import app


@app.command()
def divide() -> None:
    print(1 / 0)


app()
"""


def test_a_bug_keeps_its_traceback(tmp_path: Path) -> None:
    """An exception that is not a HourcastError is a bug: the command line does not turn it into a line."""
    env = {**os.environ, "HOME": tempfile.gettempdir(), "HOURCAST_HOME": str(tmp_path)}
    run = subprocess.run(
        [sys.executable, "-c", BUGGY_COMMAND, "divide"], env=env, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 1 and "hourcast:" not in run.stderr, run.stderr
    assert "Traceback" in run.stderr and "ZeroDivisionError: division by zero" in run.stderr, run.stderr


def test_no_symbols_and_no_ledger_rows_are_usage_errors(tmp_path: Path) -> None:
    env = {"HOURCAST_HOME": str(tmp_path)}
    for command in (["gaps"], ["ingest"]):
        line = cli_error(command, HOURCAST_SYMBOLS=" , ", **env)
        assert line.startswith("hourcast: HOURCAST_SYMBOLS=' , ': names no symbol: give at least one")
    assert one_line_error(start(["ledger"], HOURCAST_SYMBOLS="", **env)).startswith(
        "hourcast: HOURCAST_SYMBOLS='': names no symbol"
    )
    assert stderr_of(["ledger", "--last", "0"], "pipe", tmp_path) == (
        2,
        "hourcast: invalid value for '--last': Input should be greater than or equal to 1; "
        "see `hourcast ledger --help`\n",
    )


@pytest.mark.parametrize(
    ("row", "said"),
    [
        ("2024-01-01T01:00:00Z,1,2,abc,1.5,10", "line 3: low 'abc' is not a number"),
        ("soon,1,2,0.5,1.5,10", "line 3: timestamp 'soon' is not an ISO-8601 UTC timestamp"),
        ("2024-01-01T01:00:00Z,1,2,0.5,1.5,10,7", "is not a candles CSV (Error tokenizing data."),
    ],
    ids=["value", "timestamp", "fields"],
)
def test_a_replay_file_with_a_bad_row_is_named_in_one_line(tmp_path: Path, row: str, said: str) -> None:
    path = tmp_path / "btc.csv"
    path.write_text(f"timestamp,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,2,0.5,1.5,10\n{row}\n")
    line = one_line_error(start(["replay-exchange", "--data", f"BTC/USDT={path}", "--port", "0"]))
    assert line.startswith(f"hourcast: {path}") and said in line, line


def test_a_damaged_file_message_keeps_the_librarys_whole_sentence(
    tmp_path: Path, replay: ReplayServer
) -> None:
    settings = replay_settings(tmp_path, replay)
    make_ingestor(settings).ingest()
    [(_, month)] = store.month_files(settings.candles_dir, BTC)
    month.write_bytes(b"garbage" * 10)
    line = cli_error(["gaps"], HOURCAST_HOME=str(tmp_path))
    whole = "magic bytes not found in footer. Either the file is corrupted or this is not a parquet file.)"
    assert whole in line, line
