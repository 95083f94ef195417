"""The private APIs of ``hourcast.compat``, checked on the installed libraries: each module's library is
within the versions it was checked against, and each private API still exists with the shape and behaviour the
module relies on. Feast imported after an entry point skips typeguard's import-time instrumentation;
``import hourcast`` patches nothing. (What needs a server is in ``tests/integration/test_compat.py``.)"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import pkgutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import bentoml
import ccxt
import pandas as pd
import pytest
import redis
import typeguard
from packaging.specifiers import SpecifierSet
from requests import Session

import hourcast.compat
from hourcast.compat.bentoml import ModelReference
from hourcast.compat.feast import plans_apply, redis_client
from hourcast.compat.great_expectations import hide_progress_bars, validation_page_html
from hourcast.compat.typeguard import skip_feast_instrumentation
from hourcast.features import featurestore
from hourcast.model.served_model import ProductionModel
from hourcast.settings import Settings

if TYPE_CHECKING:
    from great_expectations.core import ExpectationSuiteValidationResult

REPO = Path(__file__).resolve().parents[2]
COMPAT_MODULES = [
    importlib.import_module(f"hourcast.compat.{info.name}")
    for info in pkgutil.iter_modules(hourcast.compat.__path__)
]


@pytest.mark.parametrize("module", COMPAT_MODULES, ids=lambda module: module.__name__)
def test_the_installed_library_is_within_the_versions_the_module_was_checked_against(
    module: ModuleType,
) -> None:
    installed = version(module.DISTRIBUTION)
    assert SpecifierSet(module.CHECKED_VERSIONS).contains(installed), (
        f"{module.DISTRIBUTION} {installed} is outside {module.CHECKED_VERSIONS}, the versions "
        f"{module.__name__} was checked against: re-check each of its private APIs (this file and "
        f"tests/integration/test_compat.py, run against {installed}), then widen its CHECKED_VERSIONS"
    )


def test_every_library_the_compat_modules_reach_into_is_named_once() -> None:
    distributions = [module.DISTRIBUTION for module in COMPAT_MODULES]
    assert sorted(distributions) == ["bentoml", "ccxt", "feast", "great-expectations", "typeguard"]


# typeguard (hourcast.compat.typeguard)


def instrumented(function: object) -> bool:
    """Whether typeguard rewrote ``function`` to check its arguments."""
    return "check_argument_types_internal" in function.__code__.co_names  # type: ignore[attr-defined]


def test_feast_definition_classes_are_left_as_they_are() -> None:
    """The suite's conftest applies the patch, as the entry points do, before any test imports Feast."""
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


PROBE = """
import json, typeguard
{entry}
from feast import FeatureView
patched = getattr(typeguard.typechecked, "skips_feast", False)
checked = "check_argument_types_internal" in FeatureView.__init__.__code__.co_names
print(json.dumps({{"patched": patched, "feast_checked": checked}}))
"""

IMPORT_ONLY = "import hourcast, hourcast.cli.app, hourcast.features.featurestore, hourcast.data.exchange"
ENTRY_POINTS = {
    "the hourcast command": "from hourcast.cli.app import app\ntry: app(['--help'])\nexcept SystemExit: pass",
    "a flow run": "import flows.ingest",
    "the Bento service": "import bento_service.service",
    "a benchmark": "import sys\nsys.path.insert(0, 'benchmarks')\nimport _common",
}


def probe(entry: str, tmp_path: Path) -> dict[str, bool]:
    """In a fresh interpreter at the repository root: run ``entry``, then import Feast; whether typeguard's
    decorator was patched and whether Feast's classes were instrumented."""
    env = {**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), "BENTOML_DO_NOT_TRACK": "True"}
    run = subprocess.run(
        [sys.executable, "-c", PROBE.format(entry=entry)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return json.loads(run.stdout.strip().splitlines()[-1])


def test_importing_hourcast_patches_nothing(tmp_path: Path) -> None:
    assert probe(IMPORT_ONLY, tmp_path) == {"patched": False, "feast_checked": True}


@pytest.mark.parametrize("entry", list(ENTRY_POINTS), ids=list(ENTRY_POINTS))
def test_each_entry_point_has_feast_skip_typeguard(entry: str, tmp_path: Path) -> None:
    assert probe(ENTRY_POINTS[entry], tmp_path) == {"patched": True, "feast_checked": False}


def test_typechecked_keeps_the_call_shapes_the_patch_forwards() -> None:
    """``@typechecked`` and ``@typechecked(...)``, both passed on by the patch to typeguard's own."""
    assert next(iter(inspect.signature(typeguard.typechecked).parameters)) == "target"

    @typeguard.typechecked(collection_check_strategy=typeguard.CollectionCheckStrategy.ALL_ITEMS)
    def first(values: list[int]) -> int:
        return values[0]

    assert instrumented(first)
    with pytest.raises(typeguard.TypeCheckError):
        first([1, "2"])  # type: ignore[list-item]


# Feast (hourcast.compat.feast)


def feast_settings(tmp_path: Path, **overrides: object) -> Settings:
    return Settings(home=tmp_path, feature_repo=REPO / "feature_repo", _env_file=None, **overrides)


def test_the_redis_client_is_the_one_feast_keeps(tmp_path: Path) -> None:
    """``_get_provider``/``_get_client``: a redis-py client, built once and kept, so the retry policy
    ``featurestore.fail_fast`` sets on it holds for Feast's reads (no server needed: redis-py connects on the
    first command)."""
    settings = feast_settings(tmp_path, online_store="redis")
    store = featurestore.open_store(settings)
    client = redis_client(store)
    assert isinstance(client, redis.Redis)
    assert redis_client(store) is client
    featurestore.fail_fast(store)
    assert client.get_retry().get_retries() == 0


def test_feast_plans_the_apply_for_sqlite_only(tmp_path: Path) -> None:
    """``_should_use_plan``: True for the local provider with SQLite, as ``feast apply`` decides."""
    assert plans_apply(featurestore.open_store(feast_settings(tmp_path / "sqlite")))
    redis_store = featurestore.open_store(feast_settings(tmp_path / "redis", online_store="redis"))
    assert not plans_apply(redis_store)


def test_a_planned_apply_registers_the_definitions_and_applied_again_rewrites_nothing(tmp_path: Path) -> None:
    """``plan`` then ``_apply_diffs`` (``featurestore.apply_definitions`` with SQLite) registers the
    definitions; applied again, unchanged objects are left as they are (``FeatureStore.apply`` would rewrite
    them, with a new ``last_updated_timestamp``)."""
    settings = feast_settings(tmp_path)
    featurestore.apply_definitions(featurestore.open_store(settings), featurestore.definitions(settings))
    store = featurestore.open_store(settings)
    applied = store.get_feature_view(featurestore.FEATURE_VIEW).last_updated_timestamp
    assert {service.name for service in store.list_feature_services()} == {
        featurestore.TRAINING_SERVICE,
        featurestore.SERVING_SERVICE,
    }
    featurestore.apply_definitions(store, featurestore.definitions(settings))
    again = featurestore.open_store(settings).get_feature_view(featurestore.FEATURE_VIEW)
    assert again.last_updated_timestamp == applied
    parameters = list(inspect.signature(store._apply_diffs).parameters)
    assert parameters[:3] == ["registry_diff", "infra_diff", "new_infra"], parameters


# BentoML (hourcast.compat.bentoml)


def test_model_reference_is_the_base_bentoml_declares_models_by() -> None:
    """``_bentoml_sdk.models.Model``: the base of BentoML's public references, with the abstract methods
    ``ProductionModel`` implements, and what a service lists as its models."""
    assert issubclass(bentoml.models.BentoModel, ModelReference)
    assert ModelReference.__abstractmethods__ == {"to_info", "from_info", "to_create_schema", "resolve"}
    declared = ProductionModel()

    class Declares:
        model_ref = declared

    assert bentoml.service(Declares).models == [declared]


# Great Expectations (hourcast.compat.great_expectations)


def validate_one_column(hide: bool) -> ExpectationSuiteValidationResult:
    """A GX validation of a tiny frame on an ephemeral context, its progress bars hidden or not."""
    import great_expectations as gx

    context = gx.get_context(mode="ephemeral")
    if hide:
        hide_progress_bars(context)
    asset = context.data_sources.add_pandas("compat").add_dataframe_asset("frame")
    batch = asset.add_batch_definition_whole_dataframe("whole").get_batch(
        batch_parameters={"dataframe": pd.DataFrame({"close": [1.0, None]})}
    )
    suite = gx.ExpectationSuite(
        "compat", expectations=[gx.expectations.ExpectColumnValuesToNotBeNull(column="close")]
    )
    return batch.validate(suite)


def test_gx_draws_progress_bars_unless_hidden(capfd: pytest.CaptureFixture[str]) -> None:
    validate_one_column(hide=False)
    assert "Calculating Metrics" in capfd.readouterr().err
    validate_one_column(hide=True)
    assert "Calculating Metrics" not in capfd.readouterr().err


def test_gx_renders_the_data_docs_page_of_a_validation_result() -> None:
    result = validate_one_column(hide=True)
    page = validation_page_html(result.to_json_dict())
    assert page.startswith("<!DOCTYPE html>")
    assert "values must never be null." in page and "50% not null" in page  # the expectation and its outcome


# ccxt (hourcast.compat.ccxt; the requests themselves: tests/integration/test_compat.py)


def test_a_ccxt_client_spaces_requests_with_its_throttle_method() -> None:
    assert list(inspect.signature(ccxt.Exchange.throttle).parameters) == ["self", "cost"]
    assert "self.throttle(cost)" in inspect.getsource(ccxt.Exchange.fetch2), (
        "ccxt's fetch2 no longer calls self.throttle(cost): compat.ccxt.replace_throttle has no effect"
    )


def test_a_ccxt_client_keeps_its_http_session_in_session() -> None:
    client = ccxt.binance()
    assert isinstance(client.session, Session)
    assert client.session.trust_env is client.requests_trust_env
