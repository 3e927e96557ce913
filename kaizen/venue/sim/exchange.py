"""The simulated venue's core: orders, matching, account, fees, funding and liquidation.

Everything here runs on the event loop thread, synchronously, so no locking is needed.

Matching (per symbol, price-time priority among our resting orders):
- market orders and the marketable part of limit orders walk the synthetic ladder level by level
  (one fill per level, taker fee); the consumed quantity is gone from the book until it refills.
- resting limit orders fill at their own price (maker fee) once the market trades through them:
  a buy when the best ask falls to its price or a background trade prints below it (sells:
  mirror). Buys are served highest price first, then oldest; sells lowest price first.
- GTX (post-only) that would take liquidity is rejected (-5022); IOC expires its rest; FOK fills
  fully or expires; reduce-only never increases a position (trimmed to it, -2022 if it would only
  increase it).

Account (one-way mode, USDT): wallet balance includes isolated margins. Fee = price x qty x rate.
Realized PnL on the closed quantity at the average entry price. Funding at each 8 h boundary of the
sim clock: payment = -position_qty x mark x rate (longs pay a positive rate).

Margin and liquidation (brackets simplified, see spec.py): the bracket is chosen by the position's
notional at its entry price. Maintenance margin MM = |qty| x mark x mmr - cum. A position is
liquidated when its margin balance (isolated: its isolated margin + unrealized PnL; cross: wallet
minus isolated margins plus all cross unrealized PnL) falls to MM. It is closed at Binance's
liquidation price
    LP = (WB - TMM1 + UPNL1 + cum - side x Q x EP) / (Q x mmr - side x Q)
(WB: isolated margin, or cross wallet; TMM1/UPNL1: other cross positions at the current mark),
rounded to the tick, as a taker fill flagged `liquidation`; its open orders are cancelled.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from kaizen.venue.sim.market import SymbolMarket, Trade, funding_rate, next_funding_ms
from kaizen.venue.sim.spec import PERCENT_DOWN, PERCENT_UP, SymbolSpec


class SimError(Exception):
    """A Binance error answer: {"code": code, "msg": msg} with an HTTP status."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.status = status


@dataclass
class Order:
    order_id: int
    client_id: str
    symbol: str
    side: str  # BUY / SELL
    type: str  # LIMIT / MARKET
    tif: str  # GTC / IOC / FOK / GTX
    price_ticks: int
    lots: int
    reduce_only: bool
    time_ms: int
    filled_lots: int = 0
    cum_quote: float = 0.0
    cum_fee: float = 0.0
    status: str = "NEW"
    reject_reason: str = ""  # why a post-only order was cancelled on arrival (Bybit's rejectReason)
    update_ms: int = 0
    prio: int = 0  # time priority: creation order, renewed by an amend

    def __post_init__(self) -> None:
        self.prio = self.prio or self.order_id

    @property
    def remaining(self) -> int:
        return self.lots - self.filled_lots

    @property
    def is_open(self) -> bool:
        return self.status in ("NEW", "PARTIALLY_FILLED")


@dataclass
class Position:
    symbol: str
    lots: int = 0  # signed
    entry: float = 0.0
    leverage: int = 20
    isolated: bool = False
    iso_margin: float = 0.0
    update_ms: int = 0


@dataclass
class Account:
    wallet: float
    positions: dict[str, Position] = field(default_factory=dict)


class Exchange:
    def __init__(
        self,
        markets: dict[str, SymbolMarket],
        clock: Any,
        starting_balance: float,
        maker_fee: float,
        taker_fee: float,
        default_leverage: int = 20,
    ) -> None:
        self.markets = markets
        self.clock = clock  # () -> sim ms
        self.maker_fee = maker_fee
        self.taker_fee = taker_fee
        self.fee_tier = 0
        self.account = Account(starting_balance)
        for s in markets:
            self.account.positions[s] = Position(s, leverage=default_leverage)
        self.orders: dict[int, Order] = {}
        self.by_client: dict[str, Order] = {}
        self.open_by_symbol: dict[str, list[Order]] = {s: [] for s in markets}
        self._order_ids = itertools.count(3_000_000_001)
        self._trade_ids = itertools.count(700_000_001)
        self._tran_ids = itertools.count(9_000_000_001)
        self.orders_received: list[dict[str, Any]] = []
        self.trade_log: list[dict[str, Any]] = []
        self.funding_log: list[dict[str, Any]] = []
        self.income: list[dict[str, Any]] = []
        self.funding_history: dict[str, list[dict[str, Any]]] = {s: [] for s in markets}
        self.next_funding = next_funding_ms(clock())
        self.partial_fill_ratio = 0.0  # fault: fill at most this fraction per match (0 = off)
        self.listeners: list[Any] = []  # callables(event: dict) for user-data events
        self.public_trades: list[tuple[str, Trade]] = []  # our fills, for the public trade streams

    # -- helpers ----------------------------------------------------------------------------
    def spec(self, symbol: str) -> SymbolSpec:
        m = self.markets.get(symbol)
        if m is None:
            raise SimError(-1121, "Invalid symbol.")
        return m.spec

    def _now(self) -> int:
        return int(self.clock())

    def upnl(self, p: Position) -> float:
        if p.lots == 0:
            return 0.0
        spec = self.markets[p.symbol].spec
        return (self.markets[p.symbol].mark - p.entry) * spec.qty_of(p.lots)

    def maint(self, p: Position, mark: float | None = None) -> tuple[float, float, float]:
        """(maintenance margin, mmr, cum) of a position at `mark`."""
        if p.lots == 0:
            return 0.0, 0.0, 0.0
        spec = self.markets[p.symbol].spec
        q = abs(spec.qty_of(p.lots))
        b = spec.bracket_for(q * p.entry)
        m = self.markets[p.symbol].mark if mark is None else mark
        return q * m * b.mmr - b.cum, b.mmr, b.cum

    def initial_margin(self, p: Position) -> float:
        if p.lots == 0:
            return 0.0
        spec = self.markets[p.symbol].spec
        return abs(spec.qty_of(p.lots)) * self.markets[p.symbol].mark / p.leverage

    def open_order_margin(self) -> float:
        total = 0.0
        for sym, lst in self.open_by_symbol.items():
            spec = self.markets[sym].spec
            lev = self.account.positions[sym].leverage
            for o in lst:
                if not o.reduce_only:
                    total += spec.qty_of(o.remaining) * spec.price_of(o.price_ticks) / lev
        return total

    def cross_wallet(self) -> float:
        return self.account.wallet - sum(p.iso_margin for p in self.account.positions.values() if p.isolated)

    def available(self) -> float:
        acct = self.account
        cross_upnl = sum(self.upnl(p) for p in acct.positions.values() if not p.isolated)
        cross_im = sum(self.initial_margin(p) for p in acct.positions.values() if not p.isolated)
        return self.cross_wallet() + cross_upnl - cross_im - self.open_order_margin()

    def liquidation_price(self, p: Position) -> float:
        if p.lots == 0:
            return 0.0
        spec = self.markets[p.symbol].spec
        q = abs(spec.qty_of(p.lots))
        side = 1.0 if p.lots > 0 else -1.0
        _, mmr, cum = self.maint(p)
        if p.isolated:
            wb, tmm, up = p.iso_margin, 0.0, 0.0
        else:
            others = [o for o in self.account.positions.values() if not o.isolated and o is not p]
            wb = self.cross_wallet()
            tmm = sum(self.maint(o)[0] for o in others)
            up = sum(self.upnl(o) for o in others)
        denom = q * mmr - side * q
        lp = (wb - tmm + up + cum - side * q * p.entry) / denom
        return max(0.0, lp)

    # -- orders -----------------------------------------------------------------------------
    def new_order(self, params: dict[str, str], post_only_rejects: bool = True) -> dict[str, Any]:
        """post_only_rejects: a post-only order that would take liquidity is refused (Binance, -5022);
        False: it is accepted and cancelled at once (Bybit, rejectReason EC_PostOnlyWillTakeLiquidity)."""
        now = self._now()
        record = {"time": now, "params": dict(params), "accepted": False, "error": None}
        self.orders_received.append(record)
        try:
            order = self._new_order(params, now, post_only_rejects)
        except SimError as exc:
            record["error"] = {"code": exc.code, "msg": exc.msg}
            raise
        record["accepted"] = True
        record["orderId"] = order.order_id
        return self.order_json(order)

    def record_refused(self, params: dict[str, str], code: int, msg: str) -> None:
        """Record an order request the transport refused (fault injection): it was received, not accepted."""
        self.orders_received.append(
            {
                "time": self._now(),
                "params": dict(params),
                "accepted": False,
                "error": {"code": code, "msg": msg},
            }
        )

    def reject(self, params: dict[str, str], code: int, msg: str) -> None:
        """Record a refused order request and raise its error."""
        self.record_refused(params, code, msg)
        raise SimError(code, msg)

    def _new_order(self, params: dict[str, str], now: int, post_only_rejects: bool = True) -> Order:
        symbol = params.get("symbol", "")
        spec = self.spec(symbol)
        mkt = self.markets[symbol]
        side = params.get("side", "").upper()
        if side not in ("BUY", "SELL"):
            raise SimError(-1117, "Invalid side.")
        otype = params.get("type", "").upper()
        if otype not in ("LIMIT", "MARKET"):
            raise SimError(-1116, "Invalid orderType.")
        ps = params.get("positionSide", "BOTH").upper()
        if ps != "BOTH":
            raise SimError(-4061, "Order's position side does not match user's setting.")
        client_id = params.get("newClientOrderId") or f"sim-{next(self._order_ids)}"
        if len(client_id) > 36:
            raise SimError(-1100, "Illegal characters found in parameter 'newClientOrderId'.")
        if client_id in self.by_client:
            raise SimError(-4116, "ClientOrderId is duplicated.")
        lots = _grid_param(params, "quantity", spec.to_lots)
        if lots <= 0:
            raise SimError(-4003, "Quantity less than or equal to zero.")
        max_lots = spec.to_lots(spec.market_max_qty if otype == "MARKET" else spec.max_qty) or 0
        if lots > max_lots:
            raise SimError(-4005, "Quantity greater than max quantity.")
        reduce_only = params.get("reduceOnly", "false").lower() == "true"
        tif = params.get("timeInForce", "GTC" if otype == "LIMIT" else "GTC").upper()
        if tif not in ("GTC", "IOC", "FOK", "GTX"):
            raise SimError(-1115, "Invalid timeInForce.")
        price_ticks = 0
        if otype == "LIMIT":
            if "timeInForce" not in params:
                raise SimError(
                    -1102, "Mandatory parameter 'timeInForce' was not sent, was empty/null, or malformed."
                )
            t = _grid_param(params, "price", spec.to_ticks)
            if t <= 0:
                raise SimError(-4001, "Price less than 0.")
            price_ticks = t
            mark = mkt.mark
            px = spec.price_of(t)
            if px > mark * PERCENT_UP:
                raise SimError(
                    -4016,
                    f"Limit price can't be higher than {spec.fmt_price(int(mark * PERCENT_UP / spec.tick_f))}.",
                )
            if px < mark * PERCENT_DOWN:
                raise SimError(
                    -4024,
                    f"Limit price can't be lower than {spec.fmt_price(int(math.ceil(mark * PERCENT_DOWN / spec.tick_f)))}.",
                )
        ref_price = spec.price_of(price_ticks) if otype == "LIMIT" else mkt.mark
        pos = self.account.positions[symbol]
        signed = lots if side == "BUY" else -lots
        if reduce_only:
            if pos.lots == 0 or (pos.lots > 0) == (signed > 0):
                raise SimError(-2022, "ReduceOnly Order is rejected.")
        elif spec.qty_of(lots) * ref_price < spec.min_notional:
            raise SimError(
                -4164,
                f"Order's notional must be no smaller than {spec.min_notional:g} (unless you choose reduce only).",
            )
        if not reduce_only:
            if pos.lots == 0 or (pos.lots > 0) == (signed > 0):
                inc = lots
            else:
                inc = max(0, lots - abs(pos.lots))
            need = spec.qty_of(inc) * ref_price / pos.leverage
            if inc > 0 and need > self.available() + 1e-9:
                raise SimError(-2019, "Margin is insufficient.")
            cap = max((b.notional_cap for b in spec.brackets if b.max_leverage >= pos.leverage), default=0.0)
            if inc > 0 and abs(spec.qty_of(pos.lots + signed)) * ref_price > cap:
                raise SimError(-2027, "Exceeded the maximum allowable position at current leverage.")
        would_take = False
        if tif == "GTX" and otype == "LIMIT":
            would_take = price_ticks >= mkt.best_ask() if side == "BUY" else price_ticks <= mkt.best_bid()
            if would_take and post_only_rejects:
                raise SimError(
                    -5022,
                    "Due to the order could not be executed as maker, the Post Only order will be rejected.",
                )
        order = Order(
            next(self._order_ids),
            client_id,
            symbol,
            side,
            otype,
            tif,
            price_ticks,
            lots,
            reduce_only,
            now,
            update_ms=now,
        )
        self.orders[order.order_id] = order
        self.by_client[client_id] = order
        self._emit_order(order, "NEW")
        if would_take:  # accepted, then cancelled without trading
            order.reject_reason = "EC_PostOnlyWillTakeLiquidity"
            self._cancel(order)
            return order
        self._take(order, mkt)
        if order.is_open:
            if otype == "MARKET" or tif in ("IOC", "FOK"):
                order.status = "EXPIRED"
                self._emit_order(order, "EXPIRED")
            else:
                self.open_by_symbol[symbol].append(order)
        return order

    def _take(self, order: Order, mkt: SymbolMarket) -> None:
        """Walk the synthetic ladder with the marketable part of an order (taker fills)."""
        buy = order.side == "BUY"
        book = mkt.asks if buy else mkt.bids
        want = order.remaining
        if self.partial_fill_ratio > 0:
            want = max(1, int(want * self.partial_fill_ratio))
        want = self._trim_reduce_only(order, want)
        if order.tif == "FOK":
            avail = sum(
                q
                for p, q in book.items()
                if order.type == "MARKET" or (p <= order.price_ticks if buy else p >= order.price_ticks)
            )
            if avail < want or self.partial_fill_ratio > 0:
                return
        levels = sorted(book, reverse=not buy)
        last_price = levels[-1] if levels else (mkt.best_ask() if buy else mkt.best_bid())
        for p in levels:
            if want <= 0:
                break
            if order.type == "LIMIT" and (p > order.price_ticks if buy else p < order.price_ticks):
                break
            take = min(want, book[p])
            book[p] -= take
            if book[p] <= 0:
                del book[p]
            want -= take
            self._fill(order, p, take, maker=False)
        if want > 0 and order.type == "MARKET" and self.partial_fill_ratio <= 0:
            # The ladder ran dry: the rest fills at the last level (documented simplification).
            self._fill(order, last_price, want, maker=False)

    def _trim_reduce_only(self, order: Order, want: int) -> int:
        if not order.reduce_only:
            return want
        pos = self.account.positions[order.symbol]
        if pos.lots == 0 or (pos.lots > 0) == (order.side == "BUY"):
            return 0
        return min(want, abs(pos.lots))

    def match_resting(self, mkt: SymbolMarket, trades: list[Trade]) -> None:
        """Fill our resting limit orders that the market traded through (maker fills at the order's
        price). The liquidity that can hit them is the synthetic ladder on the other side at prices
        through the order (consumed as it fills) plus background trades printed through it; it is
        handed out in price-time priority."""
        sym = mkt.spec.symbol
        lst = self.open_by_symbol[sym]
        if not lst:
            return
        for side in ("BUY", "SELL"):
            buy = side == "BUY"
            orders = sorted(
                (o for o in lst if o.side == side and o.is_open),
                key=lambda o: (-o.price_ticks if buy else o.price_ticks, o.prio),
            )
            if not orders:
                continue
            book = mkt.asks if buy else mkt.bids
            pool = [[t.price_ticks, t.lots] for t in trades]
            for o in orders:
                want = o.remaining
                if self.partial_fill_ratio > 0:
                    want = max(1, min(want, int(math.ceil(o.lots * self.partial_fill_ratio))))
                if o.reduce_only:
                    want = self._trim_reduce_only(o, want)
                    if want <= 0:
                        self._cancel(o, "EXPIRED")
                        continue
                got = 0
                levels = [p for p in book if (p <= o.price_ticks if buy else p >= o.price_ticks)]
                for p in sorted(levels, reverse=not buy):
                    if got >= want:
                        break
                    take = min(want - got, book[p])
                    book[p] -= take
                    if book[p] <= 0:
                        del book[p]
                    got += take
                for row in pool:
                    if got >= want:
                        break
                    if row[1] > 0 and (row[0] < o.price_ticks if buy else row[0] > o.price_ticks):
                        take = min(want - got, row[1])
                        row[1] -= take
                        got += take
                if got > 0:
                    self._fill(o, o.price_ticks, got, maker=True)
        self.open_by_symbol[sym] = [o for o in lst if o.is_open]

    def resting_levels(self, symbol: str) -> tuple[dict[int, int], dict[int, int]]:
        """Our open limit orders aggregated by price (they are part of the public book)."""
        bids: dict[int, int] = {}
        asks: dict[int, int] = {}
        for o in self.open_by_symbol[symbol]:
            side = bids if o.side == "BUY" else asks
            side[o.price_ticks] = side.get(o.price_ticks, 0) + o.remaining
        return bids, asks

    def amend(self, params: dict[str, str]) -> dict[str, Any]:
        """PUT /fapi/v1/order: new price and/or quantity of an open LIMIT order. The order keeps its
        id and loses its time priority; if the new price is marketable it takes at once."""
        symbol = params.get("symbol", "")
        spec = self.spec(symbol)
        o = self._find(
            symbol, params.get("orderId"), params.get("origClientOrderId"), -2013, "Order does not exist."
        )
        if not o.is_open:
            raise SimError(-2013, "Order does not exist.")
        if o.type != "LIMIT":
            raise SimError(-4190, "Only limit orders can be modified.")
        if params.get("side", o.side).upper() != o.side:
            raise SimError(-1117, "Invalid side.")
        lots = spec.to_lots(params.get("quantity", spec.fmt_qty(o.lots)))
        ticks = spec.to_ticks(params.get("price", spec.fmt_price(o.price_ticks)))
        if lots is None or ticks is None:
            raise SimError(-1111, "Precision is over the maximum defined for this asset.")
        if lots <= o.filled_lots:
            raise SimError(-4003, "Quantity less than or equal to zero.")
        if lots == o.lots and ticks == o.price_ticks:
            raise SimError(-5027, "No need to modify the order.")
        mkt = self.markets[symbol]
        px = spec.price_of(ticks)
        if px > mkt.mark * PERCENT_UP or px < mkt.mark * PERCENT_DOWN:
            raise SimError(-4016 if px > mkt.mark else -4024, "Limit price out of the allowed band.")
        crosses = ticks >= mkt.best_ask() if o.side == "BUY" else ticks <= mkt.best_bid()
        if crosses and o.tif == "GTX":
            raise SimError(
                -5022,
                "Due to the order could not be executed as maker, the Post Only order will be rejected.",
            )
        o.lots, o.price_ticks = lots, ticks
        o.prio = next(self._order_ids)
        o.update_ms = self._now()
        self._emit_order(o, "AMENDMENT")
        if crosses:
            self._take(o, mkt)
            if not o.is_open:
                self.open_by_symbol[symbol] = [x for x in self.open_by_symbol[symbol] if x.is_open]
        return self.order_json(o)

    def cancel(self, symbol: str, order_id: str | None, client_id: str | None) -> dict[str, Any]:
        self.spec(symbol)
        o = self._find(symbol, order_id, client_id, -2011, "Unknown order sent.")
        if not o.is_open:
            raise SimError(-2011, "Unknown order sent.")
        self._cancel(o)
        return self.order_json(o)

    def _cancel(self, o: Order, status: str = "CANCELED") -> None:
        o.status = status
        o.update_ms = self._now()
        lst = self.open_by_symbol[o.symbol]
        if o in lst:
            lst.remove(o)
        self._emit_order(o, status)

    def cancel_all(self, symbol: str) -> None:
        self.spec(symbol)
        for o in list(self.open_by_symbol[symbol]):
            self._cancel(o)

    def query(self, symbol: str, order_id: str | None, client_id: str | None) -> dict[str, Any]:
        self.spec(symbol)
        return self.order_json(self._find(symbol, order_id, client_id, -2013, "Order does not exist."))

    def _find(self, symbol: str, order_id: str | None, client_id: str | None, code: int, msg: str) -> Order:
        o = None
        if order_id:
            try:
                o = self.orders.get(int(order_id))
            except ValueError:
                raise SimError(
                    -1102, "Mandatory parameter 'orderId' was not sent, was empty/null, or malformed."
                ) from None
        elif client_id:
            o = self.by_client.get(client_id)
        else:
            raise SimError(-1102, "Either orderId or origClientOrderId must be sent.")
        if o is None or o.symbol != symbol:
            raise SimError(code, msg)
        return o

    # -- fills and account ------------------------------------------------------------------
    def _fill(
        self,
        order: Order | None,
        price_ticks: int,
        lots: int,
        maker: bool,
        symbol: str = "",
        side: str = "",
        liquidation: bool = False,
    ) -> None:
        if lots <= 0:
            return
        now = self._now()
        symbol = order.symbol if order else symbol
        side = order.side if order else side
        spec = self.markets[symbol].spec
        price = spec.price_of(price_ticks)
        qty = spec.qty_of(lots)
        fee = price * qty * (self.maker_fee if maker else self.taker_fee)
        pos = self.account.positions[symbol]
        signed = lots if side == "BUY" else -lots
        old = pos.lots
        realized = 0.0
        if old == 0 or (old > 0) == (signed > 0):
            tot = abs(old) + lots
            pos.entry = (abs(old) * pos.entry + lots * price) / tot
            if pos.isolated:
                pos.iso_margin += qty * price / pos.leverage
        else:
            closing = min(abs(old), lots)
            realized = (price - pos.entry) * spec.qty_of(closing) * (1 if old > 0 else -1)
            if pos.isolated:
                released = pos.iso_margin * closing / abs(old)
                pos.iso_margin -= released
            if lots > closing:
                pos.entry = price
                if pos.isolated:
                    pos.iso_margin += spec.qty_of(lots - closing) * price / pos.leverage
        pos.lots = old + signed
        if pos.lots == 0:
            pos.entry = 0.0
            pos.iso_margin = 0.0
        pos.update_ms = now
        self.account.wallet += realized - fee
        trade_id = next(self._trade_ids)
        if order is not None:
            order.filled_lots += lots
            order.cum_quote += price * qty
            order.cum_fee += fee
            order.status = "FILLED" if order.remaining == 0 else "PARTIALLY_FILLED"
            order.update_ms = now
        entry = {
            "id": trade_id,
            "orderId": order.order_id if order else 0,
            "clientOrderId": order.client_id if order else "",
            "symbol": symbol,
            "side": side,
            "price": price,
            "qty": qty,
            "price_str": spec.fmt_price(price_ticks),
            "qty_str": spec.fmt_qty(lots),
            "quoteQty": price * qty,
            "commission": fee,
            "commissionAsset": "USDT",
            "realizedPnl": realized,
            "maker": maker,
            "time": now,
            "liquidation": liquidation,
        }
        self.trade_log.append(entry)
        if not liquidation:
            mkt = self.markets[symbol]
            mkt.trade_seq += 1
            mkt.last_trade_ticks = price_ticks
            # the aggressor is us when we take; the other side when our resting order is hit
            buyer_maker = (side == "BUY") == maker
            self.public_trades.append((symbol, Trade(mkt.trade_seq, price_ticks, lots, buyer_maker, now)))
        if realized != 0.0:
            self._income(symbol, "REALIZED_PNL", realized, now, trade_id)
        if fee != 0.0:
            self._income(symbol, "COMMISSION", -fee, now, trade_id)
        if order is not None:
            self._emit_order(order, "TRADE", entry)
        self._emit_account("ORDER", symbol)

    def _income(self, symbol: str, kind: str, amount: float, now: int, trade_id: int | str = "") -> None:
        self.income.append(
            {
                "symbol": symbol,
                "incomeType": kind,
                "income": amount,
                "asset": "USDT",
                "time": now,
                "info": kind,
                "tranId": next(self._tran_ids),
                "tradeId": str(trade_id),
            }
        )

    def settle_funding(self, now: int) -> None:
        """Settle every funding boundary the sim clock has crossed."""
        while now >= self.next_funding:
            t = self.next_funding
            for sym, mkt in self.markets.items():
                avg = mkt.prem_sum / mkt.prem_time if mkt.prem_time > 0 else mkt.current_premium()
                recorded = mkt.replay.funding_rate(t) if mkt.replay is not None else None
                rate = recorded if recorded is not None else funding_rate(avg)
                mkt.prem_sum = mkt.prem_time = 0.0
                self.settle_symbol_funding(sym, t, rate, mkt.mark)
            self.next_funding = t + 8 * 3_600_000

    def settle_symbol_funding(self, sym: str, t: int, rate: float, mark: float) -> None:
        """One funding settlement of `sym` at time t: recorded, and paid on our position at `mark`
        (payment = -qty x mark x rate: longs pay a positive rate). The one funding routine of the
        simulator and the backtest venue."""
        self.funding_history[sym].append(
            {"symbol": sym, "fundingTime": t, "fundingRate": rate, "markPrice": mark}
        )
        pos = self.account.positions[sym]
        if pos.lots == 0:
            return
        qty = self.markets[sym].spec.qty_of(pos.lots)
        payment = -qty * mark * rate
        self.account.wallet += payment
        if pos.isolated:
            pos.iso_margin += payment
        self.funding_log.append(
            {"symbol": sym, "time": t, "rate": rate, "mark": mark, "qty": qty, "payment": payment}
        )
        self._income(sym, "FUNDING_FEE", payment, t)
        self._emit_account("FUNDING_FEE", sym)

    def fill_resting_through(self, symbol: str, low_ticks: int, high_ticks: int) -> None:
        """Bar-range matching (the backtest's fill model for resting limits): a resting buy fills in
        full at its price, as maker, when the range traded at least one tick below it (sells: above);
        touching the price is not enough, since the queue ahead of us may not have cleared."""
        lst = self.open_by_symbol[symbol]
        if not lst:
            return
        for o in sorted(lst, key=lambda o: o.prio):
            if not o.is_open:
                continue
            through = low_ticks <= o.price_ticks - 1 if o.side == "BUY" else high_ticks >= o.price_ticks + 1
            if not through:
                continue
            want = self._trim_reduce_only(o, o.remaining)
            if want <= 0:
                self._cancel(o, "EXPIRED")
                continue
            self._fill(o, o.price_ticks, want, maker=True)
            if o.is_open and o.reduce_only:
                self._cancel(o, "EXPIRED")
        self.open_by_symbol[symbol] = [o for o in lst if o.is_open]

    def check_liquidations(self) -> None:
        acct = self.account
        for p in acct.positions.values():
            if p.isolated and p.lots != 0:
                mm = self.maint(p)[0]
                if p.iso_margin + self.upnl(p) <= mm:
                    self._liquidate(p)
        cross = [p for p in acct.positions.values() if not p.isolated and p.lots != 0]
        while cross:
            mb = self.cross_wallet() + sum(self.upnl(p) for p in cross)
            if mb > sum(self.maint(p)[0] for p in cross):
                break
            worst = max(cross, key=lambda p: self.maint(p)[0])
            self._liquidate(worst)
            cross = [p for p in cross if p.lots != 0]

    def _liquidate(self, p: Position) -> None:
        spec = self.markets[p.symbol].spec
        lp = self.liquidation_price(p)
        ticks = max(1, int(round(lp / spec.tick_f)))
        for o in list(self.open_by_symbol[p.symbol]):
            self._cancel(o)
        side = "SELL" if p.lots > 0 else "BUY"
        now = self._now()
        order = Order(
            next(self._order_ids),
            f"autoclose-{now}",
            p.symbol,
            side,
            "MARKET",
            "IOC",
            ticks,
            abs(p.lots),
            True,
            now,
            update_ms=now,
        )
        self.orders[order.order_id] = order
        self.by_client[order.client_id] = order
        self._fill(order, ticks, abs(p.lots), maker=False, liquidation=True)
        self.trade_log[-1]["liquidation"] = True

    def set_leverage(self, symbol: str, leverage: int) -> dict[str, Any]:
        spec = self.spec(symbol)
        if not 1 <= leverage <= spec.brackets[0].max_leverage:
            raise SimError(-4028, f"Leverage {leverage} is not valid")
        p = self.account.positions[symbol]
        p.leverage = leverage
        cap = next((b.notional_cap for b in spec.brackets if b.max_leverage >= leverage), 0.0)
        return {
            "leverage": leverage,
            "maxNotionalValue": f"{cap:.0f}" if cap != math.inf else "INF",
            "symbol": symbol,
        }

    def position_margin(self, symbol: str, amount: str, kind: str) -> dict[str, Any]:
        """POST /fapi/v1/positionMargin: add (type 1) or remove (type 2) isolated margin."""
        self.spec(symbol)
        p = self.account.positions[symbol]
        try:
            amt = float(amount)
        except ValueError:
            raise SimError(
                -1102, "Mandatory parameter 'amount' was not sent, was empty/null, or malformed."
            ) from None
        if kind not in ("1", "2") or not amt > 0:
            raise SimError(-1102, "Mandatory parameter 'type' was not sent, was empty/null, or malformed.")
        if not p.isolated or p.lots == 0:
            raise SimError(-4051, "Isolated balance insufficient (no isolated position on this symbol).")
        if kind == "1":
            if amt > self.available():
                raise SimError(-4050, "Cross balance insufficient.")
            p.iso_margin += amt
        else:
            keep = self.initial_margin(p) - min(0.0, self.upnl(p))
            if p.iso_margin - amt < keep:
                raise SimError(-4051, "Isolated balance insufficient.")
            p.iso_margin -= amt
        self.check_liquidations()
        return {"amount": amt, "code": 200, "msg": "Successfully modify position margin.", "type": int(kind)}

    def set_margin_type(self, symbol: str, margin_type: str) -> dict[str, Any]:
        self.spec(symbol)
        mt = margin_type.upper()
        if mt not in ("ISOLATED", "CROSSED"):
            raise SimError(-4044, "The marginType is not valid.")
        p = self.account.positions[symbol]
        want = mt == "ISOLATED"
        if p.isolated == want:
            raise SimError(-4046, "No need to change margin type.")
        if p.lots != 0:
            raise SimError(-4048, "Margin type cannot be changed if there exists position.")
        if self.open_by_symbol[symbol]:
            raise SimError(-4047, "Margin type cannot be changed if there exists open orders.")
        p.isolated = want
        return {"code": 200, "msg": "success"}

    # -- JSON views -------------------------------------------------------------------------
    def order_json(self, o: Order) -> dict[str, Any]:
        spec = self.markets[o.symbol].spec
        avg = o.cum_quote / spec.qty_of(o.filled_lots) if o.filled_lots else 0.0
        return {
            "orderId": o.order_id,
            "symbol": o.symbol,
            "status": o.status,
            "clientOrderId": o.client_id,
            "price": spec.fmt_price(o.price_ticks) if o.type == "LIMIT" else "0",
            "avgPrice": f"{avg:.{spec.price_precision + 3}f}" if o.filled_lots else "0",
            "origQty": spec.fmt_qty(o.lots),
            "executedQty": spec.fmt_qty(o.filled_lots),
            "cumQty": spec.fmt_qty(o.filled_lots),
            "cumQuote": f"{o.cum_quote:.8f}",
            "timeInForce": o.tif,
            "type": o.type,
            "reduceOnly": o.reduce_only,
            "closePosition": False,
            "side": o.side,
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": o.type,
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
            "time": o.time_ms,
            "updateTime": o.update_ms,
        }

    def position_json(self, p: Position, version: int = 2) -> dict[str, Any]:
        mkt = self.markets[p.symbol]
        spec = mkt.spec
        notional = spec.qty_of(p.lots) * mkt.mark
        mm = self.maint(p)[0]
        d = {
            "symbol": p.symbol,
            "positionAmt": spec.fmt_qty(p.lots),
            "entryPrice": f"{p.entry:.8f}",
            "breakEvenPrice": f"{p.entry:.8f}",
            "markPrice": f"{mkt.mark:.8f}",
            "unRealizedProfit": f"{self.upnl(p):.8f}",
            "liquidationPrice": f"{self.liquidation_price(p):.8f}",
            "leverage": str(p.leverage),
            "maxNotionalValue": "1000000",
            "marginType": "isolated" if p.isolated else "cross",
            "isolatedMargin": f"{p.iso_margin + self.upnl(p) if p.isolated and p.lots else 0.0:.8f}",
            "isAutoAddMargin": "false",
            "positionSide": "BOTH",
            "notional": f"{notional:.8f}",
            "isolatedWallet": f"{p.iso_margin:.8f}",
            "updateTime": p.update_ms,
        }
        if version >= 3:
            d.update(
                {
                    "initialMargin": f"{self.initial_margin(p):.8f}",
                    "maintMargin": f"{mm:.8f}",
                    "positionInitialMargin": f"{self.initial_margin(p):.8f}",
                    "openOrderInitialMargin": "0",
                    "adl": 0,
                    "bidNotional": "0",
                    "askNotional": "0",
                    "marginAsset": "USDT",
                }
            )
        return d

    def account_json(self, version: int = 2) -> dict[str, Any]:
        acct = self.account
        positions = acct.positions.values()
        upnl = sum(self.upnl(p) for p in positions)
        im = sum(self.initial_margin(p) for p in positions)
        mm = sum(self.maint(p)[0] for p in positions)
        oom = self.open_order_margin()
        avail = self.available()
        f = "{:.8f}".format
        asset = {
            "asset": "USDT",
            "walletBalance": f(acct.wallet),
            "unrealizedProfit": f(upnl),
            "marginBalance": f(acct.wallet + upnl),
            "maintMargin": f(mm),
            "initialMargin": f(im + oom),
            "positionInitialMargin": f(im),
            "openOrderInitialMargin": f(oom),
            "crossWalletBalance": f(self.cross_wallet()),
            "crossUnPnl": f(sum(self.upnl(p) for p in positions if not p.isolated)),
            "availableBalance": f(avail),
            "maxWithdrawAmount": f(max(0.0, avail)),
            "marginAvailable": True,
            "updateTime": self._now(),
        }
        pos = []
        for p in positions:
            spec = self.markets[p.symbol].spec
            pos.append(
                {
                    "symbol": p.symbol,
                    "initialMargin": f(self.initial_margin(p)),
                    "maintMargin": f(self.maint(p)[0]),
                    "unrealizedProfit": f(self.upnl(p)),
                    "positionInitialMargin": f(self.initial_margin(p)),
                    "openOrderInitialMargin": "0",
                    "leverage": str(p.leverage),
                    "isolated": p.isolated,
                    "entryPrice": f(p.entry),
                    "breakEvenPrice": f(p.entry),
                    "maxNotional": "1000000",
                    "bidNotional": "0",
                    "askNotional": "0",
                    "positionSide": "BOTH",
                    "positionAmt": spec.fmt_qty(p.lots),
                    "notional": f(spec.qty_of(p.lots) * self.markets[p.symbol].mark),
                    "isolatedWallet": f(p.iso_margin),
                    "updateTime": p.update_ms,
                }
            )
        return {
            "feeTier": self.fee_tier,
            "canTrade": True,
            "canDeposit": True,
            "canWithdraw": True,
            "feeBurn": False,
            "tradeGroupId": -1,
            "updateTime": 0,
            "multiAssetsMargin": False,
            "totalInitialMargin": f(im + oom),
            "totalMaintMargin": f(mm),
            "totalWalletBalance": f(acct.wallet),
            "totalUnrealizedProfit": f(upnl),
            "totalMarginBalance": f(acct.wallet + upnl),
            "totalPositionInitialMargin": f(im),
            "totalOpenOrderInitialMargin": f(oom),
            "totalCrossWalletBalance": f(self.cross_wallet()),
            "totalCrossUnPnl": asset["crossUnPnl"],
            "availableBalance": f(avail),
            "maxWithdrawAmount": f(max(0.0, avail)),
            "assets": [asset],
            "positions": pos,
        }

    def balance_json(self) -> list[dict[str, Any]]:
        a = self.account_json()["assets"][0]
        return [
            {
                "accountAlias": "SimAccount",
                "asset": "USDT",
                "balance": a["walletBalance"],
                "crossWalletBalance": a["crossWalletBalance"],
                "crossUnPnl": a["crossUnPnl"],
                "availableBalance": a["availableBalance"],
                "maxWithdrawAmount": a["maxWithdrawAmount"],
                "marginAvailable": True,
                "updateTime": a["updateTime"],
            }
        ]

    def user_trade_json(self, t: dict[str, Any]) -> dict[str, Any]:
        return {
            "buyer": t["side"] == "BUY",
            "commission": f"{t['commission']:.8f}",
            "commissionAsset": "USDT",
            "id": t["id"],
            "maker": t["maker"],
            "orderId": t["orderId"],
            "price": t["price_str"],
            "qty": t["qty_str"],
            "quoteQty": f"{t['quoteQty']:.8f}",
            "realizedPnl": f"{t['realizedPnl']:.8f}",
            "side": t["side"],
            "positionSide": "BOTH",
            "symbol": t["symbol"],
            "time": t["time"],
        }

    def _emit_order(self, o: Order, exec_type: str, fill: dict[str, Any] | None = None) -> None:
        if not self.listeners:
            return
        spec = self.markets[o.symbol].spec
        now = self._now()
        avg = o.cum_quote / spec.qty_of(o.filled_lots) if o.filled_lots else 0.0
        ev = {
            "e": "ORDER_TRADE_UPDATE",
            "E": now,
            "T": now,
            "o": {
                "s": o.symbol,
                "c": o.client_id,
                "S": o.side,
                "o": o.type,
                "f": o.tif,
                "q": spec.fmt_qty(o.lots),
                "p": spec.fmt_price(o.price_ticks) if o.type == "LIMIT" else "0",
                "ap": f"{avg:.8f}",
                "sp": "0",
                "x": exec_type,
                "X": o.status,
                "i": o.order_id,
                "l": fill["qty_str"] if fill else "0",
                "z": spec.fmt_qty(o.filled_lots),
                "L": fill["price_str"] if fill else "0",
                "n": f"{fill['commission']:.8f}" if fill else "0",
                "N": "USDT",
                "T": now,
                "t": fill["id"] if fill else 0,
                "m": fill["maker"] if fill else False,
                "R": o.reduce_only,
                "ps": "BOTH",
                "rp": f"{fill['realizedPnl']:.8f}" if fill else "0",
            },
        }
        for cb in list(self.listeners):
            cb(ev)

    def _emit_account(self, reason: str, symbol: str) -> None:
        if not self.listeners:
            return
        now = self._now()
        p = self.account.positions[symbol]
        spec = self.markets[symbol].spec
        ev = {
            "e": "ACCOUNT_UPDATE",
            "E": now,
            "T": now,
            "a": {
                "m": reason,
                "B": [
                    {
                        "a": "USDT",
                        "wb": f"{self.account.wallet:.8f}",
                        "cw": f"{self.cross_wallet():.8f}",
                        "bc": "0",
                    }
                ],
                "P": [
                    {
                        "s": symbol,
                        "pa": spec.fmt_qty(p.lots),
                        "ep": f"{p.entry:.8f}",
                        "cr": "0",
                        "up": f"{self.upnl(p):.8f}",
                        "mt": "isolated" if p.isolated else "cross",
                        "iw": f"{p.iso_margin:.8f}",
                        "ps": "BOTH",
                    }
                ],
            },
        }
        for cb in list(self.listeners):
            cb(ev)


def wall_ms() -> int:
    return int(time.time() * 1000)


def _grid_param(params: dict[str, str], name: str, to_grid: Callable[[str], int | None]) -> int:
    """A price or quantity parameter as integer ticks/lots, with Binance's errors: -1102 when it is
    missing or not a number, -1111 when it is a number off the symbol's grid."""
    raw = params.get(name)
    value = to_grid(raw) if raw is not None else None
    if value is not None:
        return value
    try:
        float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise SimError(
            -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed."
        ) from None
    raise SimError(-1111, "Precision is over the maximum defined for this asset.")
