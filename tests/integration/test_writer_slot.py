"""The writer slot's lease: the slot of a SIGKILLed holder is free again about a minute later (its lease,
``WRITER_SLOT_LEASE_SECONDS``, plus a pass of the server's repossessor), not after Prefect's default 300 s,
while a holder that lives keeps its slot past the lease (Prefect renews it). Real holder processes, the run's
real Prefect server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import uuid4

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

from flows.tasks import WRITER_SLOT_LEASE_SECONDS
from tests.support.processes import wait_for

REPO = Path(__file__).resolve().parents[2]
HOLD = """
import sys
from flows.tasks import writer_slot
with writer_slot(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.read()  # until the test closes it
"""
REPOSSESSOR_SECONDS = 15.0
"""How often the Prefect server frees expired leases (its default)."""


@pytest.fixture
def limits(prefect_server: str) -> Iterator[list[str]]:
    """Two writer limits of the test's own (1 slot each), deleted at the end."""
    names = [f"hourcast-writer-slot-{uuid4().hex[:12]}" for _ in range(2)]
    with get_client(sync_client=True) as client:
        for name in names:
            client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
    yield names
    with get_client(sync_client=True) as client:
        for name in names:
            client.delete_global_concurrency_limit_by_name(name)


def holder(name: str, prefect_server: str, home: Path) -> subprocess.Popen[str]:
    """A process holding the writer slot of ``name`` (as a flow's writer does) until its stdin closes;
    returns once it holds it."""
    env = {
        **os.environ,
        "PREFECT_API_URL": prefect_server,
        "PREFECT_HOME": str(home),
        "PYTHONPATH": str(REPO),
    }
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, name],
        cwd=REPO,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def taken(name: str) -> int:
    with get_client(sync_client=True) as client:
        return client.read_global_concurrency_limit_by_name(name).active_slots


@pytest.mark.slow
def test_a_killed_holders_slot_is_freed_after_its_short_lease_and_a_living_holder_keeps_its_own(
    limits: list[str], prefect_server: str, tmp_path: Path
) -> None:
    living = holder(limits[0], prefect_server, tmp_path / "prefect")
    try:
        killed = holder(limits[1], prefect_server, tmp_path / "prefect")  # took its slot after the living one
        killed.send_signal(signal.SIGKILL)
        killed.wait()
        assert taken(limits[1]) == 1  # nobody gave it back

        bound = WRITER_SLOT_LEASE_SECONDS + REPOSSESSOR_SECONDS
        # within twice the bound; Prefect's default lease (300 s) would take longer
        wait_for(lambda: taken(limits[1]) == 0, 2 * bound, "the killed holder's slot to be freed", poll=1)
        # the living holder's lease, taken first, would have expired by now had Prefect not renewed it
        assert living.poll() is None and taken(limits[0]) == 1

        assert living.stdin is not None
        living.stdin.close()  # it leaves the slot as a writer does when its work is done
        assert living.wait(timeout=60) == 0
        assert taken(limits[0]) == 0
    finally:
        living.kill()
        living.wait()
