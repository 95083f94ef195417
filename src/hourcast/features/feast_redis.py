"""Feast's Redis online store addressed by a ``redis://`` URL (or a ``redis+cluster://`` one naming the nodes
of a Redis Cluster), for the stock ``feast`` CLI.

``feature_repo/feature_store.redis.yaml`` names it
(``type: hourcast.features.feast_redis.RedisUrlOnlineStore``) with ``url: ${HOURCAST_REDIS_URL}``, so the CLI
reads the same Redis as hourcast: Feast expands ``${VAR}`` in its YAML, and its own Redis store only
takes ``host:port,db=N`` connection strings.
"""

from __future__ import annotations

from typing import Literal

from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig, RedisType
from pydantic import model_validator

from hourcast.features.featurestore import redis_online_store
from hourcast.settings import Settings

DEFAULT_URL: str = Settings.model_fields["redis_url"].default


class RedisUrlOnlineStoreConfig(RedisOnlineStoreConfig):
    """Feast's Redis store config with ``url`` (an unset ``${HOURCAST_REDIS_URL}``: hourcast's default); a
    ``redis+cluster://`` URL sets ``redis_type: redis_cluster``."""

    type: Literal["hourcast.features.feast_redis.RedisUrlOnlineStore"] = (
        "hourcast.features.feast_redis.RedisUrlOnlineStore"  # type: ignore[assignment]
    )
    url: str = DEFAULT_URL

    @model_validator(mode="after")
    def _connection_string_from_url(self) -> RedisUrlOnlineStoreConfig:
        """Feast's connection string and Redis type for ``url`` (with hourcast's timeouts)."""
        url = DEFAULT_URL if self.url.startswith("${") else self.url  # left as is by Feast when unset
        for name, value in redis_online_store(url).items():
            object.__setattr__(self, name, RedisType(value) if name == "redis_type" else value)
        return self


class RedisUrlOnlineStore(RedisOnlineStore):
    """Feast's Redis online store, unchanged (only its config differs)."""
