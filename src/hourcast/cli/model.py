"""The model commands: ``train`` (behind the promotion gate), ``evaluate`` walk-forward, and the model
store (``models list|promote|rollback``)."""

from __future__ import annotations

from typing import Annotated

import typer

from hourcast.cli import render
from hourcast.cli.options import json_option, resolved_settings
from hourcast.errors import UsageError
from hourcast.settings import Settings


def train(as_json: Annotated[bool, json_option("the result as one JSON object")] = False) -> None:
    """Train on the last HOURCAST_TRAIN_DAYS days, check it walk-forward, save it, apply the gate."""
    from hourcast.model import training

    render.training_result(training.train(resolved_settings()), as_json)


def _training_days(windows: str) -> list[int]:
    """The days of ``--windows 30,90,180``."""
    try:
        return [int(part) for part in windows.split(",") if part.strip()]
    except ValueError:
        raise UsageError(
            f"--windows takes days separated by commas, got {windows!r}; write it like 30,90,180,365"
        ) from None


def evaluate(
    weeks: Annotated[int, typer.Option(help="Weeks of walk-forward (weekly refits).")] = 4,
    windows: Annotated[
        str,
        typer.Option(help="Also compare these training windows (days, comma-separated) on the same hours."),
    ] = "",
    cross_asset: Annotated[
        bool,
        typer.Option("--cross-asset", help="Also compare with the reference symbol's features as inputs."),
    ] = False,
    order_flow: Annotated[
        bool,
        typer.Option(
            "--order-flow", help="Also compare with the order-flow features (Binance candles) as inputs."
        ),
    ] = False,
    as_json: Annotated[bool, json_option("the report as one JSON object")] = False,
) -> None:
    """Walk-forward evaluation against persistence (direction: McNemar against "the last move reverses";
    band: coverage, pinball and interval scores). Writes under HOURCAST_HOME/reports/ the report
    walk_forward_<time>.json (the document --json prints), a PNG chart and
    walk_forward_<time>_forecasts.parquet, the per-hour forecasts of every variant. Refuses --weeks whose
    first folds would train on less history than HOURCAST_TRAIN_DAYS (or --windows) asks for."""
    from hourcast.model import evaluation

    days = _training_days(windows)
    report = evaluation.run(resolved_settings(), weeks, days, cross_asset, order_flow)
    render.evaluation_report(report, as_json)


models_app = typer.Typer(help="The versioned models in the BentoML store and which one is production.")


@models_app.command("list")
def models_list(as_json: Annotated[bool, json_option("one JSON line per model")] = False) -> None:
    """Every stored model, newest first, with its status and the reason for it."""
    from hourcast.model import registry

    settings = Settings()
    records = registry.list_models(settings.registry_dir, settings.model_name)
    render.models(records, settings.model_name, as_json)


@models_app.command("promote")
def models_promote(tag: str, reason: Annotated[str, typer.Option(help="Why.")] = "promoted by hand") -> None:
    """Make TAG the production model."""
    from hourcast.model import registry

    settings = Settings()
    registry.promote(settings.registry_dir, settings.model_name, tag, reason)
    print(f"{tag} is production")


@models_app.command("rollback")
def models_rollback(reason: Annotated[str, typer.Option(help="Why.")] = "manual rollback") -> None:
    """Restore the previous production model."""
    from hourcast.model import registry

    settings = Settings()
    tag = registry.rollback(settings.registry_dir, settings.model_name, reason)
    print(f"{tag} is production again")
