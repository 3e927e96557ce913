"""One strategy over history: the live `Engine`, driven through its own handlers on a replay clock.

There is no second decision path here. The driver only moves the clock and hands the engine what
the venue and the market would have sent at that time, in this order at each bar close T:

1. funding settlements with calc_time in (previous T, T]: paid on the position held then (in the
   in-process venue, at the mark), and their rates to the engine (`on_funding_settled`);
2. each symbol's bar closing at T: its mark (`on_mark`, or `on_price` where the data has no mark
   bar), resting limit orders against the bar's range, a liquidation check at its extremes;
3. the quotes for orders sent at T: the open of the bar that starts at T (+- half spread + slippage);
4. `Engine.on_bar` for each bar (leader first) -> decisions; `Engine.execute_targets` -> router ->
   venue (market orders fill at once at those quotes);
5. the router's equity check (the kill switch), and a point of the equity curve from the venue.

Every read of data goes through the DataView, whose clock is T: a strategy, the trainer and the
driver itself are refused anything after T. Ids and lineage timestamps come from the same clock,
so a run is reproducible record for record.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from kaizen.config import Config
from kaizen.engine.bars import Bar
from kaizen.engine.strategy import Costs
from kaizen.lineage import records as R
from kaizen.lineage.ids import new_id, use_clock
from kaizen.market.data import Dataset
from kaizen.market.view import DataView, view_dataset

MS_NS = 1_000_000
DAY_MS = 86_400_000


class Job(msgspec.Struct, kw_only=True):
    """Everything one strategy's run needs (picklable: it crosses into a worker process)."""

    name: str
    kind: str  # buy_and_hold | baseline_momentum | flat | ensemble
    cfg: Config
    data_dir: str
    symbols: list[str]
    start_ms: int
    end_ms: int  # exclusive: bars opening before end
    out_dir: str
    config_hash: str = ""
    retrain_every_ms: int = 0  # ensemble: retrain on this cadence (0: never)
    require_evidence: bool = False  # ensemble: trade only with out-of-fold evidence of an edge
    model_dir: str = ""  # ensemble: a model already trained at start (else trained here)


@dataclass
class Result:
    name: str
    equity_t: list[int] = field(default_factory=list)  # ms
    equity: list[float] = field(default_factory=list)
    gross: list[float] = field(default_factory=list)  # gross notional held after each close
    summary: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    seconds: float = 0.0
    bar_decisions: int = 0
    # the venue's own logs (Exchange.trade_log / funding_log): per-trade accounting (kaizen exit eval)
    trade_log: list[dict] = field(default_factory=list)
    funding_log: list[dict] = field(default_factory=list)


def costs_of(cfg: Config) -> Costs:
    b = cfg.backtest
    return Costs(
        taker_fee=cfg.fees.taker,
        maker_fee=cfg.fees.maker,
        half_spread=b.spread_bps / 2e4,
        slippage=b.slippage_bps / 1e4,
    )


def run_job(
    job: Job,
    progress: Callable[[int, int], None] | None = None,
    ds: Dataset | None = None,
    strategy_factory: Callable[[DataView], Any] | None = None,
    exit_rule: Any = None,
) -> Result:
    """Run one strategy to the end (blocking); `progress(done, total)` is called now and then.
    `ds` replaces loading `job.data_dir`; `strategy_factory(view)` replaces `job.kind` (tests,
    research: any object with the Strategy protocol); `exit_rule` replaces the one `[exit] rule`
    names (kaizen exit eval: a rule object per walk-forward period)."""
    import uvloop

    return uvloop.run(_drive(job, progress, ds, strategy_factory, exit_rule))


async def _drive(
    job: Job,
    progress: Callable[[int, int], None] | None,
    ds: Dataset | None,
    strategy_factory: Callable[[DataView], Any] | None = None,
    exit_rule: Any = None,
) -> Result:
    from kaizen.engine.engine import Engine
    from kaizen.lineage.writer import LineageWriter
    from kaizen.market.data import interval_ms, load_dataset
    from kaizen.venue.inproc import InProcessVenue

    t_wall = time.monotonic()
    cfg = job.cfg
    iv = interval_ms(cfg.models.interval)
    if ds is None:
        ds = load_dataset(job.data_dir, job.symbols, cfg.models.interval, end_ms=job.end_ms)
    view = DataView(ds)
    costs = costs_of(cfg)
    symbols = [s for s in job.symbols if s in ds.symbols]
    # the regime context (and the detector's features) are exponential averages and slow floors:
    # their warm-up is longer than the engine features' windows
    warm = max(cfg.backtest.warmup_bars, int(CONTEXT_WARMUP_DAYS * DAY_MS // iv))
    closes = _timeline(ds, symbols, iv, job.start_ms, job.end_ms, warm)
    first_decision = int(np.searchsorted(closes, job.start_ms + iv, "left"))
    if first_decision >= len(closes):
        from kaizen.errors import DataError

        raise DataError(f"no bar closes between --start and --end for {', '.join(symbols)}")
    view.advance(int(closes[0]) - iv)
    use_clock(lambda: view.now_ms)
    out = Path(job.out_dir)
    capital = cfg.backtest.capital
    venue = InProcessVenue(
        symbols,
        lambda: view.now_ms,
        starting_balance=capital,
        maker_fee=costs.maker_fee,
        taker_fee=costs.taker_fee,
        half_spread=costs.half_spread,
        slippage=costs.slippage,
    )
    writer = LineageWriter(out / "lineage" / job.name, cfg.lineage)
    if strategy_factory is not None:
        strategy, model_info = strategy_factory(view), None
    elif job.kind == "loop":
        from kaizen.loop.loop import ImprovementLoop, LoopStrategy

        loop = ImprovementLoop(
            cfg, out / "loop" / job.name, writer, costs, iv, now_ns=lambda: view.now_ms * MS_NS
        )
        strategy, model_info = LoopStrategy(loop, job.name), None
    else:
        strategy, model_info = _make_strategy(job, view, costs, out)
    on_clock = getattr(strategy, "on_clock", None)
    res = Result(job.name)
    engine_cfg = msgspec.structs.replace(cfg, symbols=symbols)
    engine = Engine(
        engine_cfg,
        venue,
        writer,
        job.config_hash,
        state_path=None,
        strategy=strategy,
        exit_rule=exit_rule,
        clock_ns=lambda: view.now_ms * MS_NS,
        interval_ms=iv,
        capital=capital,
        costs=costs,
        run_id=f"bt-{job.name}",
        mode="backtest",
    )
    try:
        await engine.start(live=False)
        venue.subscribe(engine.router)
        if model_info is not None:
            _log_model(engine, writer, "initial model", "", model_info)
        next_retrain = job.start_ms + job.retrain_every_ms if job.retrain_every_ms else None
        prev = int(closes[0]) - iv
        total = len(closes)
        for n, t in enumerate(closes):
            t = int(t)
            live = n >= first_decision
            if live and next_retrain is not None and t - iv >= next_retrain:
                # retrain at the close before this bar opened: data up to that time only
                await _retrain(job, view, engine, strategy, costs, out, writer)
                while next_retrain <= t - iv:
                    next_retrain += job.retrain_every_ms
            view.advance(t)
            if live and on_clock is not None:  # the loop: retrain, gate, promotions (replay clock)
                on_clock(view, t)
            _step(view, engine, venue, symbols, prev, t, iv, live)
            if live:
                await engine.execute_targets()
                await engine.router.check_equity()
                if n < total - 1 or not cfg.backtest.flatten_at_end:  # the last point: after the flatten
                    res.equity_t.append(t)
                    res.equity.append(venue.equity())
                    res.gross.append(venue.gross_notional())
            prev = t
            if progress is not None and (n % 512 == 0 or n == total - 1):
                progress(n + 1, total)
        # the end: close every position at the last close (+ costs), as a live stop would
        if cfg.backtest.flatten_at_end:
            for s in symbols:
                k = view.bars(s)
                venue.set_open(s, float(k.close[-1]) if len(k) else None)
        summary = await engine.stop("end_of_data")
        if cfg.backtest.flatten_at_end:
            res.equity_t.append(prev)
            res.equity.append(venue.equity())
            res.gross.append(venue.gross_notional())
    finally:
        loop = getattr(strategy, "loop", None)
        if loop is not None:
            loop.close()
        writer.close()
        use_clock(None)
    res.errors = list(engine.errors)
    res.bar_decisions = engine.decisions
    res.trade_log, res.funding_log = list(venue.ex.trade_log), list(venue.ex.funding_log)
    res.summary = _summary(job, venue, res, engine, summary)
    if loop is not None:
        res.summary.update({k: float(v) for k, v in loop.counts.items()})
        res.summary["events"] = list(loop.events)
    res.seconds = time.monotonic() - t_wall
    return res


CONTEXT_WARMUP_DAYS = 60.0


def _timeline(
    ds: Dataset, symbols: list[str], iv: int, start_ms: int, end_ms: int, warmup: int
) -> np.ndarray:
    """Bar close times from `warmup` bars before start to the last bar opening before end."""
    closes = np.unique(np.concatenate([ds.symbols[s].klines.open_time + iv for s in symbols]))
    closes = closes[closes <= end_ms]
    lo = max(0, int(np.searchsorted(closes, start_ms + iv, "left")) - warmup)
    return closes[lo:]


def _step(view: DataView, engine, venue, symbols: list[str], prev: int, t: int, iv: int, live: bool) -> None:
    t_ns = t * MS_NS
    events = view.funding_events(t, since_ms=prev)
    bars = {}
    for s in symbols:
        b = view.bar_at(s, t)
        if b is not None:
            bars[s] = b
    # funding strictly before T is paid on the position at the marks of the last close
    for ft, s, rate in events:
        if ft < t:
            if live:
                venue.settle_funding(s, ft, rate, venue.ex.markets[s].mark)
            engine.on_funding_settled(s, ft * MS_NS, rate)
    for s, (_o, h, lo, c, _v, mk) in bars.items():
        mark = mk if math.isfinite(mk) and mk > 0 else c
        venue.set_mark(s, mark)
        if math.isfinite(mk) and mk > 0:
            engine.on_mark(s, t_ns, mk)
        else:
            engine.on_price(s, t_ns, c)
        if live:
            venue.match_bar(s, h, lo)
    for ft, s, rate in events:
        if ft == t:
            if live:
                venue.settle_funding(s, ft, rate, venue.ex.markets[s].mark)
            engine.on_funding_settled(s, ft * MS_NS, rate)
    if live:
        venue.check_liquidations({s: (b[1], b[2]) for s, b in bars.items()})
        for s in symbols:
            nxt = view.open_at(s, t)
            venue.set_open(s, nxt)
            engine.on_status(
                s, "valid" if nxt is not None else "closed", "" if nxt is not None else "no bar opens"
            )
    for s in engine.symbols:  # leader first
        b = bars.get(s)
        if b is None:
            continue
        o, h, lo, c, v, _ = b
        engine.on_bar(Bar(s, (t - iv) * MS_NS, o, h, lo, c, v, 0.0, 0), decide=live)


def _make_strategy(job: Job, view: DataView, costs: Costs, out: Path):
    from kaizen.engine.strategies import BaselineMomentum, BuyAndHold, Flat

    if job.kind == "buy_and_hold":
        return BuyAndHold(), None
    if job.kind == "baseline_momentum":
        return BaselineMomentum(job.cfg.strategy), None
    if job.kind == "flat":
        return Flat(), None
    if job.kind == "bandit":
        return _make_bandit(job, view, costs, out), None
    if job.kind != "ensemble":
        raise ValueError(f"unknown strategy kind {job.kind!r}")
    from kaizen.engine.strategies.ensemble import EnsembleStrategy, load_signal_model

    if job.model_dir:
        import json

        mdir = Path(job.model_dir)
        info = json.loads((mdir / "training.json").read_text())
    else:  # trained on what is known at --start (its own view: the replay's clock is not there yet)
        mdir, info = _train_at(job, DataView(view_dataset(view), now_ms=job.start_ms), costs, out)
    model = load_signal_model(mdir)
    strat = EnsembleStrategy(
        model,
        job.cfg.models.horizon_bars,
        require_evidence=job.require_evidence,
        min_tstat=job.cfg.strategy.min_edge_tstat,
        name=job.name,
    )
    return strat, info


def _make_bandit(job: Job, view: DataView, costs: Costs, out: Path):
    """The regime-aware variant portfolio: every configured variant (or the default three) trained
    on its window before --start, and the regime detector when one is configured."""
    from kaizen.backtest.training import train_signal_model
    from kaizen.engine.strategies.bandit import RegimeBandit, VariantModel, default_variants
    from kaizen.engine.strategies.ensemble import load_signal_model
    from kaizen.market.data import interval_ms
    from kaizen.policy.roles import Variant

    cfg = job.cfg
    iv = interval_ms(cfg.models.interval)
    styles = cfg.policy.styles
    if styles:
        style = styles[0].name
        variants = [Variant.from_config(style, v) for v in styles[0].variants]
    else:
        style, variants = "signal", default_variants(cfg.models.horizon_bars)
    at = DataView(view_dataset(view), now_ms=job.start_ms)
    models = []
    for v in variants:
        days = v.train_days or cfg.backtest.train_window_days
        ds = at.dataset(until_ms=job.start_ms, since_ms=job.start_ms - int(days * DAY_MS))
        mdir, _ = train_signal_model(ds, cfg, costs, out / "models", horizon_bars=v.horizon_bars,
                                     features=list(v.features), params_override=dict(v.params))  # fmt: skip
        models.append(VariantModel(v, load_signal_model(mdir), costs, iv, cfg.models.horizon_bars))
    detector, names = _regime_detector(job, at, out)
    return RegimeBandit(models, cfg.policy, style=style, detector_factory=detector, regime_names=names)


def _regime_detector(job: Job, view: DataView, out: Path):
    """(a per-symbol detector factory, the regime names), or (None, []) when this build has none."""
    try:
        from kaizen.models import regime
    except ImportError:
        return None, []
    return regime.backtest_detector(view, job, out)


def _train_at(job: Job, view: DataView, costs: Costs, out: Path):
    """Train on the view's rolling window ending at its clock (nothing after it is readable)."""
    from kaizen.backtest.training import train_signal_model

    t = view.now_ms
    ds = view.dataset(until_ms=t, since_ms=t - int(job.cfg.backtest.train_window_days * DAY_MS))
    return train_signal_model(ds, job.cfg, costs, out / "models")


async def _retrain(job: Job, view: DataView, engine, strategy, costs: Costs, out: Path, writer) -> None:
    from kaizen.engine.strategies.ensemble import load_signal_model

    mdir, info = _train_at(job, view, costs, out)
    old = strategy.model.version
    strategy.set_model(load_signal_model(mdir))
    _log_model(engine, writer, "scheduled retrain, deployed at once (no validation)", old, info)


def _log_model(engine, writer, reason: str, old: str, info: dict) -> None:
    d = info["data"]
    ev = info.get("edge", {})
    metrics = {k: float(v) for k, v in ev.items() if isinstance(v, int | float)}
    rt = R.Retrain(
        id=new_id(),
        ts=engine.now_ns(),
        run_id=f"train-{info.get('version', '')}",
        role="signal",
        model=info.get("version", ""),
        data_start=int(d["start_ms"]) * MS_NS,
        data_end=int(d["end_ms"]) * MS_NS,
        data_hash=d["hash"],
        metrics=metrics,
        candidates=[info.get("version", "")],
    )
    writer.append(rt)
    writer.append(
        R.ModelSwap(
            id=new_id(),
            ts=engine.now_ns(),
            parents=[rt.id],
            role="signal",
            model=info.get("version", ""),
            old=old,
            new=info.get("version", ""),
            reason=reason,
        )
    )


def _summary(job: Job, venue, res: Result, engine, engine_summary: dict) -> dict[str, Any]:
    from kaizen.backtest.metrics import strategy_metrics

    out = strategy_metrics(
        venue.ex, res.equity_t, res.equity, res.gross, job.cfg.backtest.capital, job.symbols, engine.decisions
    )
    out["kill_switch"] = engine.router.kill_reason or (engine.risk.halt_reason if engine.risk.halted else "")
    out["engine_errors"] = len(engine.errors)
    return out
