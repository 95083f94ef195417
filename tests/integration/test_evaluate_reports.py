"""`hourcast evaluate` end to end on the bundled candles, as a reviewer re-checks it: the printed --json is
the saved report, the per-hour forecasts file recomputes its figures without refitting (McNemar against "the
last move reverses" and the band's interval score by hand, with scipy), and a run whose first folds would
train on less history than HOURCAST_TRAIN_DAYS is refused in one line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from typer.testing import CliRunner

from hourcast.cli.app import app
from hourcast.model import estimator, evaluation
from hourcast.settings import Settings
from tests.support.data import store_recorded

SYMBOLS = ["BTC/USDT", "ETH/USDT"]
TRAIN_DAYS = 14


def by_hand(rows: pd.DataFrame) -> dict[str, float]:
    """McNemar (scipy's exact binomial test) and both bands' interval scores, from the saved columns."""
    last, actual = rows["last_close"].to_numpy(), rows["next_close"].to_numpy()
    moved = actual != last
    truth = np.sign(actual - last)[moved]
    model = np.sign(rows["predicted_close"].to_numpy() - last)[moved] == truth
    reversal = -np.sign(last - rows["previous_close"].to_numpy())[moved] == truth
    model_only, reversal_only = int(np.sum(model & ~reversal)), int(np.sum(~model & reversal))

    def interval(low: str, high: str) -> float:
        lows, highs = rows[low].to_numpy() / last * 100, rows[high].to_numpy() / last * 100
        outcome = actual / last * 100
        penalty = np.maximum(lows - outcome, 0) + np.maximum(outcome - highs, 0)
        return float(np.mean(highs - lows + 2 / 0.1 * penalty))

    return {
        "model_only": model_only,
        "reversal_only": reversal_only,
        "mcnemar_p_value": stats.binomtest(model_only, model_only + reversal_only).pvalue,
        "reversal_accuracy": float(np.mean(reversal)),
        "model": interval("band_low", "band_high"),
        "persistence": interval("persistence_low", "persistence_high"),
    }


def test_evaluate_report_forecasts_and_refusal(
    tmp_path: Path, recorded_files: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(estimator.DEFAULT_PARAMS, "iterations", 30)  # a small model: the figures, not skill
    settings = Settings(home=tmp_path, symbols=SYMBOLS, train_days=TRAIN_DAYS)
    store_recorded(settings, recorded_files, days=35, end="2024-03-01")
    for name, value in (("HOME", tmp_path), ("SYMBOLS", ",".join(SYMBOLS)), ("TRAIN_DAYS", TRAIN_DAYS)):
        monkeypatch.setenv(f"HOURCAST_{name}", str(value))

    answered = CliRunner().invoke(app, ["evaluate", "--weeks", "1", "--windows", "7", "--json"])
    assert answered.exit_code == 0, answered.output
    answer = json.loads(answered.stdout.splitlines()[-1])
    # the printed document is the saved report: same keys, same figures
    assert json.loads(Path(answer["report"]).read_text()) == answer
    assert answer["train_days"] == TRAIN_DAYS and answer["calibration_weeks"] == settings.gate_weeks
    assert [fold["train_days"] for fold in answer["folds"]] == [TRAIN_DAYS, TRAIN_DAYS]

    forecasts = pd.read_parquet(answer["forecasts"])
    assert list(forecasts.columns) == evaluation.FORECAST_COLUMNS
    assert forecasts.groupby(["train_days", "inputs"]).size().to_dict() == {
        (7, "base"): 2 * 168,
        (TRAIN_DAYS, "base"): 2 * 168,
    }
    banded = ["band_low", "band_high", "p_up", "persistence_low", "persistence_high"]
    assert forecasts[banded].notna().all(axis=None)
    default = forecasts.loc[forecasts["train_days"] == TRAIN_DAYS].reset_index(drop=True)
    seven = forecasts.loc[forecasts["train_days"] == 7].reset_index(drop=True)
    # every figure of the report, recomputed from the file without refitting
    assert json.loads(json.dumps(estimator.summarise(default))) == answer["metrics"]
    recomputed = evaluation.versus(
        estimator.WalkForward(seven, [], {}), estimator.WalkForward(default, [], {})
    )
    assert json.loads(json.dumps(recomputed)) == answer["windows"][0]["versus_default"]

    scopes = [("all", default, answer["metrics"])] + [
        (symbol, default.loc[default["symbol"] == symbol], answer["metrics"]["by_symbol"][symbol])
        for symbol in SYMBOLS
    ]
    for scope, rows, reported in scopes:
        expected, direction, band = by_hand(rows), reported["direction"], reported["band"]
        for key in ("model_only", "reversal_only", "mcnemar_p_value", "reversal_accuracy"):
            assert direction[key] == pytest.approx(expected[key], rel=1e-9), (scope, key)
        assert direction["model_accuracy"] == reported["model"]["directional_accuracy"]
        for forecast in ("model", "persistence"):
            assert band[forecast]["interval_score"] == pytest.approx(expected[forecast], rel=1e-9)
            assert min(band[forecast]["pinball_low"], band[forecast]["pinball_high"]) > 0
        assert band["interval_score_ratio"] == pytest.approx(expected["model"] / expected["persistence"])
    assert {"reversal_accuracy", "mcnemar_p_value", "interval_score_ratio"} <= set(answer["windows"][0])

    # the tables name the test, the training span and the forecasts file
    shown = CliRunner().invoke(app, ["evaluate", "--weeks", "1"], env={"COLUMNS": "250"})
    assert shown.exit_code == 0, shown.output
    assert "McNemar p" in shown.stdout and "interval score" in shown.stdout
    assert f"2 weekly refits, each on {TRAIN_DAYS} days of history" in shown.stdout
    assert "_forecasts.parquet" in shown.stdout

    # five folds would start training before the stored history: refused before any fit, in one line
    reports = sorted(settings.reports_dir.iterdir())
    refused = CliRunner().invoke(app, ["evaluate", "--weeks", "4"])
    assert refused.exit_code == 1 and refused.stdout == ""
    [line] = refused.stderr.splitlines()
    assert line.startswith("hourcast: the first of 5 weekly folds (4 --weeks after 1 calibration week(s))")
    assert f"not the {TRAIN_DAYS} days HOURCAST_TRAIN_DAYS" in line and "give --weeks 1 or fewer" in line
    assert "00:00:00" not in line and "hourcast backfill --since 2024-01-" in line
    assert sorted(settings.reports_dir.iterdir()) == reports
