"""`hourcast up`'s bootstrap, so the API has something to serve: one ingest cycle
(``hourcast.ops.ingest_cycle``: the new candles, or the default backfill into an empty store, then the
online features) and, when there is no production model yet, a first training.

A failed pull stops it at once (nothing after it can work) with ``StartupFailed``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING

from hourcast.ops.supervise import StartupFailed
from hourcast.settings import Settings

if TYPE_CHECKING:
    from hourcast.data.ingest import SymbolSummary


def bootstrap(settings: Settings, say: Callable[[str], None] = print) -> str:
    """Data, online features and a first model, each step told through ``say``; returns a one-line status.
    ``StartupFailed`` naming the symbols if the pull failed for any. Imports the pipeline when called, so
    `hourcast up` starts the Prefect server first."""
    from hourcast.features import featurestore
    from hourcast.model import registry, training
    from hourcast.ops.ingest_cycle import CycleSteps, PullFailed, pull_new, run_ingest_cycle

    def tell(summary: SymbolSummary) -> None:
        say(
            f"  {summary.symbol}: {summary.new} new candles, last {summary.as_json()['last']}, "
            f"status {summary.status} {summary.message}".rstrip()
        )

    def materialize(resolved: Settings) -> featurestore.MaterializeSummary:
        say(f"bootstrap: materializing features into {featurestore.describe_online_store(resolved)} ...")
        return featurestore.materialize(resolved)

    began = time.monotonic()
    say("bootstrap: ingesting candles (validated with Great Expectations) ...")
    steps = CycleSteps(pull=partial(pull_new, tell=tell), materialize=materialize)
    try:
        outcome = run_ingest_cycle(settings, steps, materialize_after_failed_pull=False)
    except PullFailed as failure:
        failed = "; ".join(f"{s.symbol}: {s.message}" for s in failure.summaries if s.status == "failed")
        raise StartupFailed(f"bootstrap: the ingest failed, so the stack stops here: {failed}") from None
    ingested = outcome.settings
    model = registry.production_tag(ingested.registry_dir, ingested.model_name)
    if model is None:
        say("bootstrap: training a first model ...")
        result = training.train(ingested)
        verdict = "promoted" if result.promoted else "NOT promoted"
        say(f"  {result.tag} {verdict}: {result.reason}")
        model = f"{result.tag} (new, {verdict})"
    new = sum(summary.new for summary in outcome.summaries)
    problems = [f"{s.symbol} {s.status}" for s in outcome.summaries if s.status != "ok"]
    return (
        f"{'ok' if not problems else 'with problems: ' + ', '.join(problems)}: {new} new candles for "
        f"{len(outcome.summaries)} symbols, features materialized, production model {model} "
        f"({time.monotonic() - began:.0f} s)"
    )
