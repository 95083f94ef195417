"""The Gradio page of the dashboard (``build_app``) and its callbacks.

``refresh`` and ``refresh_performance`` combine the API client (``client``) with the pure renderers
(``figures``) and never raise, so the page always shows whatever could be fetched plus what went wrong.
Gradio is imported lazily.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import pandas as pd

from hourcast.dashboard.client import HISTORY_COLUMNS, ApiClient, DashboardError
from hourcast.dashboard.figures import (
    as_text,
    candlestick_figure,
    has_scored_hours,
    model_card_markdown,
    performance_figure,
    performance_markdown,
    summary_markdown,
)
from hourcast.serving.schema import Performance, Scoreboard

if TYPE_CHECKING:
    import gradio as gr
    import plotly.graph_objects as go

    from hourcast.settings import Settings

PERFORMANCE_HOURS = 168  # the Performance view's span: the last week of served hours


def _warnings(problems: list[str]) -> list[str]:
    """What failed, one Markdown warning line each, as text."""
    return [f"> ⚠️ **{as_text(problem)}**" for problem in problems]


def refresh(client: ApiClient, symbol: str, hours: int) -> tuple[go.Figure | None, str]:
    """The chart and the numbers for ``symbol``; never raises.

    What failed is said at the top of the Markdown; the figure shows whatever did load (``None`` if nothing).
    """
    problems: list[str] = []
    try:
        history = client.history(symbol, hours)
    except DashboardError as exc:
        history = pd.DataFrame(columns=HISTORY_COLUMNS)
        problems.append(exc.message)
    try:
        prediction: dict[str, Any] | None = client.prediction(symbol)
    except DashboardError as exc:
        prediction = None
        if exc.message not in problems:
            problems.append(exc.message)
    loaded = prediction is not None or not history.empty
    figure = candlestick_figure(history, prediction, symbol) if loaded else None
    warnings = _warnings(problems)
    if prediction is not None:
        return figure, "\n\n".join([*warnings, summary_markdown(prediction), _model_card(client)])
    parts = [f"### {as_text(symbol)}: no forecast", *warnings]
    if not history.empty:
        parts.append(f"The chart shows the last {len(history)} candles.")
    return figure, "\n\n".join(parts)


def _model_card(client: ApiClient) -> str:
    """The served model's window and gate figures, or why they could not be read; never raises."""
    try:
        return model_card_markdown(client.model_card())
    except DashboardError as exc:
        return f"- **Promotion gate:** not known ({as_text(exc.message)})"


def refresh_performance(client: ApiClient, symbol: str, hours: int) -> tuple[go.Figure | None, str]:
    """The Performance chart and figures for ``symbol``; never raises (what failed is said at the top)."""
    problems: list[str] = []
    performance: Performance | None = None
    scoreboard: Scoreboard | None = None
    try:
        performance = client.performance(symbol, hours)
    except DashboardError as exc:
        problems.append(exc.message)
    try:
        scoreboard = client.scoreboard(symbol)
    except DashboardError as exc:
        if exc.message not in problems:
            problems.append(exc.message)
    warnings = _warnings(problems)
    figure = (
        performance_figure(performance) if performance is not None and has_scored_hours(performance) else None
    )
    text = performance_markdown(scoreboard, performance)
    return figure, "\n\n".join([*warnings, text])


def _gradio() -> Any:
    """Gradio, imported with its usage analytics switched off."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
    import gradio

    return gradio


def build_app(settings: Settings) -> gr.Blocks:
    """The dashboard page: symbol picker and Refresh button; the candlestick chart and the forecast's
    numbers; below, the Performance view (how past forecasts fared) and its figures.

    Both load with the page, on Refresh, on a new symbol and, when ``settings.ui_refresh_seconds`` > 0, on a
    timer with that period.
    """
    gr = _gradio()
    client = ApiClient(settings.api_url)

    def update(symbol: str) -> tuple[Any, str]:
        return refresh(client, symbol, settings.ui_hours)

    def update_performance(symbol: str) -> tuple[Any, str]:
        figure, text = refresh_performance(client, symbol, PERFORMANCE_HOURS)
        return gr.update(value=figure, visible=figure is not None), text  # never an empty chart

    with gr.Blocks(title="hourcast", analytics_enabled=False) as demo:
        gr.Markdown(f"# hourcast: next-hour forecast\nPrediction API: `{settings.api_url}`")
        with gr.Row():
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
            with gr.Column(scale=2, min_width=320):
                numbers = gr.Markdown("Loading…", elem_id="numbers")
        gr.Markdown(
            "## Performance\nEach hour's forecast of record against the close that followed, over the last "
            "week."
        )
        with gr.Row(elem_id="performance"):
            performance_chart = gr.Plot(
                label="Performance", elem_id="performance_chart", scale=3, visible=False
            )
            with gr.Column(scale=2, min_width=320):
                performance_numbers = gr.Markdown("Loading…", elem_id="performance_numbers")
        views = [(update, [chart, numbers]), (update_performance, [performance_chart, performance_numbers])]
        triggers = [demo.load, refresh_button.click, symbol.change]
        for function, outputs in views:
            gr.on(triggers, function, inputs=symbol, outputs=outputs)
        if settings.ui_refresh_seconds > 0:
            timer = gr.Timer(settings.ui_refresh_seconds)
            for function, outputs in views:
                timer.tick(function, inputs=symbol, outputs=outputs, show_progress="hidden")
    return demo
