"""hourcast's Prefect flows: ``ingest`` (hourly), ``monitor`` (after each ingest), ``retention`` and
``retrain`` (weekly), ``backfill``.

Thin wiring over the package; each flow's tasks are in ``flows.<flow>_tasks`` (``ingest`` and ``backfill``
share ``flows.ingest_tasks``), the writer slot in ``flows.tasks``. Deployments are in ``prefect.yaml``.
"""
