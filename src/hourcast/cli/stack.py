"""The whole-system commands: ``up`` (Prefect, the worker, data, features, a model, the API and the
dashboard, from the project folder) and ``replay-exchange`` (recorded candles behind Binance's REST API)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hourcast.errors import UsageError, UserError
from hourcast.settings import Settings


def up(
    replay: Annotated[
        bool, typer.Option("--replay", help="Run against the replay exchange (offline).")
    ] = False,
    data: Annotated[
        list[str] | None,
        typer.Option(
            help="With --replay: SYMBOL=PATH of a recorded candle file (repeatable); "
            "default: the bundled BTC/USDT and ETH/USDT candles."
        ),
    ] = None,
    now: Annotated[
        str | None,
        typer.Option(
            help="With --replay: the exchange clock to start at (ISO; default: the training window and its "
            "lookback into the recordings, 367 days, so the first model trains on HOURCAST_TRAIN_DAYS)."
        ),
    ] = None,
    speed: Annotated[float, typer.Option(help="With --replay: simulated seconds per real second.")] = 60.0,
) -> None:
    """Bring the whole system up, from the project folder: a Prefect server (or the one PREFECT_API_URL
    names), the work pool, a worker and the deployments of prefect.yaml, data, features and a first
    model, the API and the dashboard."""
    from hourcast.ops.stack import Stack

    project_dir = Path.cwd()
    if not (project_dir / "prefect.yaml").exists():
        raise UserError(f"no prefect.yaml in {project_dir}; run `hourcast up` from the project folder")
    if data and not replay:
        raise UsageError("--data only applies with --replay; add --replay or leave --data out")
    replay_data = _replay_files(data) if replay else None
    stack = Stack(Settings(), project_dir, replay_data=replay_data, replay_now=now, replay_speed=speed)
    raise typer.Exit(stack.run())


def _replay_files(data: list[str] | None) -> dict[str, Path]:
    """The recorded files of ``--data SYMBOL=PATH`` options, or the bundled ones; fails on a missing file."""
    from hourcast.dev.replay.data import parse_data_option
    from hourcast.dev.samples import sample_files

    files = dict(parse_data_option(item) for item in data) if data else sample_files()
    missing = [f"{symbol}={path}" for symbol, path in files.items() if not path.is_file()]
    if missing:
        raise UsageError(f"recorded candle file not found: {', '.join(missing)}; check the --data paths")
    return files


def replay_exchange(
    data: Annotated[
        list[str] | None,
        typer.Option(help="SYMBOL=PATH of a recorded candle CSV (repeatable); default: the bundled candles."),
    ] = None,
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8765,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    now: Annotated[str | None, typer.Option(help="Initial exchange clock (ISO-8601 UTC).")] = None,
    speed: Annotated[float, typer.Option(help="Simulated seconds per real second (0 = frozen).")] = 0.0,
    synthetic: Annotated[
        int,
        typer.Option(
            min=0,
            max=999,
            help="Also serve N synthetic symbols SYN001/USDT.. (not real markets: the recorded series "
            "rotated in time and rescaled), for scale runs.",
        ),
    ] = 0,
) -> None:
    """Serve recorded candles over Binance's public REST API, for offline runs and tests."""
    from hourcast.dev.replay.server import serve_forever

    serve_forever(_replay_files(data), host, port, now, speed, synthetic)
