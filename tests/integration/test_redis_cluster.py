"""The Feast online store on a real 3-node Redis Cluster started by the test (``redis-server
--cluster-enabled yes`` on three free ports, ``redis-cli --cluster create``): `hourcast materialize`
(apply + materialize, healing a flushed node) and `/predict` from the stock `bentoml serve` reading the
cluster, all through ``HOURCAST_REDIS_URL=redis+cluster://host:port,...`` (the stock CLI's Redis file
takes the same URL)."""

from __future__ import annotations

import os
import random
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import redis
from feast.infra.online_stores.redis import RedisType
from redis.cluster import ClusterNode, RedisCluster

from hourcast.cli.serve import serve_environment
from hourcast.dev.ports import free_port
from hourcast.features import featurestore
from hourcast.features.feast_redis import RedisUrlOnlineStoreConfig
from hourcast.model import training
from hourcast.settings import Settings
from tests.integration.test_service import fast_fit
from tests.support.bento import bentoml_home, bentoml_serve
from tests.support.data import store_recorded
from tests.support.processes import wait_for

REPO = Path(__file__).resolve().parents[2]
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
NODES = 3


def cluster_port() -> int:
    """A free loopback port whose cluster bus port (10000 higher, so at most 55535) is free too."""
    while True:
        port = random.randrange(20_000, 45_000)
        with socket.socket() as first, socket.socket() as second:
            try:
                first.bind(("127.0.0.1", port))
                second.bind(("127.0.0.1", port + 10_000))
            except OSError:
                continue
        return port


class Cluster:
    """Three ``redis-server --cluster-enabled yes`` on free loopback ports (config files in ``folder``,
    nothing persisted), joined by ``redis-cli --cluster create`` with no replicas."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.ports: list[int] = []
        while len(self.ports) < NODES:
            port = cluster_port()
            if port not in self.ports:
                self.ports.append(port)
        self.processes: list[subprocess.Popen[bytes]] = []
        self.url = "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def start(self) -> Cluster:
        server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
        if server is None or cli is None:
            pytest.fail(
                "the Redis Cluster test needs redis-server and redis-cli: `apt-get install redis-server`"
            )
        for port in self.ports:
            command = [
                server,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(self.folder / f"nodes-{port}.conf"),
                "--dir", str(self.folder),
                "--save", "",
                "--appendonly", "no",
            ]  # fmt: skip
            self.processes.append(
                subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            )
        for port in self.ports:
            wait_for(lambda port=port: self._answers(port), 10, f"cluster node on port {port}")
        nodes = [f"127.0.0.1:{port}" for port in self.ports]
        subprocess.run(
            [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"],
            check=True,
            capture_output=True,
            timeout=60,
        )
        wait_for(self._ok, 30, "cluster_state:ok on every node")
        return self

    def _answers(self, port: int) -> bool:
        try:
            return bool(redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
        except redis.exceptions.RedisError:
            return False

    def _ok(self) -> bool:
        for port in self.ports:
            client = redis.Redis(port=port, socket_timeout=0.5, socket_connect_timeout=0.5)
            try:
                if client.cluster("info")["cluster_state"] != "ok":
                    return False
            finally:
                client.close()
        return True

    def client(self) -> RedisCluster:
        return RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", port) for port in self.ports])

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def test_connection_strings_for_a_cluster_url() -> None:
    url = "rediss+cluster://:s3cret@10.0.0.1:7000,10.0.0.2:7001,10.0.0.3"
    assert featurestore.redis_online_store(url, 0.5) == {
        "redis_type": "redis_cluster",
        "connection_string": "10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:6379,socket_timeout=0.5,"
        "socket_connect_timeout=0.5,password=s3cret,ssl=true",
    }
    settings = Settings(online_store="redis", redis_url=url, _env_file=None)
    assert (
        featurestore.describe_online_store(settings)
        == "redis cluster (rediss+cluster://:***@10.0.0.1:7000,10.0.0.2:7001,10.0.0.3)"
    )
    with pytest.raises(ValueError, match="names its nodes and no database"):
        featurestore.redis_connection_string("redis+cluster://10.0.0.1:7000/3")
    assert featurestore.redis_online_store("redis://h:1/2")["redis_type"] == "redis"
    # the stock CLI's Redis file (feature_store.redis.yaml: url: ${HOURCAST_REDIS_URL}) names the same cluster
    stock = RedisUrlOnlineStoreConfig(url=url)
    assert stock.redis_type == RedisType.redis_cluster
    assert stock.connection_string == featurestore.redis_connection_string(url)


def test_apply_materialize_and_predict_on_a_redis_cluster(
    cluster: Cluster, tmp_path: Path, recorded_files: dict
) -> None:
    settings = Settings(
        home=tmp_path / "data",
        symbols=SYMBOLS,
        online_store="redis",
        redis_url=cluster.url,
        feature_repo=REPO / "feature_repo",
        train_days=14,
        feature_retention_days=15,
        _env_file=None,
    )
    store_recorded(settings, recorded_files, days=20, end="2024-03-01")
    summary = featurestore.materialize(settings)
    assert summary.online_store.startswith("redis cluster (redis+cluster://127.0.0.1:")
    assert summary.symbols == {symbol: "2024-03-01T00:00:00+00:00" for symbol in SYMBOLS}

    # the rows are in the cluster: one key per symbol, spread by hash slot over its nodes
    client = cluster.client()
    keys = [key for key in client.scan_iter(target_nodes=RedisCluster.ALL_NODES) if key.endswith(b"hourcast")]
    assert len(keys) == len(SYMBOLS)
    feature_store = featurestore.open_store(settings)
    online = featurestore.online_as_of(feature_store, SYMBOLS)
    assert {symbol: str(stamp) for symbol, stamp in online.items()} == dict.fromkeys(
        SYMBOLS, "2024-02-29 23:00:00+00:00"
    )

    # a node flushed (its keys lost): the next materialize heals what it held
    lost = client.keyslot(keys[0])
    holder = client.nodes_manager.get_node_from_slot(lost)
    redis.Redis(port=holder.port).flushall()
    assert None in featurestore.online_as_of(feature_store, SYMBOLS).values()
    assert featurestore.materialize(settings).healed
    assert None not in featurestore.online_as_of(featurestore.open_store(settings), SYMBOLS).values()

    # /predict from the stock `bentoml serve`, reading the cluster
    with bentoml_home(tmp_path / "bentoml"):
        training.train(settings, fit_fn=fast_fit)
    port = free_port()
    given = {
        **os.environ,
        "BENTOML_HOME": str(tmp_path / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "BENTOML_CONFIG_OVERRIDES": '{"services": {"hourcast": {"workers": 1}}}',
        "HOURCAST_HOME": str(settings.home),
        "HOURCAST_SYMBOLS": ",".join(SYMBOLS),
        "HOURCAST_ONLINE_STORE": "redis",
        "HOURCAST_REDIS_URL": cluster.url,
        "HOURCAST_FEATURE_REPO": str(REPO / "feature_repo"),
        "HOURCAST_EXCHANGE_URL": f"http://127.0.0.1:{free_port()}",  # no exchange: the system clock
    }
    env = serve_environment(settings, given)
    with bentoml_serve("bento_service.service:NextHour", port, env, REPO, tmp_path / "service.log"):
        url = f"http://127.0.0.1:{port}"
        for symbol in SYMBOLS:
            answer = httpx.post(url + "/predict", json={"symbol": symbol, "allow_stale": True}, timeout=10)
            assert answer.status_code == 200, answer.text
            body = answer.json()
            assert body["symbol"] == symbol and body["as_of"] == "2024-02-29T23:00:00Z"
            assert body["stale"] is True  # 2024 candles by today's clock
