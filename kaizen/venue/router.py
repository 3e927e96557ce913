"""The order router: target positions in, orders out, through the risk gate and the venue filters.

It is the only place orders are sent from. Every order gets a deterministic client id (run, symbol,
decision, sequence) fixed before the first attempt, so the venue adapter's retry-with-lookup can
never make two. Positions and PnL are kept from the venue's own fills; `reconcile` compares our view
with the venue's (positions, open orders) on start, after errors and when asked, logs each
discrepancy as a `Reconcile` record and adopts the venue's truth. The kill switch (daily loss or
drawdown, via RiskManager.on_equity) cancels everything, flattens with reduce-only orders and halts:
no order is sent after it until a deliberate re-arm.

Post-only entries (`entry="post_only"`): an order that increases an exposure (from flat, or adding
on the same side) rests as a post-only limit at the touch and pays the maker fee if it fills; every
reduction, exit, flip, flatten and kill stays a market order. A post-only order the venue refuses
because it would take liquidity (-5022) is re-quoted once one tick more passive, then skipped or
sent as market (`post_only_fallback`), once. A resting entry lives until the next target for its
symbol (or `entry_ttl_ms`, by the poll, which re-plans it at the new touch with `entry_replan`: the
decision's data time still applies, so a decision gone stale adds nothing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

from kaizen.lineage import records
from kaizen.lineage.ids import new_id
from kaizen.risk.limits import RiskManager, position_headroom
from kaizen.venue.base import (
    MarketInfo,
    OrderRejected,
    OrderState,
    Venue,
    VenueError,
    VenueFill,
    VenueFunding,
)
from kaizen.venue.clientid import belongs_to_run, make_client_id

log = logging.getLogger("kaizen.router")
# _set_basis: reads of the wallet around taking every fill and funding payment in, until two agree
BASIS_TRIES = 10

FINAL = ("closed", "canceled", "cancelled", "rejected", "expired", "filled")


class Lineage(Protocol):
    def append(self, record: Any) -> Any: ...


@dataclass
class PlannedOrder:
    side: str
    qty: float
    reduce_only: bool
    post_only: bool = False


def plan_order(
    market: MarketInfo, expected: float, target: float, price: float
) -> tuple[PlannedOrder | None, str]:
    """The one order that moves `expected` (position + pending) toward `target`, rounded to the
    venue's lot, or None with the reason (nothing to do, below the venue's minimums)."""
    delta = target - expected
    qty = abs(market.round_qty(delta))
    if qty <= 0:
        return None, "within one lot of target"
    side = "buy" if delta > 0 else "sell"
    signed = qty if side == "buy" else -qty
    reduce_only = expected != 0 and signed * expected < 0 and qty <= abs(expected) + 1e-12
    ok, why = market.tradable(qty, price, reduce_only)
    if not ok:
        return None, why
    return PlannedOrder(side, qty, reduce_only), ""


@dataclass
class _Book:
    """Position and PnL of one symbol, from fills (average-cost)."""

    qty: float = 0.0
    avg: float = 0.0
    realized: float = 0.0
    fees: float = 0.0
    maker_fees: float = 0.0  # the part of `fees` paid on maker fills
    maker_fills: int = 0
    funding: float = 0.0
    mark: float = 0.0

    def apply(self, side: str, qty: float, price: float, fee: float, maker: bool = False) -> float:
        signed = qty if side == "buy" else -qty
        realized = 0.0
        if self.qty == 0 or self.qty * signed > 0:
            new = self.qty + signed
            self.avg = (self.avg * abs(self.qty) + price * qty) / abs(new)
            self.qty = new
        else:
            closing = min(qty, abs(self.qty))
            realized = closing * (price - self.avg) * (1 if self.qty > 0 else -1)
            new = self.qty + signed
            if abs(new) < 1e-12:
                self.qty, self.avg = 0.0, 0.0
            elif new * self.qty < 0:  # flipped: the remainder opens at this price
                self.qty, self.avg = new, price
            else:
                self.qty = new
        self.qty = round(self.qty, 12)  # no float drift in a sum of lot-sized fills
        self.realized += realized
        self.fees += fee
        if maker:
            self.maker_fees += fee
            self.maker_fills += 1
        return realized

    def unrealized(self) -> float:
        return self.qty * (self.mark - self.avg) if self.qty and self.mark else 0.0


@dataclass
class _Tracked:
    record: records.Order
    symbol: str
    side: str
    qty: float
    venue_order_id: str = ""
    reported_filled: float = 0.0  # what the venue said in its order answers
    fill_qty: float = 0.0  # what we have seen as fills
    open: bool = True
    fill_ids: set[str] = field(default_factory=set)
    post_only: bool = False
    sent_ms: int = 0

    def signed(self, q: float) -> float:
        return q if self.side == "buy" else -q

    def in_flight(self) -> float:
        """Signed quantity not yet in our fill-based position: reported fills not yet seen as fills,
        plus what is still open."""
        unseen = max(self.reported_filled - self.fill_qty, 0.0)
        remaining = max(self.qty - max(self.reported_filled, self.fill_qty), 0.0) if self.open else 0.0
        return self.signed(unseen + remaining)


class OrderRouter:
    def __init__(
        self,
        venue: Venue,
        risk: RiskManager,
        lineage: Lineage,
        symbols: list[str] | tuple[str, ...],
        *,
        run_id: str | None = None,
        order_type: str = "market",
        starting_equity: float | None = None,
        clock_ms: Any = None,
        funding_poll_s: float = 60.0,
        rebalance_band: float = 0.0,
        kill_on_events: bool = True,
        entry: str = "market",
        post_only_fallback: str = "skip",
        entry_ttl_ms: int = 0,
        entry_replan: bool = False,
    ) -> None:
        self.venue = venue
        self.risk = risk
        self.lineage = lineage
        self.symbols = list(symbols)
        self.run_id = run_id or f"run-{new_id()}"
        # a same-side resize smaller than this fraction of the position is not traded (its fees
        # buy nothing): the no-trade band
        self.rebalance_band = rebalance_band
        self.order_type = order_type
        if entry not in ("market", "post_only"):
            raise ValueError(f"entry must be 'market' or 'post_only', got {entry!r}")
        if post_only_fallback not in ("skip", "market"):
            raise ValueError(f"post_only_fallback must be 'skip' or 'market', got {post_only_fallback!r}")
        self.entry = entry
        self.post_only_fallback = post_only_fallback
        self.entry_ttl_ms = entry_ttl_ms
        self.entry_replan = entry_replan
        # the last target per symbol (the arguments of _set_target), for the re-plan after a TTL
        self._last_target: dict[str, tuple] = {}
        self.entries_replanned = 0
        self._l2: dict[str, Any] = {}  # symbol -> the engine's order book (best bid/ask), when it has one
        self.post_only_sent = 0
        self.post_only_would_cross = 0  # refused by the venue as taking liquidity (-5022)
        self.post_only_fallbacks = 0  # market orders sent after a refused re-quote
        self.post_only_skipped = 0
        self.entries_expired = 0  # resting entries cancelled by the TTL
        self._clock_ms = clock_ms or (lambda: time.time_ns() // 1_000_000)
        self.books = {s: _Book() for s in self.symbols}
        # Orders still in play (open, in doubt, or with fills not yet seen), by client id and by
        # symbol: an order leaves both once it is final and all its fills are in, so lookups stay
        # O(1) and memory stays bounded however long the run.
        self.orders: dict[str, _Tracked] = {}
        self._active: dict[str, dict[str, _Tracked]] = {s: {} for s in self.symbols}
        self._by_venue_id: dict[str, str] = {}
        self._seq = 0
        self._fill_since: dict[str, int | None] = {s: None for s in self.symbols}
        self._seen_fills: set[str] = set()
        self._funding_since: int | None = None
        # Funding income is a heavy call (Binance weight 30) and changes at most every few hours.
        self.funding_poll_s = funding_poll_s
        self._funding_polled_ms = -(10**18)
        self._seen_funding: set[str] = set()
        self.starting_equity = risk.equity if starting_equity is None else starting_equity
        self.trades = 0
        self.orders_sent = 0
        self.decisions_traded = 0  # distinct decisions that sent at least one order
        self._recent_decisions: dict[int, None] = {}  # the last few, to count each decision once
        # decisions with at least one fill (a post-only entry that never filled sent an order but
        # paid nothing): the last few, to count each once
        self.decisions_filled = 0
        self._filled_decisions: dict[int, None] = {}
        self.kill_reason = ""
        self._killing = False
        self._started = False
        self._needs_reconcile = False
        self._adopting = False
        # Reconcile and set_target never interleave on one symbol: a position snapshot taken while
        # an order of ours is in flight would be adopted and then its fill counted a second time.
        self._locks = {s: asyncio.Lock() for s in self.symbols}
        self._fills_applied = dict.fromkeys(self.symbols, 0)
        # Fills and order states pushed by a user-data stream (set by attach_stream): REST fills are
        # then only the reconcile path.
        self.stream: Any = None
        self._resync_task: asyncio.Task | None = None
        self._resync_again = False
        self.venue_positions: dict[str, float] = {}  # the last ACCOUNT_UPDATE's, for the record
        # The loss limits are checked on every fill and mark (not only at the poll cadence); a
        # backtest checks them itself once per bar (kill_on_events=False keeps it deterministic).
        self.kill_on_events = kill_on_events
        self._kill_task: asyncio.Task | None = None
        self.reconciles = 0
        self.mismatches = 0
        self.reconcile_skipped = 0
        self.adopted_at_start = 0

    # --- lifecycle -------------------------------------------------------------------------------
    async def start(self) -> None:
        """Learn where the venue is (fills and funding already there are history, not ours),
        reconcile positions and open orders with it, cancel what a killed process of this run left
        open, and fix the equity basis (see _set_basis)."""
        for sym in self.symbols:
            for f in await self.venue.fetch_fills(sym, None):
                self._seen_fills.add(f.trade_id)
                self._fill_since[sym] = max(self._fill_since[sym] or 0, f.ts_ms)
        for f in await self.venue.fetch_funding(None):
            self._seen_funding.add(f.funding_id)
            self._funding_since = max(self._funding_since or 0, f.ts_ms)
        self._started = True
        self._adopting = True  # no equity figure until the venue's positions are in our books
        try:
            await self.reconcile()
            # Orders of this run left by a previous process (same persisted run id): their fills
            # are in (reconcile took them); the process that decided them is gone, so cancel them.
            for sym in self.symbols:
                for t in [t for t in self._active[sym].values() if t.open]:
                    self.adopted_at_start += 1
                    await self._cancel(t)
            await self._set_basis()
        finally:
            self._adopting = False
        await self.check_equity(check_risk=False)

    async def _set_basis(self) -> None:
        """Our equity is a basis plus our books (realized - fees - funding + unrealized from the
        entry prices). The basis is the venue's wallet less what our books already hold of it, read
        when nothing settles: the wallet before and after taking every fill and funding payment in,
        until both agree, so each one is counted exactly once (in the wallet or in our books). A
        position adopted at its entry price then carries its unrealized PnL once."""
        wallet = 0.0
        settled = False
        for _ in range(BASIS_TRIES):
            before = (await self.venue.fetch_balance()).wallet
            for sym in self.symbols:
                await self._poll_fills(sym)
            for fp in await self.venue.fetch_funding(self._funding_since):
                self.on_funding(fp)
            wallet = (await self.venue.fetch_balance()).wallet
            if wallet == before:
                settled = True
                break
        booked = sum(b.realized - b.fees - b.funding for b in self.books.values())
        self.starting_equity = wallet - booked
        if not settled:
            log.warning("equity basis read while the wallet kept moving (%d reads): it may be off", BASIS_TRIES)
        # how the starting equity was derived, for the audit trail
        self.lineage.append(
            records.RiskEvent(
                id=new_id(),
                ts=self._clock_ms() * 1_000_000,
                kind="equity_basis" if settled else "equity_basis_unsettled",
                detail=f"wallet {wallet:.8f} - booked {booked:.8f} = basis {self.starting_equity:.8f}"
                + ("" if settled else f" (the wallet moved during each of {BASIS_TRIES} reads: a payment or fill "
                   "may be counted twice; settlements come faster than the venue's REST round trips)")
                + "; "
                f"positions {', '.join(f'{s} {b.qty:g}@{b.avg:g}' for s, b in self.books.items() if b.qty)}",
            )
        )

    async def stop(self) -> None:
        """Cancel every open order, then take the last fills and funding in."""
        await self.cancel_all()
        if self._resync_task is not None and not self._resync_task.done():
            self._resync_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._resync_task
        await self.poll(check_risk=False, funding=True, fills=True)

    # --- targets ---------------------------------------------------------------------------------
    def position(self, symbol: str) -> float:
        return self.books[symbol].qty

    def expected_position(self, symbol: str) -> float:
        return self.books[symbol].qty + sum(t.in_flight() for t in self._active[symbol].values())

    def open_order_count(self) -> int:
        return sum(1 for t in self.orders.values() if t.open)

    def resting(self, symbol: str) -> bool:
        """Is an order of ours open on `symbol` (a resting post-only entry the next target must
        replace or cancel)?"""
        return any(t.open and t.post_only for t in self._active[symbol].values())

    def on_market(self, symbol: str, mark_price: float, ts_ms: int, book: Any = None) -> None:
        """Fresh market data for `symbol` (the engine calls this per mark/book update); `book` is
        the engine's order book (post-only entries quote at its touch)."""
        if book is not None:
            self._l2[symbol] = book
        if mark_price > 0:
            self.books[symbol].mark = mark_price
            if self.books[symbol].qty:
                self._check_limits_now()
        self.risk.on_market(symbol, ts_ms)

    async def set_target(
        self,
        symbol: str,
        target_qty: float,
        ref_price: float,
        mark_price: float | None = None,
        parents: list[int] | None = None,
        *,
        data_ts_ms: int | None = None,
        edge: float = math.nan,
    ) -> list[records.Order]:
        """Move the position in `symbol` toward `target_qty` (signed base units). `ref_price` is the
        price the decision saw; `mark_price` the venue mark (the fat-finger band is checked against
        it); `data_ts_ms` the venue time of the bar or event behind the target: a target without
        one, or older than `stale_after_ms` on the venue clock, may only reduce (RiskManager.is_stale_data)."""
        if self.risk.halted or self._killing:
            return []
        if symbol not in self.books:
            raise ValueError(f"symbol {symbol!r} is not routed (symbols: {self.symbols})")
        async with self._locks[symbol]:
            self._last_target[symbol] = (target_qty, ref_price, mark_price, parents, data_ts_ms, edge)
            return await self._set_target(
                symbol, target_qty, ref_price, mark_price, parents, data_ts_ms, edge
            )

    async def _set_target(
        self,
        symbol: str,
        target_qty: float,
        ref_price: float,
        mark_price: float | None,
        parents: list[int] | None,
        data_ts_ms: int | None,
        edge: float = math.nan,
    ) -> list[records.Order]:
        if self.risk.halted or self._killing:
            return []
        now = self._clock_ms()
        parents = list(parents or [])
        book = self.books[symbol]
        if mark_price and mark_price > 0:
            book.mark = mark_price
        if data_ts_ms is not None:
            self.risk.on_market(symbol, data_ts_ms)
        mark = book.mark if book.mark > 0 else ref_price
        out: list[records.Order] = []
        # Resting orders of this symbol are replaced by the new plan.
        for t in [t for t in self._active[symbol].values() if t.open]:
            await self._cancel(t)
        plan, price, ok, reason = self.decide(symbol, target_qty, ref_price, mark, now, data_ts_ms, edge)
        if plan is None:
            return out
        if not ok:
            rec = self._order_record(
                symbol, "", plan, price, parents, status="rejected", error=f"risk: {reason}"
            )
            self.lineage.append(rec)
            self.lineage.append(
                records.RiskEvent(
                    id=new_id(),
                    ts=now * 1_000_000,
                    parents=[rec.id],
                    symbol=symbol,
                    kind="limit",
                    detail=reason,
                )
            )
            out.append(rec)
            return out
        if plan.post_only:
            out += await self._send_post_only(symbol, plan, price, parents, ref_price, mark, now, data_ts_ms)
            return out
        rec = await self._send(symbol, plan, price, parents)
        out.append(rec)
        return out

    async def _send_post_only(
        self,
        symbol: str,
        plan: PlannedOrder,
        price: float | None,
        parents: list[int],
        ref_price: float,
        mark: float,
        now: int,
        data_ts_ms: int | None,
    ) -> list[records.Order]:
        """A post-only entry; refused as taking liquidity, one re-quote a tick more passive, then
        the configured fallback (skip, or one market order after the risk gate again)."""
        market: MarketInfo = self.venue.markets[symbol]
        out = [await self._send(symbol, plan, price, parents)]
        if not _would_cross(out[-1]) or price is None:
            return out
        step = -market.tick_size if plan.side == "buy" else market.tick_size
        requote = market.round_price(price + step, plan.side)
        if requote > 0:
            out.append(await self._send(symbol, plan, requote, parents))
            if not _would_cross(out[-1]):
                return out
        if self.post_only_fallback == "skip" or self.risk.halted or self._killing:
            self.post_only_skipped += 1
            return out
        taker = PlannedOrder(plan.side, plan.qty, plan.reduce_only)
        ok, reason = self._risk_check(symbol, taker, ref_price, mark, now, data_ts_ms, self._exposure(symbol, ref_price))
        if not ok:
            rec = self._order_record(
                symbol, "", taker, None, parents, status="rejected", error=f"risk: {reason}"
            )
            self.lineage.append(rec)
            out.append(rec)
            return out
        self.post_only_fallbacks += 1
        out.append(await self._send(symbol, taker, None, parents))
        return out

    def _passive_price(self, symbol: str, side: str, ref_price: float) -> float:
        """The touch on our side (best bid for a buy, best ask for a sell) when the engine has a
        valid book; otherwise the decision's price rounded to the tick on the passive side."""
        market: MarketInfo = self.venue.markets[symbol]
        book = self._l2.get(symbol)
        if book is not None and getattr(book, "valid", True):
            px = book.best_bid() if side == "buy" else book.best_ask()
            if px > 0 and math.isfinite(px):
                return market.round_price(px, side)
        return market.round_price(ref_price, side)

    def _exposure(self, symbol: str, ref_price: float) -> tuple[dict, dict, dict]:
        """(positions, prices, pending) per symbol, as the risk gate and the headroom read them: the
        marks, with `ref_price` for `symbol` when it has none yet."""
        positions = {s: self.books[s].qty for s in self.symbols}
        prices = {s: (self.books[s].mark or (ref_price if s == symbol else 0.0)) for s in self.symbols}
        pending = {s: self.expected_position(s) - self.books[s].qty for s in self.symbols}
        return positions, prices, pending

    def _risk_check(
        self,
        symbol: str,
        plan: PlannedOrder,
        price: float,
        mark: float,
        now: int,
        data_ts_ms: int | None,
        exposure: tuple[dict, dict, dict],
    ) -> tuple[bool, str]:
        """The risk gate on one planned order at `price` (the limit, or the decision's price)."""
        positions, prices, pending = exposure
        return self.risk.check_order(
            symbol,
            plan.side,
            plan.qty,
            price,
            mark,
            positions,
            prices,
            self.open_order_count(),
            now_ms=now,
            pending=pending,
            data_ts_ms=data_ts_ms,
        )

    def decide(
        self,
        symbol: str,
        target_qty: float,
        ref_price: float,
        mark: float,
        now: int,
        data_ts_ms: int | None = None,
        edge: float = math.nan,
    ) -> tuple[PlannedOrder | None, float | None, bool, str]:
        """Pure part of set_target: clamp the target into the limits' headroom (and to reduce-only on
        stale data), plan the rounded order, and ask the risk gate. Returns (plan, limit price, ok, why)."""
        market: MarketInfo = self.venue.markets[symbol]
        if not math.isfinite(target_qty):
            target_qty = 0.0
        expected = self.expected_position(symbol)
        exposure = self._exposure(symbol, ref_price)
        positions, prices, pending = exposure
        if abs(target_qty) > abs(expected) or target_qty * expected < 0:
            sign = 1.0 if target_qty > 0 else -1.0
            room = position_headroom(
                self.risk, symbol, sign, max(mark, ref_price), positions, prices, pending
            )
            if abs(target_qty) > room:
                target_qty = sign * room * (1 - 1e-9)
            if self.risk.is_stale_data(data_ts_ms, now):  # stale data: no new risk, only reduce
                target_qty = expected if target_qty * expected >= 0 else 0.0
        if (
            self.rebalance_band > 0
            and target_qty * expected > 0
            and abs(target_qty - expected) <= self.rebalance_band * abs(expected)
        ):
            return None, None, False, "within the no-trade band"
        cost = self.round_trip_cost()
        if math.isfinite(edge) and cost > 0 and target_qty * expected > 0 and abs(edge) < cost:
            # a same-side resize whose expected edge (return over the horizon) does not cover its
            # round trip (fees in and out) only pays fees: the cost-sized no-trade band
            return None, None, False, f"edge {abs(edge):.5f} < round-trip cost {cost:.5f}"
        plan, why = plan_order(market, expected, target_qty, ref_price)
        if plan is None:
            return None, None, False, why
        # post-only only where the order adds exposure (from flat or on the same side): a reduction
        # or a flip must not wait in a queue (risk first)
        if (
            self.entry == "post_only"
            and not plan.reduce_only
            and (abs(expected) < 1e-12 or (plan.side == "buy") == (expected > 0))
        ):
            plan.post_only = True
            price: float | None = self._passive_price(symbol, plan.side, ref_price)
        else:
            price = market.round_price(ref_price, plan.side) if self.order_type == "limit" else None
        ok, reason = self._risk_check(
            symbol, plan, price if price is not None else ref_price, mark, now, data_ts_ms, exposure
        )
        return plan, price, ok, reason

    def round_trip_cost(self) -> float:
        """Fees in and out as a fraction of notional: taker both ways, or maker in and taker out
        with post-only entries; 0 when the venue has no fee schedule (`fees` = (maker, taker))."""
        fees = getattr(self.venue, "fees", None)
        if not fees:
            return 0.0
        entry = float(fees[0]) if self.entry == "post_only" else float(fees[1])
        return entry + float(fees[1])

    async def _send(
        self,
        symbol: str,
        plan: PlannedOrder,
        price: float | None,
        parents: list[int],
        bypass_risk: bool = False,
    ) -> records.Order:
        self._seq += 1
        cid = make_client_id(self.run_id, symbol, parents[0] if parents else 0, self._seq)
        rec = self._order_record(symbol, cid, plan, price, parents)
        tracked = _Tracked(
            record=rec,
            symbol=symbol,
            side=plan.side,
            qty=plan.qty,
            post_only=plan.post_only,
            sent_ms=self._clock_ms(),
        )
        self._track(cid, tracked)  # tracked before sending: if the answer is lost it is still ours
        self.risk.record_order(self._clock_ms())
        self.orders_sent += 1
        try:
            st = await self.venue.place_order(
                symbol,
                plan.side,
                plan.qty,
                client_order_id=cid,
                order_type="limit" if price is not None else "market",
                price=price,
                reduce_only=plan.reduce_only,
                post_only=plan.post_only,
            )
        except asyncio.CancelledError:
            # the engine stopped mid-send: the request may have reached the venue; the order is
            # logged in doubt (orders are never left out of the log) and reconcile settles it
            rec.status, rec.error = "unknown", "cancelled while sending (shutdown)"
            self._needs_reconcile = True
            self.lineage.append(rec)
            raise
        except OrderRejected as exc:
            tracked.open = False
            rec.status, rec.error = "rejected", str(exc)
        except VenueError as exc:
            # Unknown outcome: keep it open-in-doubt; reconcile asks the venue by client id.
            rec.status, rec.error = "unknown", str(exc)
            self._needs_reconcile = True
            log.warning("order %s outcome unknown: %s", cid, exc)
        else:
            self._update(tracked, st)
            rec.status = "filled" if st.status == "closed" and st.filled >= plan.qty - 1e-12 else "accepted"
            rec.venue_order_id = st.venue_order_id
            if (
                plan.post_only
                and st.status in ("canceled", "cancelled", "expired", "rejected")
                and st.filled <= 0
            ):
                # a venue that cancels a crossing post-only on arrival (Bybit) instead of refusing it
                rec.status, rec.error = "rejected", f"post-only would take liquidity ({st.status} on arrival)"
        if plan.post_only:
            self.post_only_sent += 1
            if _would_cross(rec):
                self.post_only_would_cross += 1
        if parents and rec.status != "unknown" and _first_sighting(self._recent_decisions, parents[0]):
            self.decisions_traded += 1
        self.lineage.append(rec)
        return rec

    def _order_record(
        self,
        symbol: str,
        cid: str,
        plan: PlannedOrder,
        price: float | None,
        parents: list[int],
        status: str = "new",
        error: str = "",
    ) -> records.Order:
        return records.Order(
            id=new_id(),
            ts=self._clock_ms() * 1_000_000,
            parents=parents,
            symbol=symbol,
            client_order_id=cid,
            side=plan.side,
            order_type="limit" if price is not None else "market",
            qty=plan.qty,
            price=price or 0.0,
            reduce_only=plan.reduce_only,
            post_only=plan.post_only,
            status=status,
            error=error,
        )

    def _update(self, t: _Tracked, st: OrderState) -> None:
        if st.venue_order_id:
            t.venue_order_id = st.venue_order_id
            self._by_venue_id[st.venue_order_id] = t.record.client_order_id
        t.reported_filled = max(t.reported_filled, st.filled)
        # never reopened: a stream's NEW event may arrive after the REST answer said FILLED
        t.open = t.open and st.status not in FINAL
        self._retire_if_final(t)

    def _track(self, cid: str, t: _Tracked) -> None:
        self.orders[cid] = t
        self._active[t.symbol][cid] = t

    def _retire_if_final(self, t: _Tracked) -> None:
        """Forget an order that is final with every reported fill seen (nothing more can come)."""
        if t.open or t.record.status == "unknown" or t.fill_qty + 1e-12 < t.reported_filled:
            return
        cid = t.record.client_order_id
        if self.orders.get(cid) is t:
            del self.orders[cid]
            self._active[t.symbol].pop(cid, None)
        if t.venue_order_id:
            self._by_venue_id.pop(t.venue_order_id, None)

    async def _cancel(self, t: _Tracked) -> None:
        try:
            st = await self.venue.cancel_order(t.symbol, t.record.client_order_id, t.venue_order_id)
        except VenueError as exc:
            log.warning("cancel %s failed: %s", t.record.client_order_id, exc)
            return
        if st is None:  # not open at the venue any more: learn its final state
            st = await self.venue.fetch_order(t.symbol, t.record.client_order_id)
            if st is None:
                t.open = False
                self._retire_if_final(t)
                return
        self._update(t, st)
        t.open = False  # the venue confirmed the cancel (or that it is no longer open)
        self._retire_if_final(t)

    async def cancel_all(self) -> None:
        """Cancel every open order on our symbols: ours and any the venue shows."""
        for sym in self.symbols:
            for t in [t for t in self._active[sym].values() if t.open]:
                await self._cancel(t)
            for st in await self.venue.fetch_open_orders(sym):
                try:
                    await self.venue.cancel_order(sym, st.client_order_id, st.venue_order_id)
                except VenueError as exc:
                    log.warning("cancel %s failed: %s", st.client_order_id, exc)

    async def flatten(self, parents: list[int] | None = None) -> list[records.Order]:
        """Close every position the venue shows with reduce-only market orders (the kill switch uses
        this; it bypasses the risk gate, since it only removes risk)."""
        await self.cancel_all()
        out = []
        for _ in range(3):
            positions = await self.venue.fetch_positions()
            todo = [(s, p.qty) for s, p in positions.items() if s in self.books and abs(p.qty) > 0]
            if not todo:
                break
            for sym, qty in todo:
                market: MarketInfo = self.venue.markets[sym]
                q = abs(market.round_qty(qty))
                if q <= 0:
                    continue
                plan = PlannedOrder("sell" if qty > 0 else "buy", q, True)
                out.append(await self._send(sym, plan, None, list(parents or [])))
            await self.poll(check_risk=False)
        return out

    # --- fills, funding, equity -------------------------------------------------------------------
    async def poll(
        self, check_risk: bool = True, funding: bool | None = None, fills: bool | None = None
    ) -> None:
        """Take new fills (by REST unless a connected user-data stream delivers them, or when asked)
        and, every `funding_poll_s` or when asked, funding payments in; refresh marks, update
        equity (may trip the kill switch)."""
        now = self._clock_ms()
        if fills is None:
            fills = not (self.stream is not None and self.stream.connected)
        if funding is None:
            funding = now - self._funding_polled_ms >= self.funding_poll_s * 1000
        if funding:
            self._funding_polled_ms = now
            for fp in await self.venue.fetch_funding(self._funding_since):
                self.on_funding(fp)
        if fills:
            for sym in self.symbols:
                await self._poll_fills(sym)
        positions = await self.venue.fetch_positions()
        for sym, p in positions.items():
            if sym in self.books and p.mark_price > 0:
                self.books[sym].mark = p.mark_price
        await self.check_equity(check_risk)
        if self.entry_ttl_ms > 0:
            await self.expire_entries()
        if self._needs_reconcile:  # an order's outcome was unknown: ask the venue now
            self._needs_reconcile = False
            await self.reconcile()

    async def expire_entries(self) -> None:
        """Cancel resting post-only entries older than `entry_ttl_ms` (a symbol whose target is
        being set right now is left to set_target, which replaces its resting orders anyway)."""
        now = self._clock_ms()
        for sym in self.symbols:
            if self._locks[sym].locked():
                continue
            old = [
                t
                for t in self._active[sym].values()
                if t.open and t.post_only and now - t.sent_ms >= self.entry_ttl_ms
            ]
            if not old:
                continue
            async with self._locks[sym]:
                for t in old:
                    if t.open:
                        self.entries_expired += 1
                        await self._cancel(t)
                last = self._last_target.get(sym)
                if self.entry_replan and last is not None and not self.risk.halted and not self._killing:
                    self.entries_replanned += 1
                    target_qty, ref_price, _mark, parents, data_ts_ms, edge = last
                    # the mark is today's (in the book), not the decision's
                    await self._set_target(sym, target_qty, ref_price, None, parents, data_ts_ms, edge)

    async def _poll_fills(self, sym: str) -> None:
        got = await self.venue.fetch_fills(sym, self._fill_since[sym])
        for f in sorted(got, key=lambda f: (f.ts_ms, f.trade_id)):
            self.on_fill(f, check=False)

    async def check_equity(self, check_risk: bool = True) -> None:
        """Equity from our books at the latest marks; trips the kill switch when a limit is hit."""
        if self._adopting:
            return
        equity = self.starting_equity + self.net_pnl()
        reason = self.risk.on_equity(equity, self._clock_ms())
        if reason is not None and check_risk:
            await self.kill(reason)

    def on_fill(self, f: VenueFill, check: bool = True) -> None:
        """One fill from the venue (trade history poll, user-data stream or in-process venue);
        a fill already seen (same trade id) is ignored. The loss limits are checked at once."""
        if f.trade_id in self._seen_fills or f.symbol not in self.books:
            return
        self._seen_fills.add(f.trade_id)
        self._fill_since[f.symbol] = max(self._fill_since[f.symbol] or 0, f.ts_ms)
        self._fills_applied[f.symbol] += 1
        self._apply_fill(f)
        if check:
            self._check_limits_now()

    # --- user-data stream (kaizen.venue.userstream.UserDataHandler) -------------------------------
    def attach_stream(self, stream: Any) -> None:
        """Fills and order states now come from `stream` (its handler is this router)."""
        self.stream = stream

    def on_order(self, st: OrderState) -> None:
        """An order state pushed by the venue; orders not (or no longer) tracked are ignored."""
        t = self.orders.get(st.client_order_id)
        if t is None and st.venue_order_id:
            t = self.orders.get(self._by_venue_id.get(st.venue_order_id, ""))
        if t is not None:
            self._update(t, st)

    def on_account(self, update: Any) -> None:
        for p in update.positions:
            if p.symbol in self.books:
                self.venue_positions[p.symbol] = p.qty

    def on_resync(self) -> None:
        """The stream (re)connected: events may have been missed, so reconcile by REST (once at a
        time; a resync during a reconcile runs another after it)."""
        if not self._started:
            return
        if self._resync_task is not None and not self._resync_task.done():
            self._resync_again = True
            return
        self._resync_task = asyncio.get_running_loop().create_task(self._resync())

    async def _resync(self) -> None:
        while True:
            self._resync_again = False
            try:
                await self.reconcile()
            except Exception as exc:  # a venue error here is retried at the next resync or reconcile
                log.warning("resync reconcile failed: %s", exc)
            if not self._resync_again:
                return

    def _check_limits_now(self) -> None:
        """Loss limits on the latest fill or mark; a trip schedules the kill at once."""
        if not self.kill_on_events or not self._started or self._adopting or self.risk.halted:
            return
        reason = self.risk.on_equity(self.starting_equity + self.net_pnl(), self._clock_ms())
        if reason is not None and (self._kill_task is None or self._kill_task.done()):
            with contextlib.suppress(RuntimeError):  # no running loop: the next poll trips it
                self._kill_task = asyncio.get_running_loop().create_task(self.kill(reason))

    def on_funding(self, fp: VenueFunding) -> None:
        """One funding payment from the venue; seen ones (same id) and other symbols are ignored."""
        if fp.funding_id in self._seen_funding or fp.symbol not in self.books:
            return
        self._seen_funding.add(fp.funding_id)
        self._funding_since = max(self._funding_since or 0, fp.ts_ms)
        book = self.books[fp.symbol]
        book.funding += fp.amount
        notional = book.qty * book.mark
        self.lineage.append(
            records.FundingPayment(
                id=new_id(),
                ts=fp.ts_ms * 1_000_000,
                symbol=fp.symbol,
                rate=fp.amount / notional if notional else 0.0,
                position_qty=book.qty,
                mark_price=book.mark,
                amount=fp.amount,
            )
        )

    def _apply_fill(self, f: VenueFill) -> None:
        cid = f.client_order_id or self._by_venue_id.get(f.venue_order_id, "")
        t = self.orders.get(cid)
        book = self.books[f.symbol]
        realized = book.apply(f.side, f.qty, f.price, f.fee, f.maker)
        self.trades += 1
        if t is not None:
            d = t.record.parents[0] if t.record.parents else 0
            if d and _first_sighting(self._filled_decisions, d):
                self.decisions_filled += 1
            t.fill_qty += f.qty
            if t.fill_qty >= t.qty - 1e-12:
                t.open = False
            self._retire_if_final(t)
        else:
            self.lineage.append(
                records.Reconcile(
                    id=new_id(),
                    ts=f.ts_ms * 1_000_000,
                    symbol=f.symbol,
                    what="fill",
                    ours="unknown order",
                    venue=f"trade {f.trade_id} order {f.venue_order_id}",
                    action="applied to position",
                )
            )
        self.lineage.append(
            records.Fill(
                id=new_id(),
                ts=f.ts_ms * 1_000_000,
                parents=[t.record.id] if t else [],
                symbol=f.symbol,
                client_order_id=cid,
                trade_id=f.trade_id,
                side=f.side,
                qty=f.qty,
                price=f.price,
                fee=f.fee,
                fee_asset=f.fee_asset,
                maker=f.maker,
                realized_pnl=realized,
            )
        )

    def net_pnl(self) -> float:
        return sum(b.realized + b.unrealized() - b.fees - b.funding for b in self.books.values())

    def summary(self) -> dict[str, float]:
        realized = sum(b.realized for b in self.books.values())
        fees = sum(b.fees for b in self.books.values())
        maker_fees = sum(b.maker_fees for b in self.books.values())
        funding = sum(b.funding for b in self.books.values())
        per = 1.0 / self.decisions_traded if self.decisions_traded else 0.0
        return {
            "realized_pnl": realized,
            "unrealized_pnl": sum(b.unrealized() for b in self.books.values()),
            "fees": fees,
            "funding": funding,
            "net_pnl": self.net_pnl(),
            # the account's equity as our books see it (the risk limits' figure): after a restart
            # with a position the basis is the wallet, so the adopted unrealized PnL counts once
            "equity": self.starting_equity + self.net_pnl(),
            "trades": float(self.trades),
            "orders": float(self.orders_sent),
            "decisions_traded": float(self.decisions_traded),
            "decisions_filled": float(self.decisions_filled),
            # what trading costs per decision that traded: the churn figure the no-trade band cuts
            "fees_per_decision": fees * per,
            # the same split by liquidity: maker (post-only entries that filled) and taker
            "maker_fees_per_decision": maker_fees * per,
            "taker_fees_per_decision": (fees - maker_fees) * per,
            "maker_fees": maker_fees,
            "taker_fees": fees - maker_fees,
            "maker_fills": float(sum(b.maker_fills for b in self.books.values())),
            "post_only_orders": float(self.post_only_sent),
            "post_only_would_cross": float(self.post_only_would_cross),
            "post_only_fallbacks": float(self.post_only_fallbacks),
            "max_drawdown": self.risk.max_drawdown_seen,
        }

    # --- kill switch ------------------------------------------------------------------------------
    async def kill(self, reason: str) -> None:
        if self._killing:
            return
        self._killing = True
        if not self.risk.halted:
            self.risk.trip(reason)
        self.kill_reason = reason
        ev = records.RiskEvent(
            id=new_id(), ts=self._clock_ms() * 1_000_000, kind="kill_switch", detail=reason
        )
        self.lineage.append(ev)
        try:
            await self.flatten(parents=[ev.id])
        finally:
            self._killing = False

    # --- reconciliation ---------------------------------------------------------------------------
    async def reconcile(self) -> list[records.Reconcile]:
        """Compare with the venue: positions (after taking fills in by REST) and open orders. Each
        discrepancy becomes a Reconcile record; the venue's view is adopted."""
        self.reconciles += 1
        await self.poll(check_risk=False, funding=True, fills=True)
        ts = self._clock_ms() * 1_000_000
        out: list[records.Reconcile] = []
        # Orders in doubt or believed open: ask the venue by client id.
        for cid, t in list(self.orders.items()):
            if not t.open and t.record.status != "unknown":
                continue
            st = await self.venue.fetch_order(t.symbol, cid)
            if st is None:
                if t.record.status == "unknown":
                    out.append(
                        records.Reconcile(
                            id=new_id(),
                            ts=ts,
                            symbol=t.symbol,
                            what="open_order",
                            ours=cid,
                            venue="not found",
                            action="marked not placed",
                        )
                    )
                    t.record.status = "not_placed"
                t.open = False
                self._retire_if_final(t)
                continue
            was_open = t.open
            self._update(t, st)
            if t.record.status == "unknown" or was_open != t.open:
                out.append(
                    records.Reconcile(
                        id=new_id(),
                        ts=ts,
                        symbol=t.symbol,
                        what="open_order",
                        ours=cid,
                        venue=f"{st.status} filled={st.filled}",
                        action="adopted venue state",
                    )
                )
                if t.record.status == "unknown":
                    t.record.status = "accepted"
            self._retire_if_final(t)
        await self.poll(check_risk=False, fills=True)
        for sym in self.symbols:
            for st in await self.venue.fetch_open_orders(sym):
                if st.client_order_id in self.orders:
                    continue
                mine = belongs_to_run(st.client_order_id, self.run_id)
                if mine:  # sent by us but its answer was lost: track it
                    rec = records.Order(
                        id=new_id(),
                        ts=ts,
                        symbol=sym,
                        client_order_id=st.client_order_id,
                        side=st.side,
                        order_type=st.order_type,
                        qty=st.qty,
                        price=st.price,
                        reduce_only=st.reduce_only,
                        status="accepted",
                        venue_order_id=st.venue_order_id,
                    )
                    t = _Tracked(record=rec, symbol=sym, side=st.side, qty=st.qty)
                    self._track(st.client_order_id, t)
                    self._update(t, st)
                out.append(
                    records.Reconcile(
                        id=new_id(),
                        ts=ts,
                        symbol=sym,
                        what="open_order",
                        ours="none",
                        venue=f"{st.client_order_id} {st.side} {st.qty}@{st.price}",
                        action="adopted" if mine else "left alone (not this run's)",
                    )
                )
        out += await self._reconcile_positions(ts)
        for r in out:
            self.lineage.append(r)
        return out

    async def _reconcile_positions(self, ts: int) -> list[records.Reconcile]:
        """Positions, compared only where the comparison is exact: with every symbol's lock held (no
        order of ours can be sent), no order of ours open or in doubt on the symbol, and no fill
        arriving between the venue's snapshot and the REST fills taken after it (a fill that lands
        during the reconcile defers that symbol to the next one instead of being counted twice)."""
        out: list[records.Reconcile] = []
        async with contextlib.AsyncExitStack() as stack:
            for sym in self.symbols:
                await stack.enter_async_context(self._locks[sym])
            for sym in self.symbols:
                await self._poll_fills(sym)
            before = dict(self._fills_applied)
            positions = await self.venue.fetch_positions()
            for sym in self.symbols:
                await self._poll_fills(sym)
            for sym in self.symbols:
                p = positions.get(sym)
                book = self.books[sym]
                if p and p.mark_price > 0:
                    book.mark = p.mark_price
                busy = any(t.open or t.record.status == "unknown" for t in self._active[sym].values())
                if busy or self._fills_applied[sym] != before[sym]:
                    self.reconcile_skipped += 1
                    continue
                vq = p.qty if p else 0.0
                lot = self.venue.markets[sym].lot_size
                if abs(vq - book.qty) > lot / 2:
                    self.mismatches += 1
                    out.append(
                        records.Reconcile(
                            id=new_id(),
                            ts=ts,
                            symbol=sym,
                            what="position",
                            ours=f"{book.qty:.12g}",
                            venue=f"{vq:.12g}",
                            action="adopted venue position",
                        )
                    )
                    book.qty = vq
                    book.avg = p.entry_price if p and vq else 0.0
        return out


def _first_sighting(seen: dict[int, None], decision: int, keep: int = 256) -> bool:
    """Is this the first time `decision` is seen among the last `keep` (an insertion-ordered dict
    used as a bounded set: each decision is counted once without the set growing forever)?"""
    if decision in seen:
        return False
    seen[decision] = None
    if len(seen) > keep:
        del seen[next(iter(seen))]
    return True


def _would_cross(rec: records.Order) -> bool:
    """Was this post-only order refused because it would have taken liquidity? (Binance -5022,
    "Post Only order will be rejected"; Bybit cancels it on arrival, see _send.)"""
    if rec.status != "rejected" or not rec.post_only:
        return False
    err = rec.error.lower()
    return "-5022" in err or "post only" in err or "post-only" in err or "immediately" in err
