"""The hourcast dashboard: a thin Gradio entry point over ``hourcast.dashboard``.

Run with ``uv run python -m gradio_app.app`` (or ``hourcast ui``); it reads the API address and UI options
from ``Settings``.
"""

from __future__ import annotations

from hourcast.dashboard.layout import build_app
from hourcast.data.selection import resolved
from hourcast.settings import Settings


def main() -> None:
    """Serve the dashboard on ``ui_host:ui_port`` (no share link, no analytics)."""
    settings = resolved(Settings())  # all-usdt: the symbols ingest resolved
    build_app(settings).launch(server_name=settings.ui_host, server_port=settings.ui_port, share=False)


if __name__ == "__main__":
    main()
