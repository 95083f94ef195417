"""The Prefect tasks of the ``retrain`` flow: training with its gate, and the reports. Nothing here
retries: a failed training leaves production untouched, and the next trigger or weekly run tries again."""

from __future__ import annotations

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from hourcast.model import registry, training
from hourcast.model.training import TrainingResult
from hourcast.ops import reporting
from hourcast.settings import Settings


@task(name="train", cache_policy=NONE, persist_result=False)
def train_model(settings: Settings) -> TrainingResult:
    """Build the training set, fit, check walk-forward, save and apply the promotion gate."""
    result = training.train(settings)
    get_run_logger().info("%s: promoted=%s: %s", result.tag, result.promoted, result.reason)
    return result


@task(name="publish-training-report", cache_policy=NONE, persist_result=False)
def publish_training_report(result: TrainingResult) -> None:
    """Artifacts ``training-metrics`` (walk-forward vs persistence) and ``promotion-decision``."""
    create_markdown_artifact(
        reporting.training_markdown(result),
        key="training-metrics",
        description="walk-forward metrics of the new model vs persistence",
    )
    create_markdown_artifact(
        reporting.promotion_markdown(result), key="promotion-decision", description="promotion gate"
    )


@task(name="publish-training-failure", cache_policy=NONE, persist_result=False)
def publish_training_failure(settings: Settings, error: str) -> None:
    """Artifact ``promotion-decision`` for a run that could not train: production is unchanged."""
    production = registry.production_tag(settings.registry_dir, settings.model_name)
    create_markdown_artifact(
        reporting.training_failure_markdown(error, production),
        key="promotion-decision",
        description="promotion gate",
    )
