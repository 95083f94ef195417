"""The documentation against the code: the site's generated configuration page holds every ``Settings``
field (its ``HOURCAST_*`` variable and description, rendered by the same hook ``mkdocs build`` runs), and the
README's command table every ``hourcast`` command."""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import typer
from mkdocs.exceptions import PluginError
from pydantic import Field

from hourcast.settings import Settings

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"


def _load_hook() -> ModuleType:
    """``docs/hooks/settings_page.py``, loaded from its path as MkDocs loads it."""
    spec = importlib.util.spec_from_file_location("settings_page", DOCS / "hooks" / "settings_page.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


settings_page = _load_hook()


def _rows(table: str) -> dict[str, str]:
    """The table's rows keyed by their variable (the first cell)."""
    rows = {}
    for line in table.splitlines():
        cells = [cell.strip() for cell in line.strip("|").split(" | ")]
        if cells[0].startswith("`HOURCAST_"):
            rows[cells[0].strip("`")] = line
    return rows


def _missing(table: str, settings_class: type[Settings]) -> list[str]:
    """Fields of ``settings_class`` whose row (variable and description) is not in ``table``."""
    rows = _rows(table)
    missing = []
    for name, field in settings_class.model_fields.items():
        row = rows.get(settings_page.env_var(settings_class, name), "")
        if not field.description or settings_page.table_cell(field.description) not in row:
            missing.append(name)
    return missing


def test_every_setting_is_in_the_table_with_its_variable_and_description() -> None:
    table = settings_page.settings_table()
    assert _missing(table, Settings) == []
    assert len(_rows(table)) == len(Settings.model_fields)
    assert "| `HOURCAST_TIMEFRAME` | str | `1h` |" in table
    assert "| `HOURCAST_CANDLE_RETENTION_DAYS` | int (>= 1) | unset |" in table
    assert "| `HOURCAST_SYMBOLS` | list of str (comma-separated) | `BTC/USDT` |" in table


def test_a_missing_or_new_field_is_caught() -> None:
    table = settings_page.settings_table()
    without_timeframe = "\n".join(line for line in table.splitlines() if "HOURCAST_TIMEFRAME`" not in line)
    assert _missing(without_timeframe, Settings) == ["timeframe"]

    class Extended(Settings):
        brand_new: int = Field(3, ge=1, description="A field added | later.")

    assert _missing(table, Extended) == ["brand_new"]
    row = _rows(settings_page.settings_table(Extended))["HOURCAST_BRAND_NEW"]
    assert row == "| `HOURCAST_BRAND_NEW` | int (>= 1) | `3` | A field added \\| later. |"


def test_the_configuration_page_holds_the_marker_the_hook_replaces() -> None:
    page = (DOCS / settings_page.CONFIGURATION_PAGE).read_text()
    rendered = settings_page.render_configuration(page)
    assert settings_page.MARKER not in rendered
    assert settings_page.settings_table() in rendered
    with pytest.raises(PluginError, match="exactly once"):
        settings_page.render_configuration(page.replace(settings_page.MARKER, ""))


def _commands(command: Any, path: str) -> Iterator[str]:
    """Every leaf command below ``command`` as it is typed, e.g. ``hourcast models promote``."""
    subcommands = getattr(command, "commands", {})
    if not subcommands:
        yield path
    for name, subcommand in subcommands.items():
        yield from _commands(subcommand, f"{path} {name}")


def test_the_readme_command_table_lists_every_command() -> None:
    (script,) = entry_points(group="console_scripts", name="hourcast")
    commands = list(_commands(typer.main.get_command(script.load()), "hourcast"))
    readme = (REPO / "README.md").read_text().splitlines()
    table_rows = [line for line in readme if line.startswith("| `hourcast")]
    assert len(commands) > 10
    for command in commands:
        assert any(row.startswith((f"| `{command} ", f"| `{command}`")) for row in table_rows), command
