"""The chaos soak of `hourcast up --replay`: the driver (start the stack, inject exchange faults, SIGKILL its
parts at random moments with a fixed seed, probe the API) and the checks made at the end, shared by
``benchmarks/soak.py`` (days) and ``tests/integration/test_soak.py`` (a short version).

The checks are plain functions over frames and lists, so the suite can test them on small inputs too:
``candle_differences`` (stored candles against the recorded file), ``record_hours`` (hours with a forecast of
record, and scored), ``availability`` (the probe's answers per window), ``flow_run_states``.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import psutil

from hourcast.dev.ports import free_port

REPO = Path(__file__).resolve().parents[2]
HOUR = pd.Timedelta(hours=1)
INGEST_MINUTE = pd.Timedelta(minutes=5)
"""The ingest deployment fires five minutes after each hourly close (``prefect.yaml``)."""
FAULT_KINDS = ("rate_limit", "server_error", "slow", "malformed", "duplicate", "missing")
FINAL_STATES = ("COMPLETED", "FAILED", "CRASHED", "CANCELLED")
KILL_KINDS = ("flow_run", "api_worker", "prefect_worker", "prefect_server", "redis")


# -- checks -------------------------------------------------------------------------------------------


def candle_differences(stored: pd.DataFrame, recorded: pd.DataFrame) -> dict[str, Any]:
    """Stored candles against the recorded ones over the same span (both with ``ts`` and OHLCV columns):
    recorded candles not stored (``lost``), stamps stored twice (``duplicated``), stored candles whose
    values differ from the recording (``changed``), stored stamps the recording does not have (``extra``)."""
    columns = ["open", "high", "low", "close", "volume"]
    duplicated = int(stored["ts"].duplicated().sum())
    unique = stored.drop_duplicates("ts")
    merged = recorded[["ts", *columns]].merge(
        unique[["ts", *columns]], on="ts", how="outer", suffixes=("_recorded", "_stored"), indicator=True
    )
    both = merged.loc[merged["_merge"] == "both"]
    differs = pd.Series(False, index=both.index)
    for column in columns:
        differs |= (
            both[f"{column}_recorded"].astype(float) - both[f"{column}_stored"].astype(float)
        ).abs() > 1e-9
    lost = merged.loc[merged["_merge"] == "left_only", "ts"]
    return {
        "recorded": len(recorded),
        "stored": len(stored),
        "lost": len(lost),
        "duplicated": duplicated,
        "changed": int(differs.sum()),
        "extra": int((merged["_merge"] == "right_only").sum()),
        "lost_first": [str(ts) for ts in lost.head(5)],
    }


def recorded_holes(recorded: pd.DataFrame, start: pd.Timestamp, end: pd.Timestamp) -> list[pd.Timestamp]:
    """Hours in ``[start, end)`` the recording has no candle for (the replay cannot serve them)."""
    expected = pd.date_range(start, end, freq="h", inclusive="left")
    return [ts for ts in expected if ts not in set(recorded["ts"])]


def up_hours(windows: list[tuple[pd.Timestamp, pd.Timestamp]]) -> list[pd.Timestamp]:
    """The candle hours (open time) whose ingest fired while the stack was up: the ingest of the candle
    opening at ``h`` fires at ``h + 1 h + 5 min``; ``windows`` are the replay-clock spans the stack ran."""
    hours: set[pd.Timestamp] = set()
    for start, end in windows:
        first = (start - HOUR - INGEST_MINUTE).ceil("h")
        last = (end - HOUR - INGEST_MINUTE).floor("h")
        hours.update(pd.date_range(first, last, freq="h"))
    return sorted(hours)


def record_hours(
    log: pd.DataFrame, scores: pd.DataFrame, symbols: list[str], expected: list[pd.Timestamp]
) -> dict[str, Any]:
    """Hours of ``expected`` (as_of stamps) with a forecast of record for every symbol, and scored:
    ``log`` is the prediction log (``source``, ``symbol``, ``as_of``, ``stale``), ``scores`` the monitor's
    scores. ``hours_recorded_late``: those whose record was made after its target hour had closed (``stale``:
    a run that missed its record step, caught up by a later one)."""
    records = log.loc[log["source"] == "record"]
    per_hour = records.groupby("as_of")["symbol"].nunique()
    complete = {ts for ts, count in per_hour.items() if count >= len(symbols)}
    late = set(records.loc[records["stale"].eq(True), "as_of"])
    scored_records = scores.loc[(scores["source"] == "record") & (scores["status"] == "scored")]
    scored = {
        ts
        for ts, count in scored_records.groupby("as_of")["symbol"].nunique().items()
        if count >= len(symbols)
    }
    missing = [ts for ts in expected if ts not in complete]
    unscored = [ts for ts in expected if ts in complete and ts not in scored]
    return {
        "hours_up": len(expected),
        "hours_with_record": len(expected) - len(missing),
        "hours_scored": len([ts for ts in expected if ts in scored]),
        "hours_recorded_late": len([ts for ts in expected if ts in complete and ts in late]),
        "missing_first": [str(ts) for ts in missing[:10]],
        "unscored_first": [str(ts) for ts in unscored[:10]],
        "records_outside_up_hours": len(complete - set(expected)),
    }


@dataclass(frozen=True)
class Sample:
    """One probe call: when (monotonic seconds), which endpoint, and whether it answered 2xx."""

    at: float
    endpoint: str
    ok: bool


def availability(samples: list[Sample], windows: dict[str, list[tuple[float, float]]]) -> dict[str, Any]:
    """Share of 2xx answers and the longest run of failures (seconds) per endpoint, over every sample, over
    the samples inside the windows of each fault kind (``windows``: kind -> spans of monotonic seconds),
    and outside the Redis-down windows."""

    def figures(chosen: list[Sample]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for endpoint in sorted({sample.endpoint for sample in chosen}):
            mine = sorted((s for s in chosen if s.endpoint == endpoint), key=lambda s: s.at)
            longest, down_since = 0.0, None
            for sample in mine:
                if not sample.ok and down_since is None:
                    down_since = sample.at
                elif sample.ok and down_since is not None:
                    longest, down_since = max(longest, sample.at - down_since), None
            if down_since is not None:
                longest = max(longest, mine[-1].at - down_since)
            ok = sum(sample.ok for sample in mine)
            result[endpoint] = {
                "calls": len(mine),
                "share_2xx": round(ok / len(mine), 5),
                "longest_outage_s": round(longest, 1),
            }
        return result

    def inside(sample: Sample, spans: list[tuple[float, float]]) -> bool:
        return any(start <= sample.at <= end for start, end in spans)

    report = {"all": figures(samples)}
    for kind, spans in sorted(windows.items()):
        report[kind] = figures([s for s in samples if inside(s, spans)])
    redis = windows.get("redis", [])
    report["outside_redis_down"] = figures([s for s in samples if not inside(s, redis)])
    return report


def flow_run_states(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Flow runs (Prefect API objects) counted by state type; those not in a final state named."""
    final = FINAL_STATES
    counts: dict[str, int] = {}
    for run in runs:
        kind = (run.get("state") or {}).get("type", "NONE")
        counts[kind] = counts.get(kind, 0) + 1
    unfinished = [
        f"{run['name']} ({(run.get('state') or {}).get('type')})"
        for run in runs
        if (run.get("state") or {}).get("type") not in final
    ]
    return {"runs": len(runs), "by_state": counts, "not_final": unfinished}


# -- the plan -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One chaos event at a replay-clock offset from the start: a fault kind or a kill kind."""

    after: pd.Timedelta
    kind: str
    target: str


def chaos_plan(
    seed: int, days: float, faults_per_day: float, kills_per_day: float, kill_kinds: tuple[str, ...]
) -> list[Event]:
    """The events of a soak, drawn with ``seed``: faults and kills at uniformly random replay-clock times
    (the first and last hour left quiet), kinds drawn in turn so that each kind comes up."""
    rng = random.Random(seed)
    span = pd.Timedelta(days=days) - 2 * HOUR
    events = []
    for target, per_day, kinds in (
        ("fault", faults_per_day, FAULT_KINDS),
        ("kill", kills_per_day, kill_kinds),
    ):
        count = round(per_day * days)
        order = [kinds[i % len(kinds)] for i in range(count)] if kinds else []
        rng.shuffle(order)
        for kind in order:
            events.append(Event(HOUR + span * rng.random(), kind, target))
    return sorted(events, key=lambda event: event.after)


# -- the driver ---------------------------------------------------------------------------------------


def descendants(pid: int) -> list[psutil.Process]:
    """Every live process below ``pid``."""
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _cmdline(process: psutil.Process) -> str:
    try:
        return " ".join(process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return ""


def _environ(process: psutil.Process) -> dict[str, str]:
    try:
        return process.environ()
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return {}


def find_part(up_pid: int, kind: str) -> psutil.Process | None:
    """The process of ``kind`` below `hourcast up` (pid ``up_pid``), if one is running."""
    processes = descendants(up_pid)
    if kind == "flow_run":
        runs = [p for p in processes if "PREFECT__FLOW_RUN_ID" in _environ(p)]
        # the run's own Python, not a helper it started
        return next((p for p in runs if "PREFECT__FLOW_RUN_ID" not in _environ(_parent(p))), None)
    if kind == "api_worker":
        servers = [p for p in processes if "bentoml" in _cmdline(p) and "serve" in _cmdline(p)]
        workers = [p for p in processes if "worker" in _cmdline(p) and any(_is_below(p, s) for s in servers)]
        return workers[0] if workers else None
    if kind == "prefect_worker":
        return next((p for p in processes if "prefect worker start" in _cmdline(p)), None)
    if kind == "prefect_server":
        return next((p for p in processes if "prefect server start" in _cmdline(p)), None)
    raise ValueError(f"unknown part {kind!r}")


def _parent(process: psutil.Process) -> psutil.Process:
    try:
        return process.parent() or process
    except psutil.NoSuchProcess:
        return process


def _is_below(process: psutil.Process, ancestor: psutil.Process) -> bool:
    try:
        return ancestor.pid in {p.pid for p in process.parents()}
    except psutil.NoSuchProcess:
        return False


@dataclass
class SoakConfig:
    """What one soak runs: replay ``speed``, simulated ``days``, the chaos (``seed``, rates, kill kinds),
    the first model's training window, the API workers, and where everything goes (``home``)."""

    home: Path
    days: float = 2.0
    speed: float = 60.0
    seed: int = 22
    faults_per_day: float = 6.0
    kills_per_day: float = 3.0
    kill_kinds: tuple[str, ...] = ("flow_run",)
    train_days: int = 30
    serve_workers: int = 1
    redis: bool = False
    redis_down_seconds: float = 10.0
    probe_seconds: float = 0.5
    fault_hours: float = 2.0
    """How long (replay-clock hours) a fault stays on at its rate before it is cleared."""
    settle_seconds: float = 420.0
    """How long the end waits for the last ingest and monitor runs (a writer slot left by a killed run
    is freed when its lease expires: Prefect's default, 300 s)."""


@dataclass
class SoakLog:
    """What happened during a soak, for the checks."""

    samples: list[Sample] = field(default_factory=list)
    windows: dict[str, list[tuple[float, float]]] = field(default_factory=dict)
    up_windows: list[tuple[pd.Timestamp, pd.Timestamp]] = field(default_factory=list)
    events: list[str] = field(default_factory=list)
    restarts: int = 0
    fault_counts: dict[str, int] = field(default_factory=dict)


class Soak:
    """Runs `hourcast up --replay` under chaos (``SoakConfig``) and collects a ``SoakLog``."""

    def __init__(self, config: SoakConfig) -> None:
        self.config = config
        self.log = SoakLog()
        home = config.home
        self.data = home / "data"
        self.api_port, self.ui_port, self.prefect_port = free_port(), free_port(), free_port()
        self.prefect_api = f"http://127.0.0.1:{self.prefect_port}/api"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HOURCAST_", "PREFECT_", "BENTOML_"))}
        env.update(
            {
                "HOURCAST_HOME": str(self.data),
                "BENTOML_HOME": str(home / "bentoml"),
                "BENTOML_DO_NOT_TRACK": "True",
                "HOURCAST_SERVE_PORT": str(self.api_port),
                "HOURCAST_UI_PORT": str(self.ui_port),
                "HOURCAST_SERVE_WORKERS": str(config.serve_workers),
                "HOURCAST_TRAIN_DAYS": str(config.train_days),
                "PREFECT_HOME": str(home / "prefect-client"),
                "PREFECT_SERVER_API_PORT": str(self.prefect_port),
                "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                "PYTHONUNBUFFERED": "1",
            }
        )
        self.redis = None
        if config.redis:
            from hourcast.dev.redis_server import RedisServer

            self.redis = RedisServer().start()
            env.update({"HOURCAST_ONLINE_STORE": "redis", "HOURCAST_REDIS_URL": self.redis.url})
        self.env = env
        self.process: subprocess.Popen[bytes] | None = None
        self.exchange_url: str | None = None
        self.clock: pd.Timestamp | None = None
        self.started_clock: pd.Timestamp | None = None
        self._up_since: pd.Timestamp | None = None
        self._runs = 0
        self.failed: str | None = None
        """Why the soak ended early (`hourcast up` did not come back after a restart), else None."""

    # -- the stack ------------------------------------------------------------------------------------

    @property
    def output(self) -> Path:
        return self.config.home / f"up-{self._runs}.out"

    def start_up(self, now: pd.Timestamp | None = None) -> None:
        """Start `hourcast up --replay` (at replay clock ``now``, else its default) and wait for /predict."""
        self._runs += 1
        command = [sys.executable, "-m", "hourcast", "up", "--replay", "--speed", str(self.config.speed)]
        if now is not None:
            command += ["--now", now.isoformat()]
        with open(self.output, "wb") as output:
            self.process = subprocess.Popen(
                command, cwd=REPO, env=self.env, stdout=output, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 600
        while not ("running; Ctrl-C" in self.text() and self.predicts()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    f"hourcast up --replay did not come up; see {self.output}:\n{self.text()[-3000:]}"
                )
            time.sleep(0.5)
        found = re.search(r"replay exchange: (\S+)", self.text())
        assert found is not None, self.text()
        self.exchange_url = found.group(1)
        self.clock = self.read_clock()
        self._up_since = self.clock
        if self.started_clock is None:
            self.started_clock = self.clock

    def text(self) -> str:
        return self.output.read_text(errors="replace") if self.output.exists() else ""

    def predicts(self) -> bool:
        return self.call("predict")

    def call(self, endpoint: str) -> bool:
        """One probe call: POST /predict or GET /readyz; whether it answered 2xx."""
        url = f"http://127.0.0.1:{self.api_port}/{endpoint}"
        try:
            if endpoint == "predict":
                answer = httpx.post(url, json={"symbol": "BTC/USDT"}, timeout=3)
            else:
                answer = httpx.get(url, timeout=3)
        except httpx.HTTPError:
            return False
        return 200 <= answer.status_code < 300

    def read_clock(self) -> pd.Timestamp | None:
        try:
            state = httpx.get(f"{self.exchange_url}/_replay/clock", timeout=3).json()
        except (httpx.HTTPError, ValueError):
            return None
        return pd.Timestamp(state["now"])

    def exchange(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = httpx.request(method, f"{self.exchange_url}/_replay/{path}", json=body, timeout=5)
        answer.raise_for_status()
        return answer.json()

    def up_ended(self) -> None:
        """`hourcast up` exited: close its up window at the last clock read."""
        if self._up_since is not None and self.clock is not None:
            self.log.up_windows.append((self._up_since, self.clock))
        self._up_since = None

    def stop_up(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        code = self.process.wait(timeout=120)
        self.up_ended()
        return code

    # -- chaos ----------------------------------------------------------------------------------------

    def window(self, kind: str, start: float, end: float) -> None:
        self.log.windows.setdefault(kind, []).append((start, end))

    def inject_fault(self, kind: str) -> None:
        self.exchange("POST", "faults", {kind: {"rate": 0.5}})
        self._fault = (kind, time.monotonic(), self.clock)
        self.log.events.append(f"{self.clock} fault {kind}")

    def end_fault(self) -> None:
        kind, started, _ = self._fault
        fired = self.exchange("GET", "faults")["fired"][kind]
        self.exchange("DELETE", "faults")  # also sets the counts back to 0
        self.log.fault_counts[kind] = self.log.fault_counts.get(kind, 0) + fired
        self.window(kind, started, time.monotonic())
        self._fault = None

    def kill(self, kind: str) -> None:
        """SIGKILL the part ``kind``; restart what `hourcast up` does not restart itself."""
        assert self.process is not None
        started = time.monotonic()
        if kind == "redis":
            assert self.redis is not None
            self.redis.process.kill()
            self.redis.process.wait()
            self.log.events.append(f"{self.clock} kill redis")
            self.probe_for(self.config.redis_down_seconds)
            self.redis.start()
            self.window(kind, started, time.monotonic())
            return
        deadline = time.monotonic() + 30
        victim = find_part(self.process.pid, kind)
        while victim is None and time.monotonic() < deadline:
            self.probe_for(0.5)  # a flow run comes and goes: wait for one
            victim = find_part(self.process.pid, kind)
        if victim is None:
            self.log.events.append(f"{self.clock} kill {kind}: none running")
            return
        self.log.events.append(f"{self.clock} kill {kind} pid {victim.pid} ({_cmdline(victim)[:80]})")
        victim.kill()
        # up either carries on (the part restarts, or the run was a one-off) or stops: then it is restarted
        self.probe_for(5.0)
        if self.process.poll() is not None:
            self.restart("after the kill")
        self.window(kind, started, time.monotonic() + 30)

    def restart(self, why: str) -> None:
        """`hourcast up` exited (``why``): start it again at the clock it reached; if it does not come up,
        the soak ends there (``failed`` says why)."""
        assert self.process is not None
        self.up_ended()
        self.log.restarts += 1
        self.log.events.append(f"{self.clock} up exited {why} ({self.process.returncode}); restarting")
        try:
            self.start_up(self.clock)
        except RuntimeError:
            lines = [line for line in self.text().splitlines() if line and "\u2502" not in line]
            self.failed = f"up did not come back at {self.clock}: {' / '.join(lines[-2:])} ({self.output})"
            self.log.events.append(self.failed)

    def probe_for(self, seconds: float) -> None:
        """Probe /predict and /readyz for ``seconds``, reading the replay clock."""
        end = time.monotonic() + seconds
        while True:
            for endpoint in ("predict", "readyz"):
                self.log.samples.append(Sample(time.monotonic(), endpoint, self.call(endpoint)))
            if self.process is not None and self.process.poll() is None:
                self.clock = self.read_clock() or self.clock
            if time.monotonic() >= end:
                return
            time.sleep(self.config.probe_seconds)

    def run(self) -> SoakLog:
        """Start the stack, play the chaos plan over ``days`` of replay clock, freeze the clock."""
        config = self.config
        plan = chaos_plan(
            config.seed, config.days, config.faults_per_day, config.kills_per_day, config.kill_kinds
        )
        self._fault = None
        self.start_up()
        assert self.started_clock is not None
        end = self.started_clock + pd.Timedelta(days=config.days)
        while self.clock is not None and self.clock < end:
            self.probe_for(config.probe_seconds)
            if self.process is not None and self.process.poll() is not None:
                self.restart("by itself")
            if self.failed is not None:
                break
            fault_span = pd.Timedelta(hours=config.fault_hours)
            if self._fault is not None and self.clock - self._fault[2] > fault_span:
                self.end_fault()
            while plan and self.failed is None and self.clock >= self.started_clock + plan[0].after:
                event = plan.pop(0)
                if event.target == "fault":
                    if self._fault is not None:
                        self.end_fault()
                    self.inject_fault(event.kind)
                else:
                    self.kill(event.kind)
        if self.failed is not None:
            return self.log
        if self._fault is not None:
            self.end_fault()
        self.exchange("POST", "clock", {"speed": 0})
        return self.log

    def prefect(self, path: str, body: dict[str, Any] | None = None) -> Any:
        """One call to the stack's Prefect API (POST with a body, else GET)."""
        url = f"{self.prefect_api}/{path}"
        answer = httpx.post(url, json=body, timeout=10) if body is not None else httpx.get(url, timeout=10)
        answer.raise_for_status()
        return answer.json()

    def flow_runs(self) -> list[dict[str, Any]]:
        """Every flow run on the stack's Prefect server."""
        runs: list[dict[str, Any]] = []
        while True:
            page = self.prefect("flow_runs/filter", {"limit": 200, "offset": len(runs)})
            runs += page
            if len(page) < 200:
                return runs

    def wait_for_runs(self, done: Any, deadline: float) -> None:
        """Probe until ``done(flow runs)`` holds or ``deadline`` (monotonic) passes."""
        while not done(self.flow_runs()) and time.monotonic() < deadline:
            self.probe_for(2.0)

    def settle(self) -> list[dict[str, Any]]:
        """With the clock frozen: one more ingest run (every candle closed by then, its record), the monitor
        run that follows it, then no run in progress, waiting at most ``settle_seconds`` in all; returns
        every flow run."""
        if self.failed is not None:
            return []
        deadline = time.monotonic() + self.config.settle_seconds
        [ingest] = [d for d in self.prefect("deployments/filter", {}) if d["name"] == "ingest"]
        last = self.prefect(f"deployments/{ingest['id']}/create_flow_run", {})
        self.log.events.append(f"{self.clock} clock frozen; last ingest {last['name']}")

        def state(run: dict[str, Any]) -> str:
            return (run.get("state") or {}).get("type", "NONE")

        def last_over(runs: list[dict[str, Any]]) -> bool:
            return any(run["id"] == last["id"] and state(run) in FINAL_STATES for run in runs)

        self.wait_for_runs(last_over, deadline)
        ended = self.prefect(f"flow_runs/{last['id']}").get("end_time") or "9999"

        def monitored(runs: list[dict[str, Any]]) -> bool:
            return any(
                run["created"] >= ended and state(run) in FINAL_STATES and run["name"] != last["name"]
                for run in runs
            )

        self.wait_for_runs(monitored, deadline)
        self.wait_for_runs(lambda runs: all(state(r) in FINAL_STATES for r in runs), deadline)
        return self.flow_runs()

    def close(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.stop_up()
        if self.redis is not None:
            self.redis.stop()


def final_checks(soak: Soak, runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Every check of the soak on its data home (after ``run`` and ``settle``)."""
    from hourcast.data import quarantine, store
    from hourcast.dev.replay.data import load_candles_file
    from hourcast.dev.samples import sample_files
    from hourcast.monitor.scoring import read_scores
    from hourcast.serving.prediction_log import read_log

    assert soak.clock is not None
    home = soak.data
    last_closed = soak.clock.floor("h") - HOUR
    candles: dict[str, Any] = {}
    for symbol, path in sample_files().items():
        series = store.Series("binance", symbol, "1h")
        stored = store.load_candles(home / "candles", series)
        stored = stored.loc[stored["ts"] <= last_closed]
        recorded = load_candles_file(path)
        first = stored["ts"].min()
        recorded = recorded.loc[(recorded["ts"] >= first) & (recorded["ts"] <= last_closed)]
        figures = candle_differences(stored, recorded)
        figures["recorded_holes"] = len(recorded_holes(recorded, first, last_closed + HOUR))
        stamps = set(stored["ts"])
        pending = [
            entry
            for entry in quarantine.entries(home / "quarantine", series)
            if entry.state == quarantine.PENDING
            and entry.first is not None
            and pd.Timestamp(entry.first) in stamps
            and pd.Timestamp(entry.last) in stamps
        ]
        figures["pending_quarantine_for_stored"] = len(pending)
        figures["quarantine_entries"] = {
            state: sum(e.state == state for e in quarantine.entries(home / "quarantine", series))
            for state in ("pending", "resolved", "reviewed", "released")
        }
        candles[symbol] = figures
    symbols = list(sample_files())
    log = read_log(home / "predictions", columns=["source", "symbol", "as_of", "stale"])
    scores = read_scores(home / "scores")
    last_scorable = last_closed - HOUR  # its target is the last closed candle
    windows = list(soak.log.up_windows)
    if soak.process is not None and soak.process.poll() is None and soak._up_since is not None:
        windows.append((soak._up_since, soak.clock))  # still running
    expected = [h for h in up_hours(windows) if h <= last_scorable]
    return {
        "candles": candles,
        "records": record_hours(log, scores, symbols, expected),
        "availability": availability(soak.log.samples, soak.log.windows),
        "flow_runs": flow_run_states(runs),
        "restarts_of_up": soak.log.restarts,
        "ended_early": soak.failed,
        "faults_fired": soak.log.fault_counts,
        "events": soak.log.events,
        "replay_clock": {"start": str(soak.started_clock), "end": str(soak.clock)},
    }


def run_soak(config: SoakConfig) -> dict[str, Any]:
    """One whole soak: run the chaos, settle, check; the stack is stopped whatever happens."""
    soak = Soak(config)
    try:
        soak.run()
        return final_checks(soak, soak.settle())
    finally:
        soak.close()


def write_json(path: Path, figures: dict[str, Any]) -> None:
    path.write_text(json.dumps(figures, indent=2, default=str))
