"""Feast's private APIs: the Redis client under its online store, and ``feast apply``'s plan-and-diff path.

Feast is not imported here: the functions take a ``FeatureStore`` the caller built.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_contents import RepoContents
    from redis import Redis
    from redis.cluster import RedisCluster

DISTRIBUTION = "feast"
CHECKED_VERSIONS = ">=0.67.0,<0.68"
"""Checked against Feast 0.67.0."""


def redis_client(feature_store: FeatureStore) -> Redis | RedisCluster:
    """The redis-py client of ``feature_store``'s Redis online store, the one its reads and writes go
    through: built on the first call, then kept by Feast, so a setting changed on it holds from then on.

    Why private: Feast builds the client from its connection string, which cannot carry a retry policy, and
    offers no public way to reach it (``FeatureStore._get_provider()``, then
    ``RedisOnlineStore._get_client``)."""
    online_store = feature_store._get_provider().online_store
    return online_store._get_client(feature_store.config.online_store)


def plans_apply(feature_store: FeatureStore) -> bool:
    """Whether ``feast apply`` plans the change and applies only the difference for this store (Feast 0.67:
    the local provider with the SQLite online store) instead of calling ``FeatureStore.apply``.

    Why private: the CLI decides with ``FeatureStore._should_use_plan``; applying the way the CLI would is
    what lets hourcast and the stock ``feast`` CLI alternate on one registry without changing it."""
    return bool(feature_store._should_use_plan())


def apply_plan(feature_store: FeatureStore, desired: RepoContents) -> None:
    """Plan ``desired`` against ``feature_store``'s registry and infrastructure and apply only the
    difference, as ``feast apply`` does (``FeatureStore.plan``, then ``FeatureStore._apply_diffs``).

    Why private: ``FeatureStore.plan`` is public but applying its result is not (``FeatureStore.apply``
    rewrites every object instead)."""
    registry_diff, infra_diff, new_infra = feature_store.plan(desired)
    feature_store._apply_diffs(registry_diff, infra_diff, new_infra)
