"""Fault injection of the replay exchange: error faults (429 rate limit, 503), a slow answer, and data
faults (a malformed, a duplicate or a missing row) on ``/api/v3/klines`` pages, each firing on the next
``count`` requests or at a seeded ``rate``.

May import: the replay's ``binance`` module.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from hourcast.dev.replay.binance import decimal_text

ERROR_FAULTS = ("rate_limit", "server_error")
DATA_FAULTS = ("malformed", "duplicate", "missing")
FAULT_KINDS = (*ERROR_FAULTS, "slow", *DATA_FAULTS)
_FAULT_SETTINGS = {"seed": 0, "slow_seconds": 3.0, "retry_after": 1}


@dataclass
class FaultRule:
    """How one fault kind fires: on the next ``count`` klines requests, else with probability ``rate``."""

    rate: float = 0.0
    count: int = 0

    @classmethod
    def parse(cls, kind: str, value: Any) -> FaultRule:
        """Validate a ``{"rate": 0..1, "count": n}`` object."""
        if not isinstance(value, dict) or set(value) - {"rate", "count"}:
            raise ValueError(f"fault {kind!r} must be an object with 'rate' and/or 'count'")
        rate, count = float(value.get("rate", 0.0)), value.get("count", 0)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"fault {kind!r}: rate must be within 0..1")
        if not isinstance(count, int) or isinstance(count, bool) or count < 0:
            raise ValueError(f"fault {kind!r}: count must be a non-negative integer")
        return cls(rate=rate, count=count)


class FaultInjector:
    """Seeded fault state; callers hold the owning exchange's lock."""

    def __init__(self, seed: int = 0) -> None:
        self.default_seed = seed
        self.clear()

    def clear(self) -> None:
        """Switch every fault off, reset counters, settings and the RNG."""
        self.rules = {kind: FaultRule() for kind in FAULT_KINDS}
        self.fired = dict.fromkeys(FAULT_KINDS, 0)
        self.seed = self.default_seed
        self.slow_seconds = float(_FAULT_SETTINGS["slow_seconds"])
        self.retry_after = int(_FAULT_SETTINGS["retry_after"])
        self.rng = random.Random(self.seed)

    def configure(self, config: dict[str, Any]) -> None:
        """Merge a fault config: given kinds are replaced, others kept; ``seed`` reseeds the RNG."""
        unknown = set(config) - set(FAULT_KINDS) - set(_FAULT_SETTINGS)
        if unknown:
            raise ValueError(f"unknown fault keys {sorted(unknown)}; kinds are {list(FAULT_KINDS)}")
        rules = {kind: FaultRule.parse(kind, config[kind]) for kind in FAULT_KINDS if kind in config}
        slow_seconds = float(config.get("slow_seconds", self.slow_seconds))
        retry_after = int(config.get("retry_after", self.retry_after))
        if slow_seconds < 0 or retry_after < 0:
            raise ValueError("slow_seconds and retry_after must be non-negative")
        self.rules.update(rules)
        self.slow_seconds, self.retry_after = slow_seconds, retry_after
        if "seed" in config:
            self.seed = int(config["seed"])
            self.rng = random.Random(self.seed)

    def snapshot(self) -> dict[str, Any]:
        """Current config (same shape as the POST body) and how often each kind fired."""
        config: dict[str, Any] = {"seed": self.seed, "slow_seconds": self.slow_seconds}
        config["retry_after"] = self.retry_after
        config.update({kind: {"rate": r.rate, "count": r.count} for kind, r in self.rules.items()})
        return {"config": config, "fired": dict(self.fired)}

    def fires(self, kind: str) -> bool:
        """Whether ``kind`` applies to this request (consumes a count, or draws from the RNG)."""
        rule = self.rules[kind]
        if rule.count > 0:
            rule.count -= 1
        elif not (rule.rate > 0 and self.rng.random() < rule.rate):
            return False
        self.fired[kind] += 1
        return True

    def corrupt(self, rows: list[list[Any]], limit: int, now_ms: int) -> None:
        """Apply whichever data faults fire to a klines page, in place (never beyond ``limit`` rows).

        ``missing`` leaves out an interior row of a page of 3 or more rows, and a closed row of a shorter
        page (an hourly run's page: the last closed candle and the one in progress)."""
        if rows and self.fires("malformed"):
            row = rows[self.rng.randrange(len(rows))]
            if self.rng.random() < 0.5:
                row[4] = "not-a-number"
            else:
                row[2] = decimal_text(float(row[3]) * 0.99)  # high below low
        if rows and self.fires("duplicate"):
            i = self.rng.randrange(len(rows))
            rows.insert(i + 1, list(rows[i]))
            del rows[limit:]
        if rows and self.fires("missing"):
            if len(rows) >= 3:
                del rows[self.rng.randrange(1, len(rows) - 1)]
            else:
                closed = [i for i, row in enumerate(rows) if int(row[6]) < now_ms]
                if closed:
                    del rows[self.rng.choice(closed)]
