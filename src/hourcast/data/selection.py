"""Symbol selectors (``all-usdt``) and the resolution ingestion stores for every other entry point.

Ingestion (``hourcast ingest``/``backfill``/``repair`` and the ``ingest``/``backfill`` flows) resolves a
selector through the exchange when it starts (``hourcast.data.exchange.resolve_symbols``) and records the
symbols it resolved in ``HOURCAST_HOME/symbols.json`` (written atomically). Every other entry point (the
``monitor`` and ``retrain`` flows, ``hourcast train``/``evaluate``/``materialize``/``monitor``/``gaps``,
the API and the dashboard) builds its settings with ``resolved``: the selector replaced by that record, so
they all see the symbols that were ingested, with no exchange call at start or on a request. Explicit
symbol lists pass through untouched. Nothing here imports the exchange client (ccxt).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from hourcast import atomic
from hourcast.errors import UserError
from hourcast.settings import Settings

SELECTOR_PREFIX = "all-"
"""``all-<quote>`` in ``HOURCAST_SYMBOLS`` stands for every active spot market quoted in ``<quote>``."""


def is_selector(entry: str) -> bool:
    """Whether a ``HOURCAST_SYMBOLS`` entry is a selector such as ``all-usdt`` rather than a symbol."""
    return entry.lower().startswith(SELECTOR_PREFIX)


def has_selector(settings: Settings) -> bool:
    """Whether ``settings.symbols`` holds a selector (it must be resolved before its symbols are used)."""
    return any(is_selector(entry) for entry in settings.symbols)


@dataclass(frozen=True)
class Resolution:
    """What a selector resolved to: the configuration it was resolved for, the symbols and when."""

    configured: list[str]
    exchange: str
    min_quote_volume: float
    symbols: list[str]
    resolved_at: str

    def matches(self, settings: Settings) -> bool:
        """Whether this was resolved for the symbols, exchange and minimum volume ``settings`` name."""
        return (self.configured, self.exchange, self.min_quote_volume) == (
            settings.symbols,
            settings.exchange,
            settings.min_quote_volume,
        )


def record(configured: Settings, symbols: list[str], now: datetime | None = None) -> Resolution:
    """Store (atomically) that ``configured.symbols`` resolved to ``symbols``; the resolution stored."""
    resolution = Resolution(
        configured=list(configured.symbols),
        exchange=configured.exchange,
        min_quote_volume=configured.min_quote_volume,
        symbols=list(symbols),
        resolved_at=(now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    atomic.write_text(configured.symbols_path, json.dumps(asdict(resolution), indent=1) + "\n")
    return resolution


def read(path: Path) -> Resolution | None:
    """The stored resolution (None if there is none yet); ``UserError`` if the file is damaged."""
    try:
        return Resolution(**json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as error:
        raise UserError(
            f"{path} is unreadable ({type(error).__name__}: {' '.join(str(error).split())}); "
            "run `hourcast ingest` to resolve HOURCAST_SYMBOLS again"
        ) from None


def resolved(settings: Settings) -> Settings:
    """``settings`` with its selectors replaced by the symbols ingestion resolved them to last (read from
    ``settings.symbols_path``, no exchange call); the same object when it has none. ``UserError`` (one
    line) if nothing was resolved yet or the record is for other settings."""
    if not has_selector(settings):
        return settings
    given = ",".join(settings.symbols)
    stored = read(settings.symbols_path)
    if stored is None:
        raise UserError(f"{given} not resolved yet; run `hourcast ingest` first")
    if not stored.matches(settings):
        raise UserError(
            f"{given} on {settings.exchange} (HOURCAST_MIN_QUOTE_VOLUME={settings.min_quote_volume:g}) not "
            f"resolved yet: {settings.symbols_path} holds {','.join(stored.configured)} on {stored.exchange} "
            f"(min volume {stored.min_quote_volume:g}); run `hourcast ingest` first"
        )
    return settings.model_copy(update={"symbols": stored.symbols})
