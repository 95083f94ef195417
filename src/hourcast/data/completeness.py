"""Completeness of the candle archive: which candles of a series are missing from the store, and why.

Each series keeps a small state file beside its months (``_completeness.json``; Parquet readers skip
``_`` files): the span the archive is meant to cover (``start``: the earliest candle ever asked for;
``end``: the newest closed candle examined), per missing candle how many answers of the exchange left it
out, and per quarantined candle how many answers were set aside. Writers change it only through
``update_state``: a read-modify-write under the series' lock (the lock the candle store's writers take),
so two runs at once (a backfill beside the hourly ingest, in two processes) never lose each other's
answers. Everything else is read from the store itself. The state is derivable from the candles and the
ledger: a state file that cannot be read is set aside (``_completeness.json.damaged-<time>``, with a
warning) and rebuilt from them (``derive_state``). A missing candle is

* ``quarantined``: the exchange answered for its period, validation set the answer aside
  (``hourcast quarantine list``): a candle failing a row rule, or an off-hour candle (10:30 for the 10:00
  hour) standing alone in its period. Like a re-requested candle, every ``ingest`` asks for it again
  while it was set aside fewer than ``gap_retries`` times and is within ``gap_retry_days`` of ``end``
  (a transient fault heals: served clean, it is stored and its entry marked ``resolved``); the ledger
  counts it as quarantined, not as a gap;
* ``re-requested``: the exchange left it out fewer than ``gap_retries`` times and it is within
  ``gap_retry_days`` of ``end``: every ``ingest`` asks for it again;
* ``confirmed``: the exchange kept leaving it out (or it was left out longer ago than the retry window):
  the exchange has no such candle and nothing asks for it any more (a ``backfill`` of it still does);
* ``missing``: inside the span, never asked for (e.g. its month was set aside by ``hourcast repair``):
  a ``backfill`` of it fetches it.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from hourcast import atomic
from hourcast.data import ledger, quarantine, store
from hourcast.data.candles import from_ms, to_ms
from hourcast.settings import Settings
from hourcast.timeframe import timeframe_ms

STATE_FILE = "_completeness.json"
QUARANTINED, RE_REQUESTED, CONFIRMED, MISSING = "quarantined", "re-requested", "confirmed", "missing"
_DAY_MS = 86_400_000


def _iso(ms: int) -> str:
    return from_ms(ms).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class ArchiveState:
    """The span a series' archive covers and the exchange's answers about its missing candles (epoch ms)."""

    start: int | None = None
    end: int | None = None
    tries: dict[int, int] = field(default_factory=dict)
    confirmed: set[int] = field(default_factory=set)
    rejected: dict[int, int] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        """The state file's content (times ISO-8601 UTC)."""
        return {
            "start": _iso(self.start) if self.start is not None else None,
            "end": _iso(self.end) if self.end is not None else None,
            "tries": {_iso(slot): count for slot, count in sorted(self.tries.items())},
            "confirmed": [_iso(slot) for slot in sorted(self.confirmed)],
            "rejected": {_iso(slot): count for slot, count in sorted(self.rejected.items())},
        }

    def to_retry(self, oldest_ms: int, retries: int) -> list[int]:
        """Candles to ask for again, from ``oldest_ms`` on: missing ones left out fewer than ``retries``
        times, and quarantined ones set aside fewer than ``retries`` times."""
        counts = [*self.tries.items(), *self.rejected.items()]
        return sorted({slot for slot, n in counts if n < retries and slot >= oldest_ms})

    def record(
        self,
        asked: tuple[int, int],
        left_out: list[int],
        returned: set[int],
        oldest_ms: int,
        retries: int,
        rejected: set[int] | frozenset[int] = frozenset(),
    ) -> None:
        """One run's answers: the span it asked for, the candles left out, the candles returned and, of
        those, the ones whose every answer was set aside (``rejected``: quarantined)."""
        self.start = asked[0] if self.start is None else min(self.start, asked[0])
        self.end = asked[1] if self.end is None else max(self.end, asked[1])
        for slot in returned:
            self.tries.pop(slot, None)
            self.confirmed.discard(slot)
            if slot in rejected:
                self.rejected[slot] = self.rejected.get(slot, 0) + 1
            else:
                self.rejected.pop(slot, None)
        for slot in left_out:
            if slot in self.confirmed:
                continue
            self.tries[slot] = self.tries.get(slot, 0) + 1
            if self.tries[slot] >= retries or slot < oldest_ms:
                self.confirmed.add(slot)
                del self.tries[slot]


def state_path(root: Path, series: store.Series) -> Path:
    """Where a series' completeness state is kept."""
    return series.directory(root) / STATE_FILE


Rebuild = Callable[[], ArchiveState]
"""Derives a series' state from the candles and the ledger (``derive_state``), for a damaged state file."""


def _parse_state(text: str) -> ArchiveState:
    raw = json.loads(text)
    return ArchiveState(
        start=to_ms(raw["start"]) if raw.get("start") else None,
        end=to_ms(raw["end"]) if raw.get("end") else None,
        tries={to_ms(slot): int(count) for slot, count in raw.get("tries", {}).items()},
        confirmed={to_ms(slot) for slot in raw.get("confirmed", [])},
        rejected={to_ms(slot): int(count) for slot, count in raw.get("rejected", {}).items()},
    )


def read_state(root: Path, series: store.Series, rebuild: Rebuild = ArchiveState) -> ArchiveState:
    """A series' completeness state (empty if it has none yet). A state file that cannot be read is set
    aside as ``<name>.damaged-<time>`` (one warning line) and replaced by ``rebuild()`` (``derive_state``
    for a caller with the settings), saved at once."""
    path = state_path(root, series)
    try:
        return _parse_state(path.read_text())
    except FileNotFoundError:
        return ArchiveState()
    except (ValueError, TypeError, AttributeError, KeyError) as error:  # truncated, garbage, not an object
        atomic.set_aside_damaged(path, error, "rebuilt from the candles and the ledger")
        state = rebuild()
        write_state(root, series, state)
        return state


def write_state(root: Path, series: store.Series, state: ArchiveState) -> None:
    """Save a series' completeness state atomically (``update_state`` is the safe way to change it)."""
    atomic.write_text(state_path(root, series), json.dumps(state.as_json(), indent=1))


def update_state(
    root: Path, series: store.Series, change: Callable[[ArchiveState], None], rebuild: Rebuild = ArchiveState
) -> ArchiveState:
    """Apply ``change`` to the series' state as it is on disk now and save it, all under the series' lock;
    returns the saved state. A writer's own copy read earlier (e.g. when its run started) may be stale:
    another run may have saved since, and ``change`` is applied to that newer state, not to the copy."""
    with store.series_lock(series.directory(root)):
        state = read_state(root, series, rebuild)
        change(state)
        write_state(root, series, state)
    return state


def load_state(settings: Settings, series: store.Series) -> ArchiveState:
    """A series' completeness state (``read_state``), rebuilt from the candles and the ledger if damaged."""
    return read_state(settings.candles_dir, series, lambda: derive_state(settings, series))


def derive_state(settings: Settings, series: store.Series) -> ArchiveState:
    """The completeness state as the stored candles and the ledger tell it (for a state file that was
    damaged): the span from the oldest to the newest candle stored or reported, and for every candle the
    store still lacks, how many runs left it out (``gaps``) or set it aside (``quarantined``), counted as
    the runs counted them (confirmed once left out ``gap_retries`` times or before the retry window)."""
    root, step = settings.candles_dir, timeframe_ms(series.timeframe)
    runs = ledger.read(settings.ledger_dir)
    mine = runs.loc[
        (runs["exchange"] == series.exchange)
        & (runs["symbol"] == series.symbol)
        & (runs["timeframe"] == series.timeframe)
    ]

    def slots(ranges: str) -> list[int]:
        pairs = parse_ranges(ranges)
        return [(to_ms(start) + k * step) // step * step for start, count in pairs for k in range(count)]

    left_out = Counter(slot for ranges in mine["gap_ranges"] for slot in slots(ranges))
    set_aside = Counter(slot for ranges in mine["quarantined_ranges"] for slot in slots(ranges))
    first_month, last = store.first_stored_month(root, series), store.last_stored(root, series)
    ends = [*left_out, *set_aside]
    if first_month is not None and last is not None:
        oldest = stored_slots(root, series, to_ms(first_month), to_ms(last)).min()
        ends += [int(oldest) // step * step, to_ms(last) // step * step]
    if not ends:
        return ArchiveState()
    state = ArchiveState(start=min(ends), end=max(ends))
    stored = set(stored_slots(root, series, state.start, state.end + step - 1).tolist())
    horizon = retry_horizon_ms(settings, state.end)
    for slot, count in left_out.items():
        if slot in stored:
            continue
        if count >= settings.gap_retries or slot < horizon:
            state.confirmed.add(slot)
        else:
            state.tries[slot] = count
    state.rejected = {slot: count for slot, count in set_aside.items() if slot not in stored}
    return state


def retry_horizon_ms(settings: Settings, last_closed_ms: int) -> int:
    """Open time of the oldest candle still asked for again (``gap_retry_days`` before the newest)."""
    return last_closed_ms - int(settings.gap_retry_days * _DAY_MS)


def grid(start_ms: int, end_ms: int, step: int) -> np.ndarray:
    """Open times ``start_ms..end_ms`` (inclusive) one timeframe apart."""
    return (
        np.arange(start_ms, end_ms + 1, step, dtype="int64") if end_ms >= start_ms else np.array([], "int64")
    )


def runs(slots: list[int] | np.ndarray, step: int) -> list[tuple[int, int]]:
    """Consecutive open times as ``(first, last)`` pairs."""
    pairs: list[tuple[int, int]] = []
    for slot in sorted(int(s) for s in slots):
        if pairs and slot - pairs[-1][1] == step:
            pairs[-1] = (pairs[-1][0], slot)
        else:
            pairs.append((slot, slot))
    return pairs


def stored_slots(root: Path, series: store.Series, start_ms: int, end_ms: int) -> np.ndarray:
    """Open times (ms, on or off the grid) of the stored candles with ``start_ms <= ts <= end_ms``."""
    frame = store.load_candles(root, series, from_ms(start_ms), from_ms(end_ms))
    return frame["ts"].dt.as_unit("ms").astype("int64").to_numpy()


def quarantined_slots(root: Path, series: store.Series) -> set[int]:
    """Grid periods (ms) of the candles pending or reviewed row entries of the quarantine hold."""
    step = timeframe_ms(series.timeframe)
    held: set[int] = set()
    for entry in quarantine.entries(root, series):
        if entry.kind == quarantine.ROWS and entry.state in quarantine.HELD:
            rows = quarantine.held_rows(root, entry)
            stamps = rows["ts"].dropna() if rows is not None else pd.Series(dtype="datetime64[ms, UTC]")
            held.update(int(ms) // step * step for ms in stamps.dt.as_unit("ms").astype("int64"))
    return held


@dataclass(frozen=True)
class Hole:
    """A run of missing candles of one series, all in one state."""

    symbol: str
    timeframe: str
    start: pd.Timestamp
    end: pd.Timestamp
    candles: int
    state: str

    def as_json(self) -> dict[str, Any]:
        """The hole as plain JSON types."""
        return {
            "symbol": self.symbol,
            "timeframe": self.timeframe,
            "start": self.start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "end": self.end.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "candles": self.candles,
            "state": self.state,
        }


def holes(settings: Settings, series: store.Series) -> list[Hole]:
    """Every missing candle of a stored series between its archive's start and end, by state, oldest first.

    The span starts at the first candle asked for, or the first stored month if retention removed the
    months before it.
    """
    state = load_state(settings, series)
    if state.start is None or state.end is None:
        return []
    step = timeframe_ms(series.timeframe)
    first = store.first_stored_month(settings.candles_dir, series)
    start = max(state.start, to_ms(first)) if first is not None else state.start
    stored = stored_slots(settings.candles_dir, series, start, state.end + step - 1)
    absent = np.setdiff1d(grid(start, state.end, step), stored)
    held = quarantined_slots(settings.quarantine_dir, series)
    horizon = retry_horizon_ms(settings, state.end)

    def state_of(slot: int) -> str:
        if slot in held:
            return QUARANTINED
        if slot in state.confirmed:
            return CONFIRMED
        if slot in state.tries:
            return RE_REQUESTED if slot >= horizon else CONFIRMED
        return MISSING

    found: list[Hole] = []
    for slot in absent.tolist():
        kind = state_of(slot)
        last = found[-1] if found else None
        if last is not None and last.state == kind and to_ms(last.end) + step == slot:
            found[-1] = Hole(
                series.symbol, series.timeframe, last.start, from_ms(slot), last.candles + 1, kind
            )
        else:
            found.append(Hole(series.symbol, series.timeframe, from_ms(slot), from_ms(slot), 1, kind))
    return found


def parse_ranges(ranges: str) -> list[tuple[pd.Timestamp, int]]:
    """The ledger's ``start+count, ...`` text as ``(start, count)`` pairs."""
    pairs = []
    for part in filter(None, (item.strip() for item in ranges.split(","))):
        start, _, count = part.rpartition("+")
        pairs.append((pd.Timestamp(start), int(count)))
    return pairs


def still_missing(settings: Settings, series: store.Series, gap_ranges: str) -> int:
    """How many candles of a ledger entry's ``gap_ranges`` the store is still missing now (a later run
    may have filled them)."""
    step = timeframe_ms(series.timeframe)
    slots = [
        slot
        for start, count in parse_ranges(gap_ranges)
        for slot in grid(to_ms(start), to_ms(start) + (count - 1) * step, step).tolist()
    ]
    if not slots:
        return 0
    stored = set(stored_slots(settings.candles_dir, series, min(slots), max(slots)).tolist())
    return sum(slot not in stored for slot in slots)
