"""The real Gradio dashboard in headless Chromium (the ``page`` fixture: the system binary, never a
downloaded one). ``open_dashboard`` and ``select_symbol`` are reused by the test against the real service."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest
from playwright.sync_api import Page, expect

from hourcast.dashboard.layout import _gradio, build_app
from hourcast.dev.ports import free_port
from hourcast.settings import Settings
from tests.unit.test_dashboard import candles_payload, make_prediction, serve_fake_api

WAIT_MS = 20_000
_gradio()  # imported at collection: its import (a minute on a loaded machine) is not any test's time


def wait_until_idle(page: Page) -> None:
    """Wait until no refresh is pending: Gradio hides the status trackers and un-dims the outputs."""
    busy = page.locator(
        ", ".join(
            f"#{elem_id} {selector}"
            for elem_id in ("chart", "numbers", "performance_chart", "performance_numbers")
            for selector in ("[data-testid='status-tracker']:not(.hide)", ".pending")
        )
    )
    expect(busy).to_have_count(0, timeout=WAIT_MS)


def open_dashboard(page: Page, url: str) -> None:
    """Open the dashboard at ``url`` and wait until the refresh on page load has filled in the numbers."""
    page.goto(url)
    expect(page.locator("#refresh")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#numbers")).not_to_have_text("Loading…", timeout=WAIT_MS)
    expect(page.locator("#performance_numbers")).not_to_have_text("Loading…", timeout=WAIT_MS)
    wait_until_idle(page)


def refresh_now(page: Page) -> None:
    """Click Refresh, check Gradio queued the event, and wait until its results are shown."""
    with page.expect_response(lambda response: "/queue/join" in response.url) as joined:
        page.locator("#refresh").click()
    assert joined.value.ok, f"Gradio refused the refresh: HTTP {joined.value.status}"
    wait_until_idle(page)


def select_symbol(page: Page, symbol: str) -> None:
    """Pick ``symbol`` in the Symbol dropdown (open it, click the option) and wait for its refresh."""
    combobox = page.get_by_role("combobox", name="Symbol")
    combobox.click()
    page.get_by_role("option", name=symbol, exact=True).click()
    expect(combobox).to_have_value(symbol)
    wait_until_idle(page)


@contextmanager
def running_dashboard(settings: Settings) -> Iterator[str]:
    """The dashboard for ``settings`` served on a free loopback port; yields its URL."""
    demo = build_app(settings)
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        yield url
    finally:
        demo.close()


@pytest.mark.timeout(60)
def test_dashboard_says_when_the_api_is_not_reachable(page: Page, tmp_path: Path) -> None:
    with socket.socket() as dead:  # bound, never listening: connections to it are refused
        dead.bind(("127.0.0.1", 0))
        api_url = f"http://127.0.0.1:{dead.getsockname()[1]}"
        settings = Settings(symbols=["BTC/USDT", "ETH/USDT"], api_url=api_url, _env_file=None)
        with running_dashboard(settings) as url:
            open_dashboard(page, url)
            numbers = page.locator("#numbers")
            expect(numbers).to_contain_text("BTC/USDT")

            select_symbol(page, "ETH/USDT")
            expect(numbers).to_contain_text("ETH/USDT", timeout=WAIT_MS)
            refresh_now(page)

            expect(numbers).to_contain_text(f"prediction API at {api_url} is not reachable")
            expect(numbers).to_contain_text("ETH/USDT: no forecast")
            expect(page.locator("#performance_numbers")).to_contain_text("is not reachable")
            expect(page.locator("#chart")).to_be_visible()
            screenshot = tmp_path / "dashboard.png"
            page.screenshot(path=screenshot, full_page=True, animations="disabled")
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000


HOSTILE_ERROR = (
    "<img src=x id=injected-image> <a href='http://evil.example' id=injected-link>click</a> "
    "[md link](http://evil.example) redis://:hunter2@10.0.0.5:6379/0"
)


@pytest.mark.timeout(60)
def test_api_text_is_shown_as_text_without_credentials(page: Page) -> None:
    with serve_fake_api() as api:
        api.answer("/predict", 503, {"error": HOSTILE_ERROR, "status": 503})
        api.answer("/history", 503, {"error": HOSTILE_ERROR, "status": 503})
        settings = Settings(symbols=["BTC/USDT"], api_url=api.url, ui_refresh_seconds=0, _env_file=None)
        with running_dashboard(settings) as url:
            open_dashboard(page, url)
            numbers = page.locator("#numbers")
            expect(numbers).to_contain_text("<img src=x id=injected-image>")
            expect(numbers).to_contain_text("[md link](http://evil.example)")
            expect(page.locator("#injected-image")).to_have_count(0)
            expect(page.locator("#injected-link")).to_have_count(0)
            expect(numbers.locator("img, a")).to_have_count(0)
            expect(numbers).not_to_contain_text("hunter2")
            expect(numbers).to_contain_text("redis://:***@10.0.0.5:6379/0")


@pytest.mark.timeout(60)
def test_the_forecast_shows_its_band_and_p_up(page: Page, btc_recorded: pd.DataFrame) -> None:
    candles = btc_recorded.loc[btc_recorded["ts"] < pd.Timestamp("2024-03-01", tz="UTC")].tail(12)
    candles = candles.reset_index(drop=True).astype({"close": "float64"})
    prediction = make_prediction(candles)
    with serve_fake_api() as api:
        api.answer("/predict", 200, prediction)
        api.answer("/history", 200, candles_payload(candles))
        settings = Settings(symbols=["BTC/USDT"], api_url=api.url, ui_refresh_seconds=0, _env_file=None)
        with running_dashboard(settings) as url:
            open_dashboard(page, url)
            numbers = page.locator("#numbers")
            band = prediction["band"]
            expect(numbers).to_contain_text(
                f"Uncertainty: 5%-95% band: {band['low']:,.2f} to {band['high']:,.2f}"
            )
            expect(numbers).to_contain_text("Chance of a higher close: 53.2 %")
            expect(page.locator("#chart .js-plotly-plot")).to_be_visible(timeout=WAIT_MS)
            expect(page.locator("#chart")).to_contain_text("Predicted close", timeout=WAIT_MS)


@pytest.mark.timeout(90)
def test_the_performance_view_says_nothing_to_score_yet_instead_of_an_empty_chart(
    page: Page, btc_recorded: pd.DataFrame
) -> None:
    candles = btc_recorded.loc[btc_recorded["ts"] < pd.Timestamp("2024-03-01", tz="UTC")].tail(12)
    candles = candles.reset_index(drop=True).astype({"close": "float64"})
    prediction = make_prediction(candles)
    empty = {"symbol": "BTC/USDT", "newest_hour": prediction["as_of"], "production": prediction["model"]}
    with serve_fake_api() as api:
        api.answer("/predict", 200, prediction)
        api.answer("/history", 200, candles_payload(candles))
        api.answer("/performance", 200, {**empty, "history": [], "rolling": [], "models": []})
        api.answer("/scoreboard", 200, {"newest_hour": prediction["as_of"], "production": None, "rows": []})
        settings = Settings(symbols=["BTC/USDT"], api_url=api.url, ui_refresh_seconds=0, _env_file=None)
        with running_dashboard(settings) as url:
            open_dashboard(page, url)
            figures, view = page.locator("#performance_numbers"), page.locator("#performance_chart")
            expect(figures).to_contain_text("Nothing to score yet.")
            expect(figures).to_contain_text("forecast of record")
            expect(view).to_be_hidden()
            expect(page.locator(".js-plotly-plot")).to_have_count(1)  # the forecast's chart only

            # the first forecast of record is scored: the chart appears, the message goes
            last, realised = candles.iloc[-2], candles.iloc[-1]
            hour = {
                "target_time": f"{realised['ts']:%Y-%m-%dT%H:%M:%SZ}",
                "predicted_close": float(last["close"]) * 1.001,
                "realised_close": float(realised["close"]),
                "band_low": float(last["close"]) * 0.99,
                "band_high": float(last["close"]) * 1.01,
                "model": prediction["model"],
                "source": "record",
            }
            span = {"model": prediction["model"], "first": f"{last['ts']:%Y-%m-%dT%H:%M:%SZ}"}
            models = [{**span, "last": span["first"]}]
            api.answer("/performance", 200, {**empty, "history": [hour], "rolling": [], "models": models})
            refresh_now(page)
            expect(view).to_be_visible(timeout=WAIT_MS)
            expect(view.locator(".js-plotly-plot")).to_be_visible(timeout=WAIT_MS)
            expect(view).to_contain_text("Realised close", timeout=WAIT_MS)
