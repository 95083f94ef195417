"""`hourcast up`'s bootstrap, so the API has something to serve: one ingest cycle
(``hourcast.ops.ingest_cycle``: the new candles, or into an empty store the history a first model trains on,
``first_history_days``, then the online features) and, when there is no production model yet, a first
training on the configured window (``HOURCAST_TRAIN_DAYS``).

A failed pull stops it at once (nothing after it can work) with ``StartupFailed``.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from hourcast.ops.supervise import StartupFailed
from hourcast.settings import Settings

if TYPE_CHECKING:
    from hourcast.data.ingest import SymbolSummary

DAY_MS = 86_400_000


def first_history_days(settings: Settings) -> int:
    """Days of candles the bootstrap pulls into an empty store: the training window, the lookback of its
    first feature row and its label's candle, in whole days (at least ``default_backfill_days``)."""
    from hourcast.features.compute import LOOKBACK
    from hourcast.timeframe import timeframe_ms

    reach_ms = settings.train_days * DAY_MS + (LOOKBACK + 1) * timeframe_ms(settings.timeframe)
    return max(settings.default_backfill_days, math.ceil(reach_ms / DAY_MS))


def bootstrap(settings: Settings, say: Callable[[str], None] = print) -> str:
    """Data, online features and a first model, each step told through ``say``; returns a one-line status.
    ``StartupFailed`` naming the symbols if the pull failed for any. Imports the pipeline when called, so
    `hourcast up` starts the Prefect server first."""
    from hourcast.features import featurestore
    from hourcast.model import card, registry, training
    from hourcast.ops.ingest_cycle import CycleSteps, PullFailed, pull_new, run_ingest_cycle
    from hourcast.serving import record

    def tell(summary: SymbolSummary) -> None:
        say(
            f"  {summary.symbol}: {summary.new} new candles, last {summary.as_json()['last']}, "
            f"status {summary.status} {summary.message}".rstrip()
        )

    def materialize(resolved: Settings) -> featurestore.MaterializeSummary:
        say(f"bootstrap: materializing features into {featurestore.describe_online_store(resolved)} ...")
        return featurestore.materialize(resolved)

    history = first_history_days(settings)

    def pull(resolved: Settings, symbols: list[str]) -> list[SymbolSummary]:
        return pull_new(resolved.model_copy(update={"default_backfill_days": history}), symbols, tell)

    began = time.monotonic()
    say(
        "bootstrap: ingesting candles (validated with Great Expectations; "
        f"{history} days into an empty store) ..."
    )
    steps = CycleSteps(pull=pull, materialize=materialize)
    try:
        outcome = run_ingest_cycle(settings, steps, materialize_after_failed_pull=False)
    except PullFailed as failure:
        failed = "; ".join(f"{s.symbol}: {s.message}" for s in failure.summaries if s.status == "failed")
        raise StartupFailed(f"bootstrap: the ingest failed, so the stack stops here: {failed}") from None
    ingested = outcome.settings
    model = registry.production_tag(ingested.registry_dir, ingested.model_name)
    if model is None:
        say(f"bootstrap: training a first model on the last {card.days_text(ingested.train_days)} ...")
        result = training.train(ingested)
        verdict = "promoted" if result.promoted else "NOT promoted"
        say(f"  {result.tag} {verdict}: {result.reason}")
        say(f"  {card.summary(registry.model_metadata(ingested.model_name, result.tag))}")
        model = f"{result.tag} (new, {verdict})"
    recorded = record.record_forecasts(ingested)  # after the first training: the first hour has its record
    say(f"bootstrap: forecast of record: {recorded.as_json()}")
    new = sum(summary.new for summary in outcome.summaries)
    problems = [f"{s.symbol} {s.status}" for s in outcome.summaries if s.status != "ok"]
    return (
        f"{'ok' if not problems else 'with problems: ' + ', '.join(problems)}: {new} new candles for "
        f"{len(outcome.summaries)} symbols, features materialized, production model {model} "
        f"({time.monotonic() - began:.0f} s)"
    )
