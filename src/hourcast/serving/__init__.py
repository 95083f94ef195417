"""Stage 4, serving: the production model's next-hour forecast from the online features.

Owns the predictor (online read + the model's predict path, staleness, the exchange clock:
``predictor``), each worker's in-memory forecast per symbol that requests are answered from
(``forecasts``), the one response schema shared by the service, the prediction log and the dashboard
(``schema``), and the log of every answer (``prediction_log``).

May import: ``hourcast.model``, ``hourcast.features``, ``hourcast.data`` and the top-level modules.
"""
