"""The monitor against what a running service really answered: the replay exchange as the market and the
clock, a Redis of the test's own, `hourcast ingest`'s ingestor and `hourcast materialize` every simulated
hour, a model trained on what was ingested, the stock `hourcast serve` answering `/predict` over HTTP
(stopped with Ctrl-C and started again half-way), an exchange that never serves one BTC/USDT hour (a hole in
its data: every request leaves it out), and `hourcast monitor --json` run as a user runs it: once while the
service restarts, twice at the end. Every score is checked against the recorded candle in the bundled file
and the answer the API gave."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil
import pytest

from hourcast.data import completeness, ledger, store
from hourcast.data.ingest import make_ingestor
from hourcast.dev.ports import free_port
from hourcast.dev.replay.exchange import ReplayExchange
from hourcast.dev.replay.server import ReplayServer
from hourcast.features import featurestore
from hourcast.model import estimator, training
from hourcast.monitor import scoring
from hourcast.serving.prediction_log import read_log
from hourcast.settings import Settings
from tests.support.data import replay_settings
from tests.support.processes import process_tree, running_server, wait_for

REPO = Path(__file__).resolve().parents[2]
HOURCAST = str(Path(sys.executable).with_name("hourcast"))
SYMBOLS = ["BTC/USDT", "ETH/USDT"]
HOUR = pd.Timedelta(hours=1)
CLOCK = pd.Timestamp("2024-03-01 00:10", tz="UTC")  # ten minutes after 2024-02-29 23:00 closed
HOURS = 5  # simulated hours answered: the newest closed candle is 2024-02-29 23:00 + k hours at hour k
RESTART_BEFORE = 2  # the service is stopped after hour 1 and started again for hour 2
GAP_HOUR = 3  # BTC/USDT's candle closing before hour 3 (2024-03-01 02:00) is never served
GAP = CLOCK.floor("h") + (GAP_HOUR - 1) * HOUR


def fast_fit(frame: pd.DataFrame, params: dict | None = None) -> Any:
    return estimator.fit(frame, {**(params or {}), "iterations": 40})


def stop_service(server: subprocess.Popen, sig: int = signal.SIGINT) -> list[psutil.Process]:
    """Send ``sig`` to the service's session (Ctrl-C in its terminal) and wait until every process of it
    is gone; returns those still alive after 30 s (killed)."""
    processes = process_tree(server.pid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(server.pid, sig)
    _, alive = psutil.wait_procs(processes, timeout=30)
    for process in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            process.kill()
    psutil.wait_procs(alive, timeout=10)
    server.poll()
    return alive


@contextlib.contextmanager
def serving(settings: Settings, port: int, log_path: Path) -> Iterator[subprocess.Popen]:
    """`hourcast serve` (one worker) in a session of its own, once it is ready; stopped with every process
    it started on the way out unless the test stopped it."""
    env = {
        **os.environ,
        "BENTOML_HOME": str(settings.home / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "True",
        "HOURCAST_HOME": str(settings.home),
        "HOURCAST_SYMBOLS": ",".join(settings.symbols),
        "HOURCAST_ONLINE_STORE": "redis",
        "HOURCAST_REDIS_URL": settings.redis_url,
        "HOURCAST_FEATURE_REPO": str(settings.feature_repo),
        "HOURCAST_EXCHANGE_URL": settings.exchange_url or "",
        "HOURCAST_SERVE_WORKERS": "1",
        "HOURCAST_MODEL_REFRESH_SECONDS": "0.2",
        "HOURCAST_PREDICTION_FLUSH_SECONDS": "0.2",
    }
    command, ready_url = [HOURCAST, "serve", "--port", str(port)], f"http://127.0.0.1:{port}/readyz"
    with running_server(command, ready_url, env=env, cwd=REPO, log_path=log_path, timeout=180) as server:
        yield server


def start_monitor(settings: Settings) -> subprocess.Popen:
    """`hourcast monitor --json` in a process of its own, as a user runs it."""
    env = {**os.environ, "HOURCAST_HOME": str(settings.home), "HOURCAST_SYMBOLS": ",".join(settings.symbols)}
    env["BENTOML_HOME"] = str(settings.home / "bentoml")
    command = [HOURCAST, "monitor", "--json"]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def monitor_report(running: subprocess.Popen) -> dict[str, Any]:
    """What a `hourcast monitor --json` process printed, once it has exited (successfully)."""
    try:
        out, err = running.communicate(timeout=120)
    finally:
        running.kill()
    assert running.returncode == 0, err
    return json.loads(out)


def feature_ages(url: str) -> dict[str, float]:
    """The service's ``hourcast_feature_age_seconds`` gauges (aged by the clock it uses)."""
    text = httpx.get(url + "/monitor/metrics", timeout=10).text
    prefix = 'hourcast_feature_age_seconds{symbol="'
    return {
        line[len(prefix) :].split('"')[0]: float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(prefix)
    }


def clock_reached(url: str, newest: dict[str, pd.Timestamp], now: pd.Timestamp) -> bool:
    """Whether the service judges staleness by the replay clock at ``now`` (not the hour before): each
    symbol's feature age is its age at ``now`` or more (the service's clock runs on from its last sync)."""
    ages = feature_ages(url)
    return all(ages.get(s, -1e9) >= (now - (stamp + HOUR)).total_seconds() for s, stamp in newest.items())


def close_at(recorded: dict[str, pd.DataFrame], symbol: str, stamp: pd.Timestamp) -> float:
    frame = recorded[symbol]
    [close] = frame.loc[frame["ts"] == stamp, "close"].tolist()
    return float(close)


@pytest.fixture
def holed_replay(recorded_files: dict[str, pd.DataFrame]) -> Iterator[ReplayServer]:
    """The replay exchange on the bundled candles, less BTC/USDT's ``GAP`` candle, its clock at ``CLOCK``."""
    btc = recorded_files["BTC/USDT"]
    exchange = ReplayExchange(
        {"BTC/USDT": btc.loc[btc["ts"] != GAP], "ETH/USDT": recorded_files["ETH/USDT"]}, now=CLOCK
    )
    with ReplayServer(exchange) as server:
        yield server


@pytest.mark.usefixtures("bentoml_store")
def test_answers_of_a_running_service_are_scored_exactly_once_across_restarts_and_a_gap(
    tmp_path: Path, holed_replay: ReplayServer, redis_db: str, recorded_files: dict[str, pd.DataFrame]
) -> None:
    replay = holed_replay
    settings = replay_settings(
        tmp_path,
        replay,
        symbols=SYMBOLS,
        default_backfill_days=16,
        train_days=14,
        online_store="redis",
        redis_url=redis_db,
        feature_repo=REPO / "feature_repo",
        _env_file=None,
    )
    ingestor = make_ingestor(settings)
    ingestor.ingest()  # 16 days of history from the exchange
    featurestore.materialize(settings)
    tag = training.train(settings, fit_fn=fast_fit).tag
    port, log_path = free_port(), tmp_path / "service.log"
    url = f"http://127.0.0.1:{port}"
    answers: dict[tuple[str, pd.Timestamp], dict[str, Any]] = {}  # (symbol, as_of) -> the first answer
    served: list[tuple[str, pd.Timestamp]] = []  # every 200 answer, repeats included
    refused: list[tuple[int, str]] = []
    newest = {symbol: CLOCK.floor("h") - HOUR for symbol in SYMBOLS}  # the newest candle with features

    def one_hour(hour: int) -> None:
        """Hour ``hour`` of the replay: the clock moves on, `ingest` and `materialize`, one /predict per
        symbol once the service judges by the new clock (ETH/USDT twice in the hour after the restart)."""
        now = CLOCK + hour * HOUR
        if hour:
            replay.exchange.set_now(now)
            ingestor.ingest()
            featurestore.materialize(settings)
            for symbol in SYMBOLS:
                if not (symbol == "BTC/USDT" and hour >= GAP_HOUR):  # no features across the gap
                    newest[symbol] = now.floor("h") - HOUR
        wait_for(lambda: clock_reached(url, newest, now), 30, f"the service's clock to reach {now}")
        for symbol in [*SYMBOLS, *(["ETH/USDT"] if hour == RESTART_BEFORE else [])]:
            response = httpx.post(url + "/predict", json={"symbol": symbol}, timeout=10)
            if response.status_code != 200:
                refused.append((hour, symbol))
                assert response.status_code == 503 and "allow_stale" in response.text, response.text
                continue
            body = response.json()
            as_of = pd.Timestamp(body["as_of"])
            assert (body["model"], body["stale"], as_of) == (tag, False, newest[symbol])
            kept = answers.setdefault((symbol, as_of), body)
            assert body["predicted_close"] == kept["predicted_close"]
            served.append((symbol, as_of))

    def logged_answers() -> int:
        return len(read_log(settings.predictions_dir)) if settings.predictions_dir.exists() else 0

    with serving(settings, port, log_path) as server:
        for hour in range(RESTART_BEFORE):
            one_hour(hour)
        assert not stop_service(server), "the service did not stop on Ctrl-C"
    assert logged_answers() == len(served) == 2 * RESTART_BEFORE  # flushed at shutdown: nothing lost

    # the monitor while the service restarts: what has closed is scored, the newest answers wait
    monitoring = start_monitor(settings)
    with serving(settings, port, log_path) as server:
        first = monitor_report(monitoring)
        scored_first = 2 * (RESTART_BEFORE - 1)
        assert (first["added"], first["scored"], first["unscorable"], first["pending"]) == (
            scored_first,
            scored_first,
            [],
            2,
        )
        for hour in range(RESTART_BEFORE, HOURS):
            one_hour(hour)
        wait_for(lambda: logged_answers() == len(served), 10, "the prediction log to be flushed")
        assert not stop_service(server)

    # the hole is in the archive, asked for again by each later run (the recorded file has the candle)
    btc = store.Series(settings.exchange, "BTC/USDT", settings.timeframe)
    assert GAP not in set(store.load_candles(settings.candles_dir, btc)["ts"])
    [hole] = completeness.holes(settings, btc)
    assert (hole.start, hole.candles, hole.state) == (GAP, 1, completeness.RE_REQUESTED)
    runs = ledger.read(settings.ledger_dir)
    assert runs.loc[runs["symbol"] == "BTC/USDT", "gaps"].tolist()[-2:] == [1, 1] and runs["gaps"].sum() == 2
    # BTC/USDT's features stop at the gap: the service refuses stale ones instead of answering from them
    assert refused == [(hour, "BTC/USDT") for hour in range(GAP_HOUR, HOURS)]

    second = monitor_report(start_monitor(settings))
    again = monitor_report(start_monitor(settings))
    scored = len(answers) - 2  # one answer targets the gap, one the hour that has not closed yet
    assert (second["added"], second["scored"], second["pending"]) == (scored + 1 - scored_first, scored, 1)
    assert second["unscorable"] == [
        {
            "symbol": "BTC/USDT",
            "as_of": (GAP - HOUR).isoformat(),
            "target_time": GAP.isoformat(),
            "model": tag,
        }
    ]
    assert again["added"] == 0 and {k: again[k] for k in ("scored", "unscorable", "pending")} == {
        k: second[k] for k in ("scored", "unscorable", "pending")
    }
    # nothing lost across the restarts: every logged answer is scored, unscorable or pending, a repeated
    # answer (same symbol, hour and model) once
    log = read_log(settings.predictions_dir)
    assert len(log) == len(served) == len(answers) + 1
    assert len(scoring.distinct_predictions(log)) == len(answers)
    assert len(answers) == again["scored"] + len(again["unscorable"]) + again["pending"]

    scores = scoring.read_scores(settings.scores_dir)
    assert not scores.duplicated(scoring.KEY).any()
    assert len(scores) == len(answers) - 1 and set(scores["model"]) == {tag}
    for row in scores.itertuples():
        served = answers[(row.symbol, row.as_of)]
        last = close_at(recorded_files, row.symbol, row.as_of)
        assert row.last_close == served["last_close"] == last
        assert row.predicted_close == served["predicted_close"]
        assert row.target_time == row.as_of + HOUR == pd.Timestamp(served["target_time"])
        if row.status == scoring.UNSCORABLE:
            assert (row.symbol, row.target_time) == ("BTC/USDT", GAP) and pd.isna(row.realised_close)
            assert pd.isna(row.error) and pd.isna(row.persistence_error) and pd.isna(row.in_band)
            continue
        realised = close_at(recorded_files, row.symbol, row.target_time)
        assert row.status == scoring.SCORED and row.realised_close == realised
        assert row.error == served["predicted_close"] - realised
        assert abs(row.error) == abs(served["predicted_close"] - realised)
        assert row.persistence_error == last - realised
        assert row.in_band == (served["band"]["low"] <= realised <= served["band"]["high"])
        if realised != last:
            assert row.direction_hit == ((served["predicted_close"] > last) == (realised > last))
