"""The served model's card (``GET /model``'s body, what the dashboard shows) read from a real BentoML model
store: its training window and gate figures from the metadata `hourcast train` saves, without loading it."""

from __future__ import annotations

from pathlib import Path

import catboost
import numpy as np
import pytest

from hourcast.api.asgi import model_card_body
from hourcast.model import registry
from hourcast.serving.predictor import Unavailable
from hourcast.settings import Settings
from tests.support.model_card import METADATA

pytestmark = pytest.mark.usefixtures("bentoml_store")


def tiny_model() -> catboost.CatBoostRegressor:
    rows = np.random.default_rng(0).normal(size=(40, 2))
    model = catboost.CatBoostRegressor(iterations=3, thread_count=1, verbose=False, allow_writing_files=False)
    return model.fit(rows, rows[:, 0])


def test_the_card_of_a_stored_model_has_its_window_and_gate(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, _env_file=None)
    tag = registry.save_candidate(
        tiny_model(),
        settings.model_name,
        settings.registry_dir,
        labels={},
        metadata={**METADATA, "training_rows": 17520},
    )
    assert registry.model_metadata(settings.model_name, tag)["training_window"] == METADATA["training_window"]
    card = model_card_body(settings, tag)
    assert (card.model, card.training_days, card.training_rows) == (tag, 365, 17520)
    assert card.trained_from == METADATA["training_window"]["start"]
    assert card.gate is not None and (card.gate.mae_ratio, card.gate.hours) == (0.9936, 336)
    assert card.summary.startswith("trained on 365 days; gate: MAE 148.85 vs persistence 149.81")


def test_without_a_model_the_card_is_unavailable_with_the_reason(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, _env_file=None)
    with pytest.raises(Unavailable, match="no model is loaded yet"):
        model_card_body(settings, None)
    with pytest.raises(Unavailable, match="missing from the BentoML store"):
        model_card_body(settings, f"{settings.model_name}:gone")
