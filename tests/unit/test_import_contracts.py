"""The import contracts of ``pyproject.toml`` (``[tool.importlinter]``): stages import only down the pipeline,
only ops and the CLI use ``hourcast.dev``, and no modules import each other in a cycle."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` on the ``hourcast`` package under ``project/src``, with ``project``'s contracts."""
    env = {**os.environ, "PYTHONPATH": str(project / "src")}
    command = [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"]
    return subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, check=False)


def test_the_package_keeps_its_import_contracts() -> None:
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr


def copy_of_project(tmp_path: Path) -> Path:
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.gz"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


def add_import(module: Path, line: str) -> None:
    module.write_text(f"{line}  # noqa\n{module.read_text()}")


def test_an_upward_import_breaks_the_contracts(tmp_path: Path) -> None:
    project = copy_of_project(tmp_path)
    add_import(project / "src/hourcast/data/store.py", "import hourcast.serving.predictor")
    result = lint_imports(project)
    assert result.returncode != 0
    assert "hourcast.data.store -> hourcast.serving.predictor" in result.stdout


def test_a_cycle_inside_a_stage_breaks_the_contracts(tmp_path: Path) -> None:
    project = copy_of_project(tmp_path)
    # store imports candles: candles importing store closes a cycle
    add_import(project / "src/hourcast/data/candles.py", "import hourcast.data.store")
    result = lint_imports(project)
    assert result.returncode != 0
    assert "No import cycle between modules or packages BROKEN" in result.stdout
