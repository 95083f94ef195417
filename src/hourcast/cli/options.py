"""What several commands share: the ``--symbol`` and ``--json`` options and the settings they start from."""

from __future__ import annotations

from typing import Annotated

import typer

from hourcast.settings import Settings


def normalise_symbols(symbols: list[str] | None) -> list[str] | None:
    """``btc/usdt`` means ``BTC/USDT``: unified ccxt symbols are upper case."""
    return [symbol.strip().upper() for symbol in symbols] if symbols else symbols


SymbolOption = Annotated[
    list[str] | None,
    typer.Option(
        "--symbol",
        "-s",
        metavar="SYMBOL",
        callback=normalise_symbols,
        help="Symbol to pull, e.g. BTC/USDT (any case; repeatable); default: HOURCAST_SYMBOLS.",
    ),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON summary line per symbol.")]


def json_option(prints: str) -> typer.models.OptionInfo:
    """A ``--json`` flag whose help says what it prints."""
    return typer.Option("--json", help=f"Print {prints}.")


def resolved_settings() -> Settings:
    """``Settings`` with a symbol selector (``all-usdt``) replaced by the symbols ingestion last resolved
    it to (``hourcast.data.selection.resolved``): for every command but the ingesting ones."""
    from hourcast.data import selection

    return selection.resolved(Settings())
