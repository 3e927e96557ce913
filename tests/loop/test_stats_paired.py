"""kaizen.stats paired tests (Diebold-Mariano/HLN, block bootstrap), PBO by CSCV and the MCS."""

from __future__ import annotations

import math
from itertools import combinations

import numpy as np
import pytest
from scipy import stats as sps
from statsmodels.tsa.stattools import diebold_mariano_test

from kaizen import stats


def _hln_by_hand(d: np.ndarray, lags: int, h: int = 1) -> float:
    """Textbook DM with a Bartlett-kernel Newey-West long-run variance (autocovariances over T) and
    the Harvey-Leybourne-Newbold factor."""
    t = len(d)
    e = d - d.mean()
    gamma = [float(e[k:] @ e[: t - k]) / t for k in range(lags + 1)]
    lrv = gamma[0] + 2 * sum((1 - k / (lags + 1)) * gamma[k] for k in range(1, lags + 1))
    dm = d.mean() / math.sqrt(lrv / t)
    return dm * math.sqrt((t + 1 - 2 * h + h * (h - 1) / t) / t)


def test_dm_matches_the_textbook_formula_and_statsmodels():
    rng = np.random.default_rng(404)
    d = np.convolve(rng.standard_t(4, 600), [1.0, 0.6, 0.3], mode="same") * 0.01 + 0.0008
    for h in (1, 4):
        res = stats.diebold_mariano(d, horizon=h)
        assert res.lags == stats.newey_west_lags(600, h) == 9
        assert res.statistic == pytest.approx(_hln_by_hand(d, res.lags, h), rel=1e-10)
        assert res.p_value == pytest.approx(sps.t.sf(res.statistic, 599), rel=1e-12)
        # statsmodels' own two-sided p-value is twice the smaller tail of ours
        two = diebold_mariano_test(
            np.zeros(600), d, np.zeros(600), criterion=lambda y, f: f, harvey_adj=True, horizon=h
        ).pvalue
        assert two == pytest.approx(2 * min(res.p_value, 1 - res.p_value), rel=1e-9)
    less = stats.diebold_mariano(d, alternative="less")
    assert less.p_value == pytest.approx(1 - stats.diebold_mariano(d).p_value, rel=1e-9)


def test_lag_rule():
    assert [stats.newey_west_lags(n) for n in (1, 8, 27, 100, 1000, 5000)] == [1, 2, 3, 5, 10, 18]
    assert stats.newey_west_lags(8, horizon=6) == 5


def test_degenerate_and_bad_input():
    z = np.zeros(300)
    assert stats.diebold_mariano(z).p_value == 1.0  # flat vs flat: no evidence
    assert stats.bootstrap_pvalue(z).p_value == 1.0
    assert stats.diebold_mariano(z + 0.001).p_value == 0.0  # better on every decision
    assert stats.diebold_mariano(z - 0.001).p_value == 1.0
    with pytest.raises(ValueError, match="NaN"):
        stats.diebold_mariano(np.array([0.1, np.nan, 0.2]))


def test_bootstrap_pvalue():
    rng = np.random.default_rng(405)
    d = np.convolve(rng.standard_t(4, 800), [1.0, 0.7, 0.4], mode="same")
    d -= d.mean()
    a = stats.bootstrap_pvalue(d + 0.5, seed=7)
    assert a == stats.bootstrap_pvalue(d + 0.5, seed=7)  # reproducible
    assert a.p_value < 0.01 and a.block >= 1 and a.reps == 999
    mid = stats.bootstrap_pvalue(d, seed=7).p_value
    assert 0.3 < mid < 0.7  # mean exactly zero: about half the centred resamples exceed it
    c = stats.bootstrap_pvalue(d + 0.5, method="circular", block=12, reps=199, seed=1)
    assert c.block == 12 and c.reps == 199 and c.method == "circular_bootstrap"
    assert stats.bootstrap_pvalue(d - 0.5, seed=7).p_value > 0.99
    assert stats.bootstrap_pvalue(d - 0.5, alternative="less", seed=7).p_value < 0.01


def _pbo_naive(m: np.ndarray, s: int) -> list[float]:
    blocks = np.array_split(np.arange(len(m)), s)
    out = []
    for combo in combinations(range(s), s // 2):
        ins = np.concatenate([blocks[i] for i in combo])
        oos = np.concatenate([blocks[i] for i in range(s) if i not in combo])
        sr_is = [stats.sharpe(m[ins, j]) for j in range(m.shape[1])]
        sr_oos = np.array([stats.sharpe(m[oos, j]) for j in range(m.shape[1])])
        star = sr_oos[int(np.argmax(sr_is))]
        rank = 1 + np.sum(sr_oos < star) + 0.5 * (np.sum(sr_oos == star) - 1)
        w = rank / (m.shape[1] + 1)
        out.append(math.log(w / (1 - w)))
    return out


def test_pbo_matches_a_plain_loop():
    rng = np.random.default_rng(406)
    m = rng.standard_t(5, (203, 7)) + np.linspace(0, 0.1, 7)
    r = stats.pbo_cscv(m, n_blocks=6)
    assert r.n_splits == 20 and r.n_trials == 7
    assert r.logits == pytest.approx(_pbo_naive(m, 6), rel=1e-9)
    assert r.pbo == pytest.approx(np.mean(np.array(_pbo_naive(m, 6)) <= 0))


def test_pbo_noise_vs_real_edge():
    rng = np.random.default_rng(407)
    noise = rng.standard_t(4, (1600, 40))
    r = stats.pbo_cscv(noise)  # S = 16: 12,870 splits
    assert r.n_splits == 12870
    assert 0.3 < r.pbo < 0.8  # selecting the best of pure noise: as likely below the median as above
    edge = noise.copy()
    edge[:, 3] += 0.25
    r2 = stats.pbo_cscv(edge)
    assert r2.pbo < 0.02 and r2.p_oos_loss < 0.02
    with pytest.raises(ValueError):
        stats.pbo_cscv(noise[:, :1])
    with pytest.raises(ValueError):
        stats.pbo_cscv(noise, n_blocks=5)


def test_model_confidence_set():
    rng = np.random.default_rng(408)
    losses = rng.standard_normal((600, 4)) + np.array([0.0, 0.02, 0.6, 0.8])
    r = stats.model_confidence_set(losses, 0.1, reps=300, seed=1)
    assert 0 in r.included and {2, 3} <= set(r.excluded)
    assert len(r.p_values) == 4 and r.p_values[3] < 0.1
