"""Feast without typeguard's import-time instrumentation.

Feast decorates its definition classes (``FeatureView``, ``OnDemandFeatureView``, the data sources,
``Entity``, ``FeatureService``, ...) with typeguard's ``@typechecked``, which instruments each method when the
class is defined: it re-parses and recompiles the whole module's source once per method. That is about 3 of
the 4.3 s that importing Feast takes, paid again by every process that imports it: each flow run, each API
worker, each ``hourcast`` command. What it buys is a run-time check of the argument types of those
constructors. hourcast builds its definitions from ``feature_repo/definitions.py`` only, which the stock
``feast`` CLI (left as it is) checks on ``feast apply``.

So each entry point, before anything imports Feast, calls ``skip_feast_instrumentation``: it makes
``typeguard.typechecked`` leave the functions and classes of the ``feast`` package as they are (what typeguard
itself does under ``python -O``) and instrument everything else as before. A process that imported Feast
before the call keeps Feast's checks. ``import hourcast`` patches nothing.

Why not a public API: typeguard has no switch per package (only ``python -O``, for everything), and Feast
applies the decorator unconditionally; this relies on Feast reading ``typeguard.typechecked`` when its
modules are imported and on the decorator's call shape (``typechecked(target=None, **options)``).
"""

from __future__ import annotations

import functools
from typing import Any

DISTRIBUTION = "typeguard"
CHECKED_VERSIONS = ">=4.6.0,<4.7"
"""Checked against typeguard 4.6.0, with Feast 0.67.0 applying its decorator."""

FEAST_PACKAGE = "feast"


def skip_feast_instrumentation() -> None:
    """Make ``typeguard.typechecked`` a no-op for anything defined in the ``feast`` package (idempotent).

    Call it at an entry point, before anything imports Feast (see the module docstring)."""
    import typeguard

    instrument = typeguard.typechecked
    if getattr(instrument, "skips_feast", False):
        return

    @functools.wraps(instrument)
    def typechecked(target: Any = None, **options: Any) -> Any:
        if target is None:  # used as @typechecked(...): decorate later
            return functools.partial(typechecked, **options)
        if str(getattr(target, "__module__", "")).partition(".")[0] == FEAST_PACKAGE:
            return target
        return instrument(target, **options)

    typechecked.skips_feast = True  # type: ignore[attr-defined]
    typeguard.typechecked = typechecked
