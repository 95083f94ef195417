"""Every benchmark script answers ``--help`` with its usage and runs nothing: no figures written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = sorted(path for path in (REPO / "benchmarks").glob("*.py") if not path.name.startswith("_"))
RESULTS = REPO / "benchmarks" / "results"


def results_written() -> dict[str, int]:
    """Each file under ``benchmarks/results`` and when it was last written (nanoseconds)."""
    return {str(path): path.stat().st_mtime_ns for path in RESULTS.rglob("*")} if RESULTS.exists() else {}


def test_every_benchmark_is_listed() -> None:
    assert {"scale.py", "serve.py", "model.py"} <= {path.name for path in BENCHMARKS}


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda path: path.name)
def test_help_prints_usage_and_runs_nothing(script: Path) -> None:
    before = results_written()
    done = subprocess.run(
        [sys.executable, str(script), "--help"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.startswith("usage: "), done.stdout[:500]
    assert "--output" in done.stdout
    assert results_written() == before, "--help wrote benchmark results"
