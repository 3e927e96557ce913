"""Bybit linear (USDT) perpetuals through ccxt.async_support.bybit.

Runs end to end against the local simulator, which answers Bybit's v5 dialect under /v5/
(kaizen/venue/sim/bybit_rest.py; tests/venue/test_bybit.py). What differs from Binance and is
handled here: an order's create answer carries only its ids (the full state is read back by client
id); positions are listed per settle coin (ccxt's bybit takes at most one symbol); lists come in
pages of at most 100 with a cursor; a funding execution's fee is positive when the account paid.
"""

from __future__ import annotations

import math
from typing import Any

from kaizen.venue.base import Balance, MarketInfo, OrderState, VenueError, VenueFill, VenueFunding
from kaizen.venue.ccxt_venue import CcxtVenue, _num, kaizen_to_unified, unified_to_kaizen

# Bybit linear regular tier (non-VIP): 0.02 % maker, 0.055 % taker.
BYBIT_DEFAULT_FEES = (0.0002, 0.00055)


class BybitLinear(CcxtVenue):
    name = "bybit"
    ccxt_id = "bybit"
    # 10000 server timeout, 10002 timestamp outside recv_window, 10006 rate limit, 10016 server error.
    TRANSIENT_CODES = frozenset({10000, 10002, 10006, 10016})

    def _options(self) -> dict[str, Any]:
        return {
            "defaultType": "swap",
            "defaultSubType": "linear",
            "recvWindow": self.cfg.venue.recv_window_ms,
            "fetchMarkets": {"types": ["linear"]},  # USDT perpetuals only: one instruments-info call
        }

    def _point_at(self, rest_url: str) -> None:
        api = self.ex.urls.get("api")
        if isinstance(api, dict):
            self.ex.urls["api"] = {k: rest_url.rstrip("/") for k in api}
        else:
            self.ex.urls["api"] = rest_url.rstrip("/")

    def _order_params(self, client_order_id: str, reduce_only: bool, post_only: bool) -> dict[str, Any]:
        params: dict[str, Any] = {"clientOrderId": client_order_id}  # ccxt sends it as orderLinkId
        if reduce_only:
            params["reduceOnly"] = True
        if post_only:
            params["postOnly"] = True
        return params

    def _cancel_params(self, client_order_id: str) -> dict[str, Any]:
        return {"orderLinkId": client_order_id}  # ccxt's bybit passes params through as they are

    async def _lookup(self, symbol: str, client_order_id: str) -> dict | None:
        vsym = kaizen_to_unified(symbol)
        for method in (self.ex.fetch_open_orders, self.ex.fetch_closed_orders, self.ex.fetch_canceled_orders):
            orders = await method(vsym, None, None, {"orderLinkId": client_order_id})
            for o in orders:
                if o.get("clientOrderId") == client_order_id:
                    return o
        return None

    def _market_info(self, symbol: str, m: dict) -> MarketInfo:
        return bybit_market_info(symbol, m)

    async def place_order(self, symbol: str, side: str, qty: float, **kw: Any) -> OrderState:
        state = await super().place_order(symbol, side, qty, **kw)
        if state.side:  # a full state (found by client id after a lost answer)
            return state
        # Bybit acknowledges a new order with its ids only; read the order back for its state.
        found = await self._find(symbol, kw["client_order_id"])
        return found if found is not None else state

    async def cancel_order(
        self, symbol: str, client_order_id: str, venue_order_id: str = ""
    ) -> OrderState | None:
        state = await super().cancel_order(symbol, client_order_id, venue_order_id)
        if state is None or state.side:
            return state
        found = await self._find(symbol, client_order_id)  # the cancel answer carries ids only
        return found if found is not None else state

    async def _raw_positions(self) -> list[dict]:
        # ccxt's bybit takes one symbol or none: none lists every USDT-settled position.
        raw = await self._call("fetch_positions", self.ex.fetch_positions, None)
        return [p for p in raw if unified_to_kaizen(p.get("symbol") or "") in self.markets]

    async def fetch_balance(self) -> Balance:
        """From the unified account's own totals (ccxt's USDT entry has no equity figure)."""
        raw = await self._call("fetch_balance", self.ex.fetch_balance, {"type": "unified"})
        rows = ((raw.get("info") or {}).get("result") or {}).get("list") or [{}]
        acct = rows[0]
        usdt = raw.get("USDT") or {}
        wallet = _num(acct.get("totalWalletBalance"), usdt.get("total"))
        return Balance(
            wallet=wallet,
            equity=_num(acct.get("totalEquity"), acct.get("totalMarginBalance"), wallet),
            available=_num(acct.get("totalAvailableBalance"), usdt.get("free")),
        )

    async def _pages(self, what: str, fn, *args: Any, params: dict[str, Any]) -> list[dict]:
        """Every page of a cursor-paged list (Bybit answers at most 100 rows a call)."""
        out: list[dict] = []
        cursor = ""
        for _ in range(10_000):
            page = await self._call(what, fn, *args, {**params, **({"cursor": cursor} if cursor else {})})
            out += page
            # ccxt puts the cursor on the first raw row, which its time sort may move anywhere
            cursor = next((str(c) for x in page if (c := (x.get("info") or {}).get("nextPageCursor"))), "")
            if not cursor:
                return out
        raise VenueError(f"bybit {what}: more than 10,000 pages")

    async def fetch_fills(self, symbol: str, since_ms: int | None = None) -> list[VenueFill]:
        raw = await self._pages(
            "fetch_my_trades", self.ex.fetch_my_trades, kaizen_to_unified(symbol), since_ms, 100, params={}
        )
        return [self._fill(symbol, t) for t in raw]

    async def fetch_funding(self, since_ms: int | None = None) -> list[VenueFunding]:
        out = []
        for sym in self.symbols:
            raw = await self._pages(
                "fetch_funding_history",
                self.ex.fetch_funding_history,
                kaizen_to_unified(sym),
                since_ms,
                100,
                params={"limit": 100},
            )
            for f in raw:
                info = f.get("info") or {}
                out.append(
                    VenueFunding(
                        symbol=sym,
                        funding_id=str(f.get("id") or info.get("execId")),
                        amount=float(info.get("execFee") or f.get("amount") or 0.0),  # + = we paid
                        ts_ms=int(f.get("timestamp") or 0),
                    )
                )
        return out


def bybit_market_info(symbol: str, m: dict) -> MarketInfo:
    info = m.get("info") or {}
    pf = info.get("priceFilter") or {}
    lf = info.get("lotSizeFilter") or {}
    prec = m.get("precision") or {}
    limits = m.get("limits") or {}
    tick = float(pf.get("tickSize") or prec.get("price"))
    step = float(lf.get("qtyStep") or prec.get("amount"))
    interval_min = info.get("fundingInterval")
    return MarketInfo(
        symbol=symbol,
        venue_symbol=m["symbol"],
        tick_size=tick,
        lot_size=step,
        min_qty=float(lf.get("minOrderQty") or (limits.get("amount") or {}).get("min") or step),
        min_notional=float(lf.get("minNotionalValue") or (limits.get("cost") or {}).get("min") or 0.0),
        max_qty=float(lf.get("maxOrderQty") or math.inf),
        market_max_qty=float(lf.get("maxMktOrderQty") or math.inf),
        contract_size=float(m.get("contractSize") or 1.0),
        funding_interval_hours=float(interval_min) / 60.0 if interval_min else 8.0,
    )
