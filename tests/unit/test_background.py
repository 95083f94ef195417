"""The background job helper and the circuit: failures logged (first with a traceback, then one line),
recovery logged, state readable for health reports; credentials never logged."""

from __future__ import annotations

import logging

import pytest

from hourcast.background import Circuit, Periodic

LOGGER = logging.getLogger("hourcast.test")


def test_periodic_records_and_logs_every_failure(caplog: pytest.LogCaptureFixture) -> None:
    outcomes = [RuntimeError("redis://:hunter2@db:6379 refused"), ValueError("still broken"), None]

    def action() -> None:
        outcome = outcomes.pop(0)
        if outcome is not None:
            raise outcome

    job = Periodic("model reload", 60, action, LOGGER)
    caplog.set_level(logging.INFO, logger="hourcast.test")
    assert job.run_once() is False
    assert job.last_error == "RuntimeError: redis://:***@db:6379 refused"
    assert job.run_once() is False and job.failures == 2
    assert job.run_once() is True and job.last_error is None and job.failures == 0
    messages = [record.getMessage() for record in caplog.records]
    assert messages[0].startswith("model reload failed: RuntimeError") and "Traceback" in messages[0]
    assert messages[1] == "model reload failed again (2 in a row): ValueError: still broken"
    assert messages[2] == "model reload works again after 2 failures"
    assert "hunter2" not in caplog.text


def test_circuit_opens_and_closes_once_each(caplog: pytest.LogCaptureFixture) -> None:
    circuit = Circuit(LOGGER, "online store redis")
    caplog.set_level(logging.INFO, logger="hourcast.test")
    assert circuit.reason is None
    circuit.open("redis://:hunter2@db:6379 timed out")
    circuit.open("still down")
    assert circuit.reason == "still down"
    circuit.close()
    circuit.close()
    assert circuit.reason is None
    assert len(caplog.records) == 2 and "hunter2" not in caplog.text
