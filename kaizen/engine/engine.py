"""The engine: market data in, decisions at bar close, target positions out through the router.

One engine for every mode: paper and live differ only in the venue URLs and credentials; the
event clock is the venue's (message event times), so bar boundaries are the venue's too.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from kaizen import __version__
from kaizen.config import Config
from kaizen.engine.bars import Bar, BarBuilder
from kaizen.engine.baseline import FEATURE_NAMES, NAME, VERSION, BaselineMomentum
from kaizen.lineage import records as R
from kaizen.lineage.ids import new_id


class Engine:
    """Wires feed → bars → features → strategy → sizing → router, logging each step to lineage."""

    def __init__(
        self, cfg: Config, venue: Any, lineage: Any, config_hash: str = "", state_path: Any = None
    ) -> None:
        self.cfg = cfg
        self.state_path = state_path
        self.venue = venue
        self.lineage = lineage
        self.config_hash = config_hash
        self.strategy = BaselineMomentum(cfg.strategy)
        self.builders = {s: BarBuilder(s, cfg.strategy.bar_seconds) for s in cfg.symbols}
        self.mark: dict[str, float] = {}
        self.funding_rate: dict[str, float] = {}
        self.status: dict[str, str] = {s: "invalid" for s in cfg.symbols}
        self.last_event_ns = 0
        self.bars = 0
        self.decisions = 0
        self.equity0 = 0.0
        self.feed: Any = None
        self.router: Any = None
        self.risk: Any = None
        self._targets: dict[str, tuple[float, float, float, int]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._stopping = False
        self.errors: list[str] = []

    # ---- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        from kaizen.market.feed import MarketFeed
        from kaizen.risk import RiskManager
        from kaizen.venue.router import OrderRouter

        cfg = self.cfg
        self._log(
            R.RunStart, mode=cfg.mode, version=__version__, config_hash=self.config_hash, symbols=cfg.symbols
        )
        await self.venue.connect()
        self.equity0 = (await self.venue.fetch_balance()).equity
        # The risk manager and router run on the venue's event clock (sim time in paper mode); the
        # feed's own wall-clock watchdog reports silence as a "stale" status.
        self.risk = RiskManager(
            cfg.risk, equity=self.equity0, state_path=self.state_path, now_ms=self._clock_ms()
        )
        self.router = OrderRouter(
            self.venue,
            self.risk,
            self.lineage,
            cfg.symbols,
            starting_equity=self.equity0,
            clock_ms=self._clock_ms,
        )
        await self.router.start()
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
            await self.router.cancel_all()
            if self.cfg.engine.flatten_on_stop:
                await self.router.flatten()
            # Fills of the flattening orders arrive through the venue's trade history.
            for _ in range(20):
                await self.router.poll(check_risk=False)
                if all(abs(self.router.position(s)) < 1e-12 for s in self.cfg.symbols):
                    break
                await asyncio.sleep(0.1)
            await self.router.stop()
            summary = self.summary()
        self._log(R.RunEnd, reason=reason, summary=summary)
        return summary

    def summary(self) -> dict[str, float]:
        s = dict(self.router.summary()) if self.router is not None else {}
        s["bars"] = float(self.bars)
        s["decisions"] = float(self.decisions)
        s["starting_equity"] = self.equity0
        return s

    # ---- feed handler (called synchronously from the feed) ---------------------------------------
    def on_trade(self, symbol: str, ts_ns: int, price: float, qty: float, buyer_is_maker: bool) -> None:
        self._clock(ts_ns)
        for bar in self.builders[symbol].on_trade(ts_ns, price, qty, buyer_is_maker):
            self._on_bar(bar)

    def on_mark(
        self, symbol: str, ts_ns: int, mark: float, index: float, funding_rate: float, next_funding_ms: int
    ) -> None:
        self.mark[symbol] = mark
        self.funding_rate[symbol] = funding_rate
        self._clock(ts_ns)
        if self.router is not None:
            self.router.on_market(symbol, mark, ts_ns // 1_000_000)

    def on_book(self, symbol: str, ts_ns: int, book: Any) -> None:
        self._clock(ts_ns)
        if self.router is not None:
            self.router.on_market(symbol, 0.0, ts_ns // 1_000_000)

    def on_status(self, symbol: str, status: str, reason: str) -> None:
        self.status[symbol] = status

    def _clock(self, ts_ns: int) -> None:
        # Bars close on the venue clock: any symbol's event moves every symbol's clock forward.
        if ts_ns <= self.last_event_ns:
            return
        self.last_event_ns = ts_ns
        for b in self.builders.values():
            for bar in b.on_clock(ts_ns):
                self._on_bar(bar)

    # ---- decisions -------------------------------------------------------------------------------
    def _on_bar(self, bar: Bar) -> None:
        self.bars += 1
        if self._stopping:
            return
        feats = self.strategy.features(bar.symbol, bar.close)
        if feats is None:
            return
        ts = bar.open_time_ns + self.builders[bar.symbol].interval_ns
        snap = self._log(
            R.FeatureSnapshot,
            ts=ts,
            symbol=bar.symbol,
            bar_ts=bar.open_time_ns,
            feature_set=VERSION,
            names=FEATURE_NAMES,
            values=feats,
        )
        signal, reason = self.strategy.signal(feats)
        pred = self._log(
            R.Prediction,
            ts=ts,
            symbol=bar.symbol,
            parents=[snap.id],
            model=VERSION,
            role=f"{bar.symbol}/signal",
            value=signal,
            features_id=snap.id,
        )
        position = self.router.position(bar.symbol)
        target = position
        if self.status.get(bar.symbol) != "valid":
            reason = f"market_{self.status.get(bar.symbol)}"  # no new risk on a bad book
            target = 0.0 if signal == 0 else position
        else:
            target = self._size(bar.symbol, signal, bar.close, feats[2])
        self.decisions += 1
        dec = self._log(
            R.Decision,
            ts=ts,
            symbol=bar.symbol,
            parents=[pred.id],
            model=VERSION,
            strategy=NAME,
            signal=signal,
            target_qty=target,
            position_qty=position,
            price=bar.close,
            reason=reason,
        )
        self._targets[bar.symbol] = (target, bar.close, self.mark.get(bar.symbol, bar.close), dec.id)
        self._wake.set()

    def _size(self, symbol: str, signal: float, price: float, vol_per_bar: float) -> float:
        from kaizen.risk import size_position

        if signal == 0.0:
            return 0.0
        bars_per_year = 365 * 24 * 3600 / self.cfg.strategy.bar_seconds
        equity = self.equity0 + self.router.summary().get("net_pnl", 0.0)
        return size_position(
            signal,
            price,
            max(vol_per_bar, 1e-6),
            bars_per_year,
            equity,
            self.cfg.risk.vol_target_annual,
            1.0 / len(self.cfg.symbols),
            self.cfg.risk.max_notional_per_symbol,
            next_funding_rate=self.funding_rate.get(symbol, 0.0),
        )

    # ---- background loops ------------------------------------------------------------------------
    async def _order_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._targets = self._targets, {}
            for symbol, (target, ref, mark, dec_id) in pending.items():
                try:
                    await self.router.set_target(symbol, target, ref, mark_price=mark, parents=[dec_id])
                except Exception as exc:  # a venue error must not stop the engine; it is logged
                    self._error(f"set_target {symbol}: {type(exc).__name__}: {exc}")

    async def _every(self, seconds: float, what: str, step) -> None:
        """Run `step` every `seconds`; a venue error is logged and the loop goes on."""
        while True:
            await asyncio.sleep(seconds)
            try:
                await step()
            except Exception as exc:
                self._error(f"{what}: {type(exc).__name__}: {exc}")

    # ---- helpers ---------------------------------------------------------------------------------
    def _clock_ms(self) -> int:
        return self.last_event_ns // 1_000_000 if self.last_event_ns else time.time_ns() // 1_000_000

    def _log(self, cls: type, ts: int | None = None, **fields: Any) -> Any:
        rec = cls(id=new_id(), ts=ts if ts is not None else (self.last_event_ns or time.time_ns()), **fields)
        self.lineage.append(rec)
        return rec

    def _error(self, msg: str) -> None:
        self.errors.append(msg)
        self._log(R.RiskEvent, kind="engine_error", detail=msg[:500])
