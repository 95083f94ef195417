"""Model registry over BentoML's model store: versioned CatBoost models with explicit promotion.

BentoML keeps the models (``$BENTOML_HOME/models``); their labels are fixed once saved, so the stage of
each model lives in a small registry file, ``<registry_dir>/<name>.json``::

    {"name": ..., "production": "name:version" | null,
     "history": [earlier productions, oldest first],
     "decisions": {"name:version": {"status": ..., "reason": ..., "time": ...}}}

Every change is a read-modify-write under an exclusive ``fcntl`` lock on ``<registry_dir>/.<name>.lock``,
published with an atomic rename, so concurrent trainers never lose each other's decisions and a reader
never sees a torn file. Readers (the serving side) take no lock.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hourcast.atomic import file_lock, set_aside_damaged, write_text
from hourcast.errors import HourcastError

if TYPE_CHECKING:
    import bentoml
    import catboost

CANDIDATE, PRODUCTION, REJECTED, RETIRED = "candidate", "production", "rejected", "retired"
NO_ROLLBACK_TARGET = (
    "no earlier production model to roll back to; promote one by tag: `hourcast models promote TAG`"
)

# BentoML's tag format (bentoml/_internal/tag.py); names are lowercased by BentoML, so only lowercase is
# accepted here, keeping the store name and the registry file name the same.
_NAME = re.compile(r"[a-z0-9]([-._a-z0-9]*[a-z0-9])?")


class RegistryError(HourcastError):
    """The model store cannot do what was asked: no such model, no production model, nothing to roll back
    to, an invalid model name, or a change the production model forbids."""


@dataclass(frozen=True)
class ModelRecord:
    """One stored model version and its registry decision."""

    tag: str
    created: datetime
    status: str
    reason: str
    labels: dict[str, str]
    metadata: dict[str, Any]


def json_safe_metadata(value: Any, path: str = "metadata") -> Any:
    """``value`` as plain JSON types that BentoML metadata also accepts.

    numpy scalars and arrays become Python numbers and lists, tuples become lists, mapping keys become
    strings, datetimes/dates/times become ISO strings, paths become strings, non-finite floats become
    ``"nan"``/``"inf"``/``"-inf"`` (strict JSON has no NaN) and ``None`` values are dropped from mappings
    (BentoML rejects ``None``). Anything else, including ``None`` inside a list, is a ``TypeError``.
    """
    if isinstance(value, Mapping):
        return {
            str(key): json_safe_metadata(item, f"{path}.{key}")
            for key, item in value.items()
            if item is not None
        }
    if isinstance(value, list | tuple):
        return [json_safe_metadata(item, f"{path}[{index}]") for index, item in enumerate(value)]
    if hasattr(value, "tolist") and callable(value.tolist):  # numpy scalars and arrays
        return json_safe_metadata(value.tolist(), path)
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{path}: {type(value).__name__} cannot be stored as model metadata")


def save_candidate(
    model: catboost.CatBoostRegressor,
    name: str,
    registry_dir: Path,
    *,
    labels: dict[str, str],
    metadata: dict[str, Any],
) -> str:
    """Save ``model`` to the BentoML store as a new version of ``name``, recorded as a candidate.

    Returns the tag, ``"name:version"``.
    """
    import bentoml

    _check_name(name)
    saved = bentoml.catboost.save_model(name, model, labels=labels, metadata=json_safe_metadata(metadata))
    tag = str(saved.tag)
    with _locked_state(registry_dir, name) as state:
        _decide(state, tag, CANDIDATE, "saved")
    return tag


def promote(registry_dir: Path, name: str, tag: str, reason: str) -> None:
    """Make ``tag`` the production model of ``name``; the previous one is retired and kept for rollback."""
    with _locked_state(registry_dir, name) as state:
        _require_stored(name, tag)
        previous = state["production"]
        if previous == tag:
            return
        if previous is not None:
            _decide(state, previous, RETIRED, f"replaced by {tag}: {reason}")
            state["history"].append(previous)
        state["history"] = [earlier for earlier in state["history"] if earlier != tag]
        state["production"] = tag
        _decide(state, tag, PRODUCTION, reason)


def reject(registry_dir: Path, name: str, tag: str, reason: str) -> None:
    """Mark ``tag`` rejected (it stays in the store, never becomes a rollback target).

    The production model cannot be rejected: roll back or promote another one first.
    """
    with _locked_state(registry_dir, name) as state:
        _require_stored(name, tag)
        if state["production"] == tag:
            raise RegistryError(f"{tag} is the production model of {name}; roll back or promote another one")
        state["history"] = [earlier for earlier in state["history"] if earlier != tag]
        _decide(state, tag, REJECTED, reason)


def rollback(registry_dir: Path, name: str, reason: str = "manual rollback") -> str:
    """Restore the most recent earlier production model still in the store; returns its tag.

    The model rolled back from is marked rejected, so a second rollback goes further back.
    Raises ``RegistryError`` if there is no such earlier model.
    """
    with _locked_state(registry_dir, name) as state:
        target = _rollback_target(state, set(_stored(name)))
        if target is None:
            raise RegistryError(NO_ROLLBACK_TARGET)
        current = state["production"]
        if current is not None:
            _decide(state, current, REJECTED, f"rolled back to {target}: {reason}")
        state["history"] = state["history"][: state["history"].index(target)]
        state["production"] = target
        _decide(state, target, PRODUCTION, reason)
        return target


def production_tag(registry_dir: Path, name: str) -> str | None:
    """The production tag of ``name``, or ``None`` if none was promoted."""
    return _read_state(registry_dir, name)["production"]


def load_production(registry_dir: Path, name: str) -> tuple[str, catboost.CatBoostRegressor, dict[str, Any]]:
    """The production model of ``name``: its tag, the loaded regressor and its metadata."""
    tag = production_tag(registry_dir, name)
    if tag is None:
        raise RegistryError(
            f"no production model for {name!r} in {registry_dir}; promote a candidate first "
            "(`hourcast models promote TAG`)"
        )
    return load_model(name, tag)


def load_model(name: str, tag: str) -> tuple[str, catboost.CatBoostRegressor, dict[str, Any]]:
    """A stored model of ``name`` by exact tag: its tag, the loaded regressor and its metadata."""
    import bentoml
    import catboost

    stored = _stored_model(name, tag)
    model = bentoml.catboost.load_model(stored)
    if not isinstance(model, catboost.CatBoostRegressor):
        raise TypeError(f"{tag} is a {type(model).__name__}, not a CatBoostRegressor")
    return tag, model, dict(stored.info.metadata)


def list_models(registry_dir: Path, name: str) -> list[ModelRecord]:
    """Every stored version of ``name``, newest first, with its registry status."""
    decisions = _read_state(registry_dir, name)["decisions"]
    records = []
    for tag, stored in _stored(name).items():
        decision = decisions.get(tag, {})
        records.append(
            ModelRecord(
                tag=tag,
                created=stored.creation_time,
                status=decision.get("status", CANDIDATE),
                reason=decision.get("reason", ""),
                labels=dict(stored.info.labels),
                metadata=dict(stored.info.metadata),
            )
        )
    return sorted(records, key=lambda record: (record.created, record.tag), reverse=True)


def prune(registry_dir: Path, name: str, keep: int) -> list[str]:
    """Delete from the BentoML store the versions of ``name`` older than the newest ``keep``.

    The production model and the rollback target are always kept (in addition to ``keep``).
    Returns the deleted tags, newest first.
    """
    import bentoml

    if keep < 0:
        raise ValueError(f"keep must be >= 0, got {keep}")
    with _locked_state(registry_dir, name) as state:
        stored = _stored(name)
        protected = {state["production"], _rollback_target(state, set(stored))}
        newest_first = sorted(stored, key=lambda tag: (stored[tag].creation_time, tag), reverse=True)
        doomed = [tag for tag in newest_first[keep:] if tag not in protected]
        for tag in doomed:
            bentoml.models.delete(tag)
            state["decisions"].pop(tag, None)
        state["history"] = [earlier for earlier in state["history"] if earlier not in doomed]
    return doomed


def _check_name(name: str) -> None:
    if len(name) > 63 or not _NAME.fullmatch(name):
        raise RegistryError(
            f"invalid model name {name!r}; set HOURCAST_MODEL_NAME to at most 63 lowercase letters, digits, "
            "'-', '_' or '.', starting and ending with a letter or digit"
        )


def _registry_path(registry_dir: Path, name: str) -> Path:
    _check_name(name)
    return registry_dir / f"{name}.json"


def _read_state(registry_dir: Path, name: str) -> dict[str, Any]:
    path = _registry_path(registry_dir, name)
    empty = {"name": name, "production": None, "history": [], "decisions": {}}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return empty
    except ValueError as error:  # truncated or garbage: the stages cannot be derived from BentoML's store
        outcome = "no model is in production until one is promoted again (`hourcast models promote TAG`)"
        set_aside_damaged(path, error, outcome)
        return empty


@contextmanager
def _locked_state(registry_dir: Path, name: str) -> Iterator[dict[str, Any]]:
    """The registry state of ``name`` under an exclusive lock; written back if the block succeeds."""
    path = _registry_path(registry_dir, name)
    with file_lock(registry_dir / f".{name}.lock"):
        state = _read_state(registry_dir, name)
        yield state
        write_text(path, json.dumps(state, indent=2, allow_nan=False) + "\n")


def _decide(state: dict[str, Any], tag: str, status: str, reason: str) -> None:
    state["decisions"][tag] = {"status": status, "reason": reason, "time": datetime.now(UTC).isoformat()}


def _stored(name: str) -> dict[str, bentoml.Model]:
    """The stored versions of ``name`` by exact tag (``bentoml.models.get`` also matches version prefixes)."""
    import bentoml
    from bentoml.exceptions import NotFound

    _check_name(name)
    try:
        return {str(model.tag): model for model in bentoml.models.list(name)}
    except NotFound:
        return {}


def model_metadata(name: str, tag: str) -> dict[str, Any]:
    """The metadata of a stored model of ``name`` by exact tag, without loading the model."""
    return dict(_stored_model(name, tag).info.metadata)


def _stored_model(name: str, tag: str) -> bentoml.Model:
    stored = _stored(name).get(tag)
    if stored is None:
        raise RegistryError(
            f"model {tag} of {name!r} is missing from the BentoML store; see `hourcast models list`"
        )
    return stored


def _require_stored(name: str, tag: str) -> None:
    if tag not in _stored(name):
        raise RegistryError(f"no model {tag!r} of {name!r} in the BentoML store; see `hourcast models list`")


def _rollback_target(state: dict[str, Any], stored: set[str]) -> str | None:
    """The most recent earlier production model that is still stored."""
    for earlier in reversed(state["history"]):
        if earlier != state["production"] and earlier in stored:
            return earlier
    return None
