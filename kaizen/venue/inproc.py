"""The backtest's venue: the simulator's Exchange (matching, fees, margin, funding, liquidation)
called directly, on the replay clock. No HTTP, no sleeping, no wall clock.

It implements the same `Venue` Protocol as the ccxt venues, so the engine's `OrderRouter` speaks to
it unchanged. Fills and funding payments are pushed to the subscribed router as they happen (as the
user-data stream does live); the `fetch_*` calls answer from the Exchange's own books for reconcile
and for the accounting checks.

Fill model (the driver sets the quotes before the engine decides at a bar close T):
- a market order fills at once, at the open of the bar that starts at T, plus half the spread and
  the slippage (buys pay up, sells receive less), as a taker;
- a post-only limit order rests; it fills in full at its price, as maker, only if a later bar
  trades through the price by at least one tick (`Exchange.fill_resting_through`);
- with no bar opening at T for a symbol (a gap in the data) its orders are refused: the market is
  closed, nothing can fill.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import Protocol

from kaizen.venue.base import (
    Balance,
    MarketInfo,
    OrderRejected,
    OrderState,
    VenueFill,
    VenueFunding,
    VenuePosition,
)
from kaizen.venue.sim.exchange import Exchange, SimError
from kaizen.venue.sim.market import SymbolMarket
from kaizen.venue.sim.spec import SPECS

_DEPTH_LOTS = 10**12  # one level deep enough for any order: the fill model sets the price, not size

_STATUS = {
    "NEW": "open",
    "PARTIALLY_FILLED": "open",
    "FILLED": "closed",
    "CANCELED": "canceled",
    "EXPIRED": "expired",
    "REJECTED": "rejected",
}


class FillListener(Protocol):
    def on_fill(self, f: VenueFill) -> None: ...

    def on_funding(self, fp: VenueFunding) -> None: ...


class InProcessVenue:
    name = "inproc"

    def __init__(
        self,
        symbols: list[str],
        clock_ms: Callable[[], int],
        *,
        starting_balance: float,
        maker_fee: float,
        taker_fee: float,
        half_spread: float,
        slippage: float,
        leverage: int = 20,
    ) -> None:
        unknown = [s for s in symbols if s not in SPECS]
        if unknown:
            raise ValueError(f"in-process venue: unknown symbol(s) {unknown}")
        self.symbols = list(symbols)
        self.rest_url = ""
        self.ws_url = ""
        self.half_spread = half_spread
        self.slippage = slippage
        self._clock_ms = clock_ms
        markets = {}
        for s in symbols:
            m = SymbolMarket(SPECS[s], random.Random(0), SPECS[s].start_price)
            m.bids.clear()
            m.asks.clear()
            markets[s] = m
        self.ex = Exchange(markets, clock_ms, starting_balance, maker_fee, taker_fee, leverage)
        # the fee schedule the router reads (maker, taker), as the ccxt venues publish theirs: the
        # cost-sized no-trade band then acts in backtests too
        self.fees: tuple[float, float] = (maker_fee, taker_fee)
        self.markets: dict[str, MarketInfo] = {s: _market_info(s) for s in symbols}
        self.open_now: dict[str, bool] = dict.fromkeys(symbols, False)
        self.listeners: list[FillListener] = []
        self._trades_seen = 0
        self._funding_seen = 0

    # --- driver side -------------------------------------------------------------------------------
    def subscribe(self, listener: FillListener) -> None:
        self.listeners.append(listener)

    def set_mark(self, symbol: str, mark: float) -> None:
        """The mark price (margin, liquidation, unrealized PnL) from now on."""
        if mark > 0 and math.isfinite(mark):
            self.ex.markets[symbol].scripted = mark

    def set_open(self, symbol: str, open_price: float | None) -> None:
        """Quotes for orders sent now: the open of the bar starting now +- half spread + slippage;
        None closes the market (no bar opens now for this symbol)."""
        m = self.ex.markets[symbol]
        m.bids.clear()
        m.asks.clear()
        if open_price is None or not (open_price > 0 and math.isfinite(open_price)):
            self.open_now[symbol] = False
            return
        self.open_now[symbol] = True
        tick = m.spec.tick_f
        cost = self.half_spread + self.slippage
        ask = max(1, math.ceil(open_price * (1.0 + cost) / tick - 1e-9))
        bid = max(1, math.floor(open_price * (1.0 - cost) / tick + 1e-9))
        m.asks[ask] = _DEPTH_LOTS
        m.bids[bid] = _DEPTH_LOTS

    def match_bar(self, symbol: str, high: float, low: float) -> None:
        """Resting limit orders against a closed bar's range (see the module doc)."""
        if not self.ex.open_by_symbol[symbol]:
            return
        tick = self.ex.markets[symbol].spec.tick_f
        self.ex.fill_resting_through(symbol, math.floor(low / tick + 1e-9), math.ceil(high / tick - 1e-9))
        self._push()

    def settle_funding(self, symbol: str, ts_ms: int, rate: float, mark: float) -> None:
        self.ex.settle_symbol_funding(symbol, ts_ms, rate, mark)
        self._push()

    def check_liquidations(self, adverse: dict[str, tuple[float, float]]) -> None:
        """Liquidate at the bar's worst prices: each symbol's mark is set to its low for a long and
        its high for a short while the margin check runs (conservative: intrabar extremes count)."""
        ex = self.ex
        saved = {}
        for s, (high, low) in adverse.items():
            p = ex.account.positions[s]
            if p.lots == 0:
                continue
            m = ex.markets[s]
            saved[s] = m.scripted
            m.scripted = low if p.lots > 0 else high
        if saved:
            ex.check_liquidations()
            for s, v in saved.items():
                ex.markets[s].scripted = v
            self._push()

    def equity(self) -> float:
        """Wallet + unrealized PnL at the marks: the venue's own figure."""
        ex = self.ex
        return ex.account.wallet + sum(ex.upnl(p) for p in ex.account.positions.values() if p.lots)

    def gross_notional(self) -> float:
        ex = self.ex
        return sum(
            abs(ex.markets[s].spec.qty_of(p.lots)) * ex.markets[s].mark
            for s, p in ex.account.positions.items()
            if p.lots
        )

    def _push(self) -> None:
        self.ex.public_trades.clear()  # the simulator's public tape: nobody reads it here
        log = self.ex.trade_log
        while self._trades_seen < len(log):
            t = log[self._trades_seen]
            self._trades_seen += 1
            f = _fill(t)
            for lis in self.listeners:
                lis.on_fill(f)
        inc = self.ex.funding_log
        while self._funding_seen < len(inc):
            e = inc[self._funding_seen]
            self._funding_seen += 1
            fp = VenueFunding(
                symbol=e["symbol"], funding_id=f"{e['symbol']}:{e['time']}", amount=-e["payment"], ts_ms=e["time"]
            )
            for lis in self.listeners:
                lis.on_funding(fp)

    # --- Venue Protocol ----------------------------------------------------------------------------
    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def place_order(
        self,
        symbol: str,
        side: str,
        qty: float,
        *,
        client_order_id: str,
        order_type: str = "market",
        price: float | None = None,
        reduce_only: bool = False,
        post_only: bool = False,
    ) -> OrderState:
        if not self.open_now.get(symbol, False):
            raise OrderRejected(f"inproc: {symbol} has no bar opening now (data gap): market closed")
        spec = self.ex.markets[symbol].spec
        params = {
            "symbol": symbol,
            "side": side.upper(),
            "type": order_type.upper(),
            "quantity": spec.fmt_qty(round(qty / spec.lot_f)),
            "newClientOrderId": client_order_id,
        }
        if reduce_only:
            params["reduceOnly"] = "true"
        if order_type == "limit":
            if price is None:
                raise OrderRejected("inproc: a limit order needs a price")
            params["price"] = spec.fmt_price(round(price / spec.tick_f))
            params["timeInForce"] = "GTX" if post_only else "GTC"
        try:
            raw = self.ex.new_order(params)
        except SimError as exc:
            raise OrderRejected(f"inproc {exc.code}: {exc.msg}") from None
        self._push()
        return _order_state(raw)

    async def fetch_order(self, symbol: str, client_order_id: str) -> OrderState | None:
        o = self.ex.by_client.get(client_order_id)
        if o is None or o.symbol != symbol:
            return None
        return _order_state(self.ex.order_json(o))

    async def cancel_order(self, symbol: str, client_order_id: str, venue_order_id: str = "") -> OrderState | None:
        try:
            raw = self.ex.cancel(symbol, venue_order_id or None, None if venue_order_id else client_order_id)
        except SimError:
            return None
        return _order_state(raw)

    async def fetch_open_orders(self, symbol: str) -> list[OrderState]:
        return [_order_state(self.ex.order_json(o)) for o in self.ex.open_by_symbol.get(symbol, [])]

    async def fetch_positions(self) -> dict[str, VenuePosition]:
        ex = self.ex
        out = {}
        for s in self.symbols:
            p = ex.account.positions[s]
            m = ex.markets[s]
            out[s] = VenuePosition(
                symbol=s,
                qty=m.spec.qty_of(p.lots),
                entry_price=p.entry,
                mark_price=m.mark,
                unrealized_pnl=ex.upnl(p),
                liquidation_price=ex.liquidation_price(p),
            )
        return out

    async def fetch_balance(self) -> Balance:
        return Balance(wallet=self.ex.account.wallet, equity=self.equity(), available=self.ex.available())

    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[VenueFill]:
        return [
            _fill(t)
            for t in self.ex.trade_log
            if t["symbol"] == symbol and (since_ms is None or t["time"] >= since_ms)
        ]

    async def fetch_funding(self, since_ms: int | None = None) -> list[VenueFunding]:
        return [
            VenueFunding(symbol=e["symbol"], funding_id=f"{e['symbol']}:{e['time']}", amount=-e["payment"], ts_ms=e["time"])
            for e in self.ex.funding_log
            if since_ms is None or e["time"] >= since_ms
        ]


def _market_info(symbol: str) -> MarketInfo:
    spec = SPECS[symbol]
    return MarketInfo(
        symbol=symbol,
        venue_symbol=f"{spec.base}/USDT:USDT",
        tick_size=spec.tick_f,
        lot_size=spec.lot_f,
        min_qty=float(spec.min_qty),
        min_notional=spec.min_notional,
        max_qty=float(spec.max_qty),
        market_max_qty=float(spec.market_max_qty),
    )


def _fill(t: dict) -> VenueFill:
    return VenueFill(
        symbol=t["symbol"],
        trade_id=str(t["id"]),
        venue_order_id=str(t["orderId"]),
        client_order_id=t["clientOrderId"],
        side=t["side"].lower(),
        qty=t["qty"],
        price=t["price"],
        fee=t["commission"],
        fee_asset="USDT",
        maker=t["maker"],
        realized_pnl=t["realizedPnl"],
        ts_ms=t["time"],
    )


def _order_state(o: dict) -> OrderState:
    qty = float(o["origQty"])
    filled = float(o["executedQty"])
    return OrderState(
        symbol=o["symbol"],
        client_order_id=o["clientOrderId"],
        venue_order_id=str(o["orderId"]),
        side=o["side"].lower(),
        order_type=o["type"].lower(),
        qty=qty,
        price=float(o["price"]),
        status=_STATUS.get(o["status"], "open"),
        filled=filled,
        avg_price=float(o.get("avgPrice") or 0.0),
        reduce_only=bool(o.get("reduceOnly")),
        ts_ms=int(o.get("updateTime") or 0),
    )
