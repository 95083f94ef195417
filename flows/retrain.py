"""The weekly ``retrain`` flow: training with its walk-forward check and promotion gate.

Retention is a deployment of its own (``retention``, scheduled half an hour before), so it runs once a week.
"""

from __future__ import annotations

from typing import Any

from prefect import flow

from flows.retrain_tasks import publish_training_failure, publish_training_report, train_model
from hourcast.data.selection import resolved
from hourcast.model.training import TrainingError
from hourcast.settings import Settings


@flow(name="retrain")
def retrain() -> dict[str, Any]:
    """Train on the last HOURCAST_TRAIN_DAYS days: the model is saved and promoted only if the gate
    accepts it. A rejected model completes the run (the decision is in the
    ``promotion-decision`` artifact); a ``TrainingError`` fails it, production untouched.
    """
    settings = resolved(Settings())  # a selector such as all-usdt: the symbols ingest resolved
    try:
        result = train_model(settings)
    except TrainingError as error:
        publish_training_failure(settings, str(error))
        raise
    publish_training_report(result)
    return result.as_json()


if __name__ == "__main__":
    retrain()
