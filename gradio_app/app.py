"""The hourcast dashboard: a thin Gradio page over ``hourcast.dashboard``.

Run with ``uv run python -m gradio_app.app``; it reads the API address and UI options from ``Settings``.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from hourcast.dashboard import ApiClient, refresh
from hourcast.settings import Settings

if TYPE_CHECKING:
    import gradio as gr


def _gradio() -> Any:
    """Gradio, imported with its usage analytics switched off."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio

    return gradio


def build_app(settings: Settings) -> gr.Blocks:
    """The dashboard page: symbol picker, Refresh button, candlestick chart and the forecast's numbers.

    The chart and numbers load with the page, on Refresh, on a new symbol and, when
    ``settings.ui_refresh_seconds`` > 0, on a timer with that period.
    """
    gr = _gradio()
    client = ApiClient(settings.api_url)

    def update(symbol: str) -> tuple[Any, str]:
        return refresh(client, symbol, settings.ui_hours)

    with gr.Blocks(title="hourcast", analytics_enabled=False) as demo:
        gr.Markdown(f"# hourcast: next-hour forecast\nPrediction API: `{settings.api_url}`")
        with gr.Row(equal_height=True):
            symbol = gr.Dropdown(
                choices=list(settings.symbols),
                value=settings.symbols[0],
                label="Symbol",
                elem_id="symbol",
                scale=3,
            )
            refresh_button = gr.Button("Refresh", variant="primary", elem_id="refresh", scale=1)
        with gr.Row():
            chart = gr.Plot(label="Last hours and forecast", elem_id="chart", scale=3)
            numbers = gr.Markdown("Loading…", elem_id="numbers", scale=2)
        outputs = [chart, numbers]
        gr.on([demo.load, refresh_button.click, symbol.change], update, inputs=symbol, outputs=outputs)
        if settings.ui_refresh_seconds > 0:
            timer = gr.Timer(settings.ui_refresh_seconds)
            timer.tick(update, inputs=symbol, outputs=outputs, show_progress="hidden")
    return demo


def main() -> None:
    """Serve the dashboard on ``ui_host:ui_port`` (no share link, no analytics)."""
    settings = Settings()
    build_app(settings).launch(server_name=settings.ui_host, server_port=settings.ui_port, share=False)


if __name__ == "__main__":
    main()
