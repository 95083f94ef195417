"""What the Gradio dashboard shows: a client for the prediction API, the charts and the numbers.

The HTTP edge (``ApiClient``) turns every failure into a ``DashboardError`` with a message a person can act
on; ``refresh`` and ``refresh_performance`` combine it with the pure renderers (``candlestick_figure``,
``summary_markdown``; ``performance_figure``, ``performance_markdown``) and never raise, so the page always
shows whatever could be fetched plus what went wrong. An answer is accepted only if it matches the API's own
schema (``hourcast.serving.schema``: ``Prediction``, ``Performance``, ``Scoreboard``). Text that comes from
the API is
rendered as text (``as_text``: no HTML, no Markdown links or images) and without credentials. Plotly is
imported lazily.
"""

from __future__ import annotations

import html
import math
import os
import re
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import pandas as pd
from pydantic import BaseModel, ValidationError

from hourcast.redact import redact
from hourcast.serving.schema import Performance, Prediction, Scoreboard

if TYPE_CHECKING:
    import gradio as gr
    import plotly.graph_objects as go

    from hourcast.settings import Settings

HISTORY_COLUMNS = ["ts", "open", "high", "low", "close", "volume"]
PREDICTION_TIMES = ["as_of", "target_time"]
PREDICTION_COLOUR = "#6f42c1"
REALISED_COLOUR = "#1f2937"
RATIO_COLOUR = "#d9480f"
ACCURACY_COLOUR = "#0c8599"
PROMOTION_COLOUR = "#868e96"
# the Performance view's trailing lines: rolling point field, colour, name, hover number format, right axis
TRAILING_LINES = (
    ("mae_ratio", RATIO_COLOUR, "MAE ratio (below 1 beats persistence)", ".3f", False),
    ("directional_accuracy", ACCURACY_COLOUR, "Directional accuracy", ".0%", True),
)
PERFORMANCE_HOURS = 168  # the Performance view's span: the last week of served hours
MIN_ROLLING_HOURS = 12  # a trailing figure over fewer scored hours is noise: not drawn
_ERROR_TEXT_LIMIT = 300
ModelT = TypeVar("ModelT", bound=BaseModel)
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
        """The API's current next-hour prediction for ``symbol``; one from stale features comes flagged
        ``stale`` (the page says so) rather than refused."""
        payload = self._json("POST", "/predict", json={"symbol": symbol, "allow_stale": True})
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

    def performance(self, symbol: str, hours: int) -> Performance:
        """How the served forecasts of ``symbol`` fared over the last ``hours`` (``GET /performance``)."""
        return self._model(Performance, "GET", "/performance", params={"symbol": symbol, "hours": hours})

    def scoreboard(self, symbol: str) -> Scoreboard:
        """The rolling scoreboard of ``symbol``, every window (``GET /scoreboard``)."""
        return self._model(Scoreboard, "GET", "/scoreboard", params={"symbol": symbol})

    def _model(self, schema: type[ModelT], method: str, path: str, **kwargs: Any) -> ModelT:
        payload = self._json(method, path, **kwargs)
        try:
            return schema.model_validate(payload)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}"
                for error in exc.errors()[:3]
            )
            raise DashboardError(
                f"{self._name} sent a {path} answer the dashboard cannot read: {problems}"
            ) from exc

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


def _p_up_text(p_up: float) -> str:
    """``Chance of a higher close: 53.2 %`` (the calibrated ``p_up``)."""
    return f"Chance of a higher close: {p_up * 100:.1f} %"


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
        if prediction.get("p_up") is not None:
            hover += f"<br>{_p_up_text(float(prediction['p_up']))}"
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
    """The prediction's numbers as Markdown: closes, the band, ``p_up`` (when the model is calibrated),
    change, direction, times, model, data age, staleness."""
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
        *([f"- **{_p_up_text(float(p_up))}**"] if (p_up := prediction.get("p_up")) is not None else []),
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


def _short_tag(tag: str) -> str:
    """``hourcast_next_hour:yb7mdxhhf24pqax4`` -> ``yb7mdxhh``: enough to tell models apart on a chart."""
    return tag.rsplit(":", 1)[-1][:8]


def _line(
    x: list[Any], y: list[Any], colour: str, name: str, width: float = 2.0, dash: str = "solid", **extra: Any
) -> go.Scatter:
    """A named line trace."""
    import plotly.graph_objects as go

    return go.Scatter(
        x=x, y=y, mode="lines", line={"color": colour, "width": width, "dash": dash}, name=name, **extra
    )


def performance_figure(performance: Performance) -> go.Figure:
    """How the served forecasts fared: predicted vs realised close with the served band (top), and the
    trailing 24-hour MAE ratio to persistence and directional accuracy (bottom; from 12 scored hours on),
    with a dotted line where each model took over. Every point sits at its target candle's open time."""
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    figure = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.09,
        row_heights=[0.6, 0.4],
        specs=[[{}], [{"secondary_y": True}]],
        subplot_titles=("Predicted vs realised close", "Trailing 24 h: MAE ratio to persistence, direction"),
    )
    history = performance.history
    when = [_utc_naive(hour.target_time) for hour in history]
    banded = [hour for hour in history if hour.band_low is not None and hour.band_high is not None]
    if banded:
        band_x = [_utc_naive(hour.target_time) for hour in banded]
        figure.add_trace(
            go.Scatter(
                x=band_x + band_x[::-1],
                y=[hour.band_high for hour in banded] + [hour.band_low for hour in banded][::-1],
                fill="toself",
                fillcolor="rgba(111, 66, 193, 0.14)",
                line={"width": 0},
                hoverinfo="skip",
                name="5-95 % band",
            ),
            row=1,
            col=1,
        )
    figure.add_trace(
        _line(when, [hour.realised_close for hour in history], REALISED_COLOUR, "Realised close"),
        row=1,
        col=1,
    )
    predicted = _line(
        when,
        [hour.predicted_close for hour in history],
        PREDICTION_COLOUR,
        "Predicted close",
        width=1.5,
        dash="dot",
        customdata=[_short_tag(hour.model) for hour in history],
        hovertemplate="%{y:,.2f} (model %{customdata})<extra>Predicted close</extra>",
    )
    figure.add_trace(predicted, row=1, col=1)
    rolling = [point for point in performance.rolling if point.hours >= MIN_ROLLING_HOURS]
    rolling_x = [_utc_naive(point.target_time) for point in rolling]
    for field, colour, name, number, secondary in TRAILING_LINES:
        label = name.split(" (")[0]
        line = _line(
            rolling_x,
            [getattr(point, field) for point in rolling],
            colour,
            name,
            hovertemplate=f"%{{y:{number}}}<extra>{label}</extra>",
        )
        figure.add_trace(line, row=2, col=1, secondary_y=secondary)
    figure.add_hline(y=1, line={"color": RATIO_COLOUR, "dash": "dash", "width": 1}, row=2, col=1)
    start = min(when + rolling_x) if when or rolling_x else None
    for span in performance.models:
        took_over = _utc_naive(span.first) + pd.Timedelta(hours=1)  # its first answer's target hour
        if start is None or took_over <= start:
            continue
        figure.add_vline(x=took_over, line={"color": PROMOTION_COLOUR, "dash": "dot", "width": 1.5})
        figure.add_annotation(
            x=took_over,
            y=0.99,
            xref="x",
            yref="y domain",
            text=f"model {html.escape(_short_tag(span.model))} from here",
            showarrow=False,
            xanchor="left",
            yanchor="top",
            xshift=4,
            bgcolor="rgba(255, 255, 255, 0.8)",
            font={"size": 11, "color": PROMOTION_COLOUR},
        )
    quote = performance.symbol.split("/")[-1] if "/" in performance.symbol else ""
    figure.update_yaxes(title_text=f"Close ({quote})" if quote else "Close", row=1, col=1)
    figure.update_yaxes(title_text="MAE ratio", row=2, col=1, secondary_y=False)
    figure.update_yaxes(
        title_text="Direction right", tickformat=".0%", range=[0, 1], row=2, col=1, secondary_y=True
    )
    figure.update_xaxes(title_text="Target candle open time (UTC)", row=2, col=1)
    figure.update_layout(
        title={"text": f"{html.escape(performance.symbol)}: how the forecasts fared"},
        height=620,
        hovermode="x unified",
        legend={"orientation": "h", "yanchor": "top", "y": -0.14, "xanchor": "left", "x": 0.0},
        margin={"l": 60, "r": 60, "t": 90, "b": 40},
        template="plotly_white",
    )
    return figure


def _share(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def performance_markdown(scoreboard: Scoreboard | None, performance: Performance | None) -> str:
    """The current model, when it took over, a one-line verdict and the rolling figures of what was served
    (24 h, 7 d, 30 d), as Markdown with the API's text escaped."""
    production = (performance and performance.production) or (scoreboard and scoreboard.production)
    lines = [f"**Model:** {as_text(production) if production else 'none promoted'}"]
    if performance is not None:
        spans = {span.model: span for span in performance.models}
        if production in spans:
            took_over = _utc_naive(spans[production].first) + pd.Timedelta(hours=1)
            lines[0] += f", answering since {took_over:%Y-%m-%d %H:%M} UTC"
        earlier = [span for span in performance.models if span.model != production]
        if earlier:
            lines.append(
                "**Before it:** "
                + "; ".join(
                    f"{as_text(span.model)} until {_when(_utc_naive(span.last) + pd.Timedelta(hours=1))}"
                    for span in earlier[-2:]
                )
            )
    served = [row for row in (scoreboard.rows if scoreboard else []) if row.model == "all"]
    if not served or all(row.hours == 0 for row in served):
        lines.append(
            "No forecast has been scored yet: `hourcast monitor` scores them once their hour closed."
        )
        return "\n\n".join(lines)
    judged = next((row for row in served if row.window == "7d"), served[0])
    if judged.mae_ratio is not None:
        better = judged.mae_ratio < 1
        significant = judged.dm_p_value is not None and judged.dm_p_value < 0.05
        lines.append(
            f"Over the last {judged.window}, the forecast's error was "
            f"**{abs(judged.mae_ratio - 1):.1%} {'smaller' if better else 'larger'}** than persistence's "
            f"(the last close), {'a significant' if significant else 'not a significant'} difference "
            f"(Diebold-Mariano {_p_value(judged.dm_p_value)})."
            if judged.dm_p_value is not None
            else f"Over the last {judged.window}, MAE ratio to persistence {judged.mae_ratio:.3f}."
        )
    figures = {
        "hours scored": [str(row.hours) for row in served],
        "MAE ratio": [_ratio(row.mae_ratio) for row in served],
        "direction right": [_share(row.directional_accuracy) for row in served],
        "in the band": [_share(row.coverage) for row in served],
    }
    table = [
        "| | " + " | ".join(row.window for row in served) + " |",
        "|---|" + "---|" * len(served),
        *(f"| {name} | " + " | ".join(values) + " |" for name, values in figures.items()),
    ]
    return "\n\n".join(lines) + "\n\n" + "\n".join(table)


def _p_value(value: float) -> str:
    return "p < 0.01" if value < 0.01 else f"p = {value:.2f}"


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
    warnings = [f"> ⚠️ **{as_text(problem)}**" for problem in problems]
    figure = performance_figure(performance) if performance is not None and performance.history else None
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
        return refresh_performance(client, symbol, PERFORMANCE_HOURS)

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
            "## Performance\nEach served forecast against the close that followed, over the last week."
        )
        with gr.Row(elem_id="performance"):
            performance_chart = gr.Plot(label="Performance", elem_id="performance_chart", scale=3)
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
