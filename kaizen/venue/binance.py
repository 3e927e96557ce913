"""Binance USD-M futures through ccxt.async_support.binanceusdm."""

from __future__ import annotations

import math
from typing import Any

from kaizen.venue.base import MarketInfo
from kaizen.venue.ccxt_venue import CcxtVenue, kaizen_to_unified


class BinanceUSDM(CcxtVenue):
    name = "binanceusdm"
    ccxt_id = "binanceusdm"
    # -1000 UNKNOWN, -1001 DISCONNECTED, -1003 TOO_MANY_REQUESTS, -1006 UNEXPECTED_RESP,
    # -1007 TIMEOUT (execution status unknown), -1008 SERVER_BUSY, -1021 timestamp outside recvWindow.
    TRANSIENT_CODES = frozenset({-1000, -1001, -1003, -1006, -1007, -1008, -1021})

    def _options(self) -> dict[str, Any]:
        return {
            "recvWindow": self.cfg.venue.recv_window_ms,
            "adjustForTimeDifference": False,
            "fetchCurrencies": False,  # a spot (sapi) call with keys; futures need none of it
            "warnOnFetchOpenOrdersWithoutSymbol": False,
            "defaultType": "future",
        }

    def _point_at(self, rest_url: str) -> None:
        from kaizen.venue.ccxt_urls import point_binanceusdm_at

        point_binanceusdm_at(self.ex, rest_url)

    def _order_params(self, client_order_id: str, reduce_only: bool, post_only: bool) -> dict[str, Any]:
        params: dict[str, Any] = {"newClientOrderId": client_order_id}
        if reduce_only:
            params["reduceOnly"] = True
        if post_only:
            params["timeInForce"] = "GTX"
        return params

    async def _lookup(self, symbol: str, client_order_id: str) -> dict | None:
        import ccxt

        try:
            return await self.ex.fetch_order(
                None, kaizen_to_unified(symbol), {"origClientOrderId": client_order_id}
            )
        except ccxt.OrderNotFound:
            return None

    def _market_info(self, symbol: str, m: dict) -> MarketInfo:
        return binance_market_info(symbol, m)

    async def _after_load(self) -> None:
        """Per-symbol funding intervals (GET /fapi/v1/fundingInfo lists only symbols whose interval
        differs from the default 8 h); a venue without the endpoint keeps 8 h."""
        from kaizen.venue.base import VenueError

        try:
            rows = await self._call("fundingInfo", self.ex.fapiPublicGetFundingInfo)
        except VenueError:
            return
        for row in rows or []:
            sym = str(row.get("symbol", ""))
            hours = row.get("fundingIntervalHours")
            if sym in self.markets and hours:
                self.markets[sym].funding_interval_hours = float(hours)


def binance_market_info(symbol: str, m: dict) -> MarketInfo:
    """Filters from exchangeInfo's raw `filters` (exact strings), ccxt's precision/limits as fallback."""
    filters = {f.get("filterType"): f for f in (m.get("info") or {}).get("filters", [])}
    prec = m.get("precision") or {}
    limits = m.get("limits") or {}
    tick = _f(filters.get("PRICE_FILTER", {}).get("tickSize"), prec.get("price"))
    lot = filters.get("LOT_SIZE", {})
    mlot = filters.get("MARKET_LOT_SIZE", {})
    step = _f(lot.get("stepSize"), prec.get("amount"))
    min_qty = _f(lot.get("minQty"), (limits.get("amount") or {}).get("min"), step)
    max_qty = _f(lot.get("maxQty"), (limits.get("amount") or {}).get("max"), math.inf)
    min_notional = _f(
        filters.get("MIN_NOTIONAL", {}).get("notional"), (limits.get("cost") or {}).get("min"), 0.0
    )
    pp = filters.get("PERCENT_PRICE", {})
    up = _f(pp.get("multiplierUp"), 0.0)
    return MarketInfo(
        symbol=symbol,
        venue_symbol=m["symbol"],
        tick_size=tick,
        lot_size=step,
        min_qty=min_qty,
        min_notional=min_notional,
        max_qty=max_qty,
        market_lot_size=_f(mlot.get("stepSize"), 0.0),
        market_max_qty=_f(mlot.get("maxQty"), math.inf),
        price_band_pct=max(0.0, up - 1.0) if up else 0.0,
        contract_size=float(m.get("contractSize") or 1.0),
        funding_interval_hours=8.0,
    )


def _f(*values: Any) -> float:
    for v in values:
        if v is None or v == "":
            continue
        try:
            return float(v)
        except (TypeError, ValueError):
            continue
    raise ValueError("no usable value")
