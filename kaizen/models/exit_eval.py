"""Offline exit evaluation: every exit rule run on the same simulated trades, honest fills.

The OFFLINE reference path. `kaizen exit eval` runs through the backtest engine
(kaizen.models.exit_engine); this evaluator stays for research and for the synthetic recovery
tests, and its accounting (kaizen.models.trades.value_matrix) is what the engine path's venue
accounting is checked against trade by trade (`accounting_parity_median_abs_bps`):
  1. the signal: the ensemble is trained walk-forward (kaizen.models.ensemble.train) and only its
     out-of-fold meta probabilities are used; the edge calibration (kaizen.models.edge) is refitted
     every `edge_refit_days` on the out-of-fold rows whose labels were known by then (purged);
  2. trades: one per onset of the signal (the side whose expected return beats the round trip of
     taker fills plus the expected funding), filled at the next bar's open plus half spread and
     slippage, taker fee on each fill, funding at the real settlement times (kaizen.models.trades);
     every rule sees the same trades, each an independent unit of entry notional (trades of one
     symbol may overlap when a rule holds past the next onset);
  3. each rule is asked bar by bar through its `on_bar(ctx)` with the BarContext and
     PositionState the engine hands it; exits fill at the next open; every rule closes a trade at
     max_hold_bars;
  4. the learned exit is trained walk-forward over the test span (kaizen.models.exit), each test
     window by a model that saw only rows whose labels were known an embargo before it;
  5. the table: net return per trade (bp), hit rate, average hold (bars), worst trade (bp),
     Sharpe (annualised, of the daily sum of the trades' net returns booked on their exit day, days
     without exits count as 0) and trades; the deflated Sharpe ratio of each rule counts every
     configuration tried (the baseline grid and the learned exit's margin grid) as a trial. The
     hindsight oracle is the upper bound: reported, not a trial, never selectable.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from kaizen.engine.strategy import BarContext, Costs, ExitRule
from kaizen.models.exit import (
    ExitExamples,
    ExitModel,
    ExitParams,
    FoldResult,
    LearnedExit,
    build_examples,
    manifest_for,
    policy_exit_bars,
    train_walk_forward,
)
from kaizen.models.exit_rules import (
    LEARNED,
    ORACLE,
    FutureExits,
    HindsightOracle,
    baseline_names,
    make_rule,
)
from kaizen.models.features import FEATURE_NAMES
from kaizen.models.trades import Market, Trades
from kaizen.stats import deflated_sharpe, sharpe

DAY_MS = 86_400_000


# ----------------------------------------------------------------------------------- running rules


def run_rule(
    rule: ExitRule,
    markets: list[Market],
    trades: Trades,
    costs: Costs,
    rows: np.ndarray | None = None,
    on_decision: Callable[[int, int, Any, BarContext], None] | None = None,
) -> np.ndarray:
    """Exit bar (bars_in_trade, 1..max_hold) of each trade in `rows` (default all), asking
    `rule.on_bar` at every bar close as the engine does. on_decision(trade, j, decision, ctx) sees
    every answer (lineage records, tests)."""
    rows = np.arange(len(trades)) if rows is None else np.asarray(rows)
    H = trades.max_hold
    out = np.empty(len(rows), np.int64)
    ctxs = []
    cols = []
    for m in markets:
        bpd = DAY_MS / m.interval_ms
        ctx = BarContext(m.symbol, len(ctxs), list(FEATURE_NAMES), costs, bpd)
        ctxs.append(ctx)
        cols.append(
            (
                m.open_time.tolist(),
                m.open.tolist(),
                m.high.tolist(),
                m.low.tolist(),
                m.close.tolist(),
                m.funding_rate.tolist(),
                m.next_funding_ms().tolist(),
                m.vol.tolist(),
                m.edge.tolist(),
                m.interval_ms,
            )
        )
    for n, i in enumerate(rows.tolist()):
        si = int(trades.sym[i])
        m, ctx = markets[si], ctxs[si]
        ot, op, hi, lo, cl, fr, nf, vol, edge, iv = cols[si]
        pos = ctx.position
        e = int(trades.entry_bar[i])
        ev = float(trades.entry_vol[i])
        pos.open(int(trades.side[i]), 1.0, float(trades.entry_price[i]), ot[e + 1] * 1_000_000, -1, ev)
        for j in range(1, H + 1):
            b = e + j
            ctx.open_time_ns = ot[b] * 1_000_000
            ctx.ts_ns = (ot[b] + iv) * 1_000_000
            ctx.open, ctx.high, ctx.low, ctx.close = op[b], hi[b], lo[b], cl[b]
            ctx.features = m.X[b]
            ctx.funding_rate = fr[b]
            ctx.next_funding_ms = nf[b]
            ctx.vol = vol[b]
            ctx.signal_edge = edge[b]
            pos.mark(cl[b])
            d = rule.on_bar(ctx)
            if on_decision is not None:
                on_decision(i, j, d, ctx)
            if d.exit or j == H:
                out[n] = j
                break
        pos.reset()
    return out


def oracle_exits(ex: ExitExamples, trades: Trades, markets: list[Market], rows: np.ndarray) -> FutureExits:
    """The hindsight best exit bar of each trade (from prices after entry; harness only)."""
    best = np.argmax(ex.V[rows], axis=1) + 1
    keys = {}
    for i, j in zip(rows.tolist(), best.tolist(), strict=True):
        m = markets[int(trades.sym[i])]
        keys[(m.symbol, int(m.open_time[trades.entry_bar[i] + 1]) * 1_000_000)] = int(j)
    return FutureExits(keys)


# ------------------------------------------------------------------------------------------ metrics


def exit_fill_ms(markets: list[Market], trades: Trades, rows: np.ndarray, j: np.ndarray) -> np.ndarray:
    out = np.empty(len(rows), np.int64)
    for n, i in enumerate(rows.tolist()):
        m = markets[int(trades.sym[i])]
        out[n] = m.open_time[trades.entry_bar[i] + j[n] + 1]
    return out


def _fill_times(markets: list[Market], trades: Trades, rows: np.ndarray, j: np.ndarray):
    t_in = np.array(
        [markets[int(trades.sym[i])].open_time[trades.entry_bar[i] + 1] for i in rows.tolist()], np.int64
    )
    return t_in, exit_fill_ms(markets, trades, rows, j)


def overlap_share(markets: list[Market], trades: Trades, rows: np.ndarray, j: np.ndarray) -> float:
    """Share of trades entered while an earlier trade of the same symbol was still open under the
    rule (the offline evaluator keeps them as independent trades; one position per symbol would
    not open them)."""
    if len(rows) == 0:
        return 0.0
    t_in, t_out = _fill_times(markets, trades, rows, j)
    sym = trades.sym[rows]
    hit = 0
    for s in np.unique(sym):
        k = np.flatnonzero(sym == s)
        k = k[np.argsort(t_in[k], kind="stable")]
        open_until = np.maximum.accumulate(t_out[k])
        hit += int((t_in[k][1:] < open_until[:-1]).sum())
    return hit / len(rows)


def one_position(markets: list[Market], trades: Trades, rows: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Mask of the trades a one-position-per-symbol book takes under the rule: in time order, a
    trade is taken when the symbol's previous taken trade has exited by its entry fill."""
    keep = np.zeros(len(rows), bool)
    if len(rows) == 0:
        return keep
    t_in, t_out = _fill_times(markets, trades, rows, j)
    sym = trades.sym[rows]
    for s in np.unique(sym):
        k = np.flatnonzero(sym == s)
        k = k[np.argsort(t_in[k], kind="stable")]
        free_at = -1
        for n in k.tolist():
            if t_in[n] >= free_at:
                keep[n] = True
                free_at = int(t_out[n])
    return keep


def daily_pnl(net: np.ndarray, t_ms: np.ndarray, start_ms: int, end_ms: int) -> np.ndarray:
    """Sum of trade returns per UTC day (booked at exit), every day of [start, end) included."""
    d0 = start_ms // DAY_MS
    nd = max(int(math.ceil(end_ms / DAY_MS)) - d0, 1)
    days = np.clip(t_ms // DAY_MS - d0, 0, nd - 1)
    return np.bincount(days, weights=net, minlength=nd)


def rule_metrics(net: np.ndarray, hold: np.ndarray, daily: np.ndarray) -> dict[str, float]:
    n = len(net)
    if n == 0:
        return {"net_per_trade_bps": 0.0, "hit_rate": 0.0, "avg_hold_bars": 0.0, "worst_trade_bps": 0.0,
                "sharpe": 0.0, "trades": 0}  # fmt: skip
    return {
        "net_per_trade_bps": float(net.mean() * 1e4),
        "hit_rate": float((net > 0).mean()),
        "avg_hold_bars": float(hold.mean()),
        "worst_trade_bps": float(net.min() * 1e4),
        "sharpe": sharpe(daily, 365.0),
        "trades": int(n),
    }


# ------------------------------------------------------------------------------------------- run


@dataclass
class EvalResult:
    table: dict[str, Any]  # the fixed exits.json shape
    detail: dict[str, Any]  # folds, selections, parity, oracle share (exits_detail.json)
    folds: list[FoldResult] = field(default_factory=list)
    exits: dict[str, np.ndarray] = field(default_factory=dict)  # rule -> exit bar per test trade
    test: np.ndarray | None = None
    ex: ExitExamples | None = None


def evaluate(
    markets: list[Market],
    trades: Trades,
    costs: Costs,
    params: ExitParams,
    start_ms: int,
    end_ms: int,
    backend: str = "auto",
    progress: Callable[[str], None] | None = None,
    ex: ExitExamples | None = None,
) -> EvalResult:
    """Train the learned exit walk-forward over [start, end), run every rule on the trades entered
    in [start, end), and build the table (module doc)."""
    tick = progress or (lambda note: None)
    ex = ex if ex is not None else build_examples(markets, trades, costs, params.horizon_bars)
    folds = train_walk_forward(ex, trades, params, start_ms, end_ms, progress=tick)
    test = np.concatenate([f.test_trades for f in folds]) if folds else np.zeros(0, np.int64)
    H, h = trades.max_hold, params.horizon_bars
    iv = params.interval_ms
    exits: dict[str, np.ndarray] = {}
    for name in baseline_names(h):
        rule = make_rule(name, horizon_bars=h, max_hold_bars=H, interval_ms=iv)
        exits[name] = run_rule(rule, markets, trades, costs, test)
    tick("baselines")
    learned = np.empty(len(test), np.int64)
    mismatch = 0
    fold_detail = []
    pos = 0
    for f in folds:
        man = manifest_for(params, f.selection, costs, {"fold": f.k})
        model = ExitModel.from_booster(f.booster, man, backend=backend)
        rule = LearnedExit(model)
        rows = f.test_trades
        j = run_rule(rule, markets, trades, costs, rows)
        learned[pos : pos + len(rows)] = j
        pos += len(rows)
        # the vectorized policy on the same compiled predictions must give the same exits
        if len(rows):
            pred = model.predict(ex.X[rows].reshape(-1, ex.X.shape[2])).reshape(len(rows), H)
            jv = policy_exit_bars(pred, ex, rows, rule.margin, rule.hard_stop_vol, model.kind)
            mismatch += int((jv != j).sum())
        fold_detail.append(
            {"k": f.k, "test_start": _date(f.test_start), "test_end": _date(f.test_end),
             "train_rows": int(len(f.train_rows)), "test_trades": int(len(rows)),
             "kind": f.selection.kind, "margin": f.selection.margin, "inner_scores_bp": f.selection.scores,
             "inner_note": f.selection.note, "model": model.version}
        )  # fmt: skip
        tick(f"learned fold {f.k}")
    exits[LEARNED] = learned
    oracle = HindsightOracle(oracle_exits(ex, trades, markets, test), h, H)
    exits[ORACLE] = run_rule(oracle, markets, trades, costs, test)
    rules: dict[str, dict[str, float]] = {}
    daily: dict[str, np.ndarray] = {}
    for name, j in exits.items():
        net = ex.V[test, j - 1] if len(test) else np.zeros(0)
        daily[name] = daily_pnl(net, exit_fill_ms(markets, trades, test, j), start_ms, end_ms)
        rules[name] = rule_metrics(net, j.astype(np.float64), daily[name])
    table, head = exit_table(rules, daily, [n for n in exits if n != ORACLE], params.n_candidates)
    detail = {
        "trades": int(len(test)),
        "start": _date(start_ms),
        "end": _date(end_ms),
        "max_hold_bars": H,
        "horizon_bars": h,
        "trials": head["trials"],
        "folds": fold_detail,
        "learned_vs_best_baseline_bps": head["learned_vs_best_baseline_bps"],
        "oracle_share": head["oracle_share"],
        "vectorized_policy_mismatches": mismatch,
        "overlap_share": {n: overlap_share(markets, trades, test, j) for n, j in exits.items()},
        # the same rules in a book holding one position per symbol (later onsets skipped while a
        # trade is open): the view the engine's single position per symbol should reproduce
        "one_position": {
            n: _one_position_metrics(markets, trades, ex, test, j, start_ms, end_ms) for n, j in exits.items()
        },
        "costs": {"taker_fee": costs.taker_fee, "half_spread": costs.half_spread, "slippage": costs.slippage},
    }
    return EvalResult(table, detail, folds, exits, test, ex)


def exit_table(
    rules: dict[str, dict[str, float]], daily: dict[str, np.ndarray], trial_names: list[str], n_candidates: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The `exits.json` table (rules, learned, best baseline, deflated Sharpe of every trial) and its
    headline figures (trials, learned minus best baseline, each rule's share of the oracle), for the
    vectorised evaluation and the engine's alike. Every rule tried is a trial, and so is each
    learned (kind, margin) candidate."""
    n_trials = len(trial_names) - 1 + n_candidates
    trial_srs = np.array([sharpe(daily[n]) for n in trial_names])
    dsr = {n: deflated_sharpe(daily[n], n_trials, trial_srs) for n in trial_names}
    best = max((n for n in trial_names if n != LEARNED), key=lambda n: rules[n]["net_per_trade_bps"])
    table = {"rules": rules, "learned": LEARNED, "best_baseline": best, "deflated_sharpe": dsr}
    o = rules[ORACLE]["net_per_trade_bps"]
    head = {
        "trials": n_trials,
        "learned_vs_best_baseline_bps": rules[LEARNED]["net_per_trade_bps"] - rules[best]["net_per_trade_bps"],
        "oracle_share": {
            n: (r["net_per_trade_bps"] / o if o > 0 else math.nan) for n, r in rules.items() if n != ORACLE
        },
    }
    return table, head


def _one_position_metrics(markets, trades, ex, test, j, start_ms, end_ms) -> dict[str, float]:
    keep = one_position(markets, trades, test, j)
    rows, jj = test[keep], j[keep]
    net = ex.V[rows, jj - 1]
    return rule_metrics(
        net, jj.astype(np.float64), daily_pnl(net, exit_fill_ms(markets, trades, rows, jj), start_ms, end_ms)
    )


def _date(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def format_table(table: dict[str, Any]) -> str:
    rules = table["rules"]
    dsr = table["deflated_sharpe"]
    hdr = (
        f"{'rule':<16} {'net/trade bp':>12} {'hit':>6} {'hold':>6} {'worst bp':>9} {'sharpe':>7} "
        f"{'trades':>6} {'DSR':>6}"
    )
    lines = [hdr, "-" * len(hdr)]
    order = sorted(rules, key=lambda n: (n == ORACLE, -rules[n]["net_per_trade_bps"]))
    for n in order:
        r = rules[n]
        d = dsr.get(n, {}).get("dsr", math.nan)
        tag = (
            " (learned)"
            if n == table["learned"]
            else " (best baseline)"
            if n == table["best_baseline"]
            else ""
        )
        tag = " (hindsight, not traded)" if n == ORACLE else tag
        lines.append(
            f"{n:<16} {r['net_per_trade_bps']:12.2f} {r['hit_rate']:6.3f} {r['avg_hold_bars']:6.2f} "
            f"{r['worst_trade_bps']:9.1f} {r['sharpe']:7.2f} {r['trades']:6d} {d:6.3f}{tag}"
        )
    return "\n".join(lines)


def verdict(table: dict[str, Any]) -> str:
    r = table["rules"]
    lb, bb = table["learned"], table["best_baseline"]
    diff = r[lb]["net_per_trade_bps"] - r[bb]["net_per_trade_bps"]
    word = "beats" if diff > 0 else "falls short of"
    return (
        f"learned exit {word} the best baseline ({bb}) by {abs(diff):.2f} bp per trade "
        f"({r[lb]['net_per_trade_bps']:.2f} vs {r[bb]['net_per_trade_bps']:.2f} bp, net of fees, spread, slippage and funding)"
    )


# ------------------------------------------------------------------------------- signal history


@dataclass
class SignalHistory:
    """Markets with the walk-forward signal edge at every bar, and how it was made."""

    markets: list[Market]
    edge_fits: int
    oof_rows: int
    info: dict[str, Any] = field(default_factory=dict)
    results: list[Any] = field(default_factory=list)  # the ensemble TrainResult(s), final refits included


def read_settlements(root: Any, symbol: str) -> tuple[np.ndarray, np.ndarray]:
    """Funding settlements (ms, rate) of a symbol from the data directory (empty when none)."""
    from pathlib import Path

    from kaizen.market.data import _find_one, read_funding

    fp = _find_one(Path(root) / "futures" / "um" / "fundingRate" / symbol)
    if fp is None:
        return np.zeros(0, np.int64), np.zeros(0)
    return read_funding(fp)


def signal_history(
    root: Any,
    ds: Any,
    horizon_bars: int,
    costs: Costs,
    train_params: Any,
    leader: str = "BTCUSDT",
    pooled: bool = True,
    edge_refit_days: int = 30,
    progress: Callable[[str], None] | None = None,
) -> SignalHistory:
    """Train the signal ensemble walk-forward on `ds`, keep only its out-of-fold meta probabilities,
    calibrate them walk-forward (kaizen.models.edge) and return one Market per symbol."""
    from kaizen.errors import DataError
    from kaizen.models import ensemble
    from kaizen.models.edge import walk_forward_edge
    from kaizen.models.features import batch_features
    from kaizen.models.labels import net_forward_return
    from kaizen.models.training import build

    tick = progress or (lambda note: None)
    ts = build(ds, horizon_bars, costs.taker_fee, leader=leader)
    bf = batch_features(ds, leader=leader)
    iv = next(iter(ds.symbols.values())).klines.interval_ms
    # gross forward log return per bar (fee 0, no funding): what the calibration explains
    gross_bf = np.full(len(bf.sid), np.nan)
    for i, _s in enumerate(bf.symbols):
        rows = np.flatnonzero(bf.sid == i)
        gross_bf[rows] = net_forward_return(
            bf.open_time[rows], bf.close[rows], np.zeros(len(rows)), horizon_bars, iv, 0.0
        )
    # ts rows -> bf rows by (symbol, open time)
    key_bf = bf.sid.astype(np.int64) * (1 << 44) + bf.open_time
    key_ts = ts.sid.astype(np.int64) * (1 << 44) + ts.t
    order = np.argsort(key_bf, kind="stable")
    at = order[np.searchsorted(key_bf[order], key_ts)]
    if not np.array_equal(key_bf[at], key_ts):
        raise DataError("signal history: training rows do not map onto the feature rows")
    p_oof = np.full(len(ts.y), np.nan)
    groups = [np.ones(len(ts.y), bool)] if pooled else [ts.sid == i for i in range(len(ts.symbols))]
    results = []
    for g in groups:
        rows = np.flatnonzero(g)
        res = ensemble.train(ts.X[rows], ts.y[rows], ts.ret[rows], ts.t[rows], train_params, progress=tick)
        p_oof[rows] = res.oof_meta
        results.append(res)
    label_end = ts.t + (horizon_bars + 1) * iv
    edge_ts = np.full(len(ts.y), np.nan)
    n_fits = 0
    for g in groups:
        rows = np.flatnonzero(g)
        e, fits = walk_forward_edge(
            ts.t[rows], label_end[rows], p_oof[rows], gross_bf[at[rows]], edge_refit_days * DAY_MS,
            train_params.embargo_bars * iv,
        )  # fmt: skip
        edge_ts[rows] = e
        n_fits += len(fits)
    tick("edge calibration")
    edge_bf = np.full(len(bf.sid), np.nan)
    edge_bf[at] = edge_ts
    markets = []
    for i, s in enumerate(bf.symbols):
        rows = np.flatnonzero(bf.sid == i)
        k = ds.symbols[s].klines
        st, sr = read_settlements(root, s)
        markets.append(
            Market(s, iv, k.open_time, k.open, k.high, k.low, k.close, bf.X[rows], bf.funding[rows],
                   edge_bf[rows], st, sr)
        )  # fmt: skip
    return SignalHistory(markets, n_fits, int(np.isfinite(p_oof).sum()), {"rows": int(len(ts.y))}, results)
