"""The one settings object. Built at entry points (CLI, flows, service) and passed down."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from hourcast.timeframe import check_timeframe, timeframe_ms


def feature_table_in(home: Path) -> Path:
    """The Parquet feature table Feast's offline store reads, under the data root ``home`` (absolute: Feast
    resolves a source's path as is). ``feature_repo/definitions.py`` names it under the default home."""
    return (home / "features" / "next_hour.parquet").resolve()


class Settings(BaseSettings):
    """hourcast configuration, read from ``HOURCAST_*`` environment variables and ``.env``."""

    model_config = SettingsConfigDict(env_prefix="HOURCAST_", env_file=".env", extra="ignore")

    home: Path = Field(Path("data"), description="Data root: candles, quarantine, ledger, reports.")
    exchange: str = Field("binance", description="ccxt exchange id to pull candles from.")
    exchange_url: str | None = Field(
        None,
        description="Base URL replacing the exchange's API host (e.g. the replay exchange at http://127.0.0.1:8765).",
    )
    symbols: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["BTC/USDT"],
        description="Comma-separated unified symbols to track (hundreds are fine), or a selector: `all-usdt` "
        "is every active spot market quoted in USDT that traded at least min_quote_volume (any "
        "`all-<quote>` works), resolved through the exchange when ingest or backfill starts and stored in "
        "HOURCAST_HOME/symbols.json, which every other command, flow and service reads.",
    )
    min_quote_volume: float = Field(
        1_000_000.0,
        ge=0,
        description="Least quote-currency volume of the last 24 h (the exchange's tickers) a market needs to "
        "be picked by a selector such as `all-usdt`.",
    )
    dask_address: str | None = Field(
        None,
        description="Dask scheduler (tcp://host:8786) the ingest and backfill flows fan their symbols out "
        "to, through prefect-dask's DaskTaskRunner (workers need this HOURCAST_HOME on a shared filesystem); "
        "unset: Prefect's thread pool in the flow's process.",
    )
    writer_limit: str = Field(
        "hourcast-ingest",
        min_length=1,
        description="Prefect global concurrency limit (1 slot) that the writing flows (ingest, backfill, "
        "retention) hold, so two never overlap; give each data home sharing a Prefect server a name of its "
        "own, or their writers wait for each other.",
    )
    ingest_shard_symbols: int = Field(
        100,
        ge=1,
        description="Symbols per pull task of the ingest and backfill flows' fan-out (each task fetches its "
        "symbols concurrently and validates them in one Great Expectations run).",
    )
    exchange_concurrency: int = Field(
        8,
        ge=1,
        le=64,
        description="Exchange requests in flight at once during ingestion (all within the exchange's rate "
        "limit, which ccxt's cost model sets and the threads share).",
    )
    timeframe: str = Field(
        "1h", description="Candle timeframe (ccxt notation): one of 15m, 30m, 1h, 2h, 4h, 1d."
    )
    default_backfill_days: int = Field(
        30, ge=1, description="History an `ingest` into an empty store pulls before the last closed candle."
    )
    gap_retries: int = Field(
        5,
        ge=1,
        description="Answers of the exchange that must leave a candle out before its hole counts as "
        "confirmed (until then every ingest asks for it again).",
    )
    gap_retry_days: float = Field(
        3.0,
        ge=0,
        description="Holes older than this (before the newest closed candle) are not asked for again: "
        "they count as confirmed by the exchange.",
    )
    quarantine_retention_days: int = Field(
        90,
        ge=1,
        description="Days quarantine entries are kept, by the newest candle they hold (data time).",
    )
    exchange_timeout_ms: int = Field(10_000, ge=100, description="ccxt per-request timeout in milliseconds.")
    fetch_limit: int = Field(1000, ge=1, le=1500, description="Candles requested per fetch_ohlcv page.")
    retry_attempts: int = Field(
        6, ge=1, description="Tries per exchange request before a transient fault becomes an error."
    )
    retry_base_seconds: float = Field(
        0.5, ge=0, description="First backoff delay; doubles per retry, with full jitter."
    )
    retry_max_seconds: float = Field(30.0, ge=0, description="Cap on one backoff delay.")
    online_store: Literal["sqlite", "redis"] = Field(
        "sqlite", description="Feast online store: embedded SQLite (zero setup) or Redis at `redis_url`."
    )
    redis_url: str = Field(
        "redis://127.0.0.1:6379/0",
        description="Redis for the Feast online store: redis[s]://[:password@]host:port/db for one server, "
        "redis[s]+cluster://[:password@]host:port,host:port,... for a Redis Cluster (any of its nodes).",
    )
    model_name: str = Field("hourcast_next_hour", description="Name of the model in the BentoML model store.")
    train_days: int = Field(
        365,
        ge=2,
        description="Training window: the last N days of labelled hours (365: the best window of the "
        "52-week walk-forward, docs/model.md; the product brief's 30 is HOURCAST_TRAIN_DAYS=30).",
    )
    gate_weeks: int = Field(
        1, ge=1, description="Weeks of walk-forward (inside the training window) the promotion gate scores."
    )
    promotion_tolerance: float = Field(
        0.02,
        ge=0,
        description="How much worse than persistence (MAE, as a fraction) a promoted model may be.",
    )
    keep_models: int = Field(10, ge=1, description="Models kept in the store; older ones are pruned.")
    candle_retention_days: int | None = Field(
        None,
        ge=1,
        description="Days of raw candles kept (whole months older are deleted); unset: keep everything.",
    )
    feature_retention_days: int = Field(
        367,
        ge=2,
        description="Days of rows kept in the feature table: at least train_days + 1 (training and its gate "
        "read them through Feast); the default is train_days (365) plus 2 days of slack.",
    )
    prediction_retention_days: int = Field(
        90, ge=1, description="Days of prediction log files kept (by the day they were written)."
    )
    ledger_retention_days: int = Field(
        400, ge=1, description="Days of ingestion ledger kept (whole days of runs older are deleted)."
    )
    feature_repo: Path = Field(Path("feature_repo"), description="The Feast repo folder (definitions.py).")
    serve_host: str = Field("127.0.0.1", description="Address the prediction API binds (0.0.0.0: all).")
    serve_port: int = Field(3000, description="Port of the prediction API.")
    serve_workers: int | None = Field(None, ge=1, description="API worker processes (default: one per CPU).")
    serve_access_log: bool = Field(False, description="Log every API request (costs time per request).")
    serve_request_instrumentation: bool = Field(
        True,
        description="BentoML's per-request tracing (OpenTelemetry) and request metrics (its /metrics); false "
        "switches both off for the API: about a third of a millisecond of CPU less per request, 2.5x the "
        "/predict throughput at concurrency 16 (docs/benchmarks.md). /monitor/metrics is unaffected.",
    )
    max_feature_age_seconds: int | None = Field(
        None, ge=1, description="Oldest features the API answers from; default two timeframes."
    )
    model_refresh_seconds: float = Field(
        10.0, gt=0, description="How often the API checks the registry for a newly promoted model."
    )
    prediction_flush_seconds: float = Field(
        2.0, gt=0, description="How often the API writes its buffered prediction log to Parquet."
    )
    api_url: str = Field("http://127.0.0.1:3000", description="Prediction API the Gradio app talks to.")
    ui_host: str = Field("127.0.0.1", description="Address the Gradio app binds.")
    ui_port: int = Field(7860, description="Port of the Gradio app.")
    ui_hours: int = Field(12, ge=1, le=168, description="Hours of candles the dashboard draws.")
    ui_refresh_seconds: float = Field(60.0, ge=0, description="Dashboard auto-refresh period (0: off).")
    restart_limit: int = Field(
        5,
        ge=0,
        description="Restarts of one part of `hourcast up` (Prefect server, worker, API, dashboard) allowed "
        "within HOURCAST_RESTART_WINDOW_SECONDS; one more death stops the stack (0: any death stops it).",
    )
    restart_window_seconds: float = Field(
        600.0, gt=0, description="The window HOURCAST_RESTART_LIMIT counts a part's deaths in."
    )
    restart_delay_seconds: float = Field(
        1.0,
        ge=0,
        description="Wait before `hourcast up` restarts a part that died; doubled for each other death of it "
        "within the window.",
    )
    restart_max_delay_seconds: float = Field(60.0, ge=0, description="Cap on the wait before a restart.")
    monitor_max_mae_ratio: float = Field(
        1.05,
        gt=0,
        description="The production model counts as degraded when its 7-day MAE ratio to persistence "
        "exceeds this.",
    )
    monitor_min_hours: int = Field(
        96,
        ge=2,
        description="Scored (or served) hours the 7-day window needs before its MAE ratio or drift can "
        "declare the model degraded.",
    )
    monitor_max_psi: float = Field(
        0.5,
        gt=0,
        description="The model counts as degraded when a feature's 7-day PSI against its training deciles "
        "exceeds this (0.25 is the usual 'significant shift'; a week of hours adds about 0.05 of noise).",
    )
    retrain_cooldown_hours: float = Field(
        24.0,
        ge=0,
        description="Least data time between two retrains asked for by the monitor (a lasting degradation "
        "retrains once per cool-down, not every hour).",
    )

    @field_validator("timeframe")
    @classmethod
    def _supported_timeframe(cls, value: str) -> str:
        """Refuse a timeframe hourcast does not run end to end (``timeframe.SUPPORTED_TIMEFRAMES``)."""

        return check_timeframe(value)

    @field_validator("feature_retention_days")
    @classmethod
    def _retention_covers_training(cls, value: int, info: ValidationInfo) -> int:
        """Refuse retention windows that would leave training (and its gate, inside the window) fewer than
        ``train_days`` of labelled features: the feature table keeps ``train_days + 1`` days (the label is
        one candle later), and the candles it is computed from at least as many."""
        train_days = info.data.get("train_days")
        if train_days is not None and value < train_days + 1:
            raise ValueError(
                f"keeps {value} days of features, fewer than the training window needs "
                f"(HOURCAST_TRAIN_DAYS={train_days} plus one day for the label): set "
                f"HOURCAST_FEATURE_RETENTION_DAYS >= {train_days + 1}"
            )
        candle_days = info.data.get("candle_retention_days")
        if candle_days is not None and candle_days < value:
            raise ValueError(
                f"HOURCAST_CANDLE_RETENTION_DAYS={candle_days} is shorter than the {value} days of features "
                f"kept, which are computed from the candles: set HOURCAST_CANDLE_RETENTION_DAYS >= {value} "
                "(or unset it: keep every candle)"
            )
        return value

    @field_validator("symbols", mode="before")
    @classmethod
    def _split_symbols(cls, value: object) -> object:
        """Accept ``BTC/USDT,ETH/USDT`` from the environment; at least one symbol."""
        if isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if isinstance(value, list) and not value:
            raise ValueError("names no symbol: give at least one, e.g. BTC/USDT,ETH/USDT or all-usdt")
        return value

    @property
    def candles_dir(self) -> Path:
        """Root of the partitioned Parquet candle dataset."""
        return self.home / "candles"

    @property
    def symbols_path(self) -> Path:
        """The symbols a selector such as ``all-usdt`` resolved to when ingestion last started."""
        return self.home / "symbols.json"

    @property
    def quarantine_dir(self) -> Path:
        """Where rejected batches and their validation results are kept."""
        return self.home / "quarantine"

    @property
    def ledger_dir(self) -> Path:
        """The ingestion ledger (one row per run and symbol; a file per run, in day folders)."""
        return self.home / "ledger"

    @property
    def feature_table_path(self) -> Path:
        """The Parquet feature table Feast's offline store reads (``feature_table_in`` the home)."""
        return feature_table_in(self.home)

    @property
    def feast_dir(self) -> Path:
        """Feast's registry and, with the SQLite online store, its database."""
        return (self.home / "feast").resolve()

    @property
    def registry_dir(self) -> Path:
        """Which stored model is production, and every promotion decision."""
        return self.home / "registry"

    @property
    def reports_dir(self) -> Path:
        """Walk-forward evaluation reports."""
        return self.home / "reports"

    @property
    def predictions_dir(self) -> Path:
        """The API's durable prediction log (Parquet)."""
        return self.home / "predictions"

    @property
    def feature_age_limit_seconds(self) -> int:
        """``max_feature_age_seconds``, or two timeframes when unset."""

        return self.max_feature_age_seconds or 2 * timeframe_ms(self.timeframe) // 1000

    @property
    def validation_dir(self) -> Path:
        """Human-readable validation output of the last run."""
        return self.home / "validation"

    @property
    def scores_dir(self) -> Path:
        """The monitor's scored predictions (Parquet, one file per target day)."""
        return self.home / "scores"

    @property
    def monitor_state_path(self) -> Path:
        """When the monitor last asked for a retrain (data time), for its cool-down."""
        return self.home / "monitor" / "retrain_request.json"
