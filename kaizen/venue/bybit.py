"""Bybit linear (USDT) perpetuals through ccxt.async_support.bybit.

Not exercisable against the local simulator (it speaks Binance's API); what is tested offline is the
symbol mapping, fee schedule, market filter parsing through ccxt's own parser, and order params.
"""

from __future__ import annotations

import math
from typing import Any

from kaizen.venue.base import MarketInfo
from kaizen.venue.ccxt_venue import CcxtVenue, kaizen_to_unified

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
