"""The model the Bento service declares: the registry's production model (what `bentoml build` packages and
`bentoml serve` resolves before it starts), else the newest stored one (a Bento without the registry)."""

from __future__ import annotations

from pathlib import Path

import pytest
from bentoml.exceptions import NotFound
from catboost import CatBoostRegressor

from hourcast import registry
from hourcast.served_model import ProductionModel

NAME = "hourcast_next_hour"


def tiny_model() -> CatBoostRegressor:
    return CatBoostRegressor(iterations=2, verbose=False, allow_writing_files=False).fit(
        [[1.0], [2.0], [3.0]], [1.0, 2.0, 3.0]
    )


def test_it_resolves_to_production_else_the_newest(
    bentoml_store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOURCAST_HOME", str(tmp_path / "data"))
    registry_dir = tmp_path / "data" / "registry"
    declared = ProductionModel()
    with pytest.raises(NotFound, match="run `hourcast train`"):
        declared.resolve()  # nothing stored: never looked up remotely

    first = registry.save_candidate(tiny_model(), NAME, registry_dir, labels={}, metadata={})
    newest = registry.save_candidate(tiny_model(), NAME, registry_dir, labels={}, metadata={})
    assert str(declared.resolve().tag) == newest  # no production pointer: the newest stored
    registry.promote(registry_dir, NAME, first, "test")
    assert str(declared.resolve().tag) == first
    assert str(declared.to_info().tag) == first  # what `bentoml build` packages
