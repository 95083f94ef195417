"""The built Bento, as a deployment runs it: `bentoml build` in the project, then
`bentoml serve hourcast:<tag>` from another folder with nothing but the online store's address (no
HOURCAST_HOME, no Feast registry)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

from hourcast.dev.ports import free_port
from hourcast.features import featurestore
from hourcast.model import estimator, training
from hourcast.settings import Settings
from tests.support.bento import bentoml_home, bentoml_serve
from tests.support.data import store_recorded

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


@pytest.fixture
def served_bento(tmp_path: Path, redis_db: str, recorded_files: dict) -> Iterator[tuple[str, Path, Path]]:
    """A trained model built into a Bento and served from an empty folder with only the Redis variables;
    yields the API's URL, the Bento's folder and the serving log."""
    now = pd.Timestamp.now(tz="UTC").floor("h")  # the newest candle closed at the top of this hour
    shift = now - pd.Timestamp("2024-03-01", tz="UTC")
    shifted = {s: f.assign(ts=f["ts"] + shift) for s, f in recorded_files.items()}
    settings = Settings(
        home=tmp_path / "data",
        online_store="redis",
        redis_url=redis_db,
        feature_repo=REPO / "feature_repo",
        train_days=10,
        _env_file=None,
    )
    store_recorded(settings, shifted, days=14, end=str(now))
    featurestore.materialize(settings)
    bentoml_dir = tmp_path / "bentoml"
    with bentoml_home(bentoml_dir):
        training.train(settings, fit_fn=lambda frame, params=None: estimator.fit(frame, {"iterations": 30}))

    clean = {k: v for k, v in os.environ.items() if not k.startswith(("HOURCAST_", "BENTOML_"))}
    bento_env = {**clean, "BENTOML_HOME": str(bentoml_dir), "BENTOML_DO_NOT_TRACK": "True"}
    built = subprocess.run(
        [str(BIN / "bentoml"), "build", "--output", "tag"],
        cwd=REPO,
        env={**bento_env, "HOURCAST_HOME": str(settings.home)},  # the registry names the model to package
        capture_output=True,
        text=True,
        check=False,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    tag = built.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert tag.startswith("hourcast:"), built.stdout
    bento_dir = bentoml_dir / "bentos" / "hourcast" / tag.split(":")[1]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    port = free_port()
    serve_env = {
        **bento_env,
        "BENTOML_CONFIG_OVERRIDES": '{"services": {"hourcast": {"workers": 1}}}',  # _OPTIONS is deprecated
        "HOURCAST_ONLINE_STORE": "redis",
        "HOURCAST_REDIS_URL": redis_db,
    }
    log_path = tmp_path / "serve.log"
    with bentoml_serve(tag, port, serve_env, elsewhere, log_path):
        yield f"http://127.0.0.1:{port}", bento_dir, log_path


def test_the_bento_serves_from_anywhere_with_only_the_online_store(
    served_bento: tuple[str, Path, Path],
) -> None:
    url, bento_dir, log_path = served_bento
    answer = httpx.post(url + "/predict", json={"symbol": "BTC/USDT"}, timeout=10)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["stale"] is False and body["model"].startswith("hourcast_next_hour:")
    expected = (pd.Timestamp.now(tz="UTC").floor("h") - pd.Timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert body["as_of"] == expected  # the newest row materialized into Redis
    assert not list(bento_dir.rglob("feast")), "the Bento wrote a Feast folder into the Bento store"
    assert "FeatureServiceNotFound" not in log_path.read_text()
