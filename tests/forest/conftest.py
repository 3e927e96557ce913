"""Forest tests share one compile cache (a session tmp dir) so repeated models are not rebuilt."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def forest_cache(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("forest-cache"))


def train(objective: str, depth: int, trees: int, features: int, seed: int, n: int = 300, nan_frac: float = 0.2,
          dead: int = 0):
    """A small real XGBoost model plus its data; `dead` extra columns are never split on
    (all-NaN or constant)."""
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features)).astype(np.float32)
    X[rng.random(X.shape) < nan_frac] = np.nan
    if dead:
        cols = [np.full(n, np.nan if k % 2 == 0 else 1.5, dtype=np.float32) for k in range(dead)]
        X = np.column_stack([X, *cols]).astype(np.float32)
    signal = np.nan_to_num(X[:, 0]) + 0.5 * np.nan_to_num(X[:, min(1, features - 1)])
    params = {"objective": objective, "max_depth": depth, "eta": 0.3, "seed": seed, "nthread": 1}
    if objective == "binary:logistic":
        y = (signal + rng.normal(scale=0.5, size=n) > 0).astype(np.float32)
    elif objective == "multi:softprob":
        params["num_class"] = 3
        y = np.digitize(signal + rng.normal(scale=0.5, size=n), [-0.5, 0.5]).astype(np.float32)
    else:
        y = (signal * 2 + rng.normal(size=n) + 1).astype(np.float32)
    booster = xgb.train(params, xgb.DMatrix(X, label=y), num_boost_round=trees)
    return booster, X
