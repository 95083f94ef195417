"""Development tools that never ship in the Bento: the replay exchange, its scheduler and the bundled
recorded candles (``hourcast.dev.samples``)."""
