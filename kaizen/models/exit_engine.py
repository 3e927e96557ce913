"""`kaizen exit eval` through the backtest engine: every exit rule run by the one engine on the
same entries, net of fees, spread, slippage and funding from the in-process venue's accounting.

1. Walk-forward periods: [start, end) is cut into `[exit] folds` periods. At each period start S a
   DataView whose clock is S gives the only data the period's models may see:
   - the signal ensemble is trained on all history before S (an expanding window: the exit model
     needs the signal's trades on as much history as there is) with `train_signal_model`, the
     backtest's trainer (cached by data hash), which keeps its out-of-fold probabilities (oof.npz);
   - those out-of-fold probabilities, calibrated walk-forward into an edge
     (kaizen.models.edge.walk_forward_edge), give the trades the signal would have opened on that
     history; their bars are the exit model's examples (kaizen.models.exit), fitted on rows whose
     labels were known by S - embargo, its kind and margin chosen on an inner split of that span;
     a period with too few such rows keeps the latest earlier period's exit model (said in the
     detail), never a later one.
2. Entries (`EntryGate`): the period's compiled ensemble (EnsembleStrategy) asked at every bar as
   if flat (its wanted side does not depend on the book), an entry at each onset of its side, taken
   only when no trade of that symbol can still be open under any rule (more than max_hold bars
   since the last entry, every rule closes at max_hold) and the trade can run its max_hold before
   --end. So the entries are a function of the market alone: the same for every rule.
3. One backtest per rule (kaizen.backtest.driver.run_job): the Engine's exit layer asks the rule
   (`PeriodExit`: the period's learned model, or a baseline) at every bar of an open trade, every
   answer an `exit` lineage record; orders go through the router to the InProcessVenue. Each
   trade's net return = (realized PnL - commissions + funding received) / entry notional, from the
   venue's trade and funding logs.
4. The hindsight oracle is computed on the engine's own entries (entry fill prices from the
   venue) from the prices after them (kaizen.models.trades.value_matrix): reported, never traded,
   not a trial. The same matrix gives a parity check of the engine's accounting.
5. Every configuration tried is a trial for the deflated Sharpe ratio: the baseline grid and every
   (kind, margin) candidate of the learned exit.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from kaizen.config import Config
from kaizen.engine.strategy import BarContext, Costs, ExitDecision, PositionState, Target
from kaizen.errors import DataError
from kaizen.market.data import Dataset
from kaizen.market.view import DataView
from kaizen.models import exit as exit_model
from kaizen.models.exit_eval import _date, exit_table
from kaizen.models.exit_rules import LEARNED, ORACLE, baseline_names, make_rule
from kaizen.models.trades import Market, Trades, make_trades, value_matrix

DAY_MS = 86_400_000
MS_NS = 1_000_000


# ---------------------------------------------------------------------------------------- periods


@dataclass
class Period:
    k: int
    start: int  # ms: decisions at closes >= start use this period's models
    end: int
    signal_dir: Path
    signal_info: dict[str, Any]
    signal_data_end: int  # the last bar close the signal model was trained on (<= start)
    exit_until: int  # exit rows' labels known by this time (start - embargo)
    selection: exit_model.Selection
    booster: Any
    train_rows: np.ndarray  # flat example rows every stage of the exit model fitted on
    ex: exit_model.ExitExamples  # the period's training examples (for the leakage checks)
    trades: int = 0  # signal trades on the training history
    final_rows: np.ndarray | None = None  # the final stage's rows (labels per exit.label_end(ex, kind))
    note: str = ""  # why this period has no exit model of its own
    model_from: int = 0  # the period whose exit model serves this one (an earlier one when too few rows)
    _model: exit_model.ExitModel | None = None

    def exit_model(self, params: exit_model.ExitParams, costs: Costs, backend: str) -> exit_model.ExitModel:
        if self._model is None:
            man = exit_model.manifest_for(params, self.selection, costs, {"period": self.k})
            self._model = exit_model.ExitModel.from_booster(self.booster, man, backend=backend)
        return self._model


def periods_of(start_ms: int, end_ms: int, n: int, interval_ms: int) -> list[tuple[int, int, int]]:
    return exit_model.exit_folds(start_ms, end_ms, n, interval_ms)


def oof_markets(mdir: Path, ds: Dataset, cfg: Config, costs: Costs) -> list[Market]:
    """One Market per symbol of `ds` whose `edge` is the walk-forward calibrated edge of the signal
    model's out-of-fold probabilities (nan where the model has none: its first fold, warm-up)."""
    from kaizen.market.data import interval_ms
    from kaizen.models.edge import walk_forward_edge
    from kaizen.models.training import build

    mc = cfg.models
    iv = interval_ms(mc.interval)
    ts = build(ds, mc.horizon_bars, cfg.fees.taker, leader=mc.leader)  # the trainer's very rows
    z = np.load(mdir / "oof.npz")
    keep = np.isin(ts.t, np.unique(z["t"]))
    if keep.sum() != len(z["t"]) or not (
        np.array_equal(ts.t[keep], z["t"]) and np.array_equal(ts.y[keep], z["y"])
    ):
        raise DataError(f"{mdir}: out-of-fold predictions do not map onto the training rows")
    p = np.full(len(ts.t), np.nan)
    p[keep] = z["p"]
    label_end = ts.t + (mc.horizon_bars + 1) * iv
    edge_ts, _ = walk_forward_edge(
        ts.t, label_end, p, ts.gross, cfg.exit.edge_refit_days * DAY_MS, mc.embargo_bars * iv
    )
    bf = ts.bf
    edge_bf = np.full(len(bf.sid), np.nan)
    edge_bf[ts.rows] = edge_ts
    out = []
    for i, s in enumerate(bf.symbols):
        rows = np.flatnonzero(bf.sid == i)
        d = ds.symbols[s]
        k = d.klines
        out.append(
            Market(s, iv, k.open_time, k.open, k.high, k.low, k.close, bf.X[rows], bf.funding[rows],
                   edge_bf[rows], d.funding_time, d.funding_rate)
        )  # fmt: skip
    return out


def entry_sides(markets: list[Market], costs: Costs, horizon_bars: int) -> list[np.ndarray]:
    from kaizen.models.edge import entry_side

    hold_h = horizon_bars * markets[0].interval_ms / 3_600_000
    return [entry_side(m.edge, costs, m.funding_rate, hold_h)[0] for m in markets]


def train_period(
    k: int,
    start: int,
    end: int,
    ds: Dataset,
    cfg: Config,
    costs: Costs,
    params: exit_model.ExitParams,
    root: Path,
    progress: Callable[[str], None] | None = None,
) -> Period:
    """The period's signal model and exit model, from what a DataView at `start` lets through."""
    from kaizen.backtest.training import train_signal_model

    tick = progress or (lambda note: None)
    view = DataView(ds, now_ms=start)
    sds = view.dataset(until_ms=start)  # all history known at the period's start (expanding window)
    mdir, info = train_signal_model(sds, cfg, costs, root / "models")
    tick(f"period {k}: signal model")
    markets = oof_markets(mdir, sds, cfg, costs)
    trades = make_trades(
        markets, entry_sides(markets, costs, params.horizon_bars), costs, params.max_hold_bars
    )
    ex = exit_model.build_examples(markets, trades, costs, params.horizon_bars)
    until = start - params.embargo_ms
    data_end = int(max(d.klines.open_time[-1] for d in sds.symbols.values())) + markets[0].interval_ms
    per = Period(k, start, end, mdir, info, data_end, until, exit_model.Selection(0.0), None, np.zeros(0, np.int64),
                 ex, len(trades))  # fmt: skip
    if len(trades) < params.min_trades:
        per.note = f"{len(trades)} out-of-fold trades before {_date(start)} (need {params.min_trades})"
        return per
    sel, fit = exit_model.fit_selected(ex, trades, params, until)
    if fit is None:
        n = len(exit_model.train_rows(ex, exit_model.target(ex, params.target_clip), until))
        per.note = f"{n} exit training rows before {_date(start)} (need {params.min_rows})"
        return per
    per.selection, per.booster, per.train_rows, per.final_rows = sel, fit.booster, fit.stage_rows, fit.rows
    tick(f"period {k}: exit model")
    return per


# ------------------------------------------------------------------------------- engine components


class EntryGate:
    """The strategy of every rule's run: the period's ensemble decides as if flat, and an onset of
    its side is an entry when no earlier trade of the symbol can still be open (module doc)."""

    name = "exit_eval_entries"

    def __init__(self, periods: list[Period], cfg: Config, max_hold_bars: int, end_ms: int) -> None:
        from kaizen.engine.strategies.ensemble import EnsembleStrategy, load_signal_model
        from kaizen.market.data import interval_ms

        self.starts = [p.start for p in periods]
        self.models = [load_signal_model(p.signal_dir) for p in periods]
        self.iv = interval_ms(cfg.models.interval)
        self.inner = EnsembleStrategy(self.models[0], cfg.models.horizon_bars, name="ensemble")
        self.version = self.inner.version
        self._k = 0
        self.gap_ms = max_hold_bars * self.iv
        self.end_ms = end_ms
        self.hold_ms = (max_hold_bars + 1) * self.iv
        self._flat = PositionState()
        self._prev: dict[str, int] = {}
        self._last: dict[str, int] = {}
        self.entries: list[tuple[str, int, int]] = []  # (symbol, decision close ms, side)

    def decide(self, ctx: BarContext) -> Target:
        t = ctx.ts_ns // MS_NS
        k = max(bisect.bisect_right(self.starts, t) - 1, 0)
        if k != self._k:
            self._k = k
            self.inner.set_model(self.models[k])
            self.version = self.inner.version
        held, ctx.position = ctx.position, self._flat
        try:
            tgt = self.inner.decide(ctx)
        finally:
            ctx.position = held
        want = 0 if tgt.exposure == 0 else (1 if tgt.exposure > 0 else -1)
        s = ctx.symbol
        onset = want != 0 and want != self._prev.get(s, 0)
        self._prev[s] = want
        if onset and t - self._last.get(s, -(2**62)) > self.gap_ms and t + self.hold_ms <= self.end_ms:
            self._last[s] = t
            self.entries.append((s, t, want))
            return tgt if tgt.exposure == want else msgspec.structs.replace(tgt, exposure=float(want))
        why = "entry_gap" if onset else tgt.reason
        return Target(
            exposure=0.0, reason=why, value=tgt.value, edge=tgt.edge, model=tgt.model, role=tgt.role
        )


class PeriodExit:
    """An exit rule per period (the learned model of the period in force at the decision time; the
    same baseline object for every period)."""

    def __init__(self, name: str, starts: list[int], rules: list[Any]) -> None:
        self.name = name
        self.starts = starts
        self.rules = rules

    def on_bar(self, ctx: BarContext) -> ExitDecision:
        k = max(bisect.bisect_right(self.starts, ctx.ts_ns // MS_NS) - 1, 0)
        return self.rules[k].on_bar(ctx)


# ---------------------------------------------------------------------------------- venue trades


@dataclass
class VenueTrades:
    """Round trips (flat -> flat) of one run, from the venue's trade and funding logs."""

    symbol: list[str]
    side: np.ndarray
    t_in: np.ndarray  # entry fill time ms
    t_out: np.ndarray  # exit fill time ms
    price_in: np.ndarray  # average entry fill price (spread and slippage included)
    notional: np.ndarray  # entry notional (USDT)
    net: np.ndarray  # net return per unit of entry notional (fees, spread, slippage, funding)
    fees: np.ndarray
    funding: np.ndarray  # received (+) / paid (-), USDT
    open_at_end: int = 0

    def __len__(self) -> int:
        return len(self.side)


def venue_trades(trade_log: list[dict], funding_log: list[dict]) -> VenueTrades:
    cols: dict[str, list] = {c: [] for c in ("sym", "side", "tin", "tout", "px", "notional", "pnl", "fees")}
    open_at_end = 0
    for s in sorted({t["symbol"] for t in trade_log}):
        pos = 0.0
        cur: dict[str, Any] | None = None
        for t in (t for t in trade_log if t["symbol"] == s):
            q = t["qty"] if t["side"] == "BUY" else -t["qty"]
            if cur is None:
                cur = {"side": 1 if q > 0 else -1, "tin": t["time"], "qty": 0.0, "quote": 0.0, "pnl": 0.0,
                       "fees": 0.0}  # fmt: skip
            if q * cur["side"] > 0:  # adds to the trade
                cur["qty"] += abs(q)
                cur["quote"] += abs(q) * t["price"]
            cur["pnl"] += t["realizedPnl"]
            cur["fees"] += t["commission"]
            pos += q
            if abs(pos) < 1e-12:
                cols["sym"].append(s)
                cols["side"].append(cur["side"])
                cols["tin"].append(cur["tin"])
                cols["tout"].append(t["time"])
                cols["px"].append(cur["quote"] / cur["qty"])
                cols["notional"].append(cur["quote"])
                cols["pnl"].append(cur["pnl"])
                cols["fees"].append(cur["fees"])
                cur, pos = None, 0.0
        open_at_end += cur is not None
    n = len(cols["sym"])
    fund = np.zeros(n)
    sym = np.array(cols["sym"], dtype=object)
    tin = np.array(cols["tin"], np.int64)
    tout = np.array(cols["tout"], np.int64)
    for f in funding_log:  # paid only while a position is open: the trade holding it then
        hit = np.flatnonzero((sym == f["symbol"]) & (tin < f["time"]) & (f["time"] <= tout))
        if len(hit):
            fund[hit[0]] += f["payment"]
    notional = np.array(cols["notional"], np.float64)
    pnl = np.array(cols["pnl"], np.float64) - np.array(cols["fees"], np.float64) + fund
    order = np.lexsort((sym.astype(str) if n else np.zeros(0, str), tin))
    return VenueTrades(
        [str(x) for x in sym[order]], np.array(cols["side"], np.int64)[order], tin[order], tout[order],
        np.array(cols["px"], np.float64)[order], notional[order],
        (pnl / np.where(notional > 0, notional, np.nan))[order], np.array(cols["fees"], np.float64)[order],
        fund[order], open_at_end,
    )  # fmt: skip


# ------------------------------------------------------------------------------------------ runs


@dataclass
class RuleRun:
    name: str
    trades: VenueTrades
    entries: list[tuple[str, int, int]]
    summary: dict[str, Any]
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0


def eval_config(cfg: Config) -> Config:
    """The runs' config: risk limits that never stop an evaluation half-way (a kill switch tripped
    in one rule's run would change its entries), everything else as given."""
    r = cfg.risk
    risk = msgspec.structs.replace(
        r, max_drawdown=1.0, daily_loss_limit=max(r.daily_loss_limit, 1e9), max_orders_per_minute=max(r.max_orders_per_minute, 1000),
    )  # fmt: skip
    return msgspec.structs.replace(
        cfg, risk=risk, backtest=msgspec.structs.replace(cfg.backtest, flatten_at_end=True)
    )


def run_rule(
    name: str,
    exit_rule: Any,
    periods: list[Period],
    ds: Dataset,
    cfg: Config,
    symbols: list[str],
    start_ms: int,
    end_ms: int,
    out: Path,
    data_dir: str = "",
) -> RuleRun:
    """One backtest through the engine with `exit_rule` as its exit layer."""
    from kaizen.backtest.driver import Job, run_job

    job = Job(name=name, kind="ensemble", cfg=cfg, data_dir=data_dir, symbols=symbols, start_ms=start_ms,
              end_ms=end_ms, out_dir=str(out))  # fmt: skip
    gates: list[EntryGate] = []

    def factory(view: DataView) -> EntryGate:
        g = EntryGate(periods, cfg, cfg.exit.max_hold_bars, end_ms)
        gates.append(g)
        return g

    res = run_job(job, ds=ds, strategy_factory=factory, exit_rule=exit_rule)
    vt = venue_trades(res.trade_log, res.funding_log)
    return RuleRun(name, vt, gates[0].entries, res.summary, res.errors, res.seconds)


def oracle_values(
    markets: list[Market], vt: VenueTrades, costs: Costs, max_hold: int
) -> tuple[np.ndarray, Trades, np.ndarray]:
    """V (n, H) of the engine's trades (entry fills from the venue) from the prices after them,
    with the row of each engine trade it covers (trades without max_hold + 1 bars after: dropped)."""
    idx = {m.symbol: i for i, m in enumerate(markets)}
    cols: dict[str, list] = {c: [] for c in ("sym", "e", "side", "px", "t", "row")}
    for n in range(len(vt)):
        si = idx[vt.symbol[n]]
        m = markets[si]
        iv = m.interval_ms
        e = int(np.searchsorted(m.open_time, vt.t_in[n] - iv))
        if e >= len(m) or m.open_time[e] != vt.t_in[n] - iv or e + max_hold + 1 >= len(m):
            continue
        cols["sym"].append(si)
        cols["e"].append(e)
        cols["side"].append(int(vt.side[n]))
        cols["px"].append(float(vt.price_in[n]))
        cols["t"].append(int(vt.t_in[n]))
        cols["row"].append(n)
    tr = Trades(
        np.array(cols["sym"], np.int32), np.array(cols["e"], np.int64), np.array(cols["side"], np.int64),
        np.array(cols["px"], np.float64), np.full(len(cols["e"]), np.nan), np.array(cols["t"], np.int64),
        max_hold,
    )  # fmt: skip
    V, _ = value_matrix(markets, tr, costs)
    return V, tr, np.array(cols["row"], np.int64)


# --------------------------------------------------------------------------------------- evaluate


@dataclass
class EngineEval:
    table: dict[str, Any]
    detail: dict[str, Any]
    runs: dict[str, RuleRun]
    periods: list[Period]


def evaluate(
    ds: Dataset,
    cfg: Config,
    costs: Costs,
    params: exit_model.ExitParams,
    symbols: list[str],
    start_ms: int,
    end_ms: int,
    out: Path,
    backend: str = "auto",
    rules: list[str] | None = None,
    progress: Callable[[str], None] | None = None,
    data_dir: str = "",
) -> EngineEval:
    from kaizen.models.exit_eval import daily_pnl, rule_metrics
    from kaizen.models.features import batch_features

    tick = progress or (lambda note: None)
    cfg = eval_config(cfg)
    iv = params.interval_ms
    periods = []
    for k, s, e in periods_of(start_ms, end_ms, params.folds, iv):
        p = train_period(k, s, e, ds, cfg, costs, params, out, tick)
        if p.booster is None:  # too little history for a model of its own: the latest earlier one serves
            prev = next((q for q in reversed(periods) if q.booster is not None), None)
            if prev is None:
                raise DataError(
                    f"period {k}: {p.note} to train the exit model; start later or use more history"
                )
            p.selection, p.booster, p.model_from = prev.selection, prev.booster, prev.model_from
            p.train_rows, p.final_rows, p.exit_until, p.ex = (
                prev.train_rows,
                prev.final_rows,
                prev.exit_until,
                prev.ex,
            )
        else:
            p.model_from = k
        periods.append(p)
    starts = [p.start for p in periods]
    h, H = params.horizon_bars, params.max_hold_bars
    names = rules if rules is not None else baseline_names(h)
    runs: dict[str, RuleRun] = {}
    for name in [*names, LEARNED]:
        if name == LEARNED:
            per = [exit_model.LearnedExit(p.exit_model(params, costs, backend)) for p in periods]
        else:
            r = make_rule(name, horizon_bars=h, max_hold_bars=H, interval_ms=iv)
            per = [r] * len(periods)
        runs[name] = run_rule(name, PeriodExit(name, starts, per), periods, ds, cfg, symbols, start_ms, end_ms,
                              out / "runs", data_dir)  # fmt: skip
        tick(f"rule {name}")
    # the same entries for every rule: the gate's list and the venue's entry fills
    ref = next(iter(runs.values()))
    ref_in = list(zip(ref.trades.symbol, ref.trades.t_in.tolist(), ref.trades.side.tolist(), strict=True))
    same_entries = all(r.entries == ref.entries for r in runs.values())
    same_fills = all(
        list(zip(r.trades.symbol, r.trades.t_in.tolist(), r.trades.side.tolist(), strict=True)) == ref_in
        for r in runs.values()
    )
    # hindsight oracle on those entries (and the engine's accounting against the same matrix)
    bf = batch_features(ds, leader=cfg.models.leader)
    markets = []
    for i, s in enumerate(bf.symbols):
        d = ds.symbols[s]
        k = d.klines
        rows = np.flatnonzero(bf.sid == i)
        markets.append(
            Market(s, iv, k.open_time, k.open, k.high, k.low, k.close, bf.X[rows], bf.funding[rows],
                   np.full(len(rows), np.nan), d.funding_time, d.funding_rate)
        )  # fmt: skip
    V, otr, orow = oracle_values(markets, ref.trades, costs, H)
    table_rules: dict[str, dict[str, float]] = {}
    daily: dict[str, np.ndarray] = {}
    parity: dict[str, float] = {}
    for name, r in runs.items():
        vt = r.trades
        hold = (vt.t_out - vt.t_in) / iv
        daily[name] = daily_pnl(vt.net, vt.t_out, start_ms, end_ms)
        table_rules[name] = rule_metrics(vt.net, hold, daily[name])
        if len(orow) and len(vt) == len(ref.trades):
            j = np.clip(np.rint(hold[orow]).astype(np.int64), 1, H)
            parity[name] = float(np.median(np.abs(vt.net[orow] - V[np.arange(len(orow)), j - 1])) * 1e4)
    if len(orow):
        best = np.argmax(V, axis=1)
        onet = V[np.arange(len(orow)), best]
        t_out = otr.t_entry + (best + 1) * iv
        daily[ORACLE] = daily_pnl(onet, t_out, start_ms, end_ms)
        table_rules[ORACLE] = rule_metrics(onet, (best + 1).astype(np.float64), daily[ORACLE])
    else:
        table_rules[ORACLE] = rule_metrics(np.zeros(0), np.zeros(0), np.zeros(1))
    by_period: dict[str, list[float]] = {}
    for name, r in runs.items():  # net bp per trade of each rule in each period (entry time)
        k = np.searchsorted(np.array(starts), r.trades.t_in, "right") - 1
        by_period[name] = [float(r.trades.net[k == i].mean() * 1e4) if (k == i).any() else 0.0
                           for i in range(len(periods))]  # fmt: skip
    by_period["trades"] = [int((np.searchsorted(np.array(starts), ref.trades.t_in, "right") - 1 == i).sum())
                           for i in range(len(periods))]  # fmt: skip
    table, head = exit_table(table_rules, daily, list(runs), params.n_candidates)
    detail = {
        "path": "engine",
        "trades": int(len(ref.trades)),
        "entries": len(ref.entries),
        "same_entries": bool(same_entries),
        "same_entry_fills": bool(same_fills),
        "start": _date(start_ms),
        "end": _date(end_ms),
        "symbols": symbols,
        "max_hold_bars": H,
        "horizon_bars": h,
        "trials": head["trials"],
        "learned_vs_best_baseline_bps": head["learned_vs_best_baseline_bps"],
        "oracle_share": head["oracle_share"],
        "oracle_trades": int(len(orow)),
        "net_per_trade_bps_by_period": by_period,
        # the entries every rule took: (symbol, entry fill time ms, side), from the venue's fills
        "entry_fills": [list(x) for x in ref_in],
        "accounting_parity_median_abs_bps": parity,
        "periods": [
            {"k": p.k, "start": _date(p.start), "end": _date(p.end), "signal_model": p.signal_info.get("version"),
             "signal_data_end": _date(p.signal_data_end), "exit_rows_known_by": _date(p.exit_until),
             "history_trades": p.trades, "exit_rows": int(len(p.train_rows)), "kind": p.selection.kind,
             "margin": p.selection.margin, "inner_scores_bp": p.selection.scores, "note": p.selection.note,
             "exit_model_from_period": p.model_from, "why_not_own": p.note}
            for p in periods
        ],
        "runs": {n: {"seconds": r.seconds, "engine_errors": len(r.errors), "open_at_end": r.trades.open_at_end,
                     "kill_switch": r.summary.get("kill_switch", ""), "net_pnl": r.summary.get("net_pnl"),
                     "fees": r.summary.get("fees"), "funding": r.summary.get("funding")}
                 for n, r in runs.items()},
        "costs": {"taker_fee": costs.taker_fee, "half_spread": costs.half_spread, "slippage": costs.slippage},
    }  # fmt: skip
    return EngineEval(table, detail, runs, periods)


def dump(path: Path, obj: Any) -> None:
    from kaizen.models.exit_cli import _clean

    path.write_text(json.dumps(_clean(obj), indent=2, allow_nan=False))
