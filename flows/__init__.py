"""hourcast's Prefect flows: ``ingest`` (hourly), ``monitor`` (after each ingest), ``retention`` and
``retrain`` (weekly), ``backfill``.

Thin wiring over the package; each flow's tasks are in ``flows.<flow>_tasks`` (``ingest`` and ``backfill``
share ``flows.ingest_tasks``), the writer slot in ``flows.tasks``. Deployments are in ``prefect.yaml``.

Every flow module is imported through this package (a flow run loads ``flows/<flow>.py``, which imports
``flows.<flow>_tasks``), so this is where a flow run's process has Feast skip typeguard, before any task
imports Feast (``hourcast.compat.typeguard``).
"""

from hourcast.compat.typeguard import skip_feast_instrumentation

skip_feast_instrumentation()
