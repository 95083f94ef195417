"""What the Gradio dashboard shows: a client for the prediction API, the chart and the numbers.

The HTTP edge (``ApiClient``) turns every failure into a ``DashboardError`` with a message a person can act
on; ``refresh`` combines it with the pure renderers (``candlestick_figure``, ``summary_markdown``) and never
raises, so the page always shows whatever could be fetched plus what went wrong. A prediction is accepted
only if it matches the API's own schema (``hourcast.schema.Prediction``). Text that comes from the API is
rendered as text (``as_text``: no HTML, no Markdown links or images) and without credentials. Plotly is
imported lazily.
"""

from __future__ import annotations

import html
import math
import os
import re
from typing import TYPE_CHECKING, Any

import httpx
import pandas as pd
from pydantic import ValidationError

from hourcast.redact import redact
from hourcast.schema import Prediction

if TYPE_CHECKING:
    import gradio as gr
    import plotly.graph_objects as go

    from hourcast.settings import Settings

HISTORY_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]
PREDICTION_TIMES = ["as_of", "target_time"]
PREDICTION_COLOUR = "#6f42c1"
_ERROR_TEXT_LIMIT = 300
# Markdown syntax, plus ':' and '@' so that no URL or address is auto-linked (Gradio's renderer
# links bare URLs and e-mail addresses).
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~>:@])")
_CLOCKS = {
    "exchange": "exchange",
    "last_known_exchange": "last known exchange time (the exchange is unreachable)",
    "system": "system clock (the exchange was never reached)",
}


def as_text(value: object) -> str:
    """``value`` as literal text inside Markdown: HTML escaped, Markdown syntax (and the ``:``/``@`` of
    URLs and addresses) backslash-escaped, so nothing in it can become a tag, a link or an image."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", html.escape(str(value), quote=False))


class DashboardError(Exception):
    """A failure to get data from the prediction API, worded for the person looking at the dashboard."""

    def __init__(self, message: str) -> None:
        message = redact(message)
        super().__init__(message)
        self.message = message


class ApiClient:
    """Reads predictions and candle history from the hourcast prediction API."""

    def __init__(self, base_url: str, timeout: float = 5.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def prediction(self, symbol: str) -> dict[str, Any]:
        """The API's current next-hour prediction for ``symbol`` (stale features are refused by the API)."""
        payload = self._json("POST", "/predict", json={"symbol": symbol, "allow_stale": False})
        try:
            Prediction.model_validate(payload)
            for key in PREDICTION_TIMES:
                pd.Timestamp(payload[key])
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
            )
            raise DashboardError(
                f"{self._name} sent a prediction the dashboard cannot read: {problems}"
            ) from exc
        except (TypeError, ValueError) as exc:
            raise DashboardError(f"{self._name} sent a prediction the dashboard cannot read: {exc}") from exc
        return payload

    def history(self, symbol: str, hours: int) -> pd.DataFrame:
        """The last ``hours`` closed candles of ``symbol``, oldest first: ``ts`` (UTC) and float prices."""
        payload = self._json("GET", "/history", params={"symbol": symbol, "hours": hours})
        try:
            frame = pd.DataFrame(payload["candles"], columns=HISTORY_COLUMNS)
            frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
            return frame.astype({column: "float64" for column in HISTORY_COLUMNS[1:]})
        except (TypeError, ValueError, KeyError) as exc:
            raise DashboardError(f"{self._name} sent a history the dashboard cannot read: {exc}") from exc

    @property
    def _name(self) -> str:
        return f"prediction API at {self.base_url}"

    def _json(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        """One request; the decoded JSON object of a 2xx answer, else a ``DashboardError``."""
        try:
            response = httpx.request(method, self.base_url + path, timeout=self.timeout, **kwargs)
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            raise DashboardError(f"{self._name} is not reachable ({exc})") from exc
        except httpx.TimeoutException as exc:
            raise DashboardError(f"{self._name} did not answer within {self.timeout:g} s") from exc
        except httpx.HTTPError as exc:
            raise DashboardError(f"request to {self._name} failed: {exc}") from exc
        if response.status_code == 503:
            raise DashboardError(f"{self._name} says: {_error_text(response)}")
        if response.status_code >= 400:
            kind = "rejected the request" if response.status_code < 500 else "failed"
            raise DashboardError(
                f"{self._name} {kind} (HTTP {response.status_code}): {_error_text(response)}"
            )
        try:
            payload = response.json()
        except ValueError as exc:
            raise DashboardError(f"{self._name} answered {path} with something that is not JSON") from exc
        if not isinstance(payload, dict):
            raise DashboardError(f"{self._name} answered {path} with JSON that is not an object")
        return payload


def _error_text(response: httpx.Response) -> str:
    """The ``error`` of the API's error body (``detail``/``message`` of other servers), else the body's text,
    shortened and without credentials."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if isinstance(payload, dict):
        for key in ("error", "detail", "message"):
            if payload.get(key):
                text = str(payload[key])
                break
        else:
            text = response.text
    else:
        text = response.text
    text = redact(" ".join(text.split())) or response.reason_phrase or "no message"
    return text if len(text) <= _ERROR_TEXT_LIMIT else text[: _ERROR_TEXT_LIMIT - 1] + "…"


def _utc_naive(value: Any) -> pd.Timestamp:
    """A timestamp in UTC without tz info: how Plotly places dates on a UTC axis."""
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        return stamp
    return stamp.tz_convert("UTC").tz_localize(None)


def format_price(value: float) -> str:
    """A price with thousands separators and at least two decimals, six significant digits for small ones."""
    magnitude = math.floor(math.log10(abs(value))) if value and math.isfinite(value) else 0
    decimals = min(10, max(2, 5 - magnitude))
    return f"{value:,.{decimals}f}"


def _age(seconds: float) -> str:
    """A duration for people: ``45 s``, ``41 min``, ``3 h 05 min``, ``2 d 4 h``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = seconds // 60
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def _band_text(band: dict[str, Any]) -> str:
    """``5%-95% band: 60,825.33 to 61,803.42``."""
    quantiles = band.get("quantiles") or []
    label = f"{quantiles[0]:.0%}-{quantiles[-1]:.0%} band" if len(quantiles) >= 2 else "band"
    return f"{label}: {format_price(float(band['low']))} to {format_price(float(band['high']))}"


def _when(value: Any) -> str:
    """``2024-03-01 10:00 UTC``."""
    return _utc_naive(value).strftime("%Y-%m-%d %H:%M UTC")


def candlestick_figure(
    history: pd.DataFrame, prediction: dict[str, Any] | None, symbol: str | None = None
) -> go.Figure:
    """Candles of ``history`` and, if given, the predicted close with its band and a line from the last close.

    Every point sits at its candle's open time, like the candles: the prediction at ``target_time``, drawn
    from the last close at ``as_of``. The title names ``symbol`` (default: the prediction's symbol).
    """
    import plotly.graph_objects as go

    symbol = html.escape(symbol or (prediction or {}).get("symbol") or "")
    figure = go.Figure()
    if not history.empty:
        figure.add_trace(
            go.Candlestick(
                x=[_utc_naive(ts) for ts in history["ts"]],
                open=history["open"],
                high=history["high"],
                low=history["low"],
                close=history["close"],
                name="Hourly candles",
            )
        )
    if prediction is not None:
        as_of, target = _utc_naive(prediction["as_of"]), _utc_naive(prediction["target_time"])
        last, predicted = float(prediction["last_close"]), float(prediction["predicted_close"])
        figure.add_trace(
            go.Scatter(
                x=[as_of, target],
                y=[last, predicted],
                mode="lines",
                line={"color": PREDICTION_COLOUR, "dash": "dash", "width": 1.5},
                hoverinfo="skip",
                showlegend=False,
                name="Forecast path",
            )
        )
        band = prediction.get("band")
        error_y = None
        hover = f"Predicted close at {_when(target + pd.Timedelta(hours=1))}: {format_price(predicted)}"
        if band is not None:
            low, high = float(band["low"]), float(band["high"])
            error_y = {
                "type": "data",
                "symmetric": False,
                "array": [high - predicted],
                "arrayminus": [predicted - low],
                "color": PREDICTION_COLOUR,
                "thickness": 2,
                "width": 8,
            }
            hover += f"<br>{_band_text(band)}"
        figure.add_trace(
            go.Scatter(
                x=[target],
                y=[predicted],
                mode="markers",
                marker={"symbol": "diamond", "size": 13, "color": PREDICTION_COLOUR},
                error_y=error_y,
                name="Predicted close",
                hovertext=[hover],
                hoverinfo="text",
            )
        )
    quote = symbol.split("/")[-1] if "/" in symbol else ""
    figure.update_layout(
        title={"text": f"{symbol} hourly candles and next-hour forecast".strip()},
        xaxis={"title": {"text": "Candle open time (UTC)"}, "rangeslider": {"visible": False}},
        yaxis={"title": {"text": f"Price ({quote})" if quote else "Price"}},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        template="plotly_white",
    )
    return figure


def summary_markdown(prediction: dict[str, Any]) -> str:
    """The prediction's numbers as Markdown: closes, change, direction, times, model, data age, staleness."""
    last, predicted = float(prediction["last_close"]), float(prediction["predicted_close"])
    change = predicted - last
    percent = change / last * 100 if last else float("nan")
    arrow = "▲ up" if prediction["direction"] == "up" else "▼ down"
    target = _utc_naive(prediction["target_time"])
    lines = [f"### {as_text(prediction['symbol'])}: {arrow}", ""]
    if prediction["stale"]:
        lines += [
            f"> ⚠️ **STALE**: the features are {_age(float(prediction['features_age_seconds']))} old; "
            "this forecast is not based on the latest candles.",
            "",
        ]
    band = prediction.get("band")
    lines += [
        f"- **Last close:** {format_price(last)}",
        f"- **Predicted close:** {format_price(predicted)}",
        *([f"- **Uncertainty:** {_band_text(band)}"] if band is not None else []),
        f"- **Change:** {change:+,.2f} ({percent:+.2f} %) {arrow}",
        f"- **As of:** {_when(prediction['as_of'])} (last closed candle)",
        f"- **Predicts:** close of the {target:%H:%M} candle, at {_when(target + pd.Timedelta(hours=1))}",
        f"- **Model:** {as_text(prediction['model'])}",
        f"- **Data age:** {_age(float(prediction['features_age_seconds']))}",
        *([f"- **Clock:** {_CLOCKS[prediction['clock']]}"] if prediction.get("clock") in _CLOCKS else []),
    ]
    return "\n".join(lines)


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
    warnings = [f"> ⚠️ **{as_text(problem)}**" for problem in problems]
    if prediction is not None:
        return figure, "\n\n".join([*warnings, summary_markdown(prediction)])
    parts = [f"### {as_text(symbol)}: no forecast", *warnings]
    if not history.empty:
        parts.append(f"The chart shows the last {len(history)} candles.")
    return figure, "\n\n".join(parts)


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
        outputs = [chart, numbers]
        gr.on([demo.load, refresh_button.click, symbol.change], update, inputs=symbol, outputs=outputs)
        if settings.ui_refresh_seconds > 0:
            timer = gr.Timer(settings.ui_refresh_seconds)
            timer.tick(update, inputs=symbol, outputs=outputs, show_progress="hidden")
    return demo
