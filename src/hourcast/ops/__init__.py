"""Operations: what runs the pipeline rather than being a stage of it.

Owns retention of old candles, features and logs (``retention``), the per-run reports (``reporting``) and
the local stack behind ``hourcast up`` (``stack``: process supervision, Prefect administration and the
bootstrap).

May import: every stage below (data, features, model, serving, monitor, api) and ``hourcast.dev``.
"""
