"""`hourcast up` deploys prefect.yaml, then runs ingest on the cron of the configured timeframe (a real
Prefect server): with HOURCAST_TIMEFRAME=15m, every 15 minutes, not prefect.yaml's hourly default."""

from __future__ import annotations

from pathlib import Path

from flows.serve import deployments
from hourcast.ops.prefect_admin import PrefectAdmin, read_prefect_yaml
from hourcast.ops.supervise import Supervisor
from hourcast.settings import Settings

REPO = Path(__file__).resolve().parents[2]


def test_up_sets_the_timeframes_cron_on_the_deployed_ingest_schedule(
    tmp_path: Path, prefect_server: str
) -> None:
    from prefect.client.orchestration import get_client

    config = read_prefect_yaml(REPO)
    ingest_only = {**config, "deployments": [s for s in config["deployments"] if s["name"] == "ingest"]}
    [deployment] = deployments(ingest_only, "1h")  # as `prefect deploy` leaves it: prefect.yaml's cron
    deployment_id = deployment.apply()
    with get_client(sync_client=True) as client:
        [schedule] = client.read_deployment(deployment_id).schedules
    assert schedule.schedule.cron == "5 * * * *"

    admin = PrefectAdmin(Settings(home=tmp_path, timeframe="15m", _env_file=None), REPO, Supervisor(REPO))
    admin.api_url = prefect_server
    assert admin.deployed_schedules(ingest_only, active=False) == {"ingest/ingest": "5,20,35,50 * * * *"}
    with get_client(sync_client=True) as client:
        [schedule] = client.read_deployment(deployment_id).schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == (
        "5,20,35,50 * * * *",
        "UTC",
        False,
    )
    # the default timeframe leaves prefect.yaml's cron as it is, and switches the schedule back on
    admin = PrefectAdmin(Settings(home=tmp_path, _env_file=None), REPO, Supervisor(REPO))
    admin.api_url = prefect_server
    assert admin.deployed_schedules(ingest_only, active=True) == {"ingest/ingest": "5 * * * *"}
    with get_client(sync_client=True) as client:
        [schedule] = client.read_deployment(deployment_id).schedules
    assert (schedule.schedule.cron, schedule.active) == ("5 * * * *", True)
