"""Replay exchange: a local HTTP server speaking the subset of Binance's public spot REST API
that ``ccxt.binance`` needs for ``load_markets``, ``fetch_time`` and ``fetch_ohlcv``.

It serves real recorded candles against a simulated clock: only candles that opened at or before
the clock are visible, and the one in progress is served as a partial candle. A file's own interval
(1h for the bundled files) is served as is, and any multiple of it (2h, 4h, 1d, ...) is aggregated
from it as the exchange aggregates (first open, highest high, lowest low, last close, summed volume,
periods aligned to midnight UTC); candles are served as they are in the file, off-grid ones included. Faults
(rate limits, 5xx, slowness, corrupt/duplicate/missing rows) can be injected at run time.

Order flow: a kline's fields 7..10 (quote volume, number of trades, taker-buy base and quote volume) are
served from the file's optional columns ``quote_volume,trades,taker_buy_base,taker_buy_quote`` (all four or
none), summed into longer intervals (null if any candle of the period has none), scaled like the volume
for synthetic symbols and for the candle in progress. A file without them (the bundled recordings have
none) gets ``null`` in those four positions: the replay never invents order flow. The 24 h ticker's
``quoteVolume`` (what ``all-usdt`` selects by) is computed from the candles (volume times close) either way.

Market-data endpoints (what ccxt calls after its URLs are rebased onto the server)::

    GET  /api/v3/ping | /api/v3/time | /api/v3/exchangeInfo | /api/v3/klines
    GET  /api/v3/ticker/24hr     (``fetch_tickers``: last price and 24 h base and quote volume)
    GET  /fapi/v1/exchangeInfo | /dapi/v1/exchangeInfo          (no futures markets)

Synthetic symbols (:func:`synthetic_datasets`) let scale runs serve hundreds of markets offline:
``SYN001/USDT`` .. ``SYNnnn/USDT`` are NOT real markets but the recorded series rotated in time and rescaled.

Control endpoints::

    GET    /_replay/clock    -> {"now": ISO, "now_ms": int, "speed": float}
    POST   /_replay/clock    {"now": ISO | ms} or {"advance_seconds": s}, optional "speed"
    GET    /_replay/faults   -> {"config": {...}, "fired": {kind: n}, "symbols": {symbol: {...}}}
    POST   /_replay/faults   {"seed": 0, "slow_seconds": 3.0, "retry_after": 1,
                              "<kind>": {"rate": 0..1, "count": n}, ...}
                             with "symbol": "SYN003/USDT": faults of that symbol's klines only, on top
                             of the exchange-wide ones (each symbol its own counts, seed and counters)
    DELETE /_replay/faults   clear all faults and counters (exchange-wide and per symbol)

POSTs must be ``Content-Type: application/json`` (415 otherwise), so a web page cannot move the clock.

Faults only ever apply to ``/api/v3/klines``; markets, tickers, time and ping always answer.

Modules, each importing only those above it: ``binance`` (the wire shapes: market ids, decimals, errors,
exchangeInfo), ``data`` (candle files, ``SYMBOL=PATH``, synthetic symbols), ``series`` (one symbol's candles:
aggregation, kline rows, tickers), ``clock`` (the simulated clock), ``faults`` (fault injection), ``exchange``
(the state every request shares), ``server`` (Starlette routes served by uvicorn in a thread).
"""
