"""The learned exit: live rows equal training rows, the rule equals the vectorized policy, no
look-ahead (perturbation), purge and embargo checked on the folds' own rows, save/load with a
content hash, compiled == XGBoost, and the lineage record of a decision."""

from __future__ import annotations

import json
import math

import msgspec
import numpy as np
import pytest

from kaizen.errors import DataError
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.records import ExitRecord
from kaizen.lineage.writer import LineageWriter
from kaizen.market.data import Klines, SymbolData
from kaizen.models.exit import (
    NAMES,
    ExitModel,
    LearnedExit,
    build_examples,
    label_end,
    manifest_for,
    policy_exit_bars,
    save,
)
from kaizen.models.exit_eval import oracle_exits, run_rule
from kaizen.models.exit_rules import HindsightOracle
from kaizen.models.features import batch_features
from kaizen.models.trades import Market
from tests.exits.conftest import COSTS, rows_of, trades_of
from tests.exits.synth import planted


def _model(small, k=0, backend="interp"):
    f = small.folds[k]
    return ExitModel.from_booster(
        f.booster, manifest_for(small.params, f.selection, COSTS, {}), backend=backend
    )


def test_live_rows_and_decisions_equal_the_training_path(small):
    model = _model(small)
    rule = LearnedExit(model)
    test = small.folds[0].test_trades
    assert len(test) > 20
    seen = []

    def check(i, j, d, ctx):
        if d.values is not None:
            # the row the rule fed the model is bit for bit the training row of that cell
            assert np.array_equal(d.values, small.ex.X[i, j - 1], equal_nan=True), (i, j)
            seen.append((i, j))

    j_rule = run_rule(rule, small.markets, small.trades, COSTS, test, on_decision=check)
    assert len(seen) > len(test)
    pred = model.predict(small.ex.X[test].reshape(-1, len(NAMES))).reshape(len(test), -1)
    j_vec = policy_exit_bars(pred, small.ex, test, rule.margin, rule.hard_stop_vol, model.kind)
    assert np.array_equal(j_rule, j_vec)
    assert 1 < j_rule.mean() < small.trades.max_hold  # it does decide, not always first/last bar


def _perturbed(m: Market, after_bar: int, seed: int) -> Market:
    """The same market with every price, volume, signal and funding rate after bar `after_bar`'s
    close replaced; features recomputed by the real engine."""
    rng = np.random.default_rng(seed)
    n = len(m)
    f = np.ones(n)
    f[after_bar + 1 :] = np.exp(np.cumsum(rng.normal(0, 0.02, n - after_bar - 1)))
    o, h, lo, c = m.open * f, m.high * f * 1.001, m.low * f * 0.999, m.close * f
    h[: after_bar + 1], lo[: after_bar + 1] = m.high[: after_bar + 1], m.low[: after_bar + 1]
    ok = np.maximum(o, c) <= h
    h = np.where(ok, h, np.maximum(o, c))
    lo = np.minimum(lo, np.minimum(o, c))
    vol = np.full(n, 20.0)
    vol[after_bar + 1 :] = rng.lognormal(3, 1, n - after_bar - 1)
    edge = m.edge.copy()
    edge[after_bar + 1 :] = rng.normal(0, 0.01, n - after_bar - 1)
    fr = m.funding_rate.copy()
    fr[after_bar + 1 :] = rng.normal(0, 0.001, n - after_bar - 1)
    rate = m.settle_rate.copy()
    late = m.settle_t > int(m.close_time[after_bar])
    rate[late] = rng.normal(0, 0.001, int(late.sum()))
    k = Klines(m.symbol, m.interval_ms, m.open_time, o, h, lo, c, vol)
    return k, fr, edge, rate


def _before_after(small, i: int, t_bar: int, seed: int) -> tuple[list[Market], list[Market]]:
    """Markets as they were, and with everything of trade i's symbol after bar e + t_bar's close
    replaced (features of every symbol recomputed by the real engine)."""
    ms = small.markets
    si = int(small.trades.sym[i])
    b = int(small.trades.entry_bar[i]) + t_bar
    k, fr, edge, rate = _perturbed(ms[si], b, seed)

    def frames(perturb: bool) -> dict[str, SymbolData]:
        out = {}
        for j, m in enumerate(ms):
            if perturb and j == si:
                out[m.symbol] = SymbolData(k, fr, np.full(len(m), np.nan))
            else:
                kk = Klines(
                    m.symbol,
                    m.interval_ms,
                    m.open_time,
                    m.open,
                    m.high,
                    m.low,
                    m.close,
                    np.full(len(m), 20.0),
                )
                out[m.symbol] = SymbolData(kk, m.funding_rate, np.full(len(m), np.nan))
        return out

    res = []
    for perturb in (False, True):
        fr_ = frames(perturb)
        bf = batch_features(fr_, leader=ms[0].symbol)
        mk = []
        for j, m in enumerate(ms):
            rows = np.flatnonzero(bf.sid == j)
            kk = fr_[m.symbol].klines
            hit = perturb and j == si
            mk.append(
                Market(m.symbol, m.interval_ms, kk.open_time, kk.open, kk.high, kk.low, kk.close, bf.X[rows],
                       fr if hit else m.funding_rate, edge if hit else m.edge, m.settle_t,
                       rate if hit else m.settle_rate)
            )  # fmt: skip
        res.append(mk)
    return res[0], res[1]


def _decisions(rule, markets, small, i, t_bar):
    dec = {}

    def keep(ii, j, d, ctx):
        if j <= t_bar:
            dec[j] = (d.exit, d.reason, d.hold_value, d.cost, None if d.values is None else d.values.copy())

    run_rule(rule, markets, small.trades, COSTS, np.array([i]), on_decision=keep)
    return dec


def _same(a, z) -> bool:
    num = all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in zip(a[2:4], z[2:4], strict=True))
    rows = (a[4] is None and z[4] is None) or np.array_equal(a[4], z[4], equal_nan=True)
    return a[:2] == z[:2] and num and rows


def test_no_look_ahead_perturbation(small):
    """The decision at bar t is unchanged when every price, volume, signal and funding rate after
    t's close changes (and the features are recomputed); the hindsight oracle's is not, so the
    check can fail."""
    model = _model(small, 1)
    t_bar = 3
    test = small.folds[1].test_trades
    for n, i in enumerate(test[::7][:6].tolist()):
        before, after = _before_after(small, i, t_bar, seed=100 + n)
        d0 = _decisions(LearnedExit(model), before, small, i, t_bar)
        d1 = _decisions(LearnedExit(model), after, small, i, t_bar)
        assert d0.keys() == d1.keys() and len(d0) >= 1
        assert all(_same(d0[j], d1[j]) for j in d0), i
        assert any(d0[j][4] is not None for j in d0)  # the model was asked, not only a stop
    # the oracle on trades whose hindsight-best exit was at or before t: perturbing the future moves it
    best = np.argmax(small.ex.V[test], axis=1) + 1
    early = test[best <= t_bar][:3]
    assert len(early) >= 1
    moved = 0
    for n, i in enumerate(early.tolist()):
        before, after = _before_after(small, i, t_bar, seed=200 + n)
        d = []
        for mk in (before, after):
            ex = build_examples(mk, small.trades, COSTS, 4)
            fut = oracle_exits(ex, small.trades, mk, np.array([i]))
            d.append(_decisions(HindsightOracle(fut, 4, 16), mk, small, i, t_bar))
        moved += int(d[0].keys() != d[1].keys() or not all(_same(d[0][j], d[1][j]) for j in d[0]))
    assert moved >= 1


def test_purge_and_embargo_on_the_folds_own_rows(small):
    """No training example (its span: entry decision .. label known) overlaps a test window
    widened by the embargo; the choice of kind and margin was made on rows and trades inside the
    same span."""
    ex, tr, p = small.ex, small.trades, small.params
    emb = p.embargo_ms
    assert len(small.folds) == 2
    for f in small.folds:
        lo, hi = f.test_start - emb, f.test_end + emb
        # every stage's rows: their own bar's label; the final stage: its kind's label (a "cont"
        # label follows the trade to its exit)
        for flat, le in ((f.train_rows, ex.label_end), (f.final_rows, label_end(ex, f.selection.kind))):
            i, jm = rows_of(ex, flat)
            begin, end = tr.t_entry[i], le[i, jm]
            assert len(i) > 0
            assert not np.any((begin < hi) & (end > lo)), f.k
            assert np.all(end <= f.test_start - emb)
            assert np.all(jm < tr.max_hold - 1)  # the forced last bar has no label
        sel = f.selection
        assert sel.inner_rows is not None and len(sel.val_trades) > 0
        ii, jj = rows_of(ex, sel.inner_rows)
        v_start = int(tr.t_entry[sel.val_trades].min())
        assert np.all(ex.label_end[ii, jj] <= v_start - emb)  # inner fits purged before validation
        assert np.all(ex.label_end[sel.val_trades, -1] <= f.test_start - emb)  # validation done in time
        assert np.all((tr.t_entry[f.test_trades] >= f.test_start) & (tr.t_entry[f.test_trades] < f.test_end))
    # and the later fold did use the earlier test window's rows (walk-forward, expanding)
    assert len(small.folds[1].train_rows) > len(small.folds[0].train_rows)


def test_continuation_target_and_its_purge():
    """ "cont" labels follow the hold1 policy to its exit: a trade's rows are used only once its last
    possible fill is known; the label equals V[tau] - V[j] by hand."""
    from kaizen.models.exit import ExitParams, continuation_target, fit_kind, target

    markets, _ = planted(5, n_bars=3000)
    trades = trades_of(markets)
    ex = build_examples(markets, trades, COSTS, 4)
    params = ExitParams(trees=10, min_rows=200, threads=1, hard_stop_vol=0.0)
    rows = np.arange(len(trades))
    pred = np.ones((len(trades), ex.H))
    pred[:, 4:] = -1.0  # the myopic policy holds 4 bars, exits at bar 5 (funding is tiny next to 1 vol)
    y = continuation_target(ex, rows, pred, params)
    want = (ex.V[:, 4][:, None] - ex.V[:, :4]) / ex.vol[:, :4]
    np.testing.assert_allclose(y[:, :4], np.clip(want, -8, 8))
    want5 = (ex.V[:, 5] - ex.V[:, 4]) / ex.vol[:, 4]  # at bar 5 holding goes on to bar 6 (exit there)
    np.testing.assert_allclose(y[:, 4], np.clip(want5, -8, 8))
    until = int(np.median(ex.label_end[:, -1]))
    f = fit_kind(ex, params, "cont", until)
    i, _ = rows_of(ex, f.rows)
    assert np.all(ex.label_end[i, -1] <= until) and len(f.rows) > 0
    y1 = target(ex, 4.0)
    assert np.isfinite(y1[:, :-1]).mean() > 0.99


def test_save_load_hash_and_backends(small, tmp_path):
    f = small.folds[0]
    man = manifest_for(small.params, f.selection, COSTS, {"data": {"note": "synthetic"}})
    h = save(f.booster, tmp_path / "m", man)
    m_interp = ExitModel.load(tmp_path / "m", backend="interp")
    m_comp = ExitModel.load(tmp_path / "m", backend="auto")
    assert m_interp.version == h[:16] == m_comp.version
    X = small.ex.X[small.folds[0].test_trades].reshape(-1, len(NAMES))
    want = f.booster.inplace_predict(X, missing=np.nan)
    for m in (m_interp, m_comp):
        np.testing.assert_allclose(m.predict(X), want, rtol=1e-6, atol=1e-6)
    assert m_interp.margin == f.selection.margin
    # tampering with the manifest or the model is refused
    mf = tmp_path / "m" / "manifest.json"
    d = json.loads(mf.read_text())
    d["margin"] = 0.5
    mf.write_text(json.dumps(d))
    with pytest.raises(DataError, match="content hash"):
        ExitModel.load(tmp_path / "m")
    with pytest.raises(DataError, match="not found"):
        ExitModel.load(tmp_path / "nope")


def test_decision_lineage_record_round_trip(small, tmp_path):
    rule = LearnedExit(_model(small))
    recs = []

    def write(i, j, d, ctx):
        r = d.record(len(recs) + 1, ctx.ts_ns, ctx.symbol, rule.name, ctx.position, parents=[99])
        assert isinstance(r, ExitRecord)
        recs.append(r)

    run_rule(rule, small.markets, small.trades, COSTS, small.folds[0].test_trades[:10], on_decision=write)
    with LineageWriter(tmp_path) as w:
        for r in recs:
            w.append(r)
    back = list(LineageReader(tmp_path).records())
    enc = msgspec.msgpack.encode  # the rows carry NaN (live-only features): compare the bytes
    assert [enc(r) for r in back] == [enc(r) for r in recs]
    model_recs = [r for r in back if r.reason in ("model", "hold")]
    assert model_recs and all(r.names == NAMES and len(r.values) == len(NAMES) for r in model_recs)
    r = model_recs[0]
    assert math.isfinite(r.hold_value) and r.side in (-1, 1) and r.bars_in_trade >= 1
    assert r.exit == (r.hold_value < r.cost)


def test_more_trades_are_the_same_trades():
    # rebuilding from the same markets gives the same trades and rows (determinism)
    a, _ = planted(4, n_bars=1500)
    t1, t2 = trades_of(a), trades_of(a)
    assert np.array_equal(t1.entry_bar, t2.entry_bar)
    e1, e2 = build_examples(a, t1, COSTS, 4), build_examples(a, t2, COSTS, 4)
    assert np.array_equal(e1.X, e2.X, equal_nan=True)
