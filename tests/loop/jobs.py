"""A real, deterministic training job for the executor tests (importable by worker processes)."""

from __future__ import annotations

import numpy as np


def fit_xgboost(seed: int, rows: int = 2000, rounds: int = 30) -> bytes:
    """Fit XGBoost on a seeded synthetic matrix; return the model as JSON bytes."""
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    x = rng.standard_normal((rows, 12)).astype(np.float32)
    x[rng.random(x.shape) < 0.02] = np.nan  # missing values, as real features have
    y = (x[:, 0] - 0.5 * x[:, 3] + rng.standard_normal(rows) > 0).astype(np.float32)
    params = {"objective": "binary:logistic", "max_depth": 4, "eta": 0.1, "nthread": 1, "seed": 0}
    booster = xgb.train(params, xgb.DMatrix(x, label=y), num_boost_round=rounds)
    return bytes(booster.save_raw("json"))


def crash() -> None:
    import os

    os._exit(9)
