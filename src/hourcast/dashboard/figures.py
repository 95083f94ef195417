"""What the dashboard draws: Plotly figures and Markdown summaries, pure functions of the API's answers.

``candlestick_figure`` and ``summary_markdown`` show the last hours and the next-hour forecast;
``performance_figure`` and ``performance_markdown`` how the served forecasts fared. Text that comes from the
API is rendered as text (``as_text``: no HTML, no Markdown links or images). Plotly is imported lazily.
"""

from __future__ import annotations

import html
import math
import re
from typing import TYPE_CHECKING, Any

import pandas as pd

from hourcast.serving.schema import ModelCard, Performance, Scoreboard

if TYPE_CHECKING:
    import plotly.graph_objects as go

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
MIN_ROLLING_HOURS = 12  # a trailing figure over fewer scored hours is noise: not drawn
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


NOTHING_TO_SCORE = (
    "**Nothing to score yet.** No forecast has been scored yet: every hour the ingest logs the production "
    "model's forecast of record for each symbol, and the monitor scores it once the hour it forecasts has "
    "closed, so the first scores appear about two hours after the first ingest."
)
"""What the Performance view says, instead of a chart, while no forecast has been scored."""


def has_scored_hours(performance: Performance | None) -> bool:
    """Whether the Performance view has an hour whose realised close is known (else no chart is drawn)."""
    return performance is not None and any(hour.realised_close is not None for hour in performance.history)


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
        lines.append(NOTHING_TO_SCORE)
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


def model_card_markdown(card: ModelCard) -> str:
    """The served model's training window and how it compared with persistence on its promotion gate."""
    days = "unknown" if card.training_days is None else f"{card.training_days:g} days"
    lines = [f"- **Trained on:** {days}" + (f" ({card.training_rows:,} rows)" if card.training_rows else "")]
    gate = card.gate
    if gate is None:
        return "\n".join([*lines, "- **Promotion gate:** no figures saved with this model"])
    verdict = "better" if gate.mae_ratio < 1 else "worse"
    p_value = f", Diebold-Mariano {_p_value(gate.dm_p_value)}" if gate.dm_p_value is not None else ""
    weeks = f"{gate.weeks} week{'' if gate.weeks == 1 else 's'}"
    lines.append(
        f"- **Promotion gate ({weeks}, {gate.hours} hours):** MAE {gate.mae:,.2f} vs persistence "
        f"{gate.persistence_mae:,.2f}, ratio {gate.mae_ratio:.4f}: {abs(1 - gate.mae_ratio):.1%} {verdict} "
        f"than persistence{p_value}"
    )
    return "\n".join(lines)
