"""The Feast edge: the feature table, the repo config built from settings, apply, materialize,
point-in-time training sets and online reads.

The definitions themselves live in ``feature_repo/definitions.py`` (declarative, usable by the stock
``feast`` CLI); this module applies those same objects with the paths and online store from ``Settings``.
"""

from __future__ import annotations

import io
import logging
import os
import re
import runpy
import shutil
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import pandas as pd

from hourcast.compat.feast import apply_plan, plans_apply, redis_client
from hourcast.errors import HourcastError, UserError
from hourcast.features import feature_table
from hourcast.features.compute import CROSS_FEATURES, LOOKBACK, ORDER_FLOW_FEATURES
from hourcast.redact import redact
from hourcast.settings import Settings
from hourcast.warning_filters import quiet_known_deprecations

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

logger = logging.getLogger(__name__)

PROJECT = "hourcast"
FEATURE_VIEW = "next_hour_fv"
TRAINING_SERVICE = "next_hour_v1"
SERVING_SERVICE = "next_hour_serving_v1"


# Every Redis call is bounded: connecting and each reply. Commands and flows use a generous bound;
# the API uses a tight one (serving.ONLINE_READ_SECONDS) and answers 503 rather than wait.
REDIS_TIMEOUT_SECONDS = 5.0


class OnlineStoreUnavailable(HourcastError):
    """The online store cannot be reached."""


class NoFeatureRows(HourcastError):
    """The stored candles hold no run long enough to compute a feature row."""


CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def is_cluster(url: str) -> bool:
    """Whether a Redis URL names a Redis Cluster (``redis+cluster://`` or ``rediss+cluster://``)."""
    return url.split("://", 1)[0] in CLUSTER_SCHEMES


def redis_connection_string(url: str, timeout_seconds: float = REDIS_TIMEOUT_SECONDS) -> str:
    """Feast's Redis connection string for a URL, with both timeouts:

    * ``redis[s]://[:password@]host:port/db``: one server, ``host:port,db=N,socket_timeout=..,...``;
    * ``redis[s]+cluster://[:password@]host:port,host:port,...``: a Redis Cluster (any of its nodes: the
      rest are discovered), ``host:port,host:port,socket_timeout=..,...``; a cluster has only database 0.

    ``password=..`` and ``ssl=true`` (``rediss``) follow."""
    scheme, _, rest = url.partition("://")
    if scheme in CLUSTER_SCHEMES:
        location, _, database = rest.partition("/")
        credentials, _, hosts = location.rpartition("@")
        password = credentials.partition(":")[2]
        nodes = [node.strip() for node in hosts.split(",") if node.strip()]
        if database.strip("/") not in ("", "0") or not nodes:
            raise ValueError(
                f"a Redis Cluster URL names its nodes and no database: "
                f"{scheme}://[:password@]host:port,host:port,... (got {redact(url)!r})"
            )
        addresses = [node if ":" in node else f"{node}:6379" for node in nodes]
        tls = scheme == "rediss+cluster"
    else:
        parts = urlsplit(url)
        if parts.scheme not in ("redis", "rediss"):
            raise ValueError(f"not a redis:// or redis+cluster:// URL: {redact(url)!r}")
        addresses = [
            f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}",
            f"db={parts.path.strip('/') or '0'}",
        ]
        password, tls = parts.password or "", parts.scheme == "rediss"
    options = [
        *addresses,
        f"socket_timeout={timeout_seconds:g}",
        f"socket_connect_timeout={timeout_seconds:g}",
    ]
    if password:
        options.append(f"password={password}")
    if tls:
        options.append("ssl=true")
    return ",".join(options)


def redis_online_store(url: str, timeout_seconds: float = REDIS_TIMEOUT_SECONDS) -> dict[str, str]:
    """Feast's Redis online store options for a URL (``redis_connection_string``): its connection string
    and ``redis_type`` (``redis``, or ``redis_cluster`` for a cluster URL)."""
    return {
        "redis_type": "redis_cluster" if is_cluster(url) else "redis",
        "connection_string": redis_connection_string(url, timeout_seconds),
    }


def sqlite_path(settings: Settings) -> Path:
    """The SQLite online store's database."""
    return settings.feast_dir / "online_store.db"


def describe_online_store(settings: Settings) -> str:
    """A one-line description of the configured online store (printed by the commands), without secrets."""
    if settings.online_store == "redis":
        kind = "redis cluster" if is_cluster(settings.redis_url) else "redis"
        return f"{kind} ({redact(settings.redis_url)})"
    return f"sqlite ({sqlite_path(settings)})"


def registry_path(settings: Settings) -> Path:
    """The Feast registry of the configured online store: each store keeps its own, so the record of what
    was materialized (and where) never crosses from one store to the other. ``registry.db`` and
    ``registry.redis.db`` under ``HOURCAST_HOME/feast``, as in the stock ``feature_store*.yaml``."""
    name = "registry.db" if settings.online_store == "sqlite" else f"registry.{settings.online_store}.db"
    return settings.feast_dir / name


def repo_config(
    settings: Settings, timeout_seconds: float = REDIS_TIMEOUT_SECONDS, registry: Path | None = None
) -> RepoConfig:
    """The Feast repo config the settings describe (the store's registry, ``registry_path``, and the SQLite
    store under HOURCAST_HOME, unless ``registry`` names another registry file); Redis calls time out after
    ``timeout_seconds``."""
    from feast.repo_config import RepoConfig

    quiet_known_deprecations()  # again, once Feast is imported: its import puts a filter ahead of them
    # the SQLite path relative to the repo, as feature_store.yaml writes it: Feast names the file alike
    sqlite = os.path.relpath(sqlite_path(settings), settings.feature_repo.resolve())
    online: dict[str, Any] = {"type": "sqlite", "path": sqlite}
    if settings.online_store == "redis":
        try:
            online = {"type": "redis", **redis_online_store(settings.redis_url, timeout_seconds)}
        except ValueError as error:  # a ValueError there: the parser is also a Feast config validator
            raise UserError(f"HOURCAST_REDIS_URL: {error}; fix it in the environment or .env") from None
    registry = registry or registry_path(settings)
    registry.parent.mkdir(parents=True, exist_ok=True)
    if settings.online_store == "sqlite":
        settings.feast_dir.mkdir(parents=True, exist_ok=True)
    return RepoConfig(
        project=PROJECT,
        provider="local",
        registry=str(registry),
        online_store=online,
        offline_store={"type": "duckdb"},
        entity_key_serialization_version=3,
        repo_path=settings.feature_repo.resolve(),
    )


def open_store(settings: Settings, timeout_seconds: float = REDIS_TIMEOUT_SECONDS) -> FeatureStore:
    """A Feast ``FeatureStore`` for the settings (Redis calls bounded by ``timeout_seconds``)."""
    from feast import FeatureStore

    return FeatureStore(config=repo_config(settings, timeout_seconds))


def open_serving_store(settings: Settings, timeout_seconds: float) -> FeatureStore:
    """A ``FeatureStore`` for online reads that needs nothing but the definitions and the online store.

    Its registry is built at start-up from ``feature_repo/definitions.py`` in a private temporary folder
    (removed with the store), so a server (a Bento started anywhere, with only the online store's address)
    never depends on, nor writes, the registry under ``HOURCAST_HOME``: online reads need the definitions,
    not the record of what was materialized.
    """
    from feast import FeatureStore

    folder = Path(tempfile.mkdtemp(prefix="hourcast-feast-"))
    try:
        feature_store = FeatureStore(config=repo_config(settings, timeout_seconds, folder / "registry.db"))
        with online_store_errors(settings), plain_output():
            feature_store.apply(definitions(settings))
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(feature_store, shutil.rmtree, folder, True)
    return feature_store


def fail_fast(feature_store: FeatureStore) -> None:
    """Make a Redis online store fail a call at its first timeout or refused connection.

    redis-py retries three times with exponential backoff of up to ten seconds by default, which turned a
    stopped Redis into 5-8 s per request. Feast 0.67 builds its client from the connection string, which
    cannot carry a retry policy, so the policy is set on the client Feast built (``compat.feast``).
    """
    if feature_store.config.online_store.type != "redis":
        return
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    redis_client(feature_store).set_retry(Retry(NoBackoff(), 0))


def online_as_of(feature_store: FeatureStore, symbols: list[str]) -> dict[str, pd.Timestamp | None]:
    """The ``as_of`` of each symbol's row in the online store (``None``: no row)."""
    values = feature_store.get_online_features(
        features=[f"{FEATURE_VIEW}:as_of"], entity_rows=[{"symbol": s} for s in symbols]
    ).to_dict()
    return {
        symbol: None if stamp is None else _utc(stamp)
        for symbol, stamp in zip(symbols, values["as_of"], strict=True)
    }


def _utc(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def definitions(settings: Settings) -> list[Any]:
    """The Feast objects of ``feature_repo/definitions.py``, their feature table moved under the settings'
    home (``settings.feature_table_in``: the definitions name it under the default home, so in the default
    layout both name the same file)."""
    from feast import Entity, FeatureService, FeatureView, FileSource

    namespace = runpy.run_path(str(settings.feature_repo / "definitions.py"))
    objects = [
        v for v in namespace.values() if isinstance(v, Entity | FileSource | FeatureView | FeatureService)
    ]
    for source in (o for o in objects if isinstance(o, FileSource)):
        source.file_options.uri = str(settings.feature_table_path)
    return objects


def apply_definitions(feature_store: FeatureStore, objects: list[Any]) -> None:
    """Apply ``objects`` the way ``feast apply`` does: with the SQLite online store, plan the change and apply
    only the diff (what the CLI does there), so alternating with the stock CLI changes nothing; with Redis,
    ``FeatureStore.apply`` (the CLI's path there too)."""
    from feast import Entity, FeatureService, FeatureView, FileSource, Project
    from feast.repo_contents import RepoContents

    if not plans_apply(feature_store):
        feature_store.apply(objects)
        return

    def of(kind: type) -> list[Any]:
        return [o for o in objects if isinstance(o, kind)]

    desired = RepoContents(
        projects=[Project(name=feature_store.project)],  # as `feast apply` adds it from feature_store.yaml
        data_sources=of(FileSource),
        feature_views=of(FeatureView),
        on_demand_feature_views=[],
        stream_feature_views=[],
        label_views=[],
        entities=of(Entity),
        feature_services=of(FeatureService),
        permissions=[],
    )
    apply_plan(feature_store, desired)


def refresh_feature_table(settings: Settings) -> feature_table.Update:
    """Bring the feature table (the last ``feature_retention_days``) up to date with the stored candles,
    incrementally (``feature_table.update``); ``dataset.NoCandles`` if a symbol has none."""
    return feature_table.update(settings)


@dataclass(frozen=True)
class MaterializeSummary:
    """What a materialization did."""

    online_store: str
    feature_rows: int
    symbols: dict[str, str | None]  # symbol -> newest event_timestamp now online (ISO)
    end: pd.Timestamp
    seconds: float
    healed: list[str] = field(default_factory=list)  # symbols whose online rows had gone missing, rewritten
    new_rows: int = 0  # feature rows written (new or recomputed) by this run

    def as_json(self) -> dict[str, Any]:
        """The ``--json`` line."""
        return {
            "online_store": self.online_store,
            "feature_rows": self.feature_rows,
            "symbols": self.symbols,
            "end": self.end.isoformat(),
            "seconds": round(self.seconds, 3),
            "healed": self.healed,
            "new_rows": self.new_rows,
        }


def materialize(settings: Settings, feature_store: FeatureStore | None = None) -> MaterializeSummary:
    """Update the feature table, apply the definitions and materialize incrementally into the online store.

    Incremental like ``feast materialize-incremental``, but the window is the data's own time: from the
    view's last materialized end (or one TTL before the newest row on the first run; or the oldest row the
    table update recomputed, within the TTL) to just past the newest feature row. A replayed world, whose
    clock is not the system clock, materializes like a live one. Self-healing: if a symbol's online row is
    missing or older than what was already materialized (Redis restarted empty, or was flushed), the last
    TTL window is written again, not just the new hours.
    """
    started = time.perf_counter()
    update = refresh_feature_table(settings)
    if update.newest_event is None:
        raise NoFeatureRows(
            f"no feature rows: the store holds no run of {LOOKBACK} consecutive candles for "
            f"{', '.join(settings.symbols)} in {settings.candles_dir}; run `hourcast ingest` first"
        )
    feature_store = feature_store or open_store(settings)
    newest = feature_table.newest_rows(settings.feature_table_path, settings.symbols)
    end = update.newest_event + pd.Timedelta(seconds=1)
    with online_store_errors(settings), plain_output():
        apply_definitions(feature_store, definitions(settings))
        release_interrupted_materialization(feature_store, FEATURE_VIEW)
        view = feature_store.get_feature_view(FEATURE_VIEW)
        first_run = (end - view.ttl).to_pydatetime()
        start = view.most_recent_end_time or first_run
        if not update.rows.empty:  # rows recomputed before the last end (a hole filled, a repair)
            start = min(start, max(update.rows["event_timestamp"].min().to_pydatetime(), first_run))
        healed = _lost_online_rows(feature_store, settings, view.most_recent_end_time, view.ttl)
        if healed:
            start = min(start, first_run)
        if start < end:
            feature_store.materialize(
                start_date=start, end_date=end.to_pydatetime(), feature_views=[FEATURE_VIEW]
            )
    return MaterializeSummary(
        online_store=describe_online_store(settings),
        feature_rows=update.total_rows,
        symbols={
            symbol: newest[symbol].isoformat() if symbol in newest else None for symbol in settings.symbols
        },
        end=end,
        seconds=time.perf_counter() - started,
        healed=healed,
        new_rows=len(update.rows),
    )


def release_interrupted_materialization(feature_store: FeatureStore, name: str) -> None:
    """Put the feature view ``name`` back in the state a failed materialization leaves it in, if a run that
    never finished (killed half-way) left it ``MATERIALIZING``.

    Feast 0.67 records ``MATERIALIZING`` in the registry when a run starts and, on an error, rolls the view
    back to the state it started from; a SIGKILLed run rolls back nothing, and Feast then refuses every online
    read of the view (``cannot serve features``). hourcast's materializations never overlap (the flows hold
    the writer slot, ``up``'s bootstrap runs before its worker starts), so a view found ``MATERIALIZING`` here
    is such a leftover. The state it started from: ``AVAILABLE_ONLINE`` once a materialization of the view
    is recorded (what a finished run sets; only it and ``GENERATED`` may go to ``MATERIALIZING``), else
    ``GENERATED``. Feast's public ``set_feature_view_state`` makes the transition; a one-line warning names
    the view."""
    from feast import FeatureViewState

    view = feature_store.get_feature_view(name)
    if view.state != FeatureViewState.MATERIALIZING:
        return
    previous = (
        FeatureViewState.AVAILABLE_ONLINE if view.materialization_intervals else FeatureViewState.GENERATED
    )
    feature_store.set_feature_view_state(name, previous)
    logger.warning(
        "feature view %s was left MATERIALIZING by a materialization that never finished (killed?): "
        "set back to %s, the state a failed run leaves",
        name,
        previous.name,
    )


def _lost_online_rows(
    feature_store: FeatureStore, settings: Settings, materialized_until: Any, ttl: pd.Timedelta
) -> list[str]:
    """Symbols whose online row is missing or older than the newest row already materialized (rows of
    the last ``ttl`` before ``materialized_until``: older ones are not served anyway)."""
    if materialized_until is None:
        return []
    until = _utc(materialized_until)
    since_day = (until - ttl).strftime("%Y-%m-%d")
    recent = feature_table.read(
        settings.feature_table_path, ["symbol", "event_timestamp", "as_of"], since_day=since_day
    )
    done = recent.loc[(recent["event_timestamp"] < until) & (recent["event_timestamp"] >= until - ttl)]
    expected = done.groupby("symbol")["as_of"].max()
    if expected.empty:
        return []
    online = online_as_of(feature_store, [str(symbol) for symbol in expected.index])
    return [
        symbol for symbol, stamp in online.items() if stamp is None or stamp < pd.Timestamp(expected[symbol])
    ]


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


class _PlainText(io.TextIOBase):
    """A text stream writing to ``target`` without ANSI colour codes."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def write(self, text: str) -> int:
        self._target.write(_ANSI.sub("", text))
        return len(text)

    def flush(self) -> None:
        self._target.flush()


@contextmanager
def plain_output() -> Iterator[None]:
    """What Feast prints while applying or materializing goes to stderr (stdout stays the command's own
    output), without Feast's colour codes unless stderr is a terminal (logs stay plain text)."""
    target = sys.stderr
    stream = target if target.isatty() else _PlainText(target)
    with redirect_stdout(stream), redirect_stderr(stream):
        yield


@contextmanager
def online_store_errors(settings: Settings) -> Iterator[None]:
    """Turn connection failures of the online store into ``OnlineStoreUnavailable`` naming it."""
    import redis

    try:
        yield
    except (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        redis.exceptions.ClusterDownError,
        redis.exceptions.RedisClusterException,  # no node of a cluster reachable
    ) as error:
        raise OnlineStoreUnavailable(
            redact(
                f"online store {describe_online_store(settings)} is unreachable: {error}; start it, or "
                "point HOURCAST_REDIS_URL at one that runs, and try again"
            )
        ) from error


def training_frame(feature_store: FeatureStore, labels: pd.DataFrame) -> pd.DataFrame:
    """Point-in-time join: the ``next_hour_v1`` features Feast would have served at each label's time.

    ``labels`` has ``symbol, event_timestamp`` plus label columns; rows whose features are missing (a gap
    in the candles) are dropped; rows whose reference symbol's row is missing keep NaN ``CROSS_FEATURES``,
    rows without order flow NaN ``ORDER_FLOW_FEATURES``.
    """
    service = feature_store.get_feature_service(TRAINING_SERVICE)
    joined = feature_store.get_historical_features(entity_df=labels, features=service).to_df()
    optional = {*CROSS_FEATURES, *ORDER_FLOW_FEATURES}  # NaN cross-asset and order-flow inputs stay
    own = [name for name in joined.columns if name not in optional]
    return joined.dropna(subset=own).sort_values(["event_timestamp", "symbol"]).reset_index(drop=True)
