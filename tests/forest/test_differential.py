"""Compiled, interpreted and C-API predictions equal Booster.predict (values and margins)."""

from __future__ import annotations

import numpy as np
import pytest
import xgboost as xgb
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaizen.models.compile import load_forest
from tests.forest.conftest import train

OBJECTIVES = ["binary:logistic", "reg:squarederror", "multi:softprob", "reg:pseudohubererror"]
BACKENDS = ["compiled", "interp", "capi"]


def _assert_close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    assert got.shape == want.shape, what
    # Relative 1e-6 (probabilities and margins alike); tiny absolute floor for values near 0.
    np.testing.assert_allclose(got, want.astype(np.float64), rtol=1e-6, atol=1e-7, err_msg=what)


def _check(booster: xgb.Booster, X: np.ndarray, cache: str) -> None:
    dm = xgb.DMatrix(X)
    want = booster.predict(dm)
    want_margin = booster.predict(dm, output_margin=True)
    for backend in BACKENDS:
        f = load_forest(booster, backend=backend, cache_dir=cache)
        assert f.backend == backend
        _assert_close(f.predict(X), want, f"{backend} predict")
        _assert_close(f.predict(X, output_margin=True), want_margin, f"{backend} margin")
        for i in range(0, len(X), max(1, len(X) // 7)):
            _assert_close(np.atleast_1d(f.predict_row(X[i])), np.atleast_1d(want[i]), f"{backend} row {i}")


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    objective=st.sampled_from(OBJECTIVES),
    depth=st.integers(1, 7),
    trees=st.integers(1, 15),
    features=st.integers(1, 9),
    dead=st.integers(0, 3),
    nan_frac=st.sampled_from([0.0, 0.3, 0.8]),
    test_nan=st.sampled_from([0.0, 0.5, 0.95]),
    seed=st.integers(0, 2**31 - 1),
)
def test_backends_equal_booster_predict(forest_cache, objective, depth, trees, features, dead, nan_frac, test_nan, seed):
    booster, X = train(objective, depth, trees, features, seed, nan_frac=nan_frac, dead=dead)
    rng = np.random.default_rng(seed + 1)
    T = rng.normal(scale=2.0, size=(120, X.shape[1])).astype(np.float32)
    T[rng.random(T.shape) < test_nan] = np.nan
    T[0] = np.nan  # every feature missing
    _check(booster, np.vstack([X[:60], T]), forest_cache)


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_deep_trees_use_nested_code(forest_cache, objective):
    # Depth beyond the table layout's limit goes through the nested if/else generator.
    booster, X = train(objective, depth=13, trees=4, features=6, seed=7, n=3000, nan_frac=0.3)
    _check(booster, X[:400], forest_cache)


def test_thresholds_hit_exactly(forest_cache):
    # Rows placed exactly on, and one float step either side of, every threshold.
    from kaizen.models.compile import check_rows
    from kaizen.models.forest_model import model_bytes, parse_model

    booster, _ = train("binary:logistic", depth=6, trees=30, features=8, seed=3)
    fm = parse_model(model_bytes(booster)[0])
    _check(booster, check_rows(fm, 2000), forest_cache)
