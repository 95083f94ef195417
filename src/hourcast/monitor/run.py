"""One monitor run, the entry of the ``monitor`` flow and of ``hourcast monitor``: score what was logged
(``scoring``), compute the scoreboard (``scoreboard``) and drift (``hourcast.model.drift``) at the data clock,
judge the production model (``verdict``), and ask for a retrain when it is due.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from hourcast.model import drift
from hourcast.monitor import scoring, verdict
from hourcast.monitor.scoreboard import BOARD_COLUMNS, json_records, newest_hour, scoreboard, served
from hourcast.settings import Settings


@dataclass
class MonitorReport:
    """What one monitor run scored, the rolling scoreboard, drift and the verdict on the production model."""

    now: pd.Timestamp | None
    added: int
    pending: int
    newly_unscorable: pd.DataFrame
    scores: pd.DataFrame
    scoreboard: pd.DataFrame
    drift: pd.DataFrame
    production: str | None
    degraded: list[str] = field(default_factory=list)

    def worst_drift(self, per_symbol: int = 5) -> pd.DataFrame:
        """The ``per_symbol`` most drifted features per window and symbol."""
        return self.drift.groupby(["window", "symbol"], sort=False).head(per_symbol).reset_index(drop=True)

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` document."""
        unscorable = self.scores.loc[self.scores["status"] == scoring.UNSCORABLE]
        return {
            "now": self.now.isoformat() if self.now is not None else None,
            "added": self.added,
            "scored": int((self.scores["status"] == scoring.SCORED).sum()),
            "unscorable": [
                {
                    "symbol": row.symbol,
                    "as_of": row.as_of.isoformat(),
                    "target_time": row.target_time.isoformat(),
                    "model": row.model,
                }
                for row in unscorable.itertuples()
            ],
            "pending": self.pending,
            "production": self.production,
            "degraded": self.degraded,
            "scoreboard": json_records(self.scoreboard),
            "drift": json_records(self.worst_drift()),
        }


def run(settings: Settings) -> MonitorReport:
    """Score every logged prediction whose target candle is stored (adding only new keys to the scores
    dataset), then compute the scoreboard and drift at the data clock and judge the production model."""
    from hourcast.serving.prediction_log import read_log

    stored = scoring.read_scores(settings.scores_dir)
    since = scoring.log_since(stored, settings.symbols)
    predictions = scoring.distinct_predictions(
        read_log(settings.predictions_dir, columns=scoring.LOG_COLUMNS, since=since)
    )
    fresh = scoring.not_scored(predictions, stored)
    scored, pending = scoring.score_predictions(fresh, scoring.target_candles(settings, fresh))
    added = scoring.write_scores(
        settings.scores_dir, scored
    )  # keys a concurrent run wrote meanwhile are skipped
    scores = pd.concat([stored, scored], ignore_index=True).drop_duplicates(scoring.KEY) if added else stored
    now = newest_hour(settings, sorted({*settings.symbols, *predictions["symbol"].astype(str)}))
    production, reference = verdict.production_reference(settings)
    board = scoreboard(scores, now) if now is not None else pd.DataFrame(columns=BOARD_COLUMNS)
    drifted = drift.empty_table()
    if now is not None and reference:
        columns = [*scoring.KEY, "target_time", "source", *drift.DRIFT_FEATURES]
        recent = now - max(verdict.DRIFT_WINDOWS.values())
        answered = scoring.distinct_predictions(
            read_log(settings.predictions_dir, columns=columns, since=recent)
        )
        drifted = drift.drift_table(
            reference, served(answered), now, verdict.DRIFT_WINDOWS
        )  # one row per hour
    reasons = verdict.degradation(
        board,
        drifted,
        production,
        settings.monitor_max_mae_ratio,
        settings.monitor_min_hours,
        settings.monitor_max_psi,
    )
    return MonitorReport(
        now=now,
        added=added,
        pending=len(pending),
        newly_unscorable=scored.loc[scored["status"] == scoring.UNSCORABLE].reset_index(drop=True),
        scores=scores,
        scoreboard=board,
        drift=drifted,
        production=production,
        degraded=reasons,
    )


def request_retrain_if_due(settings: Settings, report: MonitorReport, emit: Any) -> bool:
    """Call ``emit(report)`` and record the request if the model is degraded and the cool-down has passed
    (on the data clock); returns whether it did. The request is recorded only after ``emit`` succeeded."""
    path = settings.monitor_state_path
    if report.now is None or not verdict.retrain_due(
        report.degraded,
        verdict.last_retrain_request(path),
        report.now,
        pd.Timedelta(hours=settings.retrain_cooldown_hours),
    ):
        return False
    emit(report)
    verdict.record_retrain_request(path, report.now, report.production, report.degraded)
    return True
