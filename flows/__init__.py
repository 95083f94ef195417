"""hourcast's Prefect flows: ``ingest`` (hourly), ``retention`` and ``retrain`` (weekly), ``backfill``.

Thin wiring over the package; the tasks are in ``flows.tasks``. Deployments are in ``prefect.yaml``.
"""
