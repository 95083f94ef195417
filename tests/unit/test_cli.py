"""The command line's surface: help texts that say what each flag prints, plain flags, symbols in any case."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from hourcast.cli import _normalise_symbols, app

ONE_OBJECT = {
    ("train",): "the result as one JSON object",
    ("evaluate",): "the report as one JSON object",
    ("materialize",): "the summary as one JSON object",
    ("ledger",): "the rows as one JSON array",
    ("models", "list"): "one JSON line per model",
}


@pytest.mark.parametrize("command", list(ONE_OBJECT))
def test_json_help_says_what_the_command_prints(command: tuple[str, ...]) -> None:
    shown = CliRunner().invoke(app, [*command, "--help"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert f"--json Print {ONE_OBJECT[command]}." in " ".join(shown.output.split())
    assert "per symbol" not in shown.output and "<bool>" not in shown.output


def test_symbols_are_normalised_to_upper_case() -> None:
    assert _normalise_symbols(["btc/usdt", " Eth/Usdt "]) == ["BTC/USDT", "ETH/USDT"]
    assert _normalise_symbols(None) is None
    shown = CliRunner().invoke(app, ["ingest", "--help"], terminal_width=200)
    assert "-s, --symbol SYMBOL" in shown.output
