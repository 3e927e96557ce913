"""A training's fits run at once in threads (`TrainParams.fit_workers`): every fit is seeded and
independent, so the saved ensemble is byte-identical to the one trained fit after fit."""

from __future__ import annotations

import dataclasses

import numpy as np

from kaizen.models import ensemble
from kaizen.models.features import FEATURE_NAMES


def test_parallel_fits_give_the_same_model_files(tmp_path):
    rng = np.random.default_rng(5)
    n = 4000
    X = rng.normal(size=(n, len(FEATURE_NAMES)))
    X[rng.random(X.shape) < 0.05] = np.nan
    y = (X[:, 0] - 0.4 * X[:, 9] + rng.normal(size=n) > 0).astype(np.float64)
    t = 1_700_000_000_000 + 3_600_000 * np.arange(n, dtype=np.int64)
    p1 = ensemble.TrainParams(folds=3, embargo_bars=4, horizon_bars=2, trees=30, meta_trees=10, threads=1)
    out = {}
    for w in (1, 3):
        res = ensemble.train(X, y, y - 0.5, t, dataclasses.replace(p1, fit_workers=w))
        ensemble.save(res, tmp_path / f"w{w}", {})
        out[w] = res
        files = sorted(p.name for p in (tmp_path / f"w{w}").iterdir())
        assert any(f.endswith(".json") for f in files)
    a, b = tmp_path / "w1", tmp_path / "w3"
    names = sorted(p.name for p in a.iterdir())
    assert names == sorted(p.name for p in b.iterdir())
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    np.testing.assert_array_equal(out[1].oof_meta, out[3].oof_meta)
