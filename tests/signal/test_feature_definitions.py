"""Every one of the 36 features against an independent numpy implementation of its documented
definition (tests/signal/numpy_features.py), on all the real 1h data and on synthetic edge cases:
gaps in the leader and in the alts, an alt that starts later, zero volume, constant prices,
high == low, missing funding and mark. The engine runs through `batch_features` (the training path)
and, for the live-only features, through `on_bar`/`on_book` (the live path)."""

from __future__ import annotations

import numpy as np
import pytest

from kaizen.market.data import Dataset, Klines, SymbolData, load_dataset
from kaizen.models.features import FEATURE_NAMES, FEATURES, FeatureEngine, batch_features
from tests.signal import numpy_features as ref

H = 3_600_000
SYMS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
REL = 1e-9


def _compare(ds: Dataset, leader: str = "BTCUSDT") -> dict[str, int]:
    """Engine (batch) == numpy definition for every feature of every symbol; returns the number of
    finite values compared per feature. Tolerance: 1e-9 relative to the value, or to the feature's
    typical size where the value is a near-cancellation (a z-score near 0)."""
    iv = next(iter(ds.symbols.values())).klines.interval_ms
    bf = batch_features(ds, leader=leader)
    want = ref.dataset_features(ds.symbols, leader, iv)
    compared = dict.fromkeys(FEATURE_NAMES, 0)
    for s in ds.symbols:
        got = bf.X[bf.rows_of(s)]
        exp = want[s]
        assert got.shape == exp.shape
        for j, name in enumerate(FEATURE_NAMES):
            a, b = got[:, j], exp[:, j]
            bad = np.flatnonzero(np.isnan(a) != np.isnan(b))
            assert not len(bad), (
                f"{s} {name}: nan in one only at row {bad[0]}: engine {a[bad[0]]}, numpy {b[bad[0]]}"
            )
            ok = ~np.isnan(a)
            if not ok.any():
                continue
            scale = np.median(np.abs(b[ok])) or 1.0
            err = np.abs(a[ok] - b[ok])
            tol = REL * np.maximum(np.abs(b[ok]), scale)
            k = int(np.argmax(err - tol))
            assert err[k] <= tol[k], f"{s} {name}: engine {a[ok][k]!r} numpy {b[ok][k]!r}"
            compared[name] += int(ok.sum())
    return compared


def test_the_numpy_implementation_covers_every_feature():
    assert list(ref.NAMES) == FEATURE_NAMES


def test_all_features_match_numpy_on_all_real_1h_data(shared_data):
    ds = load_dataset(shared_data, SYMS, "1h")
    compared = _compare(ds)
    for f in FEATURES:  # every bar feature was actually compared, on a lot of rows
        if not f.live_only:
            assert compared[f.name] > 5_000, (f.name, compared[f.name])


@pytest.mark.slow
def test_all_features_match_numpy_on_15m_data(shared_data):
    _compare(load_dataset(shared_data, ["BTCUSDT", "ETHUSDT"], "15m"))


def _symbol(name, t, rng, const=(), flat=(), zero_vol=(), fund_nan=(), mark_nan=()):
    n = len(t)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    for sl in const:  # a run of equal closes
        c[sl] = c[sl.start]
    o = np.concatenate([[c[0]], c[:-1]])
    h = np.maximum(o, c) * (1 + rng.uniform(0, 0.005, n))
    lo = np.minimum(o, c) * (1 - rng.uniform(0, 0.005, n))
    for sl in flat:  # o == h == l == c
        o[sl] = h[sl] = lo[sl] = c[sl]
    v = rng.uniform(0, 100, n)
    for sl in zero_vol:
        v[sl] = 0.0
    f = np.repeat(rng.normal(1e-4, 1e-4, n // 8 + 1), 8)[:n]
    for sl in fund_nan:
        f[sl] = np.nan
    m = c * (1 + rng.normal(0, 1e-4, n))
    for sl in mark_nan:
        m[sl] = np.nan
    return SymbolData(Klines(name, H, t.astype(np.int64), o, h, lo, c, v), f, m)


# Seeds tuned on while writing this: 0-9 (probes); the test runs on others.
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_all_features_match_numpy_on_edge_cases(seed):
    rng = np.random.default_rng(seed)
    T = (np.arange(600) + 480_000) * H
    ds = Dataset(
        "1h",
        {
            "BTCUSDT": _symbol(
                "BTCUSDT", np.delete(T, [*range(200, 203), 350]), rng, const=[slice(450, 530)]
            ),
            "ETHUSDT": _symbol(
                "ETHUSDT",
                np.delete(T, [*range(100, 110), 400]),
                rng,
                zero_vol=[slice(20, 60), slice(300, 330)],
                fund_nan=[slice(0, 30), slice(250, 260)],
                mark_nan=[slice(0, 200), slice(400, 420)],
            ),
            "SOLUSDT": _symbol("SOLUSDT", T[50:], rng, const=[slice(100, 200)], flat=[slice(110, 140)]),
            "BNBUSDT": _symbol("BNBUSDT", T[::2], rng),  # every other bar: a gap at each bar
        },
    )
    compared = _compare(ds)
    assert compared["mr_z_24"] > 0 and compared["x_corr_72"] > 0 and compared["vlm_z_24"] > 0


def test_live_only_features_match_their_definitions():
    """Book events and bars interleaved, through the live path (`on_book`, `on_bar`); batch has no
    book input and must leave these features nan."""
    rng = np.random.default_rng(21)
    fe = FeatureEngine(["ETHUSDT"], leader="BTCUSDT")
    cols = [
        FEATURE_NAMES.index(n)
        for n in ("book_imbalance", "book_micro_drift", "book_imbalance_ema", "flow_signed_volume")
    ]
    events, got = [], []
    t0 = 480_000 * H
    bars = 0
    for _ in range(900):
        if rng.random() < 0.15:
            v = 0.0 if 40 <= bars < 70 else float(rng.uniform(0, 50))
            c = 100.0 + rng.normal()
            out = fe.on_bar("ETHUSDT", t0 + bars * H, c, c + 1, c - 1, c, v)
            bars += 1
            events.append(("bar", v))
        else:
            imb = float(rng.uniform(-1, 1))
            mid = float(rng.choice([100.0, 0.0])) if rng.random() < 0.05 else 100.0 + float(rng.normal())
            sv = float("nan") if rng.random() < 0.03 else float(rng.normal(0, 5))
            micro = mid + float(rng.normal(0, 0.01))
            fe.on_book("ETHUSDT", imb, micro, mid, sv)
            out = fe.vector("ETHUSDT")
            events.append(("book", imb, micro, mid, sv))
        got.append(out[cols])
    want = ref.live_features(events)
    got = np.array(got)
    assert bars > 100
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    ok = ~np.isnan(want)
    assert ok[:, 3].sum() > 300
    np.testing.assert_allclose(got[ok], want[ok], rtol=1e-12, atol=0)
