"""Operations: what runs the pipeline rather than being a stage of it.

Owns retention of old candles, features and logs (``retention``), the per-run reports (``reporting``), the
deployments' schedules (``schedules``), the one ingest cycle that the ingest and backfill flows and the
bootstrap run (``ingest_cycle``), and the local stack behind ``hourcast up``: ``stack`` composes process
supervision (``supervise``), Prefect administration (``prefect_admin``, ``flow_runs``), the bootstrap
(``bootstrap``) and the replay exchange with its scheduler (``replay_world``).

May import: every stage below (data, features, model, serving, monitor, api) and ``hourcast.dev``.
"""
