"""`kaizen demo`: train a model on the simulator's own market, paper-trade it with the improvement
loop running, and report its net result against buy-and-hold over the same minutes.

1. The market: `MarketModel.showcase()` (kaizen/venue/sim/model.py), the synth structure compressed
   into hours, with a planted momentum signal that turns to reversion at `--break-hour` sim hours.
2. History: `kaizen.market.synth.generate` runs the same model (same kernel, the simulator's step of
   0.1 x speed sim seconds as its sub-step) on another seed (seed + 1000) for `--history-days` of
   5-minute bars ending an hour before the simulator's clock starts (a gap: features restart).
3. The initial model: the pooled ensemble (kaizen.backtest.training.train_signal_model, small
   XGBoost sizes) trained on that history, registered and deployed as the loop's champion.
4. Trading: `kaizen sim --market showcase` as a child process, the same `Engine` as `kaizen run` on
   uvloop, its strategy the improvement loop (kaizen.loop.loop.ImprovementLoop, non-blocking
   training in a worker process). The engine's `on_bar_closed` hook feeds each closed bar into a
   `BarStore` (history + live bars) and calls the loop's `on_clock` at each new bar close: retrain,
   shadow, gate, drift monitor and rollback run on the venue's clock exactly as in a backtest.
5. The report: the engine's net PnL (fills, fees, funding from the venue) against buy-and-hold of
   the same symbols over the same bars, and every loop event with its sim and wall time. Every loop
   event is also a lineage record (Retrain, ShadowComparison, ModelSwap, DriftAlarm, Rollback).
"""

from __future__ import annotations

import asyncio
import functools
import math
import os
import secrets
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from kaizen.config import Config
from kaizen.engine.strategy import BarContext, Target
from kaizen.lineage import records as R

SYMBOLS = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"]
BAR_S = 300  # 5-minute bars: at 600x a bar is 0.5 s of wall time, 5 simulator steps
HORIZON_BARS = 12  # the label horizon: 1 h of sim time
# Features whose windows are <= 24 bars: the live engine starts cold, so a model on these is
# fully informed after ~24 bars (12 s of wall time) instead of 72.
FEATURES = (
    "mom_ret_1", "mom_ret_4", "mom_ret_12", "mom_ret_24", "mom_sharpe_24", "vol_rv_24",
    "vol_parkinson_24", "vol_garman_klass_24", "mr_z_24", "mr_autocorr_24", "vlm_ratio_24", "vlm_z_24",
    "vlm_clv_signed", "vlm_trend_6_24", "fund_rate", "basis_premium", "basis_premium_mean_24",
    "x_leader_ret_1", "x_leader_ret_4", "x_spread_24", "x_rel_mom_24", "vol_hl_1", "vol_ends_1",
)  # fmt: skip
WARMUP_BARS = 26  # the initial model is deployed after this many bar closes (features warm)
HOUR_MS = 3_600_000


@dataclass
class DemoParams:
    duration_s: float = 135.0  # wall seconds of trading
    speed: float = 600.0
    seed: int = 7
    history_days: float = 10.0
    break_hour: float = 10.0  # sim hours after the start (<= 0: no break)
    retrain_every: str = "3h"
    shadow_hours: float = 2.0
    out: Path = field(default_factory=lambda: Path("runs") / time.strftime("demo-%Y%m%d-%H%M%S"))
    progress: bool = True


def demo_config(p: DemoParams) -> Config:
    from kaizen import config

    cfg = config.Config(symbols=list(SYMBOLS))
    rep = msgspec.structs.replace
    return rep(
        cfg,
        mode="paper",
        sim=rep(cfg.sim, seed=p.seed, speed=p.speed),
        lineage=rep(cfg.lineage, dir=str(p.out / "lineage")),
        engine=rep(cfg.engine, duration_s=p.duration_s),
        strategy=rep(cfg.strategy, bar_seconds=BAR_S),
        models=rep(cfg.models, interval="5m", horizon_bars=HORIZON_BARS, embargo_bars=HORIZON_BARS),
        backtest=rep(
            cfg.backtest,
            train_trees=60,
            train_meta_trees=30,
            train_folds=3,
            train_window_days=p.history_days + 2.0,  # the whole history plus everything live
        ),
        loop=rep(
            cfg.loop,
            retrain_every=p.retrain_every,
            shadow_hours=p.shadow_hours,
            gate_min_decisions=60,  # 2 sim hours x 4 symbols = 96 paired decisions
            drift_warmup=200,  # 50 bars x 4 symbols, if a model had too few out-of-fold rows
            drift_arl0=2_000.0,
            drift_channels=["calibration", "pnl"],  # the hit rate shows the demo's sign flip at once
            retrain_from_change=False,  # change_min_days is >= 1 day; the demo lasts one: keep retraining
            executor_workers=1,
        ),
    )


class DemoStrategy:
    """The improvement loop (LoopStrategy), with the initial model deployed as its champion once the
    live features are warm: until then the champion is flat, so neither the traded book nor the
    drift monitor sees predictions made on cold features."""

    name = "kaizen"

    def __init__(self, inner: Any, warmup_bars: int, initial: str) -> None:
        self.inner = inner
        self.version = inner.version
        self.loop = inner.loop
        self.warmup = warmup_bars
        self.initial = initial
        self.closes = 0

    def on_clock(self, view: Any, t_ms: int) -> None:
        self.closes += 1
        if self.initial and self.closes > self.warmup:
            v, self.initial = self.initial, ""
            self.loop._promote(v, f"kaizen demo: the initial model deployed after {self.warmup} bars of feature warm-up",
                               self.loop.retrain_rec[v], t_ms)  # fmt: skip
        self.inner.on_clock(view, t_ms)

    def decide(self, ctx: BarContext) -> Target:
        return self.inner.decide(ctx)


_CHANNEL = {"calibration": "hit-rate", "pnl": "PnL (vol units)"}  # DriftAlarm.channel, as the console names it


class EventTap:
    """The lineage writer, with the loop's records named on the console as they are written."""

    KINDS = (R.Retrain, R.ShadowComparison, R.ModelSwap, R.DriftAlarm, R.Rollback)

    def __init__(self, writer: Any, t0_ms: int) -> None:
        self.writer = writer
        self.t0_ms = t0_ms
        self.wall0 = time.monotonic()
        self.events: list[dict[str, Any]] = []
        self.reasons: Counter[str] = Counter()
        self.phase = "setup"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.writer, name)

    def append(self, rec: Any) -> None:
        self.writer.append(rec)
        if isinstance(rec, R.Decision):
            self.reasons[rec.reason.split(":")[0]] += 1
        elif isinstance(rec, self.KINDS):
            self._event(rec)

    def _event(self, rec: Any) -> None:
        sim_h = (rec.ts // 1_000_000 - self.t0_ms) / HOUR_MS
        wall = time.monotonic() - self.wall0
        if isinstance(rec, R.Retrain):
            kind = "retrain" if self.phase == "trading" else "initial training"
            what = (f"model {rec.model} trained on {_iso(rec.data_start // 1_000_000)} .. "
                    f"{_iso(rec.data_end // 1_000_000)} (oof daily t {rec.metrics.get('oof_daily_tstat', math.nan):.1f})")  # fmt: skip
        elif isinstance(rec, R.ShadowComparison):
            kind = "shadow comparison"
            what = (f"{rec.shadow} vs champion {rec.champion}: n {rec.n}, {rec.metric} {rec.shadow_value:+.5f} vs "
                    f"{rec.champion_value:+.5f}, p {rec.p_value:.3f}, DSR {rec.dsr:.2f} -> {rec.decision}")  # fmt: skip
        elif isinstance(rec, R.ModelSwap):
            kind = "deployment" if rec.reason.startswith("kaizen demo:") else "promotion"
            what = f"{rec.old} -> {rec.new} ({rec.reason[:90]})"
        elif isinstance(rec, R.DriftAlarm):
            kind = "drift alarm"
            what = (f"champion {rec.model}: {_CHANNEL.get(rec.channel, rec.channel)} CUSUM {rec.direction} {rec.statistic:.1f} > "
                    f"{rec.threshold:.1f} after {rec.n} decisions")  # fmt: skip
        else:
            kind = "rollback"
            what = f"{rec.from_version} -> {rec.to_version}"
        ev = {"kind": kind, "sim_h": sim_h, "wall_s": wall, "what": what, "id": rec.id}
        self.events.append(ev)
        print(f"  [sim {_hm(sim_h)} | wall {wall:5.1f}s] {kind.upper()}: {what}", flush=True)


def _iso(ms: int) -> str:
    import datetime as dt

    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%m-%d %H:%M")


def _hm(h: float) -> str:
    sign = "-" if h < 0 else "+"
    m = int(round(abs(h) * 60))
    return f"{sign}{m // 60:02d}:{m % 60:02d}"


class BuyAndHold:
    """Equal weight across the symbols, bought at the first live bar's close and sold at the last,
    1x notional (capital / symbols each), a taker's fee + half spread + slippage on both sides, and
    every funding settlement in between paid on the position (longs pay a positive rate)."""

    def __init__(self, symbols: list[str]) -> None:
        self.first: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.rates: dict[str, list[tuple[int, float]]] = {s: [] for s in symbols}

    def on_bar(self, symbol: str, close: float) -> None:
        self.first.setdefault(symbol, close)
        self.last[symbol] = close

    def on_funding(self, symbol: str, t_ms: int, rate: float) -> None:
        if symbol in self.first:  # settled while held
            self.rates[symbol].append((t_ms, rate))

    def result(self, capital: float, per_side: float) -> dict[str, float]:
        syms = [s for s in self.first if self.first[s] > 0]
        if not syms:
            return {"net_pnl": 0.0, "fees": 0.0, "funding": 0.0, "trades": 0.0, "gross_pnl": 0.0}
        budget = capital / len(syms)
        gross = fees = funding = 0.0
        for s in syms:
            qty = budget / self.first[s]
            gross += qty * (self.last[s] - self.first[s])
            fees += per_side * budget + per_side * qty * self.last[s]
            # funding on the notional at settlement; the bar close stands in for the mark
            funding += sum(r for _, r in self.rates[s]) * budget
        return {"net_pnl": gross - fees - funding, "gross_pnl": gross, "fees": fees, "funding": funding,
                "trades": float(2 * len(syms))}  # fmt: skip


def run_demo(p: DemoParams) -> int:
    from kaizen.backtest.driver import costs_of
    from kaizen.backtest.training import train_signal_model
    from kaizen.loop.loop import ImprovementLoop, LoopStrategy
    from kaizen.market.barstore import BarStore
    from kaizen.market.synth import SynthParams, generate
    from kaizen.venue.sim.model import MarketModel
    from kaizen.venue.sim.simulator import START_EPOCH_MS

    wall0 = time.monotonic()
    cfg = demo_config(p)
    costs = costs_of(cfg)
    break_h = p.break_hour if p.break_hour > 0 else None
    model = MarketModel.showcase(break_h)
    p.out.mkdir(parents=True, exist_ok=True)
    sim_hours = p.duration_s * p.speed / 3600.0
    sg = model.signal
    print(f"kaizen demo: {', '.join(SYMBOLS)} on the embedded simulator, market 'showcase' (seed {p.seed}), "
          f"{p.speed:g}x, {BAR_S // 60}-minute bars, {p.duration_s:g} s of trading = {sim_hours:.1f} sim hours")  # fmt: skip
    print(f"  market: regimes flip every ~{model.regime.mean_dwell_h():.1f} sim h; planted signal "
          f"{sg.strength:g} sigma/h x clip(recent return z, {sg.clip:g}), tau {sg.tau_h:g} h: momentum "
          f"before the break at sim hour {p.break_hour:g}, reversion after it"
          if break_h else "  market: no break")  # fmt: skip
    # 1. history: the same model on another seed, ending an hour before the simulator's clock starts
    iv = BAR_S * 1000
    n_bars = int(p.history_days * 86_400_000 // iv)
    hist_end = START_EPOCH_MS - HOUR_MS
    hist_start = hist_end - n_bars * iv
    t = time.monotonic()
    history, _ = generate(SynthParams(
        seed=p.seed + 1000, days=n_bars * iv / 86_400_000, interval="5m", symbols=tuple(SYMBOLS),
        start_ms=hist_start, substep_s=0.1 * p.speed, model=msgspec.structs.replace(model, break_h=None),
    ))  # fmt: skip
    print(f"  history: {p.history_days:g} days of 5m bars of the same market model, seed {p.seed + 1000} "
          f"(the simulator runs seed {p.seed}), generated in {time.monotonic() - t:.1f} s")  # fmt: skip
    # 2. the initial model
    train = functools.partial(train_signal_model, features=list(FEATURES))
    t = time.monotonic()
    mdir, info = train(history, cfg, costs, p.out / "loop" / "models")
    ev = info["edge"]
    print(f"  trained the ensemble in {time.monotonic() - t:.1f} s: {info['data']['rows']} rows, out-of-fold "
          f"net return {ev.get('oof_net_return', 0):+.1%} over {ev.get('oof_days', 0):.0f} days "
          f"({ev.get('oof_trades', 0):.0f} trades, daily t {ev.get('oof_daily_tstat', 0):.1f})")  # fmt: skip
    from kaizen.lineage.writer import LineageWriter

    writer = LineageWriter(Path(cfg.lineage.dir), cfg.lineage)
    tap = EventTap(writer, START_EPOCH_MS)
    engine_box: list[Any] = []

    def now_ns() -> int:
        return engine_box[0].now_ns() if engine_box else START_EPOCH_MS * 1_000_000

    loop = ImprovementLoop(cfg, p.out / "loop", tap, costs, iv, now_ns=now_ns, train=train, blocking=False)
    try:
        loop._registered(mdir, info, START_EPOCH_MS)  # registered (a Retrain record), deployed when warm
        v0 = loop.candidate.version
        loop.candidate = None
        tap.phase = "trading"
        strategy = DemoStrategy(LoopStrategy(loop, "kaizen"), WARMUP_BARS, v0)
        store = BarStore(SYMBOLS, iv, history=history)
        result = _trade(cfg, p, model, strategy, store, tap, engine_box)
    finally:
        loop.close()
        writer.close()
    _report(p, result, tap, loop, costs, time.monotonic() - wall0)
    return 0


@dataclass
class TradeResult:
    summary: dict[str, float]
    bh: dict[str, float]
    errors: list[str]
    sim_hours: float
    bars: int


def _trade(cfg, p: DemoParams, model, strategy, store, tap: EventTap, engine_box: list) -> TradeResult:
    from kaizen.engine.runner import SimProcess

    key, secret = secrets.token_hex(16), secrets.token_hex(32)
    os.environ[cfg.venue.api_key_env] = key
    os.environ[cfg.venue.api_secret_env] = secret
    extra = ["--market", "showcase"]
    if model.break_h is not None:
        extra += ["--break-day", repr(model.break_h / 24.0)]
    sim = SimProcess(cfg.sim.seed, cfg.sim.speed, key, secret, cfg.sim.host, cfg.sim.port,
                     log_path=p.out / "sim.log", balance=cfg.sim.starting_balance, extra_args=tuple(extra))  # fmt: skip
    try:
        import uvloop

        return uvloop.run(_trade_async(cfg, p, strategy, store, tap, engine_box, sim.rest_url, sim.ws_url))
    finally:
        sim.stop()


async def _trade_async(cfg, p, strategy, store, tap: EventTap, engine_box, rest_url, ws_url) -> TradeResult:
    from kaizen.engine.engine import Engine
    from kaizen.engine.runner import config_hash
    from kaizen.loop.live import LiveLoop
    from kaizen.venue import make_venue

    venue = make_venue(cfg, rest_url=rest_url, ws_url=ws_url)
    bh = BuyAndHold(SYMBOLS)
    # the same hook as `kaizen run`'s loop: history, funding settlements and the loop's clock
    live = LiveLoop(strategy, store, BAR_S * 1000, on_funding=bh.on_funding)

    def on_bar_closed(bar, mark: float, funding_rate: float) -> None:
        live.on_bar_closed(bar, mark, funding_rate)
        bh.on_bar(bar.symbol, bar.close)

    engine = Engine(cfg, venue, tap, config_hash(cfg), state_path=p.out / "risk_halt.json",
                    strategy=strategy, on_bar_closed=on_bar_closed)  # fmt: skip
    live.engine = engine
    engine_box.append(engine)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    reason = "duration"
    from kaizen.venue.sim.simulator import START_EPOCH_MS

    try:
        await engine.start()
        t0 = time.monotonic()
        next_status = 15.0
        print(f"trading for {p.duration_s:g} s (loop events are named as they happen):", flush=True)
        while not stop.is_set():
            elapsed = time.monotonic() - t0
            if elapsed >= p.duration_s:
                break
            if engine.risk is not None and engine.risk.halted:
                reason = "kill_switch"
                break
            if p.progress and elapsed >= next_status:
                next_status += 15.0
                s = engine.router.summary()
                sim_h = (engine.last_event_ns // 1_000_000 - START_EPOCH_MS) / HOUR_MS
                print(f"  [sim {_hm(sim_h)} | wall {time.monotonic() - tap.wall0:5.1f}s] bars {engine.bars} "
                      f"trades {int(s.get('trades', 0))} net pnl {s.get('net_pnl', 0.0):+.2f} USDT "
                      f"champion {strategy.loop.champion.version}", flush=True)  # fmt: skip
            try:
                await asyncio.wait_for(stop.wait(), 0.25)
            except TimeoutError:
                pass
        if stop.is_set():
            reason = "signal"
        summary = await engine.stop(reason)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await venue.close()
    capital = summary.get("starting_equity", cfg.sim.starting_balance) or cfg.sim.starting_balance
    res = bh.result(capital, cfg.fees.taker + (cfg.backtest.spread_bps / 2 + cfg.backtest.slippage_bps) / 1e4)
    (p.out / "summary.json").write_bytes(msgspec.json.encode({"kaizen": summary, "buy_and_hold": res}))
    sim_h = (live.last_close - START_EPOCH_MS) / HOUR_MS
    return TradeResult(summary, res, list(engine.errors), sim_h, engine.bars)


def _report(p: DemoParams, r: TradeResult, tap: EventTap, loop, costs, wall: float) -> None:
    s, b = r.summary, r.bh
    cap = s.get("starting_equity", 0.0) or 10_000.0
    print()
    print(
        f"kaizen demo: closing report ({r.sim_hours:.1f} sim hours, {r.bars} bars, the same bars for both rows)"
    )
    hdr = f"{'':34}{'net PnL USDT':>13}{'net return':>11}{'fees':>9}{'funding':>9}{'trades':>8}"
    print(hdr)
    print("-" * len(hdr))
    rows = [
        ("kaizen (trained ensemble + loop)", s.get("net_pnl", 0.0), s.get("fees", 0.0), s.get("funding", 0.0),
         s.get("trades", 0.0)),
        ("buy-and-hold (equal weight, 1x)", b["net_pnl"], b["fees"], b["funding"], b["trades"]),
    ]  # fmt: skip
    for name, pnl, fees, fund, trades in rows:
        print(f"{name:34}{pnl:>+13.2f}{pnl / cap:>+11.3%}{fees:>9.2f}{fund:>+9.2f}{trades:>8.0f}")
    print(f"net = after fees, spread and funding (kaizen: the venue's fills, fees and funding; buy-and-hold:"
          f" a taker round trip of {2 * (costs.taker_fee + costs.half_spread + costs.slippage) * 1e4:.1f} bp"
          f" and the funding settled while held); capital {cap:,.0f} USDT")  # fmt: skip
    if s.get("trades", 0.0) == 0:
        top = ", ".join(f"{k} {n}" for k, n in tap.reasons.most_common(4))
        print(f"the model did not trade: its expected edge never beat the round trip net of funding "
              f"(decisions by reason: {top})")  # fmt: skip
    else:
        top = ", ".join(f"{k} {n}" for k, n in tap.reasons.most_common(4))
        print(f"decisions by reason: {top}")
    print()
    print("improvement loop events (sim time since the simulator's start, wall time since the demo's start):")
    for ev in tap.events:
        print(f"  sim {_hm(ev['sim_h'])}  wall {ev['wall_s']:5.1f}s  {ev['kind']:<18} {ev['what']}")
    kinds = Counter(ev["kind"] for ev in tap.events)
    print("counts: " + ", ".join(f"{k} {kinds.get(k, 0)}" for k in (
        "retrain", "shadow comparison", "promotion", "drift alarm", "rollback")))  # fmt: skip
    if r.errors:
        print(f"engine errors (logged to lineage): {len(r.errors)}; first: {r.errors[0]}")
    print(f"lineage log: {p.out / 'lineage'}   (kaizen log trace follows each event to its cause)")
    print(f"wall time: {wall:.1f} s")
    (p.out / "events.json").write_bytes(msgspec.json.encode({"events": tap.events, "counts": dict(kinds)}))
