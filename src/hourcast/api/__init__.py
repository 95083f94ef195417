"""The HTTP API: serving's forecasts and monitoring's scoreboard behind one ASGI app (``app``), which the
BentoML service in ``bento_service/`` mounts.

It sits above ``serving`` and ``monitor`` because it exposes both (``/predict`` and ``/metrics``,
``/scoreboard``, ``/performance``); neither of them may import it.

May import: ``hourcast.monitor``, ``hourcast.serving`` and everything below them.
"""
