"""Development tools that never ship in the Bento: the replay exchange, its scheduler, a throwaway Redis
(``redis_server``), free loopback ports (``ports``) and the bundled recorded candles
(``hourcast.dev.samples``).

It is not a stage of the pipeline: it stands in for the world outside it (an exchange, a clock, a Redis).

May import: ``hourcast.data`` (the candle frame it serves) and the top-level modules. Only ``hourcast.ops``
and ``hourcast.cli`` import it.
"""
