"""Stage 5, monitoring: served forecasts scored against the candles that closed.

Owns scoring against persistence and "the last move reverses", the scoreboard and rolling performance,
the retrain verdict and the Prometheus text (``scoring``).

May import: ``hourcast.serving`` (the prediction log it scores), ``hourcast.model``, ``hourcast.features``,
``hourcast.data`` and the top-level modules.
"""
