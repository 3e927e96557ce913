"""The drift channels' residuals are oriented (positive: the model did better than it said) and
centred where the clipped values the CUSUM sees have mean 0. Seeds here were never used for tuning."""

from __future__ import annotations

import numpy as np

from kaizen.config import LoopConfig
from kaizen.loop import drift
from kaizen.loop.drift import DriftMonitor, clipped_reference
from kaizen.loop.loop import lean_pair


def _skewed(rng: np.random.Generator, n: int) -> np.ndarray:
    """A trade's return: mostly small, a long right tail (lognormal, sd ~ 3x its median)."""
    return rng.lognormal(0.0, 1.2, n) - 1.5


def test_clipped_reference_centres_what_the_cusum_sees():
    x = _skewed(np.random.default_rng(9401), 50_000)
    m, sd = clipped_reference(x, 4.0)
    assert sd == np.std(x)
    assert abs(np.mean(drift.standardize(x, m, sd, 4.0))) < 1e-9
    # the plain mean: clipping the long tail leaves the clipped values centred below 0, a drift the
    # down side of the CUSUM accumulates
    assert np.mean(drift.standardize(x, np.mean(x), sd, 4.0)) < -0.01
    # symmetric residuals: Huber's location is the mean
    s = np.random.default_rng(9402).normal(0.3, 2.0, 50_000)
    ms, _ = clipped_reference(s, 4.0)
    assert abs(ms - np.mean(s)) < 0.01
    # nothing to centre
    assert clipped_reference(np.array([1.0, 1.0, 1.0]), 4.0) == (1.0, 0.0)


def test_skewed_residuals_need_no_inflated_threshold_with_the_clipped_reference():
    """One-sided (lower) CUSUM with a small k on skewed residuals: referenced to the plain mean, the
    clipped values drift down (-0.027 sd per decision here, half of k) and the threshold for the same
    ARL0 is ~1.5x higher (measured on three other seeds: 1.45 to 1.50x), a slower alarm; with the
    drift larger than k no threshold reaches ARL0 at all (seed 505 at strength 0.24 before the
    clipped reference)."""
    x = _skewed(np.random.default_rng(9403), 20_000)
    kw = dict(k=0.05, sides="lower", residuals=x, streams=200, seed=3, validate=False)
    h_clip = drift.calibrate(2_000.0, reference=clipped_reference(x, 4.0), **kw).threshold
    h_mean = drift.calibrate(2_000.0, reference=(float(np.mean(x)), float(np.std(x))), **kw).threshold
    assert h_mean > 1.3 * h_clip


def test_lean_pair_is_oriented_by_the_side_the_model_leans_to():
    e, r = lean_pair(np.array([0.7, 0.3, 0.3, 0.5]), np.array([1.0, 0.0, 1.0, 0.0]))
    assert np.allclose(e, [0.7, 0.7, 0.7, 0.5])
    assert np.allclose(r, [1.0, 1.0, 0.0, 0.0])
    # a model whose signal flips sign: unoriented, the residual stays centred; oriented, it falls
    rng = np.random.default_rng(9404)
    p = np.clip(0.5 + rng.normal(0, 0.08, 40_000), 0.01, 0.99)
    y_flipped = (rng.random(p.size) < 1.0 - p).astype(float)
    assert abs(np.mean(y_flipped - p)) < 0.01
    e, r = lean_pair(p, y_flipped)
    assert np.mean(r - e) < -0.1


def test_lower_side_does_not_roll_back_a_model_doing_better_than_it_said():
    assert LoopConfig().drift_sides == "lower"
    rng = np.random.default_rng(9405)
    up = rng.normal(0.6, 1.0, 5_000)  # realized above expected, every decision
    hits = {}
    for sides in ("lower", "both"):
        mon = DriftMonitor("signal", channels={"calibration": sides}, thresholds={"calibration": 8.0},
                           ks={"calibration": 0.25}, references={"calibration": (0.0, 1.0)})  # fmt: skip
        hits[sides] = next((i for i, v in enumerate(up) if mon.update(0.0, float(v), ts=i)), None)
    assert hits["lower"] is None
    assert hits["both"] is not None and hits["both"] < 100
    mon = DriftMonitor("signal", channels={"calibration": "lower"}, thresholds={"calibration": 8.0},
                       ks={"calibration": 0.25}, references={"calibration": (0.0, 1.0)})  # fmt: skip
    down = next((i for i, v in enumerate(-up) if mon.update(0.0, float(v), ts=i)), None)
    assert down is not None and down < 100
