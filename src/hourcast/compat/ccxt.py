"""ccxt's private APIs: a synchronous client's request spacing (``throttle``) and HTTP session (``session``).

ccxt is not imported here: the functions take a client the caller built.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import TYPE_CHECKING

from requests import Session

if TYPE_CHECKING:
    import ccxt

DISTRIBUTION = "ccxt"
CHECKED_VERSIONS = ">=4.5.64,<4.6"
"""Checked against ccxt 4.5.64 (synchronous clients)."""


def replace_throttle(client: ccxt.Exchange, throttle: Callable[[float | None], None]) -> None:
    """Make every request of ``client``, and of the copies later made from it (``thread_copy``), wait on
    ``throttle(cost)`` (``cost``: ccxt's weight of the endpoint) instead of ccxt's own spacing.

    Why private: ccxt calls its ``throttle(cost)`` method before each request when ``enableRateLimit`` is
    on (``Exchange.fetch2``), but documents no way to replace it; its own spacing keeps the last request's
    time per client and is not thread-safe."""
    client.throttle = throttle  # type: ignore[method-assign]


def thread_copy(client: ccxt.Exchange) -> ccxt.Exchange:
    """A copy of ``client`` for another thread: markets, options, URLs and ``throttle`` shared (a shallow
    copy); its own HTTP session (trusting the environment as ``client``'s does), so connections, cookies and
    ``last_response_headers`` are not mixed between threads.

    Why private: a synchronous ccxt client sends every request through the ``requests.Session`` it creates in
    ``__init__`` and keeps in the undocumented attribute ``session``; ccxt offers no way to clone a client."""
    copied = copy.copy(client)
    copied.session = Session()
    copied.session.trust_env = client.requests_trust_env
    return copied
