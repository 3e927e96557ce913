"""Bybit v5 REST surface of the simulator, linear (USDT perpetual) category: the subset ccxt's
`bybit` client calls for markets, orders, positions, fills, funding and balance.

Every request becomes a call on the one Exchange core (kaizen/venue/sim/exchange.py: the same
matching, fees, margin, funding and liquidation as the Binance surface; one accounting routine),
and every answer is written in Bybit's v5 shapes: HTTP 200 with
{"retCode", "retMsg", "result", "retExtInfo", "time"}; an error is a non-zero retCode.

Auth (v5, HMAC): headers X-BAPI-API-KEY, X-BAPI-TIMESTAMP, X-BAPI-RECV-WINDOW (default 5000) and
X-BAPI-SIGN = hex HMAC-SHA256(secret, timestamp + api_key + recv_window + payload), where payload
is the query string as sent (GET) or the raw JSON body (POST). Checked in this order: the key
(10003), the timestamp against the WALL clock, server_time - recv_window <= timestamp <
server_time + 1000 (10002), the signature (10004).

Lists: `limit` is clamped to Bybit's page size (orders 50 by default, at most 50; executions 50,
at most 100; positions 20, at most 200) and the rest is reached with `nextPageCursor`. Executions
and order history answer a window of at most 7 days (startTime alone: 7 days from it; neither:
the last 7 days), newest first.

A PostOnly order that would take liquidity is accepted and cancelled at once, as Bybit does
(orderStatus Cancelled, rejectReason EC_PostOnlyWillTakeLiquidity); Binance refuses it (-5022).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from kaizen.venue.sim.exchange import Order, SimError, wall_ms
from kaizen.venue.sim.market import next_funding_ms

if TYPE_CHECKING:
    from kaizen.venue.sim.simulator import Simulator

log = logging.getLogger("kaizen.sim.bybit")
_enc = msgspec.json.Encoder()
WEEK_MS = 7 * 86_400_000

# The Exchange core speaks Binance's error codes; Bybit's equivalents (docs: v5/error).
_CODES: dict[int, tuple[int, str]] = {
    -4116: (110072, "OrderLinkedID is duplicate"),
    -2022: (110017, "Reduce-only rule not satisfied"),
    -2019: (110007, "ab not enough for new order"),
    -4164: (110094, "Order does not meet minimum order value"),
    -2011: (110001, "Order does not exist"),
    -2013: (110001, "Order does not exist"),
    -4016: (110003, "Order price exceeds the allowable range"),
    -4024: (110003, "Order price is lower than the allowable range"),
    -2027: (110090, "Order would exceed the maximum position limit at this leverage"),
    -4005: (10001, "The number of contracts exceeds maximum limit allowed"),
    -1121: (10001, "params error: symbol invalid"),
    -2010: (110004, "Order rejected (injected fault)"),
    -4028: (110013, "Cannot set leverage, leverage is invalid"),
}
_STATUS = {"NEW": "New", "PARTIALLY_FILLED": "PartiallyFilled", "FILLED": "Filled"}


class BybitError(Exception):
    def __init__(self, code: int, msg: str, http: int = 200) -> None:
        super().__init__(msg)
        self.code, self.msg, self.http = code, msg, http


def _bybit(exc: SimError) -> BybitError:
    code, msg = _CODES.get(exc.code, (10001, exc.msg))
    return BybitError(code, msg)


class BybitRestApi:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.public: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {
            ("GET", "/v5/market/time"): self.time,
            ("GET", "/v5/market/instruments-info"): self.instruments,
            ("GET", "/v5/market/tickers"): self.tickers,
            ("GET", "/v5/market/orderbook"): self.orderbook,
            ("GET", "/v5/market/funding/history"): self.funding_rate_history,
        }
        self.private: dict[tuple[str, str], Callable[[dict[str, Any]], Any]] = {
            ("GET", "/v5/user/query-api"): self.query_api,
            ("GET", "/v5/account/info"): self.account_info,
            ("GET", "/v5/asset/coin/query-info"): self.coin_info,
            ("GET", "/v5/account/fee-rate"): self.fee_rate,
            ("GET", "/v5/account/wallet-balance"): self.wallet_balance,
            ("POST", "/v5/order/create"): self.create,
            ("POST", "/v5/order/cancel"): self.cancel,
            ("POST", "/v5/order/cancel-all"): self.cancel_all,
            ("GET", "/v5/order/realtime"): self.realtime,
            ("GET", "/v5/order/history"): self.history,
            ("GET", "/v5/position/list"): self.positions,
            ("POST", "/v5/position/set-leverage"): self.set_leverage,
            ("GET", "/v5/execution/list"): self.executions,
        }

    # -- transport --------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        faults = self.sim.faults
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000.0)
        body = await request.text() if request.can_read_body else ""
        params: dict[str, Any] = dict(parse_qsl(request.query_string, keep_blank_values=True))
        if body:
            try:
                decoded = msgspec.json.decode(body)
            except msgspec.DecodeError:
                return self._answer(BybitError(10001, "request body is not valid JSON"))
            if not isinstance(decoded, dict):
                return self._answer(BybitError(10001, "request body must be a JSON object"))
            params.update(decoded)
        key = (method, path)
        is_order = key == ("POST", "/v5/order/create")
        link = str(params.get("orderLinkId", ""))
        try:
            if key in self.public:
                return self._answer(result=self.public[key](params))
            if key not in self.private:
                self.sim.rest.unknown_paths.append(f"{method} {path}")
                return web.json_response({"retCode": 10017, "retMsg": "route not found"}, status=404)
            self._auth(request, body)
            injected = await self._inject(method, path, params, is_order, link, pre=True)
            if injected is not None:
                return injected
            result = self.private[key](params)
            if is_order:
                late = await self._inject(method, path, params, is_order, link, pre=False)
                if late is not None:
                    return late
            return self._answer(result=result)
        except BybitError as exc:
            return self._answer(exc)
        except SimError as exc:
            return self._answer(_bybit(exc))
        except (ValueError, KeyError, TypeError) as exc:
            return self._answer(BybitError(10001, f"params error: {exc}"))
        except Exception:  # a simulator bug answers like Bybit's server error, never a dropped socket
            self.sim.rest.internal_errors += 1
            if self.sim.rest.internal_errors <= 3:
                log.exception("internal error on %s %s", method, path)
            return self._answer(BybitError(10016, "Internal server error."))

    def _answer(self, err: BybitError | None = None, result: Any = None) -> web.Response:
        if err is not None:
            data = {"retCode": err.code, "retMsg": err.msg, "result": {}, "retExtInfo": {}, "time": wall_ms()}
            return web.Response(body=_enc.encode(data), status=err.http, content_type="application/json")
        data = {"retCode": 0, "retMsg": "OK", "result": result, "retExtInfo": {}, "time": wall_ms()}
        return web.Response(body=_enc.encode(data), content_type="application/json")

    async def _inject(
        self, method: str, path: str, params: dict[str, Any], is_order: bool, link: str, pre: bool
    ) -> web.Response | None:
        sim = self.sim
        kind = sim.take_fault(method, path, params, order=is_order, pre=pre, client_id=link)
        if kind is None:
            return None
        refused = _binance_params(params) if is_order else None
        if kind == "429":  # Bybit's IP limit answers HTTP 403; the per-UID limit retCode 10006
            if refused is not None:
                sim.exchange.record_refused(refused, 10006, "429")
            return self._answer(BybitError(10006, "Too many visits. Exceeded the API Rate Limit.", 429))
        if kind == "5xx":
            if refused is not None:
                sim.exchange.record_refused(refused, 10016, "503")
            return web.Response(
                status=503, text="<html><body>503 Service Temporarily Unavailable</body></html>"
            )
        if kind in ("timeout", "timeout_after_accept"):
            if kind == "timeout" and refused is not None:
                sim.exchange.record_refused(refused, 10000, "timeout (not processed)")
            await asyncio.sleep(sim.faults.timeout_s)
            return self._answer(BybitError(10000, "Server Timeout"))
        try:  # "reject"
            sim.exchange.reject(_binance_params(params), -2010, "Order was rejected (injected fault).")
        except SimError as exc:
            return self._answer(_bybit(exc))
        return None

    def _auth(self, request: web.Request, body: str) -> None:
        sim = self.sim
        h = request.headers
        api_key = h.get("X-BAPI-API-KEY", "")
        if sim.api_key and not hmac.compare_digest(api_key, sim.api_key):
            raise BybitError(10003, "API key is invalid.", 401)
        ts = h.get("X-BAPI-TIMESTAMP", "")
        recv = h.get("X-BAPI-RECV-WINDOW", "5000")
        if not ts.isdigit() or not recv.isdigit():
            raise BybitError(10002, "invalid request, please check your timestamp or recv_window param")
        now = wall_ms()
        if not now - int(recv) <= int(ts) < now + 1000:
            raise BybitError(
                10002,
                f"invalid request, please check your server timestamp or recv_window param. "
                f"req_timestamp[{ts}],server_timestamp[{now}],recv_window[{recv}]",
            )
        if not sim.api_secret:
            return
        payload = body if request.method == "POST" else request.query_string
        want = hmac.new(
            sim.api_secret.encode(), f"{ts}{api_key}{recv}{payload}".encode(), hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(want, h.get("X-BAPI-SIGN", "").lower()):
            raise BybitError(10004, "error sign! origin_string[...]")

    # -- helpers ----------------------------------------------------------------------------
    def _linear(self, p: dict[str, Any]) -> None:
        if p.get("category") != "linear":
            raise BybitError(10001, f"params error: category {p.get('category')!r} is not supported")

    def _market(self, symbol: Any):  # noqa: ANN202
        m = self.sim.markets.get(str(symbol or "").upper())
        if m is None:
            raise BybitError(10001, "params error: symbol invalid")
        return m

    def _symbols(self, p: dict[str, Any]) -> list[str]:
        if p.get("symbol"):
            return [self._market(p["symbol"]).spec.symbol]
        if p.get("settleCoin", "USDT") != "USDT" and not p.get("baseCoin"):
            return []
        base = p.get("baseCoin")
        return [s for s, m in self.sim.markets.items() if not base or m.spec.base == base]

    @staticmethod
    def _page(rows: list[Any], p: dict[str, Any], default: int, most: int) -> dict[str, Any]:
        try:
            limit = int(p.get("limit", default))
            start = int(p.get("cursor") or 0)
        except ValueError:
            raise BybitError(10001, "params error: limit or cursor") from None
        limit = max(1, min(most, limit))
        page = rows[start : start + limit]
        more = start + limit < len(rows)
        return {"list": page, "nextPageCursor": str(start + limit) if more else "", "category": "linear"}

    @staticmethod
    def _window(p: dict[str, Any], now: int) -> tuple[int, int]:
        start, end = p.get("startTime"), p.get("endTime")
        if start is None and end is None:
            return now - WEEK_MS, now
        if start is not None and end is None:
            return int(start), int(start) + WEEK_MS
        if start is None:
            return int(end) - WEEK_MS, int(end)
        if int(end) - int(start) > WEEK_MS:
            raise BybitError(
                10001, "params error: The time range between startTime and endTime cannot exceed 7 days"
            )
        return int(start), int(end)

    # -- public -----------------------------------------------------------------------------
    def time(self, p: dict[str, Any]) -> dict[str, Any]:
        now = wall_ms()
        return {"timeSecond": str(now // 1000), "timeNano": str(now * 1_000_000)}

    def instruments(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        if p.get("status") not in (None, "Trading"):
            return {"category": "linear", "list": [], "nextPageCursor": ""}
        out = []
        for s in self._symbols(p):
            spec = self.sim.markets[s].spec
            out.append(
                {
                    "symbol": s,
                    "contractType": "LinearPerpetual",
                    "status": "Trading",
                    "baseCoin": spec.base,
                    "quoteCoin": "USDT",
                    "launchTime": "1585526400000",
                    "deliveryTime": "0",
                    "deliveryFeeRate": "",
                    "priceScale": str(spec.price_precision),
                    "leverageFilter": {
                        "minLeverage": "1",
                        "maxLeverage": f"{spec.brackets[0].max_leverage}.00",
                        "leverageStep": "0.01",
                    },
                    "priceFilter": {"minPrice": spec.tick, "maxPrice": "1999999.80", "tickSize": spec.tick},
                    "lotSizeFilter": {
                        "maxOrderQty": spec.max_qty,
                        "minOrderQty": spec.min_qty,
                        "qtyStep": spec.lot,
                        "postOnlyMaxOrderQty": spec.max_qty,
                        "maxMktOrderQty": spec.market_max_qty,
                        "minNotionalValue": f"{spec.min_notional:g}",
                    },
                    "unifiedMarginTrade": True,
                    "fundingInterval": 480,
                    "settleCoin": "USDT",
                    "copyTrading": "both",
                    "upperFundingRate": "0.00375",
                    "lowerFundingRate": "-0.00375",
                    "isPreListing": False,
                    "preListingInfo": None,
                    "riskParameters": {"priceLimitRatioX": "0.05", "priceLimitRatioY": "0.1"},
                }
            )
        return {"category": "linear", "list": out, "nextPageCursor": ""}

    def tickers(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        now = self.sim.now_ms()
        out = []
        for s in self._symbols(p):
            m = self.sim.markets[s]
            spec = m.spec
            last = spec.fmt_price(m.last_price_ticks())
            out.append(
                {
                    "symbol": s,
                    "lastPrice": last,
                    "indexPrice": f"{m.index_price:.{spec.price_precision}f}",
                    "markPrice": f"{m.mark:.{spec.price_precision}f}",
                    "prevPrice24h": last,
                    "price24hPcnt": "0",
                    "highPrice24h": last,
                    "lowPrice24h": last,
                    "prevPrice1h": last,
                    "openInterest": "0",
                    "openInterestValue": "0",
                    "turnover24h": "0",
                    "volume24h": "0",
                    "fundingRate": f"{m.funding_estimate():.8f}",
                    "nextFundingTime": str(next_funding_ms(now)),
                    "predictedDeliveryPrice": "",
                    "basisRate": "",
                    "deliveryFeeRate": "",
                    "deliveryTime": "0",
                    "ask1Size": spec.fmt_qty(m.pub_asks[min(m.pub_asks)]) if m.pub_asks else "0",
                    "bid1Price": spec.fmt_price(max(m.pub_bids)) if m.pub_bids else "0",
                    "ask1Price": spec.fmt_price(min(m.pub_asks)) if m.pub_asks else "0",
                    "bid1Size": spec.fmt_qty(m.pub_bids[max(m.pub_bids)]) if m.pub_bids else "0",
                    "basis": "",
                }
            )
        return {"category": "linear", "list": out}

    def orderbook(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        m = self._market(p.get("symbol"))
        spec = m.spec
        limit = max(1, min(500, int(p.get("limit", 25))))
        now = self.sim.now_ms()
        return {
            "s": spec.symbol,
            "b": [
                [spec.fmt_price(k), spec.fmt_qty(m.pub_bids[k])]
                for k in sorted(m.pub_bids, reverse=True)[:limit]
            ],
            "a": [[spec.fmt_price(k), spec.fmt_qty(m.pub_asks[k])] for k in sorted(m.pub_asks)[:limit]],
            "ts": now,
            "u": m.last_u,
            "seq": m.last_u,
            "cts": now,
        }

    def funding_rate_history(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        s = self._market(p.get("symbol")).spec.symbol
        start, end = int(p.get("startTime", 0)), int(p.get("endTime", 1 << 62))
        rows = [r for r in self.sim.exchange.funding_history[s] if start <= r["fundingTime"] <= end]
        rows = sorted(rows, key=lambda r: -r["fundingTime"])[: max(1, min(200, int(p.get("limit", 200))))]
        return {
            "category": "linear",
            "list": [
                {
                    "symbol": s,
                    "fundingRate": f"{r['fundingRate']:.8f}",
                    "fundingRateTimestamp": str(r["fundingTime"]),
                }
                for r in rows
            ],
        }

    # -- account ----------------------------------------------------------------------------
    def query_api(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": "1",
            "note": "kaizen-sim",
            "apiKey": self.sim.api_key,
            "readOnly": 0,
            "secret": "",
            "permissions": {"ContractTrade": ["Order", "Position"], "Wallet": ["AccountTransfer"]},
            "ips": ["*"],
            "type": 1,
            "deadlineDay": -1,
            "expiredAt": "",
            "createdAt": "2024-01-01T00:00:00Z",
            "unified": 0,
            "uta": 1,
            "userID": 1,
            "inviterID": 0,
            "vipLevel": "No VIP",
            "mktMakerLevel": "0",
            "affiliateID": 0,
            "rsaPublicKey": "",
            "isMaster": True,
        }

    def account_info(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "marginMode": "REGULAR_MARGIN",
            "updatedTime": str(self.sim.now_ms()),
            "unifiedMarginStatus": 6,
            "dcpStatus": "OFF",
            "timeWindow": 10,
            "smpGroup": 0,
            "isMasterTrader": False,
            "spotHedgingStatus": "OFF",
        }

    def coin_info(self, p: dict[str, Any]) -> dict[str, Any]:
        return {"rows": [{"name": "USDT", "coin": "USDT", "remainAmount": "1000000", "chains": []}]}

    def fee_rate(self, p: dict[str, Any]) -> dict[str, Any]:
        ex = self.sim.exchange
        return {
            "list": [
                {
                    "symbol": s,
                    "baseCoin": "",
                    "takerFeeRate": f"{ex.taker_fee:.6f}",
                    "makerFeeRate": f"{ex.maker_fee:.6f}",
                }
                for s in self._symbols(p)
            ]
        }

    def wallet_balance(self, p: dict[str, Any]) -> dict[str, Any]:
        if p.get("accountType", "UNIFIED") not in ("UNIFIED", "CONTRACT"):
            raise BybitError(10001, "accountType only support UNIFIED.")
        a = self.sim.exchange.account_json()
        f = "{:.8f}".format
        wallet, upnl = float(a["totalWalletBalance"]), float(a["totalUnrealizedProfit"])
        im, mm = float(a["totalInitialMargin"]), float(a["totalMaintMargin"])
        equity = wallet + upnl
        realized = sum(r["income"] for r in self.sim.exchange.income if r["incomeType"] == "REALIZED_PNL")
        coin = {
            "coin": "USDT",
            "equity": f(equity),
            "usdValue": f(equity),
            "walletBalance": f(wallet),
            "locked": "0",
            "spotHedgingQty": "0",
            "borrowAmount": "",
            "accruedInterest": "0",
            "totalOrderIM": a["totalOpenOrderInitialMargin"],
            "totalPositionIM": a["totalPositionInitialMargin"],
            "totalPositionMM": a["totalMaintMargin"],
            "unrealisedPnl": f(upnl),
            "cumRealisedPnl": f(realized),
            "bonus": "0",
            "marginCollateral": True,
            "collateralSwitch": True,
            "availableToWithdraw": "",
        }
        return {
            "list": [
                {
                    "accountType": "UNIFIED",
                    "accountLTV": "0",
                    "accountIMRate": f(im / equity if equity > 0 else 0.0),
                    "accountMMRate": f(mm / equity if equity > 0 else 0.0),
                    "totalEquity": f(equity),
                    "totalWalletBalance": f(wallet),
                    "totalMarginBalance": f(equity),
                    "totalAvailableBalance": a["availableBalance"],
                    "totalPerpUPL": f(upnl),
                    "totalInitialMargin": f(im),
                    "totalMaintenanceMargin": f(mm),
                    "coin": [coin],
                }
            ]
        }

    # -- orders -----------------------------------------------------------------------------
    def create(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        if str(p.get("positionIdx", 0)) != "0":
            raise BybitError(10001, "position idx not match position mode")
        ex = self.sim.exchange
        out = ex.new_order(_binance_params(p), post_only_rejects=False)
        o = ex.orders[int(out["orderId"])]
        return {"orderId": str(o.order_id), "orderLinkId": o.client_id}

    def cancel(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        s = self._market(p.get("symbol")).spec.symbol
        if not p.get("orderId") and not p.get("orderLinkId"):
            raise BybitError(10001, "params error: orderId or orderLinkId is required")
        ex = self.sim.exchange
        out = ex.cancel(s, p.get("orderId") or None, p.get("orderLinkId") or None)
        return {"orderId": str(out["orderId"]), "orderLinkId": out["clientOrderId"]}

    def cancel_all(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        ex = self.sim.exchange
        done = []
        for s in self._symbols(p):
            for o in list(ex.open_by_symbol[s]):
                ex.cancel(s, str(o.order_id), None)
                done.append({"orderId": str(o.order_id), "orderLinkId": o.client_id})
        return {"list": done, "success": "1"}

    def _by_id(self, p: dict[str, Any]) -> list[Order]:
        ex = self.sim.exchange
        o = None
        if p.get("orderId"):
            try:
                o = ex.orders.get(int(p["orderId"]))
            except ValueError:
                raise BybitError(10001, "params error: orderId") from None
        elif p.get("orderLinkId"):
            o = ex.by_client.get(str(p["orderLinkId"]))
        syms = self._symbols(p)
        return [o] if o is not None and o.symbol in syms else []

    def realtime(self, p: dict[str, Any]) -> dict[str, Any]:
        """Open orders; queried by orderId/orderLinkId it also finds a closed one (Bybit keeps
        recent closed orders here)."""
        self._linear(p)
        if p.get("orderId") or p.get("orderLinkId"):
            rows = self._by_id(p)
        else:
            ex = self.sim.exchange
            rows = [o for s in self._symbols(p) for o in ex.open_by_symbol[s]]
            rows.sort(key=lambda o: -o.time_ms)
        return self._page([self._order(o) for o in rows], p, 20, 50)

    def history(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        ex = self.sim.exchange
        if p.get("orderId") or p.get("orderLinkId"):
            rows = [o for o in self._by_id(p) if not o.is_open]
        else:
            lo, hi = self._window(p, self.sim.now_ms())
            syms = set(self._symbols(p))
            rows = [
                o for o in ex.orders.values() if o.symbol in syms and not o.is_open and lo <= o.time_ms <= hi
            ]
            rows.sort(key=lambda o: -o.time_ms)
        out = [self._order(o) for o in rows]
        if p.get("orderStatus"):
            out = [x for x in out if x["orderStatus"] == p["orderStatus"]]
        return self._page(out, p, 20, 50)

    def _order(self, o: Order) -> dict[str, Any]:
        spec = self.sim.markets[o.symbol].spec
        qty_filled = spec.qty_of(o.filled_lots)
        avg = o.cum_quote / qty_filled if o.filled_lots else 0.0
        if o.status in _STATUS:
            status = _STATUS[o.status]
        elif o.status == "REJECTED":
            status = "Rejected"
        else:  # CANCELED, EXPIRED (a market or IOC remainder)
            status = "PartiallyFilledCanceled" if o.filled_lots else "Cancelled"
        tif = {"GTX": "PostOnly"}.get(o.tif, o.tif if o.type == "LIMIT" else "IOC")
        leaves = o.remaining if o.is_open else 0
        price = spec.price_of(o.price_ticks) if o.type == "LIMIT" else 0.0
        return {
            "orderId": str(o.order_id),
            "orderLinkId": o.client_id,
            "blockTradeId": "",
            "symbol": o.symbol,
            "price": spec.fmt_price(o.price_ticks) if o.type == "LIMIT" else "0",
            "qty": spec.fmt_qty(o.lots),
            "side": "Buy" if o.side == "BUY" else "Sell",
            "isLeverage": "",
            "positionIdx": 0,
            "orderStatus": status,
            "createType": "CreateByUser",
            "cancelType": "UNKNOWN" if o.is_open or status == "Filled" else "CancelByUser",
            "rejectReason": o.reject_reason or "EC_NoError",
            "avgPrice": f"{avg:.{spec.price_precision + 3}f}" if o.filled_lots else "",
            "leavesQty": spec.fmt_qty(leaves),
            "leavesValue": f"{spec.qty_of(leaves) * price:.8f}",
            "cumExecQty": spec.fmt_qty(o.filled_lots),
            "cumExecValue": f"{o.cum_quote:.8f}",
            "cumExecFee": f"{o.cum_fee:.8f}",
            "timeInForce": tif,
            "orderType": "Limit" if o.type == "LIMIT" else "Market",
            "stopOrderType": "",
            "orderIv": "",
            "marketUnit": "",
            "triggerPrice": "",
            "takeProfit": "",
            "stopLoss": "",
            "tpslMode": "",
            "ocoTriggerBy": "",
            "tpLimitPrice": "",
            "slLimitPrice": "",
            "tpTriggerBy": "",
            "slTriggerBy": "",
            "triggerDirection": 0,
            "triggerBy": "",
            "lastPriceOnCreated": "",
            "reduceOnly": o.reduce_only,
            "closeOnTrigger": False,
            "placeType": "",
            "smpType": "None",
            "smpGroup": 0,
            "smpOrderId": "",
            "createdTime": str(o.time_ms),
            "updatedTime": str(o.update_ms),
        }

    # -- positions and fills ----------------------------------------------------------------
    def positions(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        if not p.get("symbol") and not p.get("settleCoin") and not p.get("baseCoin"):
            raise BybitError(10001, "params error: symbol or settleCoin is required")
        ex = self.sim.exchange
        rows = []
        for s in self._symbols(p):
            pos = ex.account.positions[s]
            mkt = self.sim.markets[s]
            spec = mkt.spec
            if pos.lots == 0 and not p.get("symbol"):
                continue  # by settleCoin, Bybit lists open positions only
            qty = spec.qty_of(abs(pos.lots))
            realized = sum(
                r["income"] for r in ex.income if r["symbol"] == s and r["incomeType"] == "REALIZED_PNL"
            )
            rows.append(
                {
                    "positionIdx": 0,
                    "riskId": 1,
                    "riskLimitValue": "2000000",
                    "symbol": s,
                    "side": "" if pos.lots == 0 else ("Buy" if pos.lots > 0 else "Sell"),
                    "size": spec.fmt_qty(abs(pos.lots)),
                    "avgPrice": f"{pos.entry:.8f}",
                    "positionValue": f"{qty * pos.entry:.8f}",
                    "tradeMode": 1 if pos.isolated else 0,
                    "autoAddMargin": 0,
                    "positionStatus": "Normal",
                    "leverage": str(pos.leverage),
                    "markPrice": f"{mkt.mark:.{spec.price_precision}f}",
                    "liqPrice": f"{ex.liquidation_price(pos):.{spec.price_precision}f}" if pos.lots else "",
                    "bustPrice": "",
                    "positionIM": f"{ex.initial_margin(pos):.8f}",
                    "positionMM": f"{ex.maint(pos)[0]:.8f}",
                    "positionBalance": f"{pos.iso_margin:.8f}",
                    "takeProfit": "0",
                    "stopLoss": "0",
                    "trailingStop": "0",
                    "sessionAvgPrice": "",
                    "unrealisedPnl": f"{ex.upnl(pos):.8f}",
                    "curRealisedPnl": f"{realized:.8f}",
                    "cumRealisedPnl": f"{realized:.8f}",
                    "adlRankIndicator": 0,
                    "isReduceOnly": False,
                    "mmrSysUpdatedTime": "",
                    "leverageSysUpdatedTime": "",
                    "createdTime": str(pos.update_ms),
                    "updatedTime": str(pos.update_ms),
                    "seq": pos.update_ms,
                }
            )
        return self._page(rows, p, 20, 200)

    def set_leverage(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        s = self._market(p.get("symbol")).spec.symbol
        buy, sell = str(p.get("buyLeverage", "")), str(p.get("sellLeverage", ""))
        if not buy or buy != sell:
            raise BybitError(10001, "params error: buyLeverage must equal sellLeverage in one-way mode")
        lev = float(buy)
        if lev != int(lev):
            raise BybitError(10001, "params error: the simulator takes whole leverages")
        if self.sim.exchange.account.positions[s].leverage == int(lev):
            raise BybitError(110043, "Set leverage not modified")
        self.sim.exchange.set_leverage(s, int(lev))
        return {}

    def executions(self, p: dict[str, Any]) -> dict[str, Any]:
        self._linear(p)
        ex = self.sim.exchange
        lo, hi = self._window(p, self.sim.now_ms())
        syms = set(self._symbols(p))
        kind = p.get("execType")
        rows: list[dict[str, Any]] = []
        if kind in (None, "", "Trade", "BustTrade"):
            for t in ex.trade_log:
                if t["symbol"] in syms and lo <= t["time"] <= hi:
                    x = self._execution(t)
                    if not kind or x["execType"] == kind:
                        rows.append(x)
        if kind in (None, "", "Funding"):
            rows += [
                self._funding(f) for f in ex.funding_log if f["symbol"] in syms and lo <= f["time"] <= hi
            ]
        if p.get("orderId"):
            rows = [r for r in rows if r["orderId"] == str(p["orderId"])]
        if p.get("orderLinkId"):
            rows = [r for r in rows if r["orderLinkId"] == str(p["orderLinkId"])]
        rows.sort(key=lambda r: (-int(r["execTime"]), -r["seq"]))
        return self._page(rows, p, 50, 100)

    def _execution(self, t: dict[str, Any]) -> dict[str, Any]:
        ex = self.sim.exchange
        o = ex.orders.get(t["orderId"])
        spec = self.sim.markets[t["symbol"]].spec
        rate = ex.maker_fee if t["maker"] else ex.taker_fee
        return {
            "symbol": t["symbol"],
            "orderId": str(t["orderId"]),
            "orderLinkId": t["clientOrderId"],
            "side": "Buy" if t["side"] == "BUY" else "Sell",
            "orderPrice": spec.fmt_price(o.price_ticks) if o is not None and o.type == "LIMIT" else "0",
            "orderQty": spec.fmt_qty(o.lots) if o is not None else t["qty_str"],
            "leavesQty": spec.fmt_qty(o.remaining if o.is_open else 0) if o is not None else "0",
            "createType": "CreateByClosing" if t["liquidation"] else "CreateByUser",
            "orderType": "Limit" if o is not None and o.type == "LIMIT" else "Market",
            "stopOrderType": "UNKNOWN",
            "execFee": f"{t['commission']:.8f}",
            "execId": str(t["id"]),
            "execPrice": t["price_str"],
            "execQty": t["qty_str"],
            "execPnl": f"{t['realizedPnl']:.8f}",
            "execType": "BustTrade" if t["liquidation"] else "Trade",
            "execValue": f"{t['quoteQty']:.8f}",
            "execTime": str(t["time"]),
            "feeCurrency": "USDT",
            "isMaker": bool(t["maker"]),
            "feeRate": f"{rate:.6f}",
            "tradeIv": "",
            "markIv": "",
            "markPrice": t["price_str"],
            "indexPrice": "",
            "underlyingPrice": "",
            "blockTradeId": "",
            "closedSize": "0",
            "seq": int(t["id"]),
        }

    def _funding(self, f: dict[str, Any]) -> dict[str, Any]:
        spec = self.sim.markets[f["symbol"]].spec
        qty = abs(f["qty"])
        return {
            "symbol": f["symbol"],
            "orderId": "",
            "orderLinkId": "",
            "side": "Buy" if f["qty"] > 0 else "Sell",
            "orderPrice": "0",
            "orderQty": "0",
            "leavesQty": "0",
            "createType": "",
            "orderType": "UNKNOWN",
            "stopOrderType": "UNKNOWN",
            "execFee": f"{-f['payment']:.8f}",  # positive: the account paid
            "execId": f"funding-{f['symbol']}-{f['time']}",
            "execPrice": f"{f['mark']:.{spec.price_precision}f}",
            "execQty": f"{qty:.{spec.qty_precision}f}",
            "execPnl": "0",
            "execType": "Funding",
            "execValue": f"{qty * f['mark']:.8f}",
            "execTime": str(f["time"]),
            "feeCurrency": "USDT",
            "isMaker": False,
            "feeRate": f"{f['rate']:.8f}",
            "tradeIv": "",
            "markIv": "",
            "markPrice": f"{f['mark']:.{spec.price_precision}f}",
            "indexPrice": "",
            "underlyingPrice": "",
            "blockTradeId": "",
            "closedSize": "0",
            "seq": 0,
        }


def _binance_params(p: dict[str, Any]) -> dict[str, str]:
    """A Bybit order request in the Exchange core's (Binance) terms."""
    side = str(p.get("side", ""))
    otype = str(p.get("orderType", ""))
    tif = str(p.get("timeInForce") or ("GTC" if otype == "Limit" else "IOC"))
    out = {
        "symbol": str(p.get("symbol", "")).upper(),
        "side": {"Buy": "BUY", "Sell": "SELL"}.get(side, side),
        "type": {"Market": "MARKET", "Limit": "LIMIT"}.get(otype, otype),
        "quantity": str(p.get("qty", "")),
        "reduceOnly": "true" if _truthy(p.get("reduceOnly")) else "false",
    }
    if otype == "Limit":
        out["price"] = str(p.get("price", ""))
        out["timeInForce"] = {"PostOnly": "GTX"}.get(tif, tif)
    if p.get("orderLinkId"):
        out["newClientOrderId"] = str(p["orderLinkId"])
    return out


def _truthy(v: Any) -> bool:
    return v is True or str(v).lower() in ("true", "1")
