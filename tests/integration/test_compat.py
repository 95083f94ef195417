"""The private APIs of ``hourcast.compat.ccxt`` against a real server (the replay exchange): a replaced
``throttle`` spaces every request of the client and of its thread copies, and a thread copy sends its requests
through its own ``session``. (Versions and shapes: ``tests/unit/test_compat.py``.)"""

from __future__ import annotations

from typing import Any

import ccxt
import requests

from hourcast.compat.ccxt import replace_throttle, thread_copy
from hourcast.data.exchange import make_client
from hourcast.dev.replay.server import ReplayServer
from hourcast.settings import Settings


def replay_client(server: ReplayServer) -> ccxt.Exchange:
    """hourcast's ccxt client (rate limit on) for the replay exchange."""
    return make_client(Settings(exchange_url=server.url, _env_file=None))


def test_a_replaced_throttle_spaces_the_requests_of_the_client_and_its_copies(replay: ReplayServer) -> None:
    client = replay_client(replay)
    costs: list[float | None] = []
    replace_throttle(client, costs.append)
    client.publicGetTime()
    thread_copy(client).publicGetKlines({"symbol": "BTCUSDT", "interval": "1h", "limit": 5})
    assert len(costs) == 2 and all(cost is not None and cost > 0 for cost in costs), costs


def test_a_thread_copy_sends_through_its_own_session_and_shares_the_rest(replay: ReplayServer) -> None:
    client = replay_client(replay)
    client.load_markets()
    copied = thread_copy(client)
    assert copied.session is not client.session and copied.session.trust_env is client.requests_trust_env
    assert copied.markets is client.markets and copied.options is client.options
    sent: list[str] = []

    def record(response: requests.Response, *args: Any, **kwargs: Any) -> None:
        sent.append(response.url)

    copied.session.hooks["response"].append(record)
    client.last_response_headers = None
    copied.publicGetTime()
    assert sent == [f"{replay.url}/api/v3/time"]
    assert copied.last_response_headers and client.last_response_headers is None
