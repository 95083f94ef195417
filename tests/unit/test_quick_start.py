"""`hourcast up --replay`'s quick-start model: the history the bootstrap pulls into an empty store, where the
replay clock starts in the recordings, and how a model's card words its training window and gate."""

from pathlib import Path

import pandas as pd
import pytest

from hourcast.dev.replay.data import load_candles_file
from hourcast.errors import UserError
from hourcast.model import card
from hourcast.ops.bootstrap import first_history_days
from hourcast.ops.replay_world import first_clock
from hourcast.settings import Settings
from tests.support.model_card import METADATA

BUNDLED = Path(__file__).resolve().parents[2] / "src" / "hourcast" / "dev" / "data"


def settings(**values: object) -> Settings:
    return Settings(_env_file=None, **values)


def candles(start: str, hours: int) -> pd.DataFrame:
    return pd.DataFrame({"ts": pd.date_range(start, periods=hours, freq="h", tz="UTC")})


def test_an_empty_store_gets_the_training_window_plus_the_lookback_and_the_label() -> None:
    assert first_history_days(settings()) == 367  # 365 days + 26 hours (25-candle lookback, the label)
    assert (
        first_history_days(settings(train_days=9, default_backfill_days=1, feature_retention_days=10)) == 11
    )
    assert first_history_days(settings(train_days=9, default_backfill_days=30)) == 30  # never less
    assert first_history_days(settings(train_days=30, timeframe="1d")) == 56  # 25 daily candles of lookback


def test_the_replay_clock_starts_the_history_after_the_first_candle() -> None:
    data = {"BTC/USDT": candles("2024-01-01", 24 * 400), "ETH/USDT": candles("2024-01-02", 24 * 400)}
    assert first_clock(data, 367) == pd.Timestamp("2025-01-02", tz="UTC")  # 2024 is a leap year


def test_recordings_too_short_for_the_window_are_refused_with_what_to_do() -> None:
    with pytest.raises(UserError, match=r"needs 367 days before the replay clock.*--now"):
        first_clock({"BTC/USDT": candles("2024-01-01", 24 * 300)}, 367)


def test_the_bundled_candles_hold_the_default_window_and_months_to_replay_in_under_1_mb() -> None:
    files = {"BTC/USDT": "binance_btc_usdt_1h.csv.gz", "ETH/USDT": "binance_eth_usdt_1h.csv.gz"}
    assert sum(path.stat().st_size for path in BUNDLED.glob("*.csv.gz")) < 1_000_000
    data = {symbol: load_candles_file(BUNDLED / name) for symbol, name in files.items()}
    clock = first_clock(data, first_history_days(settings()))
    assert min(frame["ts"].iloc[-1] for frame in data.values()) - clock > pd.Timedelta(days=180)


def test_the_card_reads_the_training_window_and_the_gate_figures() -> None:
    assert card.training_days(METADATA) == 365
    assert card.gate(METADATA) == card.Gate(
        weeks=1, hours=336, mae=148.8504, persistence_mae=149.8092, mae_ratio=0.9936, dm_p_value=0.655
    )
    assert card.summary(METADATA) == (
        "trained on 365 days; gate: MAE 148.85 vs persistence 149.81 (ratio 0.9936, DM p 0.655) "
        "over 1 week (336 hours)"
    )


def test_a_model_saved_without_the_figures_says_so() -> None:
    assert card.gate({}) is None and card.training_days({}) is None
    assert card.summary({}) == "training window unknown; no gate figures"
    undefined = {**METADATA["walk_forward"], "comparison": {"mae_ratio": 1.0, "dm_p_value": None}}
    assert card.gate({"walk_forward": undefined}).dm_p_value is None  # type: ignore[union-attr]


def test_durations_print_as_days() -> None:
    assert [card.days_text(days) for days in (365, 12.5, 1)] == ["365 days", "12.5 days", "1 day"]
