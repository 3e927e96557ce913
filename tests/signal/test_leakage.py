"""Purge/embargo indices, and no leakage: time-shuffled labels give out-of-sample AUC ~ 0.5."""

from __future__ import annotations

import numpy as np
import pytest

from kaizen.market.data import load_dataset, parse_date_ms
from kaizen.models.ensemble import META, TrainParams, train
from kaizen.models.folds import split, walk_forward
from kaizen.models.labels import label_end_ms, net_forward_return
from kaizen.models.training import build

H = 3_600_000


def test_purge_and_embargo_indices():
    t = np.arange(100, dtype=np.int64) * H
    le = label_end_ms(t, horizon=4, interval_ms=H)  # label known at the close of bar t+4
    tr, te = split(t, le, 50 * H, 60 * H, embargo_ms=3 * H)
    assert list(te) == list(range(50, 60))
    # before: label_end = (i+5)H <= 50H - 3H  ->  i <= 42
    assert list(tr) == list(range(0, 43))
    tr2, _ = split(t, le, 50 * H, 60 * H, embargo_ms=3 * H, train_after=True)
    # after: t >= max(60+3, last test label_end = 59+5 = 64)  -> from 64
    assert list(tr2) == list(range(0, 43)) + list(range(64, 100))
    for lo in tr:
        assert le[lo] <= 50 * H  # no training label reaches into the test window


def test_walk_forward_folds_are_ordered_and_purged():
    t = np.repeat(np.arange(1000, dtype=np.int64) * H, 2)  # two symbols per time
    le = label_end_ms(t, 4, H)
    folds = walk_forward(t, le, 5, 10 * H, H)
    assert len(folds) == 5
    for f in folds:
        assert t[f.train].max() < f.test_start and le[f.train].max() <= f.test_start - 10 * H
        assert t[f.test].min() >= f.test_start and t[f.test].max() < f.test_end
    assert all(a.test_end == b.test_start for a, b in zip(folds, folds[1:], strict=False))
    assert folds[-1].test_end > t.max()


def test_labels_net_of_costs_and_gaps():
    t = np.array([0, 1, 2, 3, 5, 6], dtype=np.int64) * H
    c = np.array([100, 101, 102, 103, 104, 105.0])
    f = np.full(6, 0.0001)
    r = net_forward_return(t, c, f, 1, H, fee=0.0005)
    assert r[0] == np.log(101 / 100) - 0.001 - 0.0001 / 8
    assert np.isnan(r[3]) and np.isnan(r[5])  # crosses the gap / past the end


def test_shuffled_labels_give_chance_auc(shared_data):
    ds = load_dataset(
        shared_data,
        ["BTCUSDT", "ETHUSDT"],
        "1h",
        parse_date_ms("2023-01-01", ""),
        parse_date_ms("2024-01-01", ""),
    )
    ts = build(ds, 4, 0.0005)
    rng = np.random.default_rng(3)
    perm = rng.permutation(len(ts.y))
    y, ret = ts.y[perm], ts.ret[perm]
    res = train(ts.X, y, ret, ts.t, TrainParams(folds=4, trees=30, meta_trees=20, threads=2))
    rows = len(y) * 3 // 5  # scored on folds 2..4 of 5 blocks
    npos, nneg = rows * y.mean(), rows * (1 - y.mean())
    se = np.sqrt((npos + nneg + 1) / (12 * npos * nneg))  # AUC std under the null (Mann-Whitney)
    for name, m in res.overall.items():
        assert abs(m["auc"] - 0.5) < 4 * se + 0.005, (name, m["auc"], se)
    assert META in res.overall


# --- planted leakage: a feature built from the label window -----------------------------------------
# Seeds tuned on while writing this test: 101, 102, 103 (tools/probes, not committed). The test
# runs on seeds that were not used then.
LEAK_SEEDS = [2718, 31415]
LEAK_ROWS, LEAK_H = 6000, 12


def _forward_mean(x: np.ndarray, h: int) -> np.ndarray:
    """Mean of x over (t, t+h]: the label window. The bug it plants is the classic
    `rolling(h).mean().shift(-h)`."""
    c = np.concatenate([[0.0], np.cumsum(x)])
    out = np.full(len(x), np.nan)
    i = np.arange(len(x) - h)
    out[i] = (c[i + h + 1] - c[i + 1]) / h
    return out


def _leaky_market(seed: int):
    """Two independent random walks (a price and, say, open interest): nothing is predictable. The
    label is the sign of the price's h-bar forward return; the only features are both series'
    means over the label window."""
    rng = np.random.default_rng(seed)
    n, h = LEAK_ROWS, LEAK_H
    logp = np.log(100.0) + np.cumsum(rng.normal(0, 0.01, n))
    logq = np.log(50.0) + np.cumsum(rng.normal(0, 0.01, n))
    t = np.arange(n, dtype=np.int64) * H
    r = net_forward_return(t, np.exp(logp), np.zeros(n), h, H, fee=0.0)
    X = np.column_stack([_forward_mean(logp, h), _forward_mean(logq, h)])
    ok = ~np.isnan(r) & ~np.isnan(X).any(axis=1)
    return t[ok], X[ok], (r[ok] > 0).astype(np.float32)


def _oos_auc(X, y, folds) -> tuple[float, int]:
    import xgboost as xgb

    from kaizen.models.metrics import auc

    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.3, "nthread": 1, "verbosity": 0}
    ys, ps = [], []
    for tr, te in folds:
        booster = xgb.train(params, xgb.DMatrix(X[tr], y[tr]), 60)
        ps.append(booster.predict(xgb.DMatrix(X[te])))
        ys.append(y[te])
    y_all = np.concatenate(ys)
    return auc(y_all, np.concatenate(ps)), len(y_all)


def _chance_band(n: int, y_mean: float, h: int) -> float:
    """3 standard errors of AUC under the null (Mann-Whitney), for n rows whose overlapping h-bar
    labels carry about n / h independent outcomes."""
    n_eff = n / h
    npos, nneg = n_eff * y_mean, n_eff * (1 - y_mean)
    return 3 * np.sqrt((npos + nneg + 1) / (12 * npos * nneg))


@pytest.mark.parametrize("seed", LEAK_SEEDS)
def test_purged_folds_catch_a_feature_built_from_the_label_window(seed):
    """Caught = the leaky model's out-of-sample AUC is no better than chance under the purged,
    embargoed folds (walk_forward, and split with training on both sides), while naive shuffled
    5-fold CV, where the neighbours of each test row (whose labels share h-1 of its h returns and
    whose features nearly equal its own) sit in the training set, reports it far better than chance."""
    t, X, y, h = *_leaky_market(seed), LEAK_H
    le = label_end_ms(t, h, H)
    rng = np.random.default_rng(seed + 1)
    perm = rng.permutation(len(y))
    naive = [(np.setdiff1d(perm, perm[k::5]), perm[k::5]) for k in range(5)]
    walk = [(f.train, f.test) for f in walk_forward(t, le, 4, embargo_ms=h * H, step_ms=H)]
    edges = np.linspace(t.min(), t.max() + H, 6).astype(np.int64)
    kfold = [
        split(t, le, int(a), int(b), h * H, train_after=True) for a, b in zip(edges, edges[1:], strict=False)
    ]
    auc_naive, n_naive = _oos_auc(X, y, naive)
    auc_walk, n_walk = _oos_auc(X, y, walk)
    auc_kfold, n_kfold = _oos_auc(X, y, kfold)
    print(
        f"seed {seed}: naive shuffled {auc_naive:.3f}, walk-forward purged {auc_walk:.3f}, purged k-fold {auc_kfold:.3f}"
    )
    assert auc_naive > 0.5 + 2 * _chance_band(n_naive, y.mean(), h), auc_naive  # far better than chance
    assert auc_walk < 0.5 + _chance_band(n_walk, y.mean(), h), auc_walk
    assert auc_kfold < 0.5 + _chance_band(n_kfold, y.mean(), h), auc_kfold
    # And by construction: no training row of the purged folds has a feature window (= its label
    # window) reaching past test_start - embargo, while the naive folds train on such rows.
    for f in walk_forward(t, le, 4, embargo_ms=h * H, step_ms=H):
        assert (t[f.train] + (h + 1) * H).max() <= f.test_start - h * H
    tr, te = naive[0]
    assert np.isin(t[te] + H, t[tr]).mean() > 0.5  # most test rows have their next bar in training
