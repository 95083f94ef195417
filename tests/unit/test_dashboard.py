"""The dashboard's renderers on recorded candles, and its API client against a real loopback HTTP server.

The server is a stand-in for the prediction API's contract (``POST /predict``, ``GET /history``): it serves
canned JSON and records what it was asked.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pandas as pd
import plotly.graph_objects as go
import pytest

from hourcast.dashboard.client import ApiClient, DashboardError
from hourcast.dashboard.figures import (
    as_text,
    candlestick_figure,
    performance_figure,
    performance_markdown,
    summary_markdown,
)
from hourcast.dashboard.layout import refresh, refresh_performance
from hourcast.monitor import scoreboard, scoring
from hourcast.serving.schema import Performance, Scoreboard
from hourcast.settings import Settings

END = pd.Timestamp("2024-03-01T00:00:00Z")


@pytest.fixture
def candles(btc_recorded: pd.DataFrame) -> pd.DataFrame:
    """The 12 recorded BTC/USDT candles before 2024-03-01, as ``ApiClient.history`` returns them."""
    window = btc_recorded.loc[btc_recorded["ts"] < END].tail(12).reset_index(drop=True)
    return window.astype({column: "float64" for column in ["open", "high", "low", "close", "volume"]})


def make_prediction(candles: pd.DataFrame, **overrides: object) -> dict[str, object]:
    """A ``/predict`` answer for the hour after ``candles``: up 0.3 %, band -0.5 % to +1.1 %, p_up 0.5321."""
    last = float(candles["close"].iloc[-1])
    as_of = candles["ts"].iloc[-1]
    predicted = round(last * 1.003, 2)
    payload: dict[str, object] = {
        "symbol": "BTC/USDT",
        "as_of": as_of.isoformat(),
        "target_time": (as_of + pd.Timedelta(hours=1)).isoformat(),
        "last_close": last,
        "predicted_close": predicted,
        "predicted_return": predicted / last - 1,
        "direction": "up",
        "persistence_close": last,
        "model": "hourcast_next_hour:abc123",
        "features_age_seconds": 2460.0,
        "stale": False,
        "band": {"low": round(last * 0.995, 2), "high": round(last * 1.011, 2), "quantiles": [0.05, 0.95]},
        "p_up": 0.5321,
        "clock": "exchange",
    }
    return payload | overrides


def candles_payload(candles: pd.DataFrame) -> dict[str, object]:
    """A ``/history`` answer carrying ``candles``."""
    rows = candles.assign(ts=candles["ts"].map(pd.Timestamp.isoformat)).to_dict("records")
    return {"symbol": "BTC/USDT", "candles": rows}


@dataclass
class FakeApi:
    """What the loopback API answers per path (status, body) and the requests it received."""

    url: str
    routes: dict[str, tuple[int, bytes]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, list[str]], bytes]] = field(default_factory=list)

    def answer(self, path: str, status: int, body: object) -> None:
        """Serve ``body`` (JSON unless bytes) with ``status`` on ``path``."""
        self.routes[path] = (status, body if isinstance(body, bytes) else json.dumps(body).encode())


@pytest.fixture
def api() -> Iterator[FakeApi]:
    """A real HTTP server on 127.0.0.1 with a free port, answering from ``FakeApi.routes``."""
    with serve_fake_api() as fake:
        yield fake


@contextmanager
def serve_fake_api() -> Iterator[FakeApi]:
    """A real HTTP server on 127.0.0.1 with a free port, answering from ``FakeApi.routes``."""
    fake = FakeApi(url="")

    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            parts = urlsplit(self.path)
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            fake.requests.append((self.command, parts.path, parse_qs(parts.query), body))
            status, payload = fake.routes.get(parts.path, (404, b'{"error": "not found"}'))
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _serve

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.fixture
def dead_url() -> Iterator[str]:
    """A loopback URL whose port is bound but not listening, so connections are refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def trace(figure: go.Figure, name: str) -> go.BaseTraceType:
    """The one trace called ``name``."""
    (found,) = [item for item in figure.data if item.name == name]
    return found


def test_figure_has_the_candles_the_predicted_close_and_its_band(candles: pd.DataFrame) -> None:
    prediction = make_prediction(candles)
    figure = candlestick_figure(candles, prediction)

    sticks = trace(figure, "Hourly candles")
    assert sticks.type == "candlestick"
    assert len(sticks.x) == 12
    assert pd.Timestamp(sticks.x[-1]) == candles["ts"].iloc[-1].tz_localize(None)
    assert list(sticks.close) == list(candles["close"])
    assert list(sticks.high) == list(candles["high"])

    marker = trace(figure, "Predicted close")
    target = pd.Timestamp(prediction["target_time"]).tz_localize(None)
    assert [pd.Timestamp(x) for x in marker.x] == [target]
    assert list(marker.y) == [prediction["predicted_close"]]
    assert marker.mode == "markers"
    band = prediction["band"]
    assert marker.error_y.visible is not False
    assert marker.y[0] + marker.error_y.array[0] == pytest.approx(band["high"])
    assert marker.y[0] - marker.error_y.arrayminus[0] == pytest.approx(band["low"])

    path = trace(figure, "Forecast path")
    assert list(path.y) == [prediction["last_close"], prediction["predicted_close"]]
    assert path.line.dash == "dash"

    layout = figure.layout
    assert "BTC/USDT" in layout.title.text
    assert layout.xaxis.title.text and layout.yaxis.title.text == "Price (USDT)"
    assert layout.xaxis.rangeslider.visible is False


def test_figure_draws_whatever_it_has(candles: pd.DataFrame) -> None:
    only_candles = candlestick_figure(candles, None, symbol="ETH/USDT")
    assert [item.name for item in only_candles.data] == ["Hourly candles"]
    assert "ETH/USDT" in only_candles.layout.title.text

    no_band = make_prediction(candles)
    del no_band["band"]
    only_prediction = candlestick_figure(candles.iloc[0:0], no_band)
    assert {item.name for item in only_prediction.data} == {"Forecast path", "Predicted close"}
    assert trace(only_prediction, "Predicted close").error_y.array is None


def test_summary_has_the_numbers(candles: pd.DataFrame) -> None:
    prediction = make_prediction(candles)
    text = summary_markdown(prediction)
    last, predicted = prediction["last_close"], prediction["predicted_close"]
    assert f"{last:,.2f}" in text
    assert f"{predicted:,.2f}" in text
    assert f"{predicted - last:+,.2f}" in text
    assert f"({(predicted / last - 1) * 100:+.2f} %)" in text
    assert "▲ up" in text
    assert "2024-02-29 23:00 UTC" in text  # as_of: the last closed candle's open time
    assert "2024-03-01 01:00 UTC" in text  # when the predicted candle closes
    assert as_text("hourcast_next_hour:abc123") in text
    assert "41 min" in text
    assert f"{prediction['band']['low']:,.2f}" in text
    assert "STALE" not in text


def test_the_band_and_p_up_are_in_the_numbers_and_the_hover(candles: pd.DataFrame) -> None:
    prediction = make_prediction(candles)
    band = prediction["band"]
    shown = f"5%-95% band: {band['low']:,.2f} to {band['high']:,.2f}"
    text = summary_markdown(prediction)
    assert f"**Uncertainty:** {shown}" in text
    assert "**Chance of a higher close: 53.2 %**" in text
    hover = trace(candlestick_figure(candles, prediction), "Predicted close").hovertext[0]
    assert shown in hover and "Chance of a higher close: 53.2 %" in hover

    uncalibrated = make_prediction(candles, p_up=None)  # a model saved before calibration existed
    assert "Chance of a higher close" not in summary_markdown(uncalibrated)
    hover = trace(candlestick_figure(candles, uncalibrated), "Predicted close").hovertext[0]
    assert "Chance" not in hover and shown in hover


@pytest.mark.parametrize(
    ("age", "shown"),
    [(12.4, "12 s"), (2460, "41 min"), (3 * 3600 + 300, "3 h 05 min"), (50 * 3600, "2 d 2 h")],
)
def test_summary_warns_when_stale(candles: pd.DataFrame, age: float, shown: str) -> None:
    last = make_prediction(candles)["last_close"]
    text = summary_markdown(
        make_prediction(
            candles, stale=True, features_age_seconds=age, direction="down", predicted_close=last - 5
        )
    )
    assert "**STALE**" in text
    assert f"features are {shown} old" in text
    assert "▼ down" in text
    assert "-5.00" in text


def test_client_reads_prediction_and_history(api: FakeApi, candles: pd.DataFrame) -> None:
    prediction = make_prediction(candles)
    api.answer("/predict", 200, prediction)
    api.answer("/history", 200, candles_payload(candles))
    client = ApiClient(api.url + "/")

    assert client.prediction("BTC/USDT") == prediction
    history = client.history("BTC/USDT", 12)

    assert list(history.columns) == ["ts", "open", "high", "low", "close", "volume"]
    assert str(history["ts"].dt.tz) == "UTC"
    assert all(history[column].dtype == "float64" for column in ["open", "high", "low", "close", "volume"])
    pd.testing.assert_series_equal(history["close"], candles["close"])
    assert list(history["ts"]) == list(candles["ts"])

    (method, path, _, body), (method2, path2, query, _) = api.requests
    assert (method, path, json.loads(body)) == (
        "POST",
        "/predict",
        {"symbol": "BTC/USDT", "allow_stale": True},  # a stale forecast is shown flagged, not refused
    )
    assert (method2, path2, query) == ("GET", "/history", {"symbol": ["BTC/USDT"], "hours": ["12"]})


def test_client_reads_an_empty_history(api: FakeApi) -> None:
    api.answer("/history", 200, {"symbol": "BTC/USDT", "candles": []})
    history = ApiClient(api.url).history("BTC/USDT", 12)
    assert history.empty
    assert list(history.columns) == ["ts", "open", "high", "low", "close", "volume"]


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (503, {"error": "features for BTC/USDT are 3 h old"}, "says: features for BTC/USDT are 3 h old"),
        (503, b"Service Unavailable", "says: Service Unavailable"),
        (
            422,
            {"error": "unknown symbol DOGE/USDT"},
            "rejected the request (HTTP 422): unknown symbol DOGE/USDT",
        ),
        (
            500,
            b"<html>Internal\n Server Error</html>",
            "failed (HTTP 500): <html>Internal Server Error</html>",
        ),
        (200, b"not json", "with something that is not JSON"),
        (200, {"symbol": "BTC/USDT"}, "sent a prediction the dashboard cannot read: as_of: Field required"),
        (
            503,
            {"error": "online store redis (redis://:hunter2@10.0.0.5:6379/0) is unreachable", "status": 503},
            "says: online store redis (redis://:***@10.0.0.5:6379/0) is unreachable",
        ),
    ],
)
def test_client_errors_are_worded_for_people(api: FakeApi, status: int, body: object, expected: str) -> None:
    api.answer("/predict", status, body)
    with pytest.raises(DashboardError) as caught:
        ApiClient(api.url).prediction("BTC/USDT")
    assert caught.value.message.startswith(f"prediction API at {api.url} ")
    assert expected in caught.value.message


def test_client_rejects_a_bad_prediction(api: FakeApi, candles: pd.DataFrame) -> None:
    api.answer("/predict", 200, make_prediction(candles, last_close="n/a"))
    with pytest.raises(DashboardError, match="sent a prediction the dashboard cannot read"):
        ApiClient(api.url).prediction("BTC/USDT")


def test_client_rejects_a_bad_history(api: FakeApi) -> None:
    api.answer("/history", 200, {"symbol": "BTC/USDT", "candles": [{"ts": "yesterday-ish", "close": "x"}]})
    with pytest.raises(DashboardError, match="sent a history the dashboard cannot read"):
        ApiClient(api.url).history("BTC/USDT", 12)


def test_client_says_when_the_api_is_not_reachable(dead_url: str) -> None:
    with pytest.raises(DashboardError, match=f"prediction API at {dead_url} is not reachable"):
        ApiClient(dead_url, timeout=1.0).prediction("BTC/USDT")


def test_refresh_never_raises_when_the_api_is_down(dead_url: str) -> None:
    figure, text = refresh(ApiClient(dead_url, timeout=1.0), "ETH/USDT", 12)
    assert figure is None
    assert "ETH/USDT" in text
    assert text.count("is not reachable") == 1


def test_refresh_shows_history_when_the_prediction_is_refused(api: FakeApi, candles: pd.DataFrame) -> None:
    api.answer("/history", 200, candles_payload(candles))
    api.answer("/predict", 503, {"error": "features are stale (age 3 h)"})
    figure, text = refresh(ApiClient(api.url), "BTC/USDT", 12)
    assert figure is not None
    assert [item.name for item in figure.data] == ["Hourly candles"]
    assert as_text("says: features are stale (age 3 h)") in text
    assert "last 12 candles" in text


def test_refresh_shows_chart_and_numbers(api: FakeApi, candles: pd.DataFrame) -> None:
    api.answer("/history", 200, candles_payload(candles))
    api.answer("/predict", 200, make_prediction(candles, stale=True))
    figure, text = refresh(ApiClient(api.url), "BTC/USDT", 12)
    assert figure is not None
    assert {item.name for item in figure.data} == {"Hourly candles", "Forecast path", "Predicted close"}
    assert "**STALE**" in text
    assert "⚠️ **prediction API" not in text


@pytest.mark.parametrize("seconds", [0, 45])
def test_app_refreshes_on_load_click_symbol_and_timer(seconds: float) -> None:
    import gradio as gr

    from hourcast.dashboard.layout import build_app

    settings = Settings(symbols=["BTC/USDT", "ETH/USDT"], ui_refresh_seconds=seconds, _env_file=None)
    demo = build_app(settings)
    by_id = {block.elem_id: block for block in demo.blocks.values() if getattr(block, "elem_id", None)}
    assert isinstance(by_id["symbol"], gr.Dropdown)
    assert [value for _, value in by_id["symbol"].choices] == ["BTC/USDT", "ETH/USDT"]
    assert isinstance(by_id["chart"], gr.Plot)
    assert isinstance(by_id["numbers"], gr.Markdown)
    assert isinstance(by_id["refresh"], gr.Button)
    timers = [block for block in demo.blocks.values() if isinstance(block, gr.Timer)]
    assert [timer.value for timer in timers] == ([seconds] if seconds else [])
    assert isinstance(by_id["performance_chart"], gr.Plot)
    assert isinstance(by_id["performance_numbers"], gr.Markdown)
    views = {
        (by_id["chart"]._id, by_id["numbers"]._id),
        (by_id["performance_chart"]._id, by_id["performance_numbers"]._id),
    }
    wired: dict[tuple, set] = {}
    for fn in demo.fns.values():
        assert [block._id for block in fn.inputs] == [by_id["symbol"]._id]
        for target in fn.targets:
            wired.setdefault(target, set()).add(tuple(block._id for block in fn.outputs))
    expected = [(demo._id, "load"), (by_id["refresh"]._id, "click"), (by_id["symbol"]._id, "change")]
    expected += [(timer._id, "tick") for timer in timers]
    assert wired == dict.fromkeys(expected, views)


HOSTILE = (
    "<img src=x onerror=alert(1)> <a href='http://evil.example'>click</a> "
    "[link](http://evil.example) ![i](x.png)"
)


@pytest.mark.parametrize("text", [HOSTILE, "a_b*c* `code` # head | pipe ~~s~~ 1. item > quote"])
def test_api_text_is_rendered_as_literal_text(text: str) -> None:
    rendered = as_text(text)
    assert "<" not in rendered and "](" not in rendered and "`" not in rendered.replace("\\`", "")
    import markdown_it

    shown = markdown_it.MarkdownIt().render(rendered)
    assert "<img" not in shown and "<a " not in shown and "<code>" not in shown and "<em>" not in shown
    assert html_text(shown) == text


def html_text(rendered: str) -> str:
    """The text a browser shows for rendered HTML."""
    import html as html_module
    import re

    return html_module.unescape(re.sub(r"<[^>]+>", "", rendered)).strip()


def test_api_text_in_the_numbers_and_warnings_is_inert(api: FakeApi, candles: pd.DataFrame) -> None:
    api.answer("/history", 200, candles_payload(candles))
    api.answer("/predict", 200, make_prediction(candles, model=HOSTILE))
    _, text = refresh(ApiClient(api.url), "BTC/USDT", 12)
    assert HOSTILE not in text and as_text(HOSTILE) in text

    api.answer("/predict", 503, {"error": HOSTILE, "status": 503})
    _, text = refresh(ApiClient(api.url), "BTC/USDT", 12)
    assert "<img" not in text and "<a " not in text and "](" not in text


HOUR = pd.Timedelta(hours=1)


def scored_payloads(btc_recorded: pd.DataFrame) -> tuple[dict, dict]:
    """``/performance`` and ``/scoreboard`` answers built by the monitor from 60 recorded BTC/USDT hours
    answered by two models (``m:1`` for 30 hours, then ``m:2``), predicted 0.1 % above the last close."""
    start = END
    candles = btc_recorded.loc[(btc_recorded["ts"] >= start) & (btc_recorded["ts"] <= start + 61 * HOUR)]
    candles = candles.assign(symbol="BTC/USDT")[["symbol", "ts", "close"]].reset_index(drop=True)
    rows = []
    for hour in range(60):
        as_of = start + hour * HOUR
        last = float(candles.loc[candles["ts"] == as_of, "close"].iloc[0])
        rows.append(
            {
                "requested_at": as_of + HOUR,
                "symbol": "BTC/USDT",
                "as_of": as_of,
                "target_time": as_of + HOUR,
                "last_close": last,
                "predicted_close": last * 1.001,
                "model": "m:1" if hour < 30 else "m:2",
                "stale": False,
                "band_low": last * 0.995,
                "band_high": last * 1.005,
            }
        )
    scores, _ = scoring.score_predictions(scoring.distinct_predictions(pd.DataFrame(rows)), candles)
    now = start + 60 * HOUR
    view = scoreboard.performance(scores, "BTC/USDT", now, 48)

    def iso(frame: pd.DataFrame, columns: list[str]) -> list[dict]:
        return scoreboard.json_records(
            frame.assign(**{c: frame[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ") for c in columns})
        )

    performance = {
        "symbol": "BTC/USDT",
        "newest_hour": now.isoformat(),
        "production": "m:2",
        "history": iso(view["history"].drop(columns="status"), ["target_time"]),
        "rolling": iso(view["rolling"], ["target_time"]),
        "models": iso(view["models"], ["first", "last"]),
    }
    board = {
        "newest_hour": now.isoformat(),
        "production": "m:2",
        "rows": scoreboard.json_records(scoreboard.scoreboard(scores, now)),
    }
    return performance, board


def test_performance_figure_draws_both_panels_and_marks_the_promotion(btc_recorded: pd.DataFrame) -> None:
    performance, _ = scored_payloads(btc_recorded)
    view = Performance.model_validate(performance)
    figure = performance_figure(view)
    assert {item.name for item in figure.data} == {
        "5-95 % band",
        "Realised close",
        "Predicted close",
        "MAE ratio (below 1 beats persistence)",
        "Directional accuracy",
    }
    realised = trace(figure, "Realised close")
    assert list(realised.y) == [hour.realised_close for hour in view.history] and len(realised.y) == 48
    band = trace(figure, "5-95 % band")
    assert (
        len(band.x) == 96
        and band.y[0] == view.history[0].band_high
        and band.y[-1] == view.history[0].band_low
    )
    ratio = trace(figure, "MAE ratio (below 1 beats persistence)")
    drawn = [point for point in view.rolling if point.hours >= 12]  # fewer scored hours: not drawn
    assert ratio.yaxis == "y2" and list(ratio.y) == [point.mae_ratio for point in drawn] and len(drawn) == 48
    assert ratio.hovertemplate == "%{y:.3f}<extra>MAE ratio</extra>"
    accuracy = trace(figure, "Directional accuracy")
    assert accuracy.yaxis == "y3" and list(accuracy.y) == [point.directional_accuracy for point in drawn]
    assert accuracy.hovertemplate == "%{y:.0%}<extra>Directional accuracy</extra>"
    promoted = END + 31 * HOUR  # m:2 answered as of hour 30: its first target hour
    marks = [shape for shape in figure.layout.shapes if shape.line.dash == "dot"]  # one per panel
    assert {(pd.Timestamp(shape.x0), shape.yref) for shape in marks} == {
        (promoted.tz_localize(None), "y domain"),
        (promoted.tz_localize(None), "y2 domain"),
    }
    assert any(note.text == "model 2 from here" for note in figure.layout.annotations)  # the tag's version


def test_performance_numbers_say_the_model_the_verdict_and_the_windows(btc_recorded: pd.DataFrame) -> None:
    performance, board = scored_payloads(btc_recorded)
    text = performance_markdown(Scoreboard.model_validate(board), Performance.model_validate(performance))
    assert "**Model:** m\\:2, answering since 2024-03-02 07:00 UTC" in text
    assert "**Before it:** m\\:1 until 2024-03-02 06:00 UTC" in text
    served = {row["window"]: row for row in board["rows"] if row["model"] == "all"}
    ratio = served["7d"]["mae_ratio"]
    assert f"{abs(ratio - 1):.1%} {'smaller' if ratio < 1 else 'larger'}" in text
    assert "| | 24h | 7d | 30d |" in text and "| hours scored | 24 | 60 | 60 |" in text
    assert f"| MAE ratio | {served['24h']['mae_ratio']:.3f} | {ratio:.3f} | {ratio:.3f} |" in text
    assert f"| direction right | {served['24h']['directional_accuracy']:.0%} |" in text
    empty = {"newest_hour": None, "production": None, "rows": []}
    assert "No forecast has been scored yet" in performance_markdown(Scoreboard.model_validate(empty), None)


def test_refresh_performance_reads_the_api_and_says_what_failed(
    api: FakeApi, btc_recorded: pd.DataFrame
) -> None:
    performance, board = scored_payloads(btc_recorded)
    api.answer("/performance", 200, performance)
    api.answer("/scoreboard", 200, board)
    figure, text = refresh_performance(ApiClient(api.url), "BTC/USDT", 48)
    assert figure is not None and "⚠️" not in text and "**Model:** m\\:2" in text
    queries = {path: query for _, path, query, _ in api.requests}
    assert queries == {
        "/performance": {"symbol": ["BTC/USDT"], "hours": ["48"]},
        "/scoreboard": {"symbol": ["BTC/USDT"]},
    }

    api.answer("/performance", 200, {**performance, "history": [{"target_time": "x"}]})
    api.answer("/scoreboard", 503, {"error": "the scores dataset did not answer within 5 s", "status": 503})
    figure, text = refresh_performance(ApiClient(api.url), "BTC/USDT", 48)
    assert figure is None
    assert as_text("sent a /performance answer the dashboard cannot read: history.0.predicted_close") in text
    assert as_text("says: the scores dataset did not answer within 5 s") in text


def test_refresh_performance_never_raises_when_the_api_is_down(dead_url: str) -> None:
    figure, text = refresh_performance(ApiClient(dead_url, timeout=1.0), "ETH/USDT", 48)
    assert figure is None and text.count("is not reachable") == 1


MODEL_CARD = {
    "model": "hourcast_next_hour:abc123",
    "trained_from": "2024-01-02 01:00:00+00:00",
    "trained_until": "2025-01-01 00:00:00+00:00",
    "training_days": 365.0,
    "training_rows": 17520,
    "gate": {
        "weeks": 1,
        "hours": 336,
        "mae": 148.8504,
        "persistence_mae": 149.8092,
        "mae_ratio": 0.9936,
        "dm_p_value": 0.655,
    },
    "summary": "trained on 365 days; gate: ...",
}


def test_the_numbers_say_how_the_model_compared_with_persistence_on_its_gate(
    api: FakeApi, candles: pd.DataFrame
) -> None:
    api.answer("/history", 200, candles_payload(candles))
    api.answer("/predict", 200, make_prediction(candles))
    api.answer("/model", 200, MODEL_CARD)
    _, text = refresh(ApiClient(api.url), "BTC/USDT", 12)
    assert "- **Trained on:** 365 days (17,520 rows)" in text
    assert (
        "- **Promotion gate (1 week, 336 hours):** MAE 148.85 vs persistence 149.81, ratio 0.9936: "
        "0.6% better than persistence, Diebold-Mariano p = 0.66"
    ) in text
    api.answer("/model", 503, {"error": "no model is loaded yet"})
    _, text = refresh(ApiClient(api.url), "BTC/USDT", 12)
    assert "- **Promotion gate:** not known (" in text and as_text("no model is loaded yet") in text
