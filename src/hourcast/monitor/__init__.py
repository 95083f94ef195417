"""Stage 5, monitoring: served forecasts scored against the candles that closed.

* ``scoring``: each logged prediction scored against the candle that closed (its error, persistence's,
  the direction, the band), the scores dataset read and written;
* ``scoreboard``: the window metrics, the rolling scoreboard and series, the dashboard's Performance view;
* ``verdict``: whether the production model is degraded, whether a retrain is due, the retrain requests,
  the production model's drift reference;
* ``prometheus``: the Prometheus text of the scoreboard, feature ages and production tag;
* ``run``: one monitor run (``MonitorReport``) and the retrain request when it is due.

May import: ``hourcast.serving`` (the prediction log it scores), ``hourcast.model``, ``hourcast.features``,
``hourcast.data`` and the top-level modules.
"""
