"""The Binance wire shapes the replay exchange answers with: market ids, 8-place decimal strings, the
``{"code", "msg"}`` error, klines query parameters and the ``exchangeInfo`` bodies (spot, and the empty
futures ones).

May import: ``hourcast.errors``.
"""

from __future__ import annotations

from typing import Any

from hourcast.errors import HourcastError

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000
RATE_LIMIT_MSG = (
    "Too many requests; current limit of IP is 6000 requests per minute. "
    "Please use the websocket for live updates to avoid bans."
)
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]
ORDER_TYPES = ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT"]
EMPTY_FUTURES_INFO = {"timezone": "UTC", "rateLimits": [], "exchangeFilters": [], "symbols": []}


class ReplayError(HourcastError):
    """A request the replay exchange rejects, answered as a Binance-style ``{"code", "msg"}`` body."""

    def __init__(self, status: int, code: int, msg: str) -> None:
        super().__init__(msg)
        self.status = status
        self.code = code
        self.msg = msg


def decimal_text(value: float) -> str:
    """Binance-style decimal string with 8 places."""
    return f"{value:.8f}"


def market_id(symbol: str) -> str:
    """Binance market id of a unified symbol: ``BTC/USDT`` -> ``BTCUSDT``."""
    base, _, quote = symbol.partition("/")
    if not base or not quote or "/" in quote:
        raise ValueError(f"symbol must look like BASE/QUOTE, got {symbol!r}")
    return f"{base}{quote}".upper()


def int_param(query: dict[str, str], name: str) -> int | None:
    """An optional integer query parameter; Binance error -1100 if it is not an integer."""
    value = query.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ReplayError(400, -1100, f"Illegal characters found in parameter '{name}'.") from None


def exchange_info(server_time: int, markets: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """Spot ``/api/v3/exchangeInfo`` body of ``markets`` (market id -> (base, quote))."""
    return {
        "timezone": "UTC",
        "serverTime": server_time,
        "rateLimits": RATE_LIMITS,
        "exchangeFilters": [],
        "symbols": [symbol_info(mid, base, quote) for mid, (base, quote) in markets.items()],
    }


def symbol_info(mid: str, base: str, quote: str) -> dict[str, Any]:
    """One spot market of ``exchangeInfo``: trading, 8-place precisions, Binance's usual filters."""
    return {
        "symbol": mid,
        "status": "TRADING",
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ORDER_TYPES,
        "icebergAllowed": True,
        "ocoAllowed": True,
        "quoteOrderQtyMarketAllowed": True,
        "allowTrailingStop": True,
        "cancelReplaceAllowed": True,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": "0.01000000",
                "maxPrice": "1000000.00000000",
                "tickSize": "0.01000000",
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": "0.00001000",
                "maxQty": "9000.00000000",
                "stepSize": "0.00001000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": "5.00000000",
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
        ],
        "permissions": ["SPOT"],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
        "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
    }
