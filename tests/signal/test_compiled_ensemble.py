"""The hot path's CompiledEnsemble (one C call per feature vector) equals Ensemble.predict, the
Python reference, for every kind of meta model (XGBoost forest, logistic) with and without the
regime detector's probabilities as meta inputs."""

from __future__ import annotations

import numpy as np
import pytest

from kaizen.models import ensemble
from kaizen.models.features import FEATURE_NAMES


def _data(seed: int = 3, n: int = 3000):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, len(FEATURE_NAMES)))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take the trees' default paths
    y = (X[:, 0] + 0.5 * X[:, 7] + rng.normal(size=n) > 0).astype(np.float64)
    t = 1_700_000_000_000 + 3_600_000 * np.arange(n, dtype=np.int64)
    return X, y, y - 0.5, t


@pytest.mark.parametrize("meta", ["xgb", "logistic"])
@pytest.mark.parametrize("regimes", [False, True])
def test_compiled_equals_reference(tmp_path, meta, regimes):
    X, y, ret, t = _data()
    p = ensemble.TrainParams(folds=3, embargo_bars=4, horizon_bars=2, trees=20, meta_trees=10, threads=1,
                             meta_kind=meta)  # fmt: skip
    R = None
    if regimes:  # stand-in out-of-sample regime probabilities (the stacking only needs rows of K)
        rng = np.random.default_rng(9)
        R = rng.dirichlet(np.ones(4), size=len(y))
    classes = ["a", "b", "c", "d"] if regimes else None
    res = ensemble.train(X, y, ret, t, p, regime_oof=R, regime_classes=classes)
    ensemble.save(res, tmp_path / "m", {})
    ens = ensemble.Ensemble.load(tmp_path / "m", backend="interp")
    assert ens.meta_kind == meta
    ce = ens.compiled()
    ref = ens.predict(X[:500], regime_probs=R[:500] if regimes else None)["meta"]
    got = np.array([ce.predict(X[i], R[i] if regimes else None) for i in range(500)])
    np.testing.assert_allclose(got, ref, rtol=1e-6, atol=1e-7)
