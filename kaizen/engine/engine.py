"""The engine: market data in, decisions at bar close, target positions out through the router.

One engine for every mode. Paper and live differ only in the venue's URLs and credentials; a
backtest drives this same object from kaizen/backtest/driver.py, calling the same handlers:

    on_trade / on_book   live: trades build bars on the venue's event clock (BarBuilder)
    on_mark              mark price (and, live, the predicted funding rate)
    on_funding_settled   a funding settlement (rate known at that time)
    on_bar               a closed bar: features -> strategy -> exit rule -> sizing -> target
    execute_targets      send the pending targets through the router (live: the order task)

At each bar close the bar goes into the Cython feature engine (ext/features.pyx, the very code
`kaizen train` runs in batch), the strategy (kaizen/engine/strategy.py seam) maps the context to a
target exposure, the exit rule (if any) decides whether an open position is held one more bar, and
sizing turns exposure into a quantity from the run's capital (not its running equity, so a
decision depends on market data only). Every step is a lineage record on the mode's clock.
"""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

import numpy as np

from kaizen import __version__
from kaizen.config import Config
from kaizen.engine.bars import Bar, BarBuilder
from kaizen.engine.strategy import BarContext, Costs, ExitRule, Strategy, Target
from kaizen.ext.features import BAR_INVALID, BAR_STALE, FeatureEngine
from kaizen.lineage import records as R
from kaizen.lineage.ids import new_id
from kaizen.models.features import FEATURE_NAMES, INPUT_NAMES, context_state
from kaizen.risk.sizing import size_position


def make_exit_rule(cfg: Config, interval_ms: int | None = None) -> ExitRule | None:
    """The exit rule `[exit] rule` names; None for "strategy" (the strategy's own targets govern)."""
    ec = cfg.exit
    if ec.rule == "strategy":
        return None
    from kaizen.models.exit_rules import make_rule

    model = None
    if ec.rule == "learned":
        from kaizen.models.exit import ExitModel

        model = ExitModel.load(ec.model_dir)
    return make_rule(
        ec.rule,
        horizon_bars=cfg.models.horizon_bars,
        max_hold_bars=ec.max_hold_bars,
        interval_ms=int(interval_ms or cfg.strategy.bar_seconds * 1000),
        exit_model=model,
        hard_stop_vol=ec.hard_stop_vol,
    )


_VOL = FEATURE_NAMES.index("vol_rv_24")


def _feature_set() -> str:
    """Names the feature definitions in force: count and a digest of every feature's version."""
    import hashlib

    from kaizen.models.features import feature_versions

    v = feature_versions()
    digest = hashlib.blake2b(repr(sorted(v.items())).encode(), digest_size=4).hexdigest()
    return f"features[{len(v)}]@{digest}"


class Engine:
    """Wires feed -> bars -> features -> strategy -> exit -> sizing -> router, logging each step."""

    def __init__(
        self,
        cfg: Config,
        venue: Any,
        lineage: Any,
        config_hash: str = "",
        state_path: Any = None,
        *,
        strategy: Strategy | None = None,
        exit_rule: ExitRule | None = None,
        clock_ns: Any = None,
        interval_ms: int | None = None,
        capital: float | None = None,
        costs: Costs | None = None,
        run_id: str | None = None,
        mode: str | None = None,
        on_bar_closed: Any = None,
    ) -> None:
        from kaizen.engine.strategies import make_strategy

        self.cfg = cfg
        self.mode = mode or cfg.mode
        self.state_path = state_path
        self.venue = venue
        self.lineage = lineage
        self.config_hash = config_hash
        self.run_id = run_id
        self.strategy: Strategy = strategy if strategy is not None else make_strategy(cfg)
        self.exit_rule = exit_rule if exit_rule is not None else make_exit_rule(cfg, interval_ms)
        self.interval_ms = int(interval_ms or cfg.strategy.bar_seconds * 1000)
        self.interval_ns = self.interval_ms * 1_000_000
        leader = cfg.models.leader
        # the leader's bar goes first at each close time (the cross-asset features read it)
        self.symbols = sorted(cfg.symbols, key=lambda s: 0 if s == leader else 1)
        self.fe = FeatureEngine(self.symbols, leader=leader, interval_ms=self.interval_ms)
        self.costs = costs or Costs(taker_fee=cfg.fees.taker, maker_fee=cfg.fees.maker)
        bars_per_day = 86_400_000 / self.interval_ms
        self.bars_per_year = 365.0 * bars_per_day
        self.ctx: dict[str, BarContext] = {}
        self._context: dict[str, Any] = {}  # symbol -> kaizen.ext.regime.RegimeFeatures
        for s in self.symbols:
            sid = self.fe.symbol_index(s)
            ctx = BarContext(s, sid, FEATURE_NAMES, self.costs, bars_per_day)
            ctx.features = self.fe.out_view(sid)
            ctx.inputs = np.full(len(INPUT_NAMES), math.nan)
            self._context[s] = context_state(self.interval_ms)
            self.ctx[s] = ctx
        self.builders = {s: BarBuilder(s, self.interval_ms / 1000.0) for s in self.symbols}
        self._trade_bars = self.mode != "backtest"
        self._clock_ns = clock_ns  # backtest: the replay clock; live/paper: the venue's event clock
        self._capital = capital
        self.capital = 0.0
        self.mark: dict[str, float] = {}
        self.mark_ts: dict[str, int] = {}
        self.funding_rate: dict[str, float] = {}  # the venue's predicted next rate (live)
        # exit layer: the side the strategy wanted at the previous bar (entries happen at onsets
        # only) and the vol at the bar a position was decided on (the exit rules' unit)
        self._wanted: dict[str, int] = dict.fromkeys(self.symbols, 0)
        self._decided_vol: dict[str, float] = dict.fromkeys(self.symbols, math.nan)
        self.settled_rate: dict[str, float] = {s: math.nan for s in self.symbols}
        self._next_funding: dict[str, int] = {}
        self.status: dict[str, str] = {
            s: ("valid" if self.mode == "backtest" else "invalid") for s in self.symbols
        }
        self.last_event_ns = 0
        self.bars = 0
        self.decisions = 0
        self.equity0 = 0.0
        self.feed: Any = None
        self.router: Any = None
        self.risk: Any = None
        self._targets: dict[str, tuple[float, float, float, int, int, float]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self.errors: list[str] = []
        self.feature_set = _feature_set()
        self._names_logged = False
        # optional observer of each decided bar (bar, mark or nan, settled funding rate), called
        # before the strategy decides: live history for a strategy that retrains (kaizen demo)
        self.on_bar_closed = on_bar_closed

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self, live: bool = True) -> None:
        """Connect, learn the account, start the router; with `live`, also the market feed and the
        periodic tasks (a backtest drives the handlers itself)."""
        from kaizen.risk import RiskManager
        from kaizen.venue.router import OrderRouter

        cfg = self.cfg
        await self.venue.connect()
        self.equity0 = (await self.venue.fetch_balance()).equity
        self._log(
            R.RunStart,
            mode=self.mode,
            version=__version__,
            config_hash=self.config_hash,
            symbols=cfg.symbols,
            capital=self.equity0,
        )
        self.capital = self._capital if self._capital else (cfg.risk.capital or self.equity0)
        for ctx in self.ctx.values():
            ctx.budget = self.capital / len(self.symbols)
        self.risk = RiskManager(
            cfg.risk,
            equity=self.equity0,
            state_path=self.state_path,
            now_ms=self._clock_ms(),
            # paper runs on a simulator whose clock runs at sim.speed: staleness is judged on it
            clock_rate=cfg.sim.speed if self.mode == "paper" else 1.0,
        )
        self.router = OrderRouter(
            self.venue,
            self.risk,
            self.lineage,
            cfg.symbols,
            run_id=self.run_id,
            starting_equity=self.equity0,
            clock_ms=self._clock_ms,
            rebalance_band=cfg.strategy.rebalance_band,
            kill_on_events=self.mode != "backtest",  # a backtest checks once per bar (driver)
            entry=cfg.router.entry,
            post_only_fallback=cfg.router.post_only_fallback,
            entry_ttl_ms=int(cfg.router.entry_ttl_s * 1000),
            entry_replan=cfg.router.entry_replan,
        )
        await self.router.start()
        if not live:
            return
        from kaizen.market.feed import MarketFeed

        markets = self.venue.markets
        self.feed = MarketFeed(
            self.venue.ws_url,
            self.venue.rest_url,
            cfg.symbols,
            tick_sizes={s: markets[s].tick_size for s in cfg.symbols},
            lot_sizes={s: markets[s].lot_size for s in cfg.symbols},
            handler=self,
            lineage=self.lineage,
            stale_after_ms=cfg.risk.stale_after_ms,
            ws_layout=cfg.venue.ws_layout,
        )
        await self.feed.start()
        self._tasks = [
            asyncio.create_task(self._order_loop(), name="orders"),
            # fills, funding and equity (the router trips the kill switch when due)
            asyncio.create_task(
                self._every(cfg.engine.poll_fills_every_s, "poll", self.router.poll), name="poll"
            ),
            asyncio.create_task(
                self._every(cfg.engine.reconcile_every_s, "reconcile", self.router.reconcile),
                name="reconcile",
            ),
        ]

    async def stop(self, reason: str = "stop") -> dict[str, float]:
        """Stop trading: no new orders, cancel what is open, flatten if configured, settle the books."""
        self._stopping = True
        if self.feed is not None:
            await self.feed.stop()
        for t in self._tasks:
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        summary: dict[str, float] = {}
        if self.router is not None:
            # A venue that fails now (5xx, 429, timeouts) must not cut the shutdown short: each step
            # is retried with backoff beyond the venue client's own retries, then logged and passed.
            router = self.router
            await self._persist("cancel open orders", router.cancel_all)
            if self.cfg.engine.flatten_on_stop:
                await self._persist("flatten", router.flatten)
            # Fills of the flattening orders arrive through the venue's trade history.
            for _ in range(20):
                await self._persist("poll", router.poll, check_risk=False)
                if all(abs(router.position(s)) < 1e-12 for s in self.cfg.symbols):
                    break
                await asyncio.sleep(0.1)
            await self._persist("take in the last fills and funding", router.stop)
            summary = self.summary()
        self._log(R.RunEnd, reason=reason, summary=summary)
        return summary

    async def _persist(self, what: str, fn, *args, tries: int = 6, **kw):
        """`await fn(*args)`, retried on a venue error (0.2 s doubling to 3.2 s, ~6 s in all); the
        last failure is an engine error record, and the shutdown goes on."""
        from kaizen.venue.base import VenueError

        delay = 0.2
        for attempt in range(tries):
            try:
                return await fn(*args, **kw)
            except VenueError as exc:
                if attempt == tries - 1:
                    self._error(f"stop: {what} failed after {tries} tries: {exc}")
                    return None
                await asyncio.sleep(delay)
                delay = min(2 * delay, 3.2)
        return None

    def summary(self) -> dict[str, float]:
        s = dict(self.router.summary()) if self.router is not None else {}
        s["bars"] = float(self.bars)
        s["decisions"] = float(self.decisions)
        s["starting_equity"] = self.equity0
        return s

    # ---- market handlers (called synchronously by the feed or the backtest driver) -----------------
    def on_trade(self, symbol: str, ts_ns: int, price: float, qty: float, buyer_is_maker: bool) -> None:
        self._clock(ts_ns)
        for bar in self.builders[symbol].on_trade(ts_ns, price, qty, buyer_is_maker):
            self.on_bar(bar)

    def on_mark(
        self,
        symbol: str,
        ts_ns: int,
        mark: float,
        index: float = math.nan,
        funding_rate: float = math.nan,
        next_funding_ms: int = 0,
    ) -> None:
        self.mark[symbol] = mark
        self.mark_ts[symbol] = ts_ns
        if math.isfinite(funding_rate):
            # Live: the rate in force when the next-funding time moves on is the one that settled.
            prev = self._next_funding.get(symbol, 0)
            if prev and next_funding_ms > prev and symbol in self.funding_rate:
                self.on_funding_settled(symbol, prev * 1_000_000, self.funding_rate[symbol])
            self.funding_rate[symbol] = funding_rate
            self._next_funding[symbol] = next_funding_ms
        self._clock(ts_ns)
        if self.router is not None:
            self.router.on_market(symbol, mark, ts_ns // 1_000_000)

    def on_price(self, symbol: str, ts_ns: int, price: float) -> None:
        """A valuation price where the venue publishes no mark (history without mark bars): it
        moves the clock and the router's marks, never the features (the mark feature stays nan, as
        in training on the same data)."""
        self._clock(ts_ns)
        if self.router is not None:
            self.router.on_market(symbol, price, ts_ns // 1_000_000)

    def on_funding_settled(self, symbol: str, ts_ns: int, rate: float) -> None:
        """A funding settlement's rate: the feature engine's `fund_rate` from the next bar on."""
        if symbol in self.settled_rate and math.isfinite(rate):
            self.settled_rate[symbol] = rate

    def on_book(self, symbol: str, ts_ns: int, book: Any) -> None:
        self._clock(ts_ns)
        if self.router is not None:
            self.router.on_market(symbol, 0.0, ts_ns // 1_000_000, book)

    def on_status(self, symbol: str, status: str, reason: str) -> None:
        self.status[symbol] = status

    def _clock(self, ts_ns: int) -> None:
        # Bars close on the venue clock: any symbol's event moves every symbol's clock forward.
        if ts_ns <= self.last_event_ns:
            return
        self.last_event_ns = ts_ns
        if not self._trade_bars:  # a backtest hands the engine whole bars: no builder to close
            return
        for b in self.builders.values():
            for bar in b.on_clock(ts_ns):
                self.on_bar(bar)

    # ---- decisions -------------------------------------------------------------------------------
    def on_bar(self, bar: Bar, decide: bool = True) -> None:
        """A closed bar: features, then (with `decide`) strategy, exit rule, sizing and a target.
        `decide=False` only warms the features up (a backtest's history before its start)."""
        symbol = bar.symbol
        ctx = self.ctx.get(symbol)
        if ctx is None:
            return
        close_ns = bar.open_time_ns + self.interval_ns
        # The mark counts only when it is this bar's (live: always; history: where a mark bar closes
        # at this time): as a feature input, exactly as batch training sees it, and for the orders'
        # price band (a mark hours old would refuse good orders); else the bar's close stands in.
        fresh = self.mark_ts.get(symbol, 0) > bar.open_time_ns
        mark = self.mark.get(symbol, math.nan) if fresh else math.nan
        mark_in = mark
        rc = self.fe.update_sid(
            ctx.sid,
            bar.open_time_ns // 1_000_000,
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
            self.settled_rate[symbol],
            mark_in,
        )
        if rc == BAR_STALE or rc == BAR_INVALID:
            self._error(
                f"bar {symbol} {bar.open_time_ns // 1_000_000}: rejected by the feature engine ({rc})"
            )
            return
        # the regime context follows every bar, warm-up included (one state per symbol, whatever
        # model reads it, so a model swapped in mid-run sees a warm context)
        inputs = ctx.inputs
        nf = len(FEATURE_NAMES)
        inputs[:nf] = ctx.features
        inputs[nf:] = self._context[symbol].update(inputs[:nf])
        if not decide:
            return
        self.bars += 1
        append = self.lineage.append
        brec = R.Bar(
            id=new_id(),
            ts=close_ns,
            symbol=symbol,
            open_time=bar.open_time_ns // 1_000_000,
            interval_ms=self.interval_ms,
            open=bar.open,
            high=bar.high,
            low=bar.low,
            close=bar.close,
            volume=bar.volume,
            mark=mark,
        )
        append(brec)
        if self.on_bar_closed is not None:
            self.on_bar_closed(bar, mark, self.settled_rate[symbol])
        if self._stopping or self.router is None:
            return
        feats = ctx.features
        snap = R.FeatureSnapshot(
            id=new_id(),
            ts=close_ns,
            parents=[brec.id],
            symbol=symbol,
            bar_ts=bar.open_time_ns,
            feature_set=self.feature_set,
            names=self._names_once(),
            values=feats.tolist(),
        )
        append(snap)
        ctx.ts_ns = close_ns
        ctx.open_time_ns = bar.open_time_ns
        ctx.open, ctx.high, ctx.low, ctx.close, ctx.volume = (
            bar.open,
            bar.high,
            bar.low,
            bar.close,
            bar.volume,
        )
        ctx.mark = mark
        ctx.funding_rate = self.settled_rate[symbol]
        ctx.next_funding_ms = self._next_funding.get(symbol, 0)
        ctx.vol = float(feats[_VOL])
        ctx.status = self.status.get(symbol, "valid")
        self._update_position(ctx)
        ctx.signal_edge = math.nan  # a strategy that models its edge sets it (the exit layer reads it)
        target = self.strategy.decide(ctx)
        pred = R.Prediction(
            id=new_id(),
            ts=close_ns,
            symbol=symbol,
            parents=[snap.id],
            model=target.model,
            role=target.role,
            value=float(target.value),
            features_id=snap.id,
        )
        append(pred)
        for rec in target.records:
            append(rec)
        exposure, reason = float(target.exposure), target.reason
        if self.exit_rule is not None:
            exposure, reason, target = self._exit_layer(ctx, target, snap.id, append)
        position = self.router.position(symbol)
        qty = self._size(ctx, target, exposure)
        if ctx.status != "valid":
            reason = f"market_{ctx.status}"  # no new risk on a bad book: only reduce
            qty = (
                0.0
                if qty == 0.0 or qty * position < 0
                else math.copysign(min(abs(qty), abs(position)), position)
            )
        self.decisions += 1
        dec = R.Decision(
            id=new_id(),
            ts=close_ns,
            symbol=symbol,
            parents=[pred.id],
            model=target.model,
            strategy=self.strategy.name,
            signal=exposure,
            target_qty=float(qty),
            position_qty=position,
            price=bar.close,
            reason=reason,
            edge=float(target.edge) if math.isfinite(target.edge) else 0.0,
            data_ts=close_ns,
        )
        append(dec)
        # the router decides whether the change is worth trading (no-trade band); a resting entry
        # of ours is replaced or cancelled by this bar's target even when the position is on target
        if qty != position or self.router.resting(symbol):
            self._targets[symbol] = (
                qty,
                bar.close,
                mark if mark > 0 else bar.close,
                dec.id,
                close_ns // 1_000_000,
                float(target.edge),
            )
            self._wake.set()

    def _names_once(self) -> list[str]:
        """Feature names go into the first snapshot of a run; later snapshots of the same
        `feature_set` leave them out (the same 36 strings per bar were most of the record)."""
        if self._names_logged:
            return []
        self._names_logged = True
        return list(FEATURE_NAMES)

    def _update_position(self, ctx: BarContext) -> None:
        """The position state the strategy and the exit layer read, from the router's fill-based
        book: a new side opens a trade at its average fill price (filled at this bar's open), and
        every close of an open trade is marked (PositionState.mark: bars, return, excursions)."""
        book = self.router.books[ctx.symbol]
        st = ctx.position
        side = 0 if abs(book.qty) < 1e-12 else (1 if book.qty > 0 else -1)
        if side == 0:
            if st.side != 0:
                st.reset()
            return
        if side != st.side:
            st.open(side, book.qty, book.avg, ctx.open_time_ns, ctx.regime, self._decided_vol[ctx.symbol])
        st.qty = book.qty
        st.entry_price = book.avg  # average cost: adding to a trade moves it
        st.mark(ctx.close)

    def _exit_layer(
        self, ctx: BarContext, target: Target, features_id: int, append
    ) -> tuple[float, str, Target]:
        """With an exit rule the strategy only opens trades, at onsets of its signal (a side it did
        not want at the previous bar), and the rule decides at every bar of an open trade whether
        to hold one more interval; every such decision is an `exit` lineage record."""
        s = ctx.symbol
        wanted = 0 if target.exposure == 0 else (1 if target.exposure > 0 else -1)
        onset = wanted != 0 and wanted != self._wanted[s]
        self._wanted[s] = wanted
        pos = ctx.position
        if pos.side != 0:
            d = self.exit_rule.on_bar(ctx)
            append(d.record(new_id(), ctx.ts_ns, s, self.exit_rule.name, pos, parents=[features_id]))
            if d.exit:
                return 0.0, f"exit:{d.reason}", target
            held = Target(exposure=float(pos.side), reason=f"hold:{d.reason}", value=target.value,
                          edge=target.edge, model=target.model, role=target.role, qty=pos.qty)  # fmt: skip
            return float(pos.side), held.reason, held
        if onset:
            self._decided_vol[s] = ctx.vol
            return float(wanted), f"entry:{target.reason}", target
        return 0.0, f"no_onset:{target.reason}" if wanted else target.reason, target

    def _size(self, ctx: BarContext, target: Target, exposure: float) -> float:
        if target.qty is not None:
            if exposure == 0.0 or not ctx.close > 0:
                return 0.0
            # within the per-symbol cap here, so the no-trade band compares like with like (the router
            # would clamp it anyway, and then top it up bar after bar as the price moved)
            cap = self.cfg.risk.max_notional_per_symbol / ctx.close
            return math.copysign(min(abs(target.qty), cap), target.qty)
        if exposure == 0.0 or not math.isfinite(exposure):
            return 0.0
        return size_position(
            exposure,
            ctx.close,
            ctx.vol if math.isfinite(ctx.vol) and ctx.vol > 0 else math.nan,
            self.bars_per_year,
            self.capital,
            self.cfg.risk.vol_target_annual,
            1.0 / len(self.symbols),
            self.cfg.risk.max_notional_per_symbol,
        )

    # ---- orders ----------------------------------------------------------------------------------
    async def execute_targets(self) -> None:
        """Send every pending target through the router (the only path orders take)."""
        pending, self._targets = self._targets, {}
        for symbol, (target, ref, mark, dec_id, data_ms, edge) in pending.items():
            try:
                await self.router.set_target(
                    symbol, target, ref, mark_price=mark, parents=[dec_id], data_ts_ms=data_ms, edge=edge
                )
            except Exception as exc:  # a venue error must not stop the engine; it is logged
                self._error(f"set_target {symbol}: {type(exc).__name__}: {exc}")

    async def _order_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            await self.execute_targets()

    async def _every(self, seconds: float, what: str, step) -> None:
        """Run `step` every `seconds`; a venue error is logged and the loop goes on."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await step()
            except Exception as exc:
                self._error(f"{what}: {type(exc).__name__}: {exc}")

    # ---- helpers ---------------------------------------------------------------------------------
    def now_ns(self) -> int:
        if self._clock_ns is not None:
            return self._clock_ns()
        return self.last_event_ns or time.time_ns()

    def _clock_ms(self) -> int:
        return self.now_ns() // 1_000_000

    def _log(self, cls: type, ts: int | None = None, **fields: Any) -> Any:
        rec = cls(id=new_id(), ts=ts if ts is not None else self.now_ns(), **fields)
        self.lineage.append(rec)
        return rec

    def _error(self, msg: str) -> None:
        self.errors.append(msg)
        self._log(R.RiskEvent, kind="engine_error", detail=msg[:500])
