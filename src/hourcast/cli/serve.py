"""The live-service commands: ``serve`` the prediction API (BentoML), the ``ui`` dashboard (Gradio) and
``monitor`` (score the served predictions)."""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping
from typing import Annotated

import typer

from hourcast.cli import render
from hourcast.cli.options import json_option, resolved_settings
from hourcast.errors import UserError
from hourcast.settings import Settings


def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to bind (default HOURCAST_SERVE_HOST, 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port (default HOURCAST_SERVE_PORT, 3000).")] = None,
) -> None:
    """Start the prediction API (`bentoml serve bento_service.service:NextHour`) from the project folder.

    The process becomes `bentoml serve` (exec), so a signal reaches BentoML itself and its graceful
    shutdown (the prediction log's last flush) is never cut short by a parent that kills its child."""
    import os

    from hourcast.model import registry

    settings = resolved_settings()  # the service reads the same resolution: fail here, in one line
    if not registry.list_models(settings.registry_dir, settings.model_name):
        raise UserError(
            f"no model yet (the BentoML store has no {settings.model_name}); run `hourcast train` first"
        )
    command = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "bento_service.service:NextHour",
        "--host",
        host or settings.serve_host,
        "--port",
        str(port or settings.serve_port),
    ]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, command, serve_environment(settings, os.environ))


# Deprecation warnings raised while `bentoml` imports itself, in every process of `bentoml serve`, before the
# service module (and its filters, `warning_filters.quiet_known_deprecations`) is imported: these
# `PYTHONWARNINGS` filters (message prefix, category, module) go after any of the user's own, to win.
BENTOML_IMPORT_WARNINGS = (
    # pathspec, as BentoML builds its default Bento excludes with the "gitwildmatch" pattern name
    "ignore:GitWildMatchPattern ('gitwildmatch') is deprecated:DeprecationWarning",
    # pydantic 2.11, as BentoML's IO models call BaseModel.__get_pydantic_core_schema__
    "ignore:The `__get_pydantic_core_schema__` method of the `BaseModel` class is deprecated"
    ":DeprecationWarning:_bentoml_sdk.io_models",
)


def serve_environment(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for ``bentoml serve``: the settings' BentoML configuration in ``BENTOML_CONFIG_OVERRIDES``
    (JSON), merged under any the user already set there (theirs win), and ``BENTOML_IMPORT_WARNINGS`` added
    to ``PYTHONWARNINGS``."""
    from hourcast.serving.predictor import bentoml_config_overrides

    name = "BENTOML_CONFIG_OVERRIDES"
    try:
        given = json.loads(environ.get(name) or "{}")
    except json.JSONDecodeError:
        given = None
    if not isinstance(given, dict):
        example = '{"services": {"hourcast": {"workers": 2}}}'
        raise UserError(f"{name}={environ[name]!r} is not a JSON object; write it like {example}")
    warning_filters = ",".join(filter(None, [environ.get("PYTHONWARNINGS"), *BENTOML_IMPORT_WARNINGS]))
    overrides = json.dumps(_merged(bentoml_config_overrides(settings), given))
    return {**environ, name: overrides, "PYTHONWARNINGS": warning_filters}


def _merged(base: dict, over: dict) -> dict:
    """``base`` with ``over`` laid on top, nested mappings merged key by key."""
    merged = dict(base)
    for key, value in over.items():
        below = merged.get(key)
        merged[key] = _merged(below, value) if isinstance(below, dict) and isinstance(value, dict) else value
    return merged


def ui(
    host: Annotated[str | None, typer.Option(help="Address to bind (default HOURCAST_UI_HOST).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default HOURCAST_UI_PORT, 7860).")] = None,
) -> None:
    """Start the Gradio dashboard; it talks to the prediction API at HOURCAST_API_URL."""
    from hourcast.dashboard.layout import build_app

    settings = resolved_settings()
    app_ui = build_app(settings)
    app_ui.launch(server_name=host or settings.ui_host, server_port=port or settings.ui_port, share=False)


def monitor(as_json: Annotated[bool, json_option("the report as one JSON object")] = False) -> None:
    """Score logged predictions against the closed candles; rolling metrics vs persistence and drift."""
    from hourcast.monitor import run

    render.monitor_report(run.run(resolved_settings()), as_json)
