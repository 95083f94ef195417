"""The verdict on the production model: whether it is degraded (its 7-day MAE ratio to persistence, the
drift of its served features against its training deciles, ``hourcast.model.drift``), whether a retrain
is due after the cool-down, the record of retrain requests, and the production model's drift reference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from hourcast import atomic
from hourcast.monitor.scoreboard import WINDOWS
from hourcast.settings import Settings

DRIFT_WINDOWS: dict[str, pd.Timedelta] = {"24h": WINDOWS["24h"], "7d": WINDOWS["7d"]}
"""The windows over which a run measures the drift of the served features."""
JUDGED_WINDOW = "7d"
"""The window whose MAE ratio and drift decide whether the model is degraded."""


def degradation(
    board: pd.DataFrame,
    drift_scores: pd.DataFrame,
    model: str | None,
    max_mae_ratio: float,
    min_hours: int,
    max_psi: float,
) -> list[str]:
    """Why the production ``model`` counts as degraded (empty: it does not).

    Per symbol: its 7-day MAE ratio over at least ``min_hours`` scored hours above ``max_mae_ratio``; or the
    worst 7-day PSI of a feature over at least ``min_hours`` served hours above ``max_psi``.
    """
    reasons = []
    if model is not None:
        judged = board.loc[(board["window"] == JUDGED_WINDOW) & (board["model"] == model)]
        for row in judged.itertuples():
            if row.hours >= min_hours and row.mae_ratio is not None and row.mae_ratio > max_mae_ratio:
                reasons.append(
                    f"{row.symbol}: 7-day MAE ratio to persistence {row.mae_ratio:.4f} > {max_mae_ratio:g} "
                    f"over {row.hours} hours of {model}"
                )
    drifted = drift_scores.loc[
        (drift_scores["window"] == JUDGED_WINDOW)
        & (drift_scores["hours"] >= min_hours)
        & (drift_scores["psi"] > max_psi)
    ]
    for symbol, rows in drifted.groupby("symbol", sort=True):
        worst = rows.sort_values("psi", ascending=False).iloc[0]
        reasons.append(
            f"{symbol}: feature {worst['feature']} drifted, 7-day PSI {worst['psi']:.3f} > {max_psi:g} "
            f"({len(rows)} features over the threshold)"
        )
    return reasons


def retrain_due(
    reasons: list[str], last_request: pd.Timestamp | None, now: pd.Timestamp, cooldown: pd.Timedelta
) -> bool:
    """Whether to ask for a retrain: the model is degraded and the last request is at least ``cooldown``
    old (data time)."""
    return bool(reasons) and (last_request is None or now - last_request >= cooldown)


def last_retrain_request(path: Path) -> pd.Timestamp | None:
    """Data time of the last retrain request recorded at ``path`` (None if never)."""
    if not path.exists():
        return None
    return pd.Timestamp(json.loads(path.read_text(encoding="utf-8"))["at"])


def record_retrain_request(path: Path, at: pd.Timestamp, model: str | None, reasons: list[str]) -> None:
    """Record (atomically) that a retrain was asked for at data time ``at``."""
    body = {"at": at.isoformat(), "model": model, "reasons": reasons}
    atomic.write_text(path, json.dumps(body, indent=2) + "\n")


def production_reference(settings: Settings) -> tuple[str | None, dict[str, Any]]:
    """The production model's tag and the drift reference in its metadata (empty if it has none).

    A model's metadata never changes, so the reference is kept as JSON under ``HOURCAST_HOME/monitor/``
    after the first read (BentoML parses the whole model YAML, about 0.4 s).
    """
    from hourcast.model import registry

    tag = registry.production_tag(settings.registry_dir, settings.model_name)
    if tag is None:
        return None, {}
    cached = settings.monitor_state_path.parent / "reference" / f"{tag.replace(':', '-')}.json"
    if cached.exists():
        return tag, json.loads(cached.read_text(encoding="utf-8"))
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        reference = dict(bentoml.models.get(tag).info.metadata).get("feature_reference", {})
    except NotFound:
        return tag, {}
    atomic.write_text(cached, json.dumps(reference))
    return tag, reference
