"""The store of resolved symbol selectors: what ingestion records, every other entry point reads."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest

from hourcast.data import selection
from hourcast.errors import UserError
from hourcast.settings import Settings

PICKED = ["SYN002/USDT", "SYN001/USDT", "BTC/USDT"]


def settings(home: Path, **values: object) -> Settings:
    return Settings(**({"home": home, "symbols": ["all-usdt"], "min_quote_volume": 5e6} | values))


def test_a_recorded_resolution_is_what_every_entry_point_reads(tmp_path: Path) -> None:
    configured = settings(tmp_path)
    when = datetime(2024, 3, 1, tzinfo=UTC)
    stored = selection.record(configured, PICKED, when)
    assert json.loads(configured.symbols_path.read_text()) == {
        "configured": ["all-usdt"],
        "exchange": "binance",
        "min_quote_volume": 5e6,
        "symbols": PICKED,
        "resolved_at": "2024-03-01T00:00:00Z",
    }
    assert selection.read(configured.symbols_path) == stored
    resolved = selection.resolved(configured)
    assert resolved.symbols == PICKED and configured.symbols == ["all-usdt"]
    assert resolved.model_dump(exclude={"symbols"}) == configured.model_dump(exclude={"symbols"})
    assert not [name for name in os.listdir(tmp_path) if name.endswith(".tmp")]  # written atomically


def test_explicit_symbols_pass_through_without_a_record(tmp_path: Path) -> None:
    explicit = settings(tmp_path, symbols=["BTC/USDT", "ETH/USDT"])
    assert selection.resolved(explicit) is explicit
    assert not explicit.symbols_path.exists()


@pytest.mark.parametrize("entry", ["all-usdt", "ALL-BTC", "All-Eth"])
def test_selectors_are_told_from_symbols(entry: str) -> None:
    assert selection.is_selector(entry) and not selection.is_selector("ALLO/USDT")


def test_nothing_resolved_yet_is_one_clear_line(tmp_path: Path) -> None:
    with pytest.raises(UserError) as raised:
        selection.resolved(settings(tmp_path))
    assert str(raised.value) == "all-usdt not resolved yet; run `hourcast ingest` first"


@pytest.mark.parametrize(
    "changed",
    [
        {"symbols": ["all-btc"]},
        {"exchange": "kraken"},
        {"min_quote_volume": 1e6},
        {"symbols": ["all-usdt", "X/Y"]},
    ],
)
def test_a_record_for_other_settings_is_not_used(tmp_path: Path, changed: dict[str, object]) -> None:
    selection.record(settings(tmp_path), PICKED)
    with pytest.raises(
        UserError, match=r"not resolved yet: .*symbols.json holds all-usdt on binance.*hourcast ingest"
    ):
        selection.resolved(settings(tmp_path, **changed))


@pytest.mark.parametrize("text", ["{not json", '{"symbols": ["A/B"]}', "[]"])
def test_a_damaged_record_is_a_clear_error(tmp_path: Path, text: str) -> None:
    configured = settings(tmp_path)
    configured.symbols_path.write_text(text)
    with pytest.raises(UserError, match=r"symbols.json is unreadable .*run `hourcast ingest`"):
        selection.resolved(configured)
