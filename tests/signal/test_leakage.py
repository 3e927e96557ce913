"""Purge/embargo indices, and no leakage: time-shuffled labels give out-of-sample AUC ~ 0.5."""

from __future__ import annotations

import numpy as np

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
