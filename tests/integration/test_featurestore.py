"""Feast end to end: apply + materialize into the real Redis and into SQLite, point-in-time training
sets, a Redis that is down, and the stock `feast` CLI on feature_repo/."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import redis

from hourcast.features import dataset, feature_table, featurestore
from hourcast.features.compute import FEATURE_NAMES, LOOKBACK
from hourcast.settings import Settings
from tests.support.data import store_recorded

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
END = "2024-03-01T00:00:00Z"
CONTEXT = ["last_close", "as_of"]


def stock_feast(monkeypatch: pytest.MonkeyPatch, repo: Path) -> Callable[..., str]:
    """The stock `feast` CLI (its click group, which the `feast` script runs) on ``repo``, in this process:
    Feast is imported once instead of in every command. As in a new `feast` process, the repo's modules are
    imported afresh by each command (its objects stamped anew). Returns the command's output, uncoloured."""
    from click.testing import CliRunner
    from feast.cli.cli import cli

    monkeypatch.setattr(sys, "path", list(sys.path))  # `feast apply` puts the repo on sys.path
    monkeypatch.setattr(sys, "dont_write_bytecode", sys.dont_write_bytecode)

    def feast(*command: str) -> str:
        cwd = Path.cwd()
        done = CliRunner().invoke(cli, ["-c", str(repo), *command], catch_exceptions=False)
        os.chdir(cwd)  # `feast apply` changes directory
        for name, module in list(sys.modules.items()):
            if Path(getattr(module, "__file__", None) or "/").is_relative_to(repo.parent):
                del sys.modules[name]
        assert done.exit_code == 0, done.output
        return re.sub(r"\x1b\[[0-9;]*m", "", done.output)

    return feast


def online_rows(settings: Settings) -> pd.DataFrame:
    feature_store = featurestore.open_store(settings)
    service = feature_store.get_feature_service(featurestore.SERVING_SERVICE)
    rows = feature_store.get_online_features(features=service, entity_rows=[{"symbol": s} for s in SYMBOLS])
    return rows.to_df().set_index("symbol")


@pytest.fixture(params=["redis", "sqlite"])
def settings(request: pytest.FixtureRequest, tmp_path: Path, recorded_files: dict) -> Settings:
    redis_url = request.getfixturevalue("redis_db") if request.param == "redis" else "redis://unused:1/0"
    settings = Settings(
        home=tmp_path,
        symbols=SYMBOLS,
        online_store=request.param,
        redis_url=redis_url,
        feature_repo=REPO / "feature_repo",
    )
    store_recorded(settings, recorded_files, days=20, end=END)
    return settings


def test_materialize_serves_the_newest_offline_row(
    settings: Settings, recorded_files: dict, capfd: pytest.CaptureFixture[str]
) -> None:
    summary = featurestore.materialize(settings)
    printed = capfd.readouterr()
    assert "Materializing 1 feature views" in printed.err and not printed.out  # Feast's output: stderr
    assert "\x1b[" not in printed.err  # without colour codes off a terminal (logs, `hourcast up`)
    assert summary.online_store.startswith(settings.online_store)
    assert summary.symbols == {s: "2024-03-01T00:00:00+00:00" for s in SYMBOLS}

    table = pd.read_parquet(settings.feature_table_path)
    online = online_rows(settings)
    for symbol in SYMBOLS:
        newest = table.loc[table["symbol"] == symbol].iloc[-1]
        assert newest["as_of"] == pd.Timestamp("2024-02-29 23:00", tz="UTC")
        assert pd.Timestamp(online.loc[symbol, "as_of"]) == newest["as_of"]
        for name in [*FEATURE_NAMES, "last_close"]:
            assert online.loc[symbol, name] == newest[name], name

    # three more hours of candles: an incremental materialization moves the online rows forward
    store_recorded(settings, recorded_files, days=20, end="2024-03-01T03:00:00Z")
    later = featurestore.materialize(settings)
    assert later.symbols["BTC/USDT"] == "2024-03-01T03:00:00+00:00"
    assert pd.Timestamp(online_rows(settings).loc["BTC/USDT", "as_of"]) == pd.Timestamp(
        "2024-03-01 02:00", tz="UTC"
    )


def test_training_rows_never_see_later_feature_values(tmp_path: Path, recorded_files: dict) -> None:
    settings = Settings(home=tmp_path, symbols=SYMBOLS, feature_repo=REPO / "feature_repo")
    store_recorded(settings, recorded_files, days=10, end=END)
    featurestore.materialize(settings)
    feature_store = featurestore.open_store(settings)
    table = pd.read_parquet(settings.feature_table_path)
    moment = table["event_timestamp"].iloc[100]
    entity = pd.DataFrame({"symbol": ["BTC/USDT"], "event_timestamp": [moment]})

    before = featurestore.training_frame(feature_store, entity)
    later = table["event_timestamp"] > moment
    table.loc[later, "ret_1h"] = 999.0  # every value after T changes
    feature_table.write(settings.feature_table_path, table)
    after = featurestore.training_frame(feature_store, entity)
    pd.testing.assert_frame_equal(before, after)
    assert (
        before.loc[0, "ret_1h"]
        == table.loc[(table["symbol"] == "BTC/USDT") & (table["event_timestamp"] == moment), "ret_1h"].item()
    )

    table.loc[table["event_timestamp"] == moment, "ret_1h"] = 999.0  # the value at T itself is seen
    feature_table.write(settings.feature_table_path, table)
    assert featurestore.training_frame(feature_store, entity).loc[0, "ret_1h"] == 999.0


def test_feast_point_in_time_rows_equal_the_pure_rows(tmp_path: Path, recorded_files: dict) -> None:
    """Training's rows (Feast's point-in-time join) and evaluation's (pure) are the same rows."""
    settings = Settings(home=tmp_path, symbols=SYMBOLS, feature_repo=REPO / "feature_repo")
    store_recorded(settings, recorded_files, days=6, end=END)
    featurestore.materialize(settings)
    candles = dataset.load_candles(settings)
    through_feast = featurestore.training_frame(
        featurestore.open_store(settings), dataset.labels(candles, settings.timeframe)
    )
    pure = dataset.labelled_rows(candles, settings.timeframe)
    assert len(pure) == 2 * (6 * 24 - LOOKBACK)  # every candle with a full window and a next close
    columns = sorted(pure.columns)
    assert sorted(through_feast.columns) == columns
    normal = {"symbol": str, "as_of": "datetime64[ms, UTC]", "event_timestamp": "datetime64[ms, UTC]"}
    pd.testing.assert_frame_equal(
        through_feast[columns].astype(normal), pure[columns].astype(normal), check_exact=True
    )


def test_hourcast_materialize_prints_no_library_deprecation(tmp_path: Path, recorded_files: dict) -> None:
    """Importing Feast turns every library's DeprecationWarning on ("once", process-wide), and ibis under
    Feast warns on each offline read; `hourcast materialize`, as a user runs it, prints none of them."""
    settings = Settings(home=tmp_path, symbols=SYMBOLS, feature_repo=REPO / "feature_repo", _env_file=None)
    store_recorded(settings, recorded_files, days=5, end=END)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("HOURCAST_", "PYTHONWARNINGS"))},
        "HOURCAST_HOME": str(tmp_path),
        "HOURCAST_SYMBOLS": ",".join(SYMBOLS),
        "HOURCAST_FEATURE_REPO": str(REPO / "feature_repo"),
    }
    hourcast = str(Path(sys.executable).with_name("hourcast"))
    done = subprocess.run(
        [hourcast, "materialize"], cwd=tmp_path, env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "feature rows" in done.stdout and "Warning" not in done.stderr, done.stderr


def test_every_path_refuses_a_symbol_without_candles(tmp_path: Path, recorded_files: dict) -> None:
    settings = Settings(home=tmp_path, symbols=["BTC/USDT", "DOGE/USDT"], feature_repo=REPO / "feature_repo")
    store_recorded(settings.model_copy(update={"symbols": ["BTC/USDT"]}), recorded_files, days=3, end=END)
    for build in (featurestore.refresh_feature_table, dataset.load_candles):
        with pytest.raises(dataset.NoCandles, match="no candles stored for DOGE/USDT"):
            build(settings)


def test_a_redis_that_is_down_gives_a_clear_error(tmp_path: Path, recorded_files: dict) -> None:
    url = "redis://127.0.0.1:6399/0"  # nothing listens there
    settings = Settings(
        home=tmp_path,
        symbols=SYMBOLS,
        online_store="redis",
        redis_url=url,
        feature_repo=REPO / "feature_repo",
    )
    store_recorded(settings, recorded_files, days=5, end=END)
    with pytest.raises(featurestore.OnlineStoreUnavailable, match=r"127\.0\.0\.1:6399"):
        featurestore.materialize(settings)


def changed_lines(applied: str) -> list[str]:
    """The lines that differ between the old and new source in `feast apply`'s diff of a feature view
    (after a materialization, Feast 0.67 re-prints every view, whose source differs only in its
    timestamps: see test_feast_reprints_any_materialized_view_of_its_own_template)."""
    changed = []
    applied = re.sub(r"\x1b\[[0-9;]*m", "", applied)
    for before, after in re.findall(r"batch_source: (.*?) -> (.*?)\n\n", applied, flags=re.DOTALL):
        pairs = zip(before.splitlines(), after.splitlines(), strict=True)
        changed += [old for old, new in pairs if old != new]
    return changed


def test_stock_feast_cli_alternates_with_hourcast_and_each_store_has_its_registry(
    tmp_path: Path, recorded_files: dict, redis_db: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`feast apply` after `hourcast materialize` (SQLite) names the same feature table, and so does a second
    one (what either prints differs only in the source's timestamps, as in Feast's own template after a
    materialization: test_feast_reprints_any_materialized_view_of_its_own_template); then the switch to
    Redis with the stock feature_store.redis.yaml at HOURCAST_REDIS_URL (`apply`, `materialize-incremental`)
    materializes fully: its own registry knows nothing was written."""
    project = tmp_path / "project"
    shutil.copytree(
        REPO / "feature_repo", project / "feature_repo", ignore=shutil.ignore_patterns("data", "__pycache__")
    )
    settings = Settings(home=project / "data", symbols=SYMBOLS, feature_repo=project / "feature_repo")
    # candles shifted so the newest closed an hour ago (materialize-incremental uses the system clock)
    now = pd.Timestamp.now(tz="UTC").floor("h")
    shift = now - pd.Timestamp(END)
    shifted = {s: f.assign(ts=f["ts"] + shift) for s, f in recorded_files.items()}
    store_recorded(settings, shifted, days=5, end=str(now))
    featurestore.materialize(settings)  # hourcast applies first

    monkeypatch.setenv("HOURCAST_REDIS_URL", redis_db)
    monkeypatch.chdir(project / "feature_repo")  # where a user runs it
    run = stock_feast(monkeypatch, project / "feature_repo")

    for _ in range(2):  # after hourcast's apply, and again: the same definitions, the same path
        changed = changed_lines(run("apply"))
        assert all(re.fullmatch(r"\s*(seconds|nanos): \d+", line) for line in changed), changed
    online = online_rows(settings)  # hourcast's materialization into the CLI's registry and SQLite file
    assert pd.Timestamp(online.loc["BTC/USDT", "as_of"]) == now - pd.Timedelta(hours=1)

    # the switch: Redis is empty, and its registry knows nothing was materialized into it
    redis_settings = settings.model_copy(update={"online_store": "redis", "redis_url": redis_db})
    assert redis.Redis.from_url(redis_db).dbsize() == 0
    run("-f", "feature_store.redis.yaml", "apply")
    run("-f", "feature_store.redis.yaml", "materialize-incremental", now.strftime("%Y-%m-%dT%H:%M:%S"))
    online = online_rows(redis_settings)
    assert (online["as_of"].map(pd.Timestamp) == now - pd.Timedelta(hours=1)).all()
    assert featurestore.registry_path(redis_settings) != featurestore.registry_path(settings)


def test_feast_reprints_any_materialized_view_of_its_own_template(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why a second `feast apply` after a materialization still prints a diff, in Feast's own `feast init`
    template: two applies in a row change nothing, but once a view is materialized every apply reports it
    "Updated" and prints its batch source twice, differing only in the seconds and nanos of the source's
    created/last-updated timestamps. `FeatureView.__eq__` counts the materialization intervals (which
    definitions never carry), so the view never equals the registry's, and the field-by-field diff then
    shows the source's timestamps: the registry keeps those of the first apply, while a definition's
    source is stamped when it is constructed, in every `feast` process. No definition can avoid it."""
    monkeypatch.chdir(tmp_path)  # `feast init demo` creates demo/ here
    repo = tmp_path / "demo" / "feature_repo"
    feast = stock_feast(monkeypatch, repo)

    feast("init", "demo")
    assert "Created feature view driver_hourly_stats" in feast("apply")
    assert "No changes to registry" in feast("apply")  # unmaterialized: a second apply is a no-op
    feast("materialize-incremental", pd.Timestamp.now(tz="UTC").strftime("%Y-%m-%dT%H:%M:%S"))
    for _ in range(2):
        applied = feast("apply")
        assert "Updated feature view driver_hourly_stats\n" in applied
        changed = changed_lines(applied)
        assert changed and all(re.fullmatch(r"\s*(seconds|nanos): \d+", line) for line in changed), changed


def test_the_stock_redis_file_takes_a_url_and_defaults_like_the_settings() -> None:
    from hourcast.features.feast_redis import RedisUrlOnlineStoreConfig

    given = RedisUrlOnlineStoreConfig(url="rediss://:secret@cache.example:6380/4")
    assert given.connection_string.startswith("cache.example:6380,db=4,")
    assert "password=secret" in given.connection_string and given.connection_string.endswith("ssl=true")
    unset = RedisUrlOnlineStoreConfig(url="${HOURCAST_REDIS_URL}")  # Feast leaves an unset variable as is
    assert unset.connection_string.startswith("127.0.0.1:6379,db=0,")
