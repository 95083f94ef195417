"""The command line's surface: help texts that say what each flag prints, plain flags, symbols in any case."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from hourcast.cli import render
from hourcast.cli.app import app
from hourcast.cli.options import normalise_symbols
from hourcast.cli.serve import serve_environment
from hourcast.data import ledger
from hourcast.data.candles import parse_moment
from hourcast.errors import UserError
from hourcast.settings import Settings

PER_SYMBOL = "one JSON summary line per symbol"
JSON_PRINTS = {
    ("backfill",): PER_SYMBOL,
    ("ingest",): PER_SYMBOL,
    ("repair",): PER_SYMBOL,
    ("gaps",): "one JSON line per missing range",
    ("quarantine", "list"): "one JSON line per entry",
    ("quarantine", "show"): "the entry and its rows as one JSON object",
    ("train",): "the result as one JSON object",
    ("evaluate",): "the report as one JSON object",
    ("monitor",): "the report as one JSON object",
    ("materialize",): "the summary as one JSON object",
    ("ledger",): "the rows as one JSON array",
    ("models", "list"): "one JSON line per model",
}


def commands_with_json() -> list[tuple[str, ...]]:
    """Every command (and subcommand) that has a --json flag."""
    import typer.main

    found: list[tuple[str, ...]] = []

    def walk(command: object, path: tuple[str, ...]) -> None:
        for name, sub in getattr(command, "commands", {}).items():
            walk(sub, (*path, name))
        if any("--json" in getattr(param, "opts", []) for param in getattr(command, "params", [])):
            found.append(path)

    walk(typer.main.get_command(app), ())
    return found


def test_every_json_flag_is_described() -> None:
    assert sorted(commands_with_json()) == sorted(JSON_PRINTS)


@pytest.mark.parametrize("command", list(JSON_PRINTS))
def test_json_help_says_what_the_command_prints(command: tuple[str, ...]) -> None:
    shown = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert f"--json Print {JSON_PRINTS[command]}." in " ".join(shown.output.split())
    assert "<bool>" not in shown.output


def test_symbols_are_normalised_to_upper_case() -> None:
    assert normalise_symbols(["btc/usdt", " Eth/Usdt "]) == ["BTC/USDT", "ETH/USDT"]
    assert normalise_symbols(None) is None
    shown = CliRunner().invoke(app, ["ingest", "--help"], terminal_width=200)
    assert "-s, --symbol SYMBOL" in shown.output


def test_the_ledger_table_fits_the_terminal(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, _env_file=None)
    entry = ledger.LedgerEntry(
        run_at=pd.Timestamp("2024-03-01 00:05", tz="UTC"),
        command="ingest",
        exchange="binance",
        symbol="BTC/USDT",
        timeframe="1h",
        fetched=24,
        new=23,
        duplicates=1,
        gaps=1,
        gap_ranges="2024-02-29T10:00:00Z+1",
        quarantined=0,
        quarantined_ranges="",
        first=pd.Timestamp("2024-02-29 00:00", tz="UTC"),
        last=pd.Timestamp("2024-02-29 23:00", tz="UTC"),
        duration_seconds=70.42,
        status="ok",
        message="",
    )
    ledger.record_many(settings.ledger_dir, [entry])
    shown = CliRunner().invoke(app, ["ledger"], env={"HOURCAST_HOME": str(tmp_path), "COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    row = r"03-01 00:05 +ingest +BTC/USDT +24 +23 +1 +1 +1 +0 +02-29 23:00 +70 +ok"
    assert re.search(row, shown.output), shown.output
    assert max(len(line) for line in shown.output.splitlines()) <= 80
    assert "…" not in shown.output  # no header or value cut short


def test_the_run_summary_fits_80_columns(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The table `hourcast backfill`, `ingest` and `repair` print: every header and value whole at 80."""
    from hourcast.data.ingest import SymbolSummary

    monkeypatch.setenv("COLUMNS", "80")
    first, last = pd.Timestamp("2024-01-01", tz="UTC"), pd.Timestamp("2026-03-31 23:00", tz="UTC")
    summary = SymbolSummary("BTC/USDT", fetched=19656, new=19655, duplicates=1, first=first, last=last)
    render.run_summaries([summary], as_json=False)
    shown = capsys.readouterr().out
    assert re.search(r"BTC/USDT +19656 +19655 +1 +0 +0 +2024-01-01 00:00 +2026-03-31 23:00 +ok", shown), shown
    assert max(len(line) for line in shown.splitlines()) <= 80 and "…" not in shown


@pytest.mark.parametrize("given", ["2024/01/01", "yesterday", "2024-02-30"])
def test_one_date_parser_refuses_what_is_not_an_iso_date(given: str) -> None:
    """`hourcast backfill --since` and the backfill flow parse dates with `candles.parse_moment`."""
    with pytest.raises(UserError, match=r"since=.*(ISO|valid) date"):
        parse_moment(given, "since")
    shown = CliRunner().invoke(app, ["backfill", "--since", given])
    assert shown.exit_code == 1 and shown.output.startswith(f"hourcast: --since={given!r} is not")
    assert "Traceback" not in shown.output


def test_iso_dates_and_times_are_utc() -> None:
    assert parse_moment("2024-01-01", "since") == pd.Timestamp("2024-01-01", tz="UTC")
    assert parse_moment("2024-01-01T05:00+02:00", "since") == pd.Timestamp("2024-01-01 03:00", tz="UTC")
    assert parse_moment("2024-01-01T05:00:00Z", "since") == pd.Timestamp("2024-01-01 05:00", tz="UTC")


READ_BENTOML_CONFIG = """
import json
import bentoml, _bentoml_sdk
from bentoml._internal.configuration import load_config
from bentoml._internal.configuration.containers import BentoMLContainer
load_config()
print(json.dumps(BentoMLContainer.config.services.get()["hourcast"]))
"""


def test_serve_passes_its_settings_to_bentoml_as_json_overrides_without_a_warning() -> None:
    """`hourcast serve` hands BentoML the workers and access log in BENTOML_CONFIG_OVERRIDES (the deprecated
    BENTOML_CONFIG_OPTIONS is left alone), under the user's own overrides; with every warning on
    (PYTHONWARNINGS=default), BentoML imports itself and reads them without printing one."""
    settings = Settings(serve_workers=3, serve_access_log=True, _env_file=None)
    user = {"services": {"hourcast": {"workers": 2, "traffic": {"timeout": 30}}}}
    given = {"PATH": "/bin", "BENTOML_CONFIG_OVERRIDES": json.dumps(user), "PYTHONWARNINGS": "default"}
    env = serve_environment(settings, given)
    assert "BENTOML_CONFIG_OPTIONS" not in env and env["PATH"] == "/bin"
    assert env["PYTHONWARNINGS"].startswith("default,ignore:")  # the user's first: ours take precedence
    read = subprocess.run(
        [sys.executable, "-c", READ_BENTOML_CONFIG], env=env, capture_output=True, text=True, check=False
    )
    assert read.returncode == 0 and not read.stderr, read.stderr
    service = json.loads(read.stdout)
    assert service["workers"] == 2 and service["traffic"]["timeout"] == 30  # the user's own win
    assert service["logging"]["access"]["enabled"] is True
    default = serve_environment(Settings(_env_file=None), {})
    assert json.loads(default["BENTOML_CONFIG_OVERRIDES"]) == {
        "services": {"hourcast": {"workers": "cpu_count", "logging": {"access": {"enabled": False}}}}
    }


def test_serve_can_switch_off_bentomls_request_tracing_and_metrics() -> None:
    """HOURCAST_SERVE_REQUEST_INSTRUMENTATION=false reaches BentoML as configuration it reads: no request
    is traced (every URL excluded) and its request metrics are off."""
    settings = Settings(serve_request_instrumentation=False, _env_file=None)
    env = serve_environment(settings, {"PATH": "/bin"})
    read = subprocess.run(
        [sys.executable, "-c", READ_BENTOML_CONFIG], env=env, capture_output=True, text=True, check=False
    )
    assert read.returncode == 0, read.stderr
    service = json.loads(read.stdout)
    assert service["tracing"]["excluded_urls"] == [".*"] and service["metrics"]["enabled"] is False


@pytest.mark.parametrize("given", ["services.hourcast.workers=2", "[1, 2]"])
def test_serve_refuses_overrides_that_are_not_a_json_object(given: str) -> None:
    with pytest.raises(UserError, match=r"BENTOML_CONFIG_OVERRIDES=.* is not a JSON object"):
        serve_environment(Settings(_env_file=None), {"BENTOML_CONFIG_OVERRIDES": given})


def test_an_error_message_of_several_lines_is_printed_as_one(capsys: pytest.CaptureFixture[str]) -> None:
    """A message carrying a log's last lines (``StartupFailed``) still makes one line on stderr."""
    render.error("ui exited (code 3); last lines of ui.log:\n  OSError: address in use\n\n")
    assert capsys.readouterr() == (
        "",
        "hourcast: ui exited (code 3); last lines of ui.log: | OSError: address in use\n",
    )


def test_a_usage_error_names_the_help_to_read() -> None:
    """click's usage errors come out in the one error shape, exit 2, naming the subcommand's help."""
    shown = CliRunner().invoke(app, ["quarantine", "show"], prog_name="hourcast")
    assert (shown.exit_code, shown.stderr) == (
        2,
        "hourcast: missing argument 'entry_id'; see `hourcast quarantine show --help`\n",
    )
    missing = CliRunner().invoke(app, ["models"], prog_name="hourcast")
    assert missing.stderr == "hourcast: missing command; see `hourcast models --help`\n"
