"""Incremental (bar by bar, as live) == batch features; no look-ahead; gaps restart windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from kaizen.market.data import load_dataset, parse_date_ms
from kaizen.models.features import FEATURE_NAMES, FEATURES, FeatureEngine, batch_features

SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]


def _incremental(ds, leader="BTCUSDT"):
    """Feed bars one at a time through on_bar, leader first at each open time."""
    iv = next(iter(ds.symbols.values())).klines.interval_ms
    fe = FeatureEngine(list(ds.symbols), leader=leader, interval_ms=iv)
    events = []
    for s, d in ds.symbols.items():
        k = d.klines
        for i in range(len(k)):
            events.append((int(k.open_time[i]), 0 if s == leader else 1 + list(ds.symbols).index(s), s, i))
    events.sort()
    out = {s: np.empty((len(d.klines), len(FEATURES))) for s, d in ds.symbols.items()}
    for _, _, s, i in events:
        d = ds.symbols[s]
        k = d.klines
        out[s][i] = fe.on_bar(
            s,
            int(k.open_time[i]),
            k.open[i],
            k.high[i],
            k.low[i],
            k.close[i],
            k.volume[i],
            funding_rate=d.funding[i],
            mark_close=d.mark_close[i],
        )
    return out


def _check_parity(ds):
    bf = batch_features(ds)
    inc = _incremental(ds)
    for s in ds.symbols:
        b = bf.X[bf.rows_of(s)]
        a = inc[s]
        assert a.shape == b.shape
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b), err_msg=s)
        ok = ~np.isnan(a)
        rel = np.abs(a[ok] - b[ok]) / np.maximum(np.abs(b[ok]), 1e-300)
        assert rel.max(initial=0.0) <= 1e-9, s
        # every non-live feature is actually exercised (not all nan) on every symbol where it can be
        for j, f in enumerate(FEATURES):
            if f.live_only or (f.surface == "cross_asset" and s == "BTCUSDT"):
                continue
            assert np.isfinite(a[:, j]).sum() > 0, (s, f.name)


def test_declared_names_match_engine():
    fe = FeatureEngine(["BTCUSDT"])
    assert fe.names == FEATURE_NAMES == [f.name for f in FEATURES]
    assert sorted(i for idx in fe.surfaces.values() for i in idx) == list(range(len(FEATURES)))


def test_parity_incremental_vs_batch_real_slice(shared_data):
    ds = load_dataset(
        shared_data, SYMS, "1h", parse_date_ms("2024-02-01", ""), parse_date_ms("2024-03-15", "")
    )
    _check_parity(ds)


@pytest.mark.slow
def test_parity_incremental_vs_batch_everything(shared_data):
    _check_parity(load_dataset(shared_data, SYMS, "1h"))
    _check_parity(load_dataset(shared_data, ["BTCUSDT", "ETHUSDT"], "15m"))


def test_future_bars_do_not_change_past_features(shared_data):
    ds = load_dataset(
        shared_data, SYMS, "1h", parse_date_ms("2024-03-01", ""), parse_date_ms("2024-04-01", "")
    )
    base = batch_features(ds)
    cut = int(ds.symbols["BTCUSDT"].klines.open_time[400])
    rng = np.random.default_rng(1)
    for d in ds.symbols.values():  # scramble everything after the cut, on every symbol
        k = d.klines
        after = k.open_time > cut
        f = rng.uniform(0.5, 2.0, after.sum())
        k.open[after] *= f
        k.close[after] *= f
        k.high[after] *= f * 1.1
        k.low[after] *= f * 0.9
        k.volume[after] *= rng.uniform(0, 3, after.sum())
        d.funding[after] = rng.normal(0, 1e-3, after.sum())
        d.mark_close[after] *= 1.01
    pert = batch_features(ds)
    past = base.open_time <= cut
    np.testing.assert_array_equal(base.X[past], pert.X[past])
    assert not np.array_equal(base.X[~past], pert.X[~past], equal_nan=True)  # the perturbation bites


def test_gap_restarts_windows_and_bad_bars_rejected():
    fe = FeatureEngine(["ETHUSDT"], leader="BTCUSDT")
    t = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
    for i in range(100):
        v = fe.on_bar("ETHUSDT", t + i * 3_600_000, 100 + i, 101 + i, 99 + i, 100.5 + i, 10.0)
    assert math.isfinite(v[FEATURE_NAMES.index("mom_ret_72")])
    v = fe.on_bar("ETHUSDT", t + 102 * 3_600_000, 200, 201, 199, 200.5, 10.0)  # two bars missing
    assert fe.resets("ETHUSDT") == 1
    assert math.isnan(v[FEATURE_NAMES.index("mom_ret_1")])  # no return across the gap
    with pytest.raises(ValueError, match="not after"):
        fe.on_bar("ETHUSDT", t, 1, 1, 1, 1, 1)
    with pytest.raises(ValueError, match="invalid bar"):
        fe.on_bar("ETHUSDT", t + 103 * 3_600_000, float("nan"), 1, 1, 1, 1)


def test_book_inputs_feed_live_only_features():
    fe = FeatureEngine(["BTCUSDT"])
    t = 1_700_000_000_000 - 1_700_000_000_000 % 3_600_000
    for i in range(30):
        fe.on_bar("BTCUSDT", t + i * 3_600_000, 100, 101, 99, 100, 10.0)
    v = fe.vector("BTCUSDT")
    assert math.isnan(v[FEATURE_NAMES.index("book_imbalance")])
    fe.on_book("BTCUSDT", 0.4, 100.02, 100.0, 2.0)
    fe.on_book("BTCUSDT", -0.2, 99.99, 100.0, -0.5)
    v = fe.vector("BTCUSDT")
    assert v[FEATURE_NAMES.index("book_imbalance")] == -0.2
    assert v[FEATURE_NAMES.index("book_imbalance_ema")] == pytest.approx(0.4 + 0.1 * (-0.2 - 0.4))
    assert v[FEATURE_NAMES.index("book_micro_drift")] == pytest.approx(99.99 / 100.0 - 1)
    assert v[FEATURE_NAMES.index("flow_signed_volume")] == pytest.approx(1.5 / 10.0)
    v = fe.on_bar("BTCUSDT", t + 30 * 3_600_000, 100, 101, 99, 100, 10.0)
    assert v[FEATURE_NAMES.index("flow_signed_volume")] == pytest.approx(1.5 / 10.0)
    fe.on_book("BTCUSDT", 0.0, 100.0, 100.0, 0.0)  # new bar: the accumulator restarted
    assert fe.vector("BTCUSDT")[FEATURE_NAMES.index("flow_signed_volume")] == 0.0
