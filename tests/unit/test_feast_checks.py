"""Feast imported after hourcast skips typeguard's import-time instrumentation; everything else keeps it."""

from __future__ import annotations

import pytest
import typeguard

import hourcast  # noqa: F401  (installs the decorator before Feast is imported)
from hourcast.compat import skip_feast_instrumentation


def instrumented(function: object) -> bool:
    """Whether typeguard rewrote ``function`` to check its arguments."""
    return "check_argument_types_internal" in function.__code__.co_names  # type: ignore[attr-defined]


def test_feast_definition_classes_are_left_as_they_are() -> None:
    from feast import Entity, FeatureService, FeatureView, FileSource

    for definition in (Entity, FeatureService, FeatureView, FileSource):
        assert not instrumented(definition.__init__), definition


def test_other_code_is_still_checked() -> None:
    skip_feast_instrumentation()  # a second call changes nothing

    @typeguard.typechecked
    def halve(value: int) -> float:
        return value / 2

    assert instrumented(halve) and halve(3) == 1.5
    with pytest.raises(typeguard.TypeCheckError):
        halve("3")  # type: ignore[arg-type]
