"""The model registry against a real BentoML model store in a temporary directory, with real CatBoost models.

BentoML resolves its store through ``BentoMLContainer`` providers when a store function is called (not at
import), so the ``bentoml_store`` fixture overrides those providers in-process for each test: ``model_store``
(the store the ``bentoml.models``/``bentoml.catboost`` functions use) and ``bentoml_home`` (which usage
tracking would otherwise create under ``~/bentoml``). Tracking itself is switched off; its env check is
cached, hence the ``cache_clear``.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import catboost
import numpy as np
import pandas as pd
import pytest

from hourcast.model import registry

NAME = "hourcast-test"


pytestmark = pytest.mark.usefixtures("bentoml_store")


@pytest.fixture
def registry_dir(tmp_path: Path) -> Path:
    return tmp_path / "registry"


def features(seed: int = 0, rows: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(rng.normal(size=(rows, 3)), columns=["ret_1", "ret_24", "vol_24"])


def fit(seed: int) -> catboost.CatBoostRegressor:
    frame = features(seed)
    target = frame["ret_1"] * 0.5 + np.random.default_rng(seed + 100).normal(scale=0.1, size=len(frame))
    model = catboost.CatBoostRegressor(
        iterations=5, thread_count=1, verbose=False, allow_writing_files=False, random_seed=seed
    )
    return model.fit(frame, target)


def save(registry_dir: Path, seed: int = 0, **metadata: object) -> str:
    return registry.save_candidate(
        fit(seed), NAME, registry_dir, labels={"symbol": "btc-usdt"}, metadata={"seed": seed, **metadata}
    )


def statuses(registry_dir: Path) -> dict[str, str]:
    return {record.tag: record.status for record in registry.list_models(registry_dir, NAME)}


def test_saved_model_is_a_listed_candidate(registry_dir: Path) -> None:
    tag = save(registry_dir, mae=0.25)
    assert tag.startswith(f"{NAME}:")
    [record] = registry.list_models(registry_dir, NAME)
    assert (record.tag, record.status, record.reason) == (tag, "candidate", "saved")
    assert record.labels == {"symbol": "btc-usdt"}
    assert record.metadata == {"seed": 0, "mae": 0.25}
    assert record.created.tzinfo is not None
    assert registry.production_tag(registry_dir, NAME) is None


def test_promoted_model_is_resolved_and_loaded_without_its_tag(registry_dir: Path) -> None:
    model = fit(1)
    tag = registry.save_candidate(model, NAME, registry_dir, labels={}, metadata={"mae": 0.5})
    registry.promote(registry_dir, NAME, tag, "best validation MAE")

    assert registry.production_tag(registry_dir, NAME) == tag
    loaded_tag, loaded, metadata = registry.load_production(registry_dir, NAME)
    assert (loaded_tag, metadata) == (tag, {"mae": 0.5})
    assert isinstance(loaded, catboost.CatBoostRegressor)
    np.testing.assert_array_equal(loaded.predict(features(7)), model.predict(features(7)))
    [record] = registry.list_models(registry_dir, NAME)
    assert (record.status, record.reason) == ("production", "best validation MAE")


def test_promoting_a_second_retires_the_first_and_rollback_restores_it(registry_dir: Path) -> None:
    first, second = save(registry_dir, 1), save(registry_dir, 2)
    registry.promote(registry_dir, NAME, first, "first")
    registry.promote(registry_dir, NAME, second, "better")
    assert registry.production_tag(registry_dir, NAME) == second
    assert statuses(registry_dir) == {first: "retired", second: "production"}

    assert registry.rollback(registry_dir, NAME, "live error rose") == first
    assert registry.production_tag(registry_dir, NAME) == first
    records = {record.tag: record for record in registry.list_models(registry_dir, NAME)}
    assert (records[first].status, records[first].reason) == ("production", "live error rose")
    assert records[second].status == "rejected"
    assert "live error rose" in records[second].reason
    assert registry.load_production(registry_dir, NAME)[0] == first
    with pytest.raises(registry.RegistryError, match=registry.NO_ROLLBACK_TARGET):
        registry.rollback(registry_dir, NAME)


def test_rollback_without_history_raises(registry_dir: Path) -> None:
    with pytest.raises(registry.RegistryError, match="no earlier production model to roll back to"):
        registry.rollback(registry_dir, NAME)
    registry.promote(registry_dir, NAME, save(registry_dir), "only one")
    with pytest.raises(registry.RegistryError, match="no earlier production model to roll back to"):
        registry.rollback(registry_dir, NAME)


def test_rollback_skips_models_deleted_from_the_store(registry_dir: Path) -> None:
    import bentoml

    tags = [save(registry_dir, seed) for seed in range(3)]
    for tag in tags:
        registry.promote(registry_dir, NAME, tag, "next")
    bentoml.models.delete(tags[1])
    assert registry.rollback(registry_dir, NAME) == tags[0]


def test_reject_keeps_the_model_with_status_and_reason(registry_dir: Path, bentoml_store: Path) -> None:
    tag = save(registry_dir)
    registry.reject(registry_dir, NAME, tag, "MAE worse than naive baseline")
    [record] = registry.list_models(registry_dir, NAME)
    assert (record.tag, record.status, record.reason) == (tag, "rejected", "MAE worse than naive baseline")
    assert (bentoml_store / tag.replace(":", "/")).is_dir()
    assert registry.production_tag(registry_dir, NAME) is None


def test_a_rejected_model_is_no_rollback_target_and_production_cannot_be_rejected(registry_dir: Path) -> None:
    first, second = save(registry_dir, 1), save(registry_dir, 2)
    registry.promote(registry_dir, NAME, first, "first")
    registry.promote(registry_dir, NAME, second, "second")
    with pytest.raises(registry.RegistryError, match="production model"):
        registry.reject(registry_dir, NAME, second, "oops")
    registry.reject(registry_dir, NAME, first, "found a leak in its features")
    with pytest.raises(registry.RegistryError, match=registry.NO_ROLLBACK_TARGET):
        registry.rollback(registry_dir, NAME)


def test_unknown_tags_raise_registry_errors_naming_them(registry_dir: Path) -> None:
    import bentoml

    real = save(registry_dir)
    prefix = real[:-3]
    # BentoML resolves a unique version prefix; the registry must not
    assert str(bentoml.models.get(prefix).tag) == real
    for bad in (f"{NAME}:doesnotexist", prefix, f"other:{real.partition(':')[2]}", NAME):
        with pytest.raises(registry.RegistryError, match=bad):
            registry.promote(registry_dir, NAME, bad, "x")
        with pytest.raises(registry.RegistryError, match=bad):
            registry.reject(registry_dir, NAME, bad, "x")
    with pytest.raises(registry.RegistryError, match=f"no production model for '{NAME}'"):
        registry.load_production(registry_dir, NAME)


def test_prune_keeps_newest_production_and_rollback_target(registry_dir: Path) -> None:
    tags = [save(registry_dir, seed) for seed in range(6)]  # oldest first
    registry.promote(registry_dir, NAME, tags[0], "first")
    registry.promote(registry_dir, NAME, tags[1], "second")  # production; tags[0] is the rollback target

    deleted = registry.prune(registry_dir, NAME, keep=2)
    assert deleted == [tags[3], tags[2]]
    assert [record.tag for record in registry.list_models(registry_dir, NAME)] == [
        tags[5],
        tags[4],
        tags[1],
        tags[0],
    ]
    state = json.loads((registry_dir / f"{NAME}.json").read_text())
    assert set(state["decisions"]) == {tags[5], tags[4], tags[1], tags[0]}
    assert registry.rollback(registry_dir, NAME) == tags[0]
    # tags[1] was rolled back from: neither production nor a rollback target any more
    assert registry.prune(registry_dir, NAME, keep=1) == [tags[4], tags[1]]
    assert [record.tag for record in registry.list_models(registry_dir, NAME)] == [tags[5], tags[0]]


def test_metadata_with_numpy_and_nesting_round_trips_as_json(registry_dir: Path) -> None:
    metadata = {
        "metrics": {
            "mae": np.float64(0.125),
            "rmse": np.float32(0.5),
            "hits": np.int64(7),
            "bad": float("nan"),
        },
        "features": ("ret_1", "ret_24"),
        "importances": np.array([0.25, 0.75]),
        "params": {"depth": 4, "nested": [{"lr": np.float64(0.1)}, [1, 2]], "unset": None},
        "trained_until": pd.Timestamp("2024-03-01", tz="UTC"),
        "data": Path("data/candles"),
        "by_horizon": {1: 0.5},
        "early_stopped": np.bool_(True),
    }
    expected = {
        "metrics": {"mae": 0.125, "rmse": 0.5, "hits": 7, "bad": "nan"},
        "features": ["ret_1", "ret_24"],
        "importances": [0.25, 0.75],
        "params": {"depth": 4, "nested": [{"lr": 0.1}, [1, 2]]},
        "trained_until": "2024-03-01T00:00:00+00:00",
        "data": "data/candles",
        "by_horizon": {"1": 0.5},
        "early_stopped": True,
    }
    tag = registry.save_candidate(fit(0), NAME, registry_dir, labels={}, metadata=metadata)
    registry.promote(registry_dir, NAME, tag, "metadata")
    _, _, loaded = registry.load_production(registry_dir, NAME)
    assert loaded == expected
    assert json.loads(json.dumps(loaded, allow_nan=False)) == expected
    assert type(loaded["metrics"]["mae"]) is float
    with pytest.raises(TypeError, match=r"metadata\.params\[0\]: complex"):
        registry.json_safe_metadata({"params": [1j]})


def test_list_models_is_newest_first(registry_dir: Path) -> None:
    tags = [save(registry_dir, seed) for seed in range(4)]
    records = registry.list_models(registry_dir, NAME)
    assert [record.tag for record in records] == tags[::-1]
    created = [record.created for record in records]
    assert created == sorted(created, reverse=True)
    assert registry.list_models(registry_dir, "never-saved") == []


def test_invalid_model_names_are_refused(registry_dir: Path) -> None:
    for bad in ("Hourcast", "../escape", "a/b", ""):
        with pytest.raises(registry.RegistryError, match="invalid model name"):
            registry.production_tag(registry_dir, bad)


def test_concurrent_writers_lose_no_decision(registry_dir: Path) -> None:
    first, second = save(registry_dir, 1), save(registry_dir, 2)
    others = [save(registry_dir, seed) for seed in range(3, 9)]
    barrier = threading.Barrier(2 + len(others))
    errors: list[BaseException] = []

    def run(action: str, tag: str) -> None:
        try:
            barrier.wait()
            if action == "promote":
                registry.promote(registry_dir, NAME, tag, f"promoted {tag}")
            else:
                registry.reject(registry_dir, NAME, tag, f"rejected {tag}")
        except BaseException as error:
            errors.append(error)

    jobs = [("promote", first), ("promote", second)] + [("reject", tag) for tag in others]
    threads = [threading.Thread(target=run, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    state = json.loads((registry_dir / f"{NAME}.json").read_text())
    production = state["production"]
    earlier = first if production == second else second
    assert production in (first, second)
    assert state["history"] == [earlier]
    assert {tag: decision["status"] for tag, decision in state["decisions"].items()} == {
        production: "production",
        earlier: "retired",
        **dict.fromkeys(others, "rejected"),
    }
    assert not list(registry_dir.glob(".*.tmp"))


def test_an_empty_store_says_to_train_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`hourcast models list` and `hourcast serve` before any model: one line saying what to do."""
    from typer.testing import CliRunner

    from hourcast.cli.app import app

    monkeypatch.setenv("HOURCAST_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("HOURCAST_MODEL_NAME", raising=False)
    listed = CliRunner().invoke(app, ["models", "list"])
    assert listed.exit_code == 0 and "run `hourcast train`" in listed.output, listed.output
    served = CliRunner().invoke(app, ["serve", "--port", "1"])
    assert served.exit_code == 1 and served.output.strip() == (
        "hourcast: no model yet (the BentoML store has no hourcast_next_hour); run `hourcast train` first"
    )
