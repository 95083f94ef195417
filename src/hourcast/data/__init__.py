"""Stage 1, the data layer: candles from an exchange to the validated Parquet archive.

Owns the candle frame (``candles``), the exchange client (``exchange``) and the symbol list it serves
(``selection``), Great Expectations validation (``validation``), the month-partitioned store (``store``), the
hourly ingest and backfill (``ingest``), the completeness state (``completeness``), quarantined candles
(``quarantine``) and the ledger of runs (``ledger``).

May import: the top-level modules (``settings``, ``errors``, ``timeframe``, ``atomic``, ``redact``,
``compat``).
Nothing here knows about features, models or serving.
"""
