"""The metadata `hourcast train` saves with a model, reduced to what its card reads (``hourcast.model.card``):
a 365-day training window and the gate figures of the first model `hourcast up --replay` trains."""

METADATA = {
    "timeframe": "1h",
    "training_window": {"start": "2024-01-02 01:00:00+00:00", "end": "2025-01-01 00:00:00+00:00"},
    "walk_forward": {
        "weeks": 1,
        "model": {"mae": 148.8504, "n": 336},
        "persistence": {"mae": 149.8092, "n": 336},
        "comparison": {"mae_ratio": 0.9936, "dm_p_value": 0.655},
    },
}
