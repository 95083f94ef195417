"""The real Gradio dashboard in headless Chromium (the ``page`` fixture: the system binary, never a
downloaded one). ``open_dashboard`` and ``select_symbol`` are reused by the test against the real service."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from hourcast.dashboard import build_app
from hourcast.settings import Settings
from tests.integration.conftest import free_port

WAIT_MS = 20_000


def wait_until_idle(page: Page) -> None:
    """Wait until no refresh is pending: Gradio hides the status trackers and un-dims the outputs."""
    busy = page.locator(
        ", ".join(
            f"#{elem_id} {selector}"
            for elem_id in ("chart", "numbers")
            for selector in ("[data-testid='status-tracker']:not(.hide)", ".pending")
        )
    )
    expect(busy).to_have_count(0, timeout=WAIT_MS)


def open_dashboard(page: Page, url: str) -> None:
    """Open the dashboard at ``url`` and wait until the refresh on page load has filled in the numbers."""
    page.goto(url)
    expect(page.locator("#refresh")).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#numbers")).not_to_have_text("Loading…", timeout=WAIT_MS)
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


@pytest.mark.timeout(60)
def test_dashboard_says_when_the_api_is_not_reachable(page: Page, tmp_path: Path) -> None:
    with socket.socket() as dead:  # bound, never listening: connections to it are refused
        dead.bind(("127.0.0.1", 0))
        api_url = f"http://127.0.0.1:{dead.getsockname()[1]}"
        settings = Settings(symbols=["BTC/USDT", "ETH/USDT"], api_url=api_url, _env_file=None)
        demo = build_app(settings)
        _, url, _ = demo.launch(
            server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
        )
        try:
            open_dashboard(page, url)
            numbers = page.locator("#numbers")
            expect(numbers).to_contain_text("BTC/USDT")

            select_symbol(page, "ETH/USDT")
            expect(numbers).to_contain_text("ETH/USDT", timeout=WAIT_MS)
            refresh_now(page)

            expect(numbers).to_contain_text(f"prediction API at {api_url} is not reachable")
            expect(numbers).to_contain_text("ETH/USDT: no forecast")
            expect(page.locator("#chart")).to_be_visible()
            screenshot = tmp_path / "dashboard.png"
            page.screenshot(path=screenshot, full_page=True, animations="disabled")
        finally:
            demo.close()
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000


HOSTILE_ERROR = (
    "<img src=x id=injected-image> <a href='http://evil.example' id=injected-link>click</a> "
    "[md link](http://evil.example) redis://:hunter2@10.0.0.5:6379/0"
)


@pytest.fixture
def hostile_api() -> Iterator[str]:
    """An HTTP server answering every request with a 503 whose error text carries HTML, a Markdown link
    and a credential."""

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload = json.dumps({"error": HOSTILE_ERROR, "status": 503}).encode()
            self.send_response(503)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = _answer

        def log_message(self, format: str, *args: object) -> None:
            """Quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(5)


@pytest.mark.timeout(60)
def test_api_text_is_shown_as_text_without_credentials(page: Page, hostile_api: str) -> None:
    settings = Settings(symbols=["BTC/USDT"], api_url=hostile_api, ui_refresh_seconds=0, _env_file=None)
    demo = build_app(settings)
    _, url, _ = demo.launch(
        server_name="127.0.0.1", server_port=free_port(), prevent_thread_lock=True, quiet=True
    )
    try:
        open_dashboard(page, url)
        numbers = page.locator("#numbers")
        expect(numbers).to_contain_text("<img src=x id=injected-image>")
        expect(numbers).to_contain_text("[md link](http://evil.example)")
        expect(page.locator("#injected-image")).to_have_count(0)
        expect(page.locator("#injected-link")).to_have_count(0)
        expect(numbers.locator("img, a")).to_have_count(0)
        expect(numbers).not_to_contain_text("hunter2")
        expect(numbers).to_contain_text("redis://:***@10.0.0.5:6379/0")
    finally:
        demo.close()
