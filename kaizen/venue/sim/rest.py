"""Binance USD-M REST surface of the simulator (aiohttp), plus the unsigned /_sim/ admin API.

Signed endpoints check, in Binance's order: API key header (-2015, HTTP 401), timestamp present
(-1102), timestamp inside recvWindow of the WALL clock (-1021), HMAC-SHA256 signature over
query string + body (-1022). /fapi/v1/time answers the wall clock for that reason; event times in
market data are on the sim clock.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

import msgspec
from aiohttp import web

from kaizen.venue.sim.exchange import SimError, wall_ms
from kaizen.venue.sim.market import next_funding_ms

if TYPE_CHECKING:
    from kaizen.venue.sim.simulator import Simulator

log = logging.getLogger("kaizen.sim.rest")
_enc = msgspec.json.Encoder()
Handler = Callable[[dict[str, str]], Any]


def _json(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=_enc.encode(data), status=status, content_type="application/json", headers=headers
    )


def _err(code: int, msg: str, status: int = 400, headers: dict[str, str] | None = None) -> web.Response:
    return _json({"code": code, "msg": msg}, status, headers)


class RestApi:
    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        ex = sim.exchange
        self.public: dict[tuple[str, str], Handler] = {
            ("GET", "/fapi/v1/ping"): lambda p: {},
            ("GET", "/fapi/v1/time"): lambda p: {"serverTime": wall_ms()},
            ("GET", "/fapi/v1/exchangeInfo"): lambda p: self.sim.exchange_info(),
            ("GET", "/fapi/v1/depth"): self.depth,
            ("GET", "/fapi/v1/premiumIndex"): self.premium_index,
            ("GET", "/fapi/v1/fundingRate"): self.funding_rate,
            ("GET", "/fapi/v1/fundingInfo"): self.funding_info,
            ("GET", "/fapi/v1/ticker/bookTicker"): self.book_ticker,
            ("GET", "/fapi/v2/ticker/price"): self.ticker_price,
            ("GET", "/fapi/v1/ticker/price"): self.ticker_price,
            ("GET", "/fapi/v1/ticker/24hr"): self.ticker_24h,
            ("GET", "/fapi/v1/klines"): self.klines,
            ("GET", "/fapi/v1/markPriceKlines"): lambda p: self.klines(p, "mark"),
            ("GET", "/fapi/v1/indexPriceKlines"): lambda p: self.klines(
                {**p, "symbol": p.get("pair", "")}, "index"
            ),
            ("GET", "/fapi/v1/aggTrades"): self.agg_trades,
            ("GET", "/fapi/v1/trades"): self.trades,
            ("GET", "/fapi/v1/openInterest"): self.open_interest,
            ("GET", "/sapi/v1/system/status"): lambda p: {"status": 0, "msg": "normal"},
        }
        self.signed: dict[tuple[str, str], Handler] = {
            ("POST", "/fapi/v1/order"): ex.new_order,
            ("PUT", "/fapi/v1/order"): ex.amend,
            ("GET", "/fapi/v1/order"): lambda p: ex.query(
                p.get("symbol", ""), p.get("orderId"), p.get("origClientOrderId")
            ),
            ("DELETE", "/fapi/v1/order"): lambda p: ex.cancel(
                p.get("symbol", ""), p.get("orderId"), p.get("origClientOrderId")
            ),
            ("GET", "/fapi/v1/openOrders"): self.open_orders,
            ("GET", "/fapi/v1/openOrder"): lambda p: ex.query(
                p.get("symbol", ""), p.get("orderId"), p.get("origClientOrderId")
            ),
            ("GET", "/fapi/v1/allOrders"): self.all_orders,
            ("DELETE", "/fapi/v1/allOpenOrders"): self.cancel_all,
            ("GET", "/fapi/v2/account"): lambda p: ex.account_json(2),
            ("GET", "/fapi/v3/account"): lambda p: ex.account_json(3),
            ("GET", "/fapi/v2/balance"): lambda p: ex.balance_json(),
            ("GET", "/fapi/v3/balance"): lambda p: ex.balance_json(),
            ("GET", "/fapi/v2/positionRisk"): lambda p: self.position_risk(p, 2),
            ("GET", "/fapi/v3/positionRisk"): lambda p: self.position_risk(p, 3),
            ("GET", "/fapi/v1/userTrades"): self.user_trades,
            ("GET", "/fapi/v1/income"): self.income,
            ("POST", "/fapi/v1/leverage"): lambda p: ex.set_leverage(
                p.get("symbol", ""), _int(p, "leverage")
            ),
            ("POST", "/fapi/v1/positionMargin"): lambda p: ex.position_margin(
                p.get("symbol", ""), p.get("amount", ""), p.get("type", "")
            ),
            ("POST", "/fapi/v1/marginType"): lambda p: ex.set_margin_type(
                p.get("symbol", ""), p.get("marginType", "")
            ),
            ("GET", "/fapi/v1/positionSide/dual"): lambda p: {"dualSidePosition": False},
            ("POST", "/fapi/v1/positionSide/dual"): self.set_dual,
            ("GET", "/fapi/v1/multiAssetsMargin"): lambda p: {"multiAssetsMargin": False},
            ("GET", "/fapi/v1/leverageBracket"): self.leverage_bracket,
            ("GET", "/fapi/v1/symbolConfig"): self.symbol_config,
            ("GET", "/fapi/v1/commissionRate"): lambda p: {
                "symbol": p.get("symbol", ""),
                "makerCommissionRate": f"{ex.maker_fee:.6f}",
                "takerCommissionRate": f"{ex.taker_fee:.6f}",
            },
            ("POST", "/fapi/v1/listenKey"): lambda p: self.sim.listen_key_post(),
            ("PUT", "/fapi/v1/listenKey"): lambda p: self.sim.listen_key_put(),
            ("DELETE", "/fapi/v1/listenKey"): lambda p: self.sim.listen_key_delete(),
        }
        # listenKey endpoints need only the API key on Binance, no signature
        self.key_only = {
            ("POST", "/fapi/v1/listenKey"),
            ("PUT", "/fapi/v1/listenKey"),
            ("DELETE", "/fapi/v1/listenKey"),
        }
        self.admin: dict[tuple[str, str], Callable[[dict[str, Any]], Awaitable[Any] | Any]] = {
            ("GET", "/_sim/faults"): lambda b: self.sim.faults.as_dict(),
            ("POST", "/_sim/faults"): self.sim.set_faults,
            ("GET", "/_sim/fault_log"): lambda b: self.sim.fault_log,
            ("GET", "/_sim/trades"): lambda b: self.sim.trade_log,
            ("GET", "/_sim/orders"): lambda b: self.sim.orders_received,
            ("GET", "/_sim/funding"): lambda b: self.sim.funding_log,
            ("GET", "/_sim/state"): lambda b: self.sim.state(),
            ("POST", "/_sim/price"): self.sim.script_price,
            ("POST", "/_sim/advance"): lambda b: self.sim.advance(float(b.get("ms", 0))),
            ("POST", "/_sim/drop_ws"): lambda b: {"dropped": self.sim.ws.drop_all()},
            ("POST", "/_sim/step"): lambda b: self.sim.step_once() or {},
            ("POST", "/_sim/expire_listen_key"): lambda b: self.sim.expire_listen_key(),
            ("GET", "/_sim/listen_key_log"): lambda b: self.sim.listen_key_log,
        }
        self.unknown_paths: list[str] = []
        self.internal_errors = 0

    def app(self) -> web.Application:
        app = web.Application(client_max_size=1 << 20)
        app.router.add_route("*", "/v5/{tail:.*}", self.sim.bybit.handle)  # Bybit's v5 dialect
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    async def handle(self, request: web.Request) -> web.StreamResponse:
        method, path = request.method, request.path
        if path.startswith("/_sim/"):
            return await self._admin(method, path, request)
        faults = self.sim.faults
        if faults.latency_ms > 0:
            await asyncio.sleep(faults.latency_ms / 1000.0)
        body = await request.text() if request.can_read_body else ""
        params = dict(parse_qsl(request.query_string, keep_blank_values=True))
        if body:
            params.update(parse_qsl(body, keep_blank_values=True))
        key = (method, path)
        injected = await self._inject(method, path, params, pre=True)
        if injected is not None:
            return injected
        try:
            if key in self.public:
                return _json(self.public[key](params))
            if key in self.signed:
                self._auth(request, params, body, key in self.key_only)
                result = self.signed[key](params)
                if key == ("POST", "/fapi/v1/order"):
                    late = await self._inject(method, path, params, pre=False)
                    if late is not None:
                        return late
                return _json(result)
        except SimError as exc:
            return _err(exc.code, exc.msg, exc.status)
        except (ValueError, KeyError, TypeError) as exc:
            return _err(-1102, f"A mandatory parameter was not sent, was empty/null, or malformed ({exc}).")
        except Exception:  # a simulator bug answers like Binance's unknown error, never a dropped socket
            self.internal_errors += 1
            if self.internal_errors <= 3:
                log.exception("internal error on %s %s", method, path)
            return _err(-1000, "An unknown error occured while processing the request.", 500)
        self.unknown_paths.append(f"{method} {path}")
        log.info("unknown path %s %s", method, path)
        return _err(-5000, f"Path {path}, Method {method} is invalid", 404)

    async def _inject(self, method: str, path: str, params: dict[str, str], pre: bool) -> web.Response | None:
        is_order = method == "POST" and path == "/fapi/v1/order"
        kind = self.sim.take_fault(method, path, params, order=is_order, pre=pre)
        if kind is None:
            return None
        f = self.sim.faults
        if kind == "429":
            if is_order:
                self.sim.exchange.record_refused(params, -1003, "429")
            return _err(
                -1003,
                "Too many requests; current limit is 2400 requests per minute.",
                429,
                {"Retry-After": str(f.retry_after_s)},
            )
        if kind == "5xx":
            if is_order:
                self.sim.exchange.record_refused(params, -1001, "503")
            return _err(-1001, "Internal error; unable to process your request. Please try again.", 503)
        if kind in ("timeout", "timeout_after_accept"):
            if kind == "timeout" and is_order:
                self.sim.exchange.record_refused(params, -1007, "timeout (not processed)")
            await asyncio.sleep(f.timeout_s)
            return _err(
                -1007,
                "Timeout waiting for response from backend server. Send status unknown; "
                "execution status unknown.",
                503,
            )
        try:  # "reject"
            self.sim.exchange.reject(params, -2010, "Order was rejected (injected fault).")
        except SimError as exc:
            return _err(exc.code, exc.msg, exc.status)
        return None

    def _auth(self, request: web.Request, params: dict[str, str], body: str, key_only: bool) -> None:
        sim = self.sim
        api_key = request.headers.get("X-MBX-APIKEY", "")
        if sim.api_key and not hmac.compare_digest(api_key, sim.api_key):
            raise SimError(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        if key_only:
            return
        ts = params.get("timestamp")
        if not ts or not ts.isdigit():
            raise SimError(
                -1102, "Mandatory parameter 'timestamp' was not sent, was empty/null, or malformed."
            )
        recv = params.get("recvWindow", "5000")
        try:
            recv_ms = float(recv)
        except ValueError:
            raise SimError(
                -1102, "Mandatory parameter 'recvWindow' was not sent, was empty/null, or malformed."
            ) from None
        if recv_ms > 60_000:
            raise SimError(-1131, "recvWindow must be less than 60000")
        now = wall_ms()
        t = int(ts)
        if t >= now + 1000 or now - t > recv_ms:
            raise SimError(-1021, "Timestamp for this request is outside of the recvWindow.")
        if not sim.api_secret:
            return
        sig = params.get("signature")
        if not sig:
            raise SimError(
                -1102, "Mandatory parameter 'signature' was not sent, was empty/null, or malformed."
            )
        qs = _strip_sig(request.query_string)
        payload = qs + _strip_sig(body)
        want = hmac.new(sim.api_secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig.lower()):
            raise SimError(-1022, "Signature for this request is not valid.")

    async def _admin(self, method: str, path: str, request: web.Request) -> web.Response:
        fn = self.admin.get((method, path))
        if fn is None:
            return _json({"error": f"unknown admin path {method} {path}"}, 404)
        body: dict[str, Any] = {}
        if request.can_read_body:
            raw = await request.read()
            if raw:
                try:
                    body = msgspec.json.decode(raw)
                except msgspec.DecodeError:
                    return _json({"error": "body is not JSON"}, 400)
        body.update(request.query)
        try:
            result = fn(body)
            if asyncio.iscoroutine(result):
                result = await result
        except (ValueError, KeyError, TypeError, msgspec.ValidationError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json(result)

    # -- public handlers --------------------------------------------------------------------
    def _market(self, p: dict[str, str]):  # noqa: ANN202
        m = self.sim.markets.get(p.get("symbol", "").upper())
        if m is None:
            raise SimError(-1121, "Invalid symbol.")
        return m

    def depth(self, p: dict[str, str]) -> dict[str, Any]:
        m = self._market(p)
        limit = int(p.get("limit", "500"))
        if limit not in (5, 10, 20, 50, 100, 500, 1000):
            raise SimError(-1102, "Illegal characters found in parameter 'limit'.")
        fp, fq = m.spec.fmt_price, m.spec.fmt_qty
        now = self.sim.now_ms()
        return {
            "lastUpdateId": m.last_u,
            "E": now,
            "T": now,
            "bids": [[fp(k), fq(m.pub_bids[k])] for k in sorted(m.pub_bids, reverse=True)[:limit]],
            "asks": [[fp(k), fq(m.pub_asks[k])] for k in sorted(m.pub_asks)[:limit]],
        }

    def _premium(self, m: Any) -> dict[str, Any]:
        now = self.sim.now_ms()
        return {
            "symbol": m.spec.symbol,
            "markPrice": f"{m.mark:.8f}",
            "indexPrice": f"{m.index_price:.8f}",
            "estimatedSettlePrice": f"{m.index_price:.8f}",
            "lastFundingRate": f"{m.funding_estimate():.8f}",
            "interestRate": "0.00010000",
            "nextFundingTime": next_funding_ms(now),
            "time": now,
        }

    def premium_index(self, p: dict[str, str]) -> Any:
        if "symbol" in p:
            return self._premium(self._market(p))
        return [self._premium(m) for m in self.sim.markets.values()]

    def funding_rate(self, p: dict[str, str]) -> list[dict[str, Any]]:
        syms = [self._market(p).spec.symbol] if "symbol" in p else list(self.sim.markets)
        start = int(p.get("startTime", 0))
        end = int(p.get("endTime", 1 << 62))
        limit = min(1000, int(p.get("limit", 100)))
        rows = []
        for s in syms:
            spec = self.sim.markets[s].spec
            for r in self.sim.exchange.funding_history[s]:
                if start <= r["fundingTime"] <= end:
                    rows.append(
                        {
                            "symbol": s,
                            "fundingTime": r["fundingTime"],
                            "fundingRate": f"{r['fundingRate']:.8f}",
                            "markPrice": f"{r['markPrice']:.{spec.price_precision}f}",
                        }
                    )
        rows.sort(key=lambda r: r["fundingTime"])
        return rows[-limit:] if "startTime" not in p else rows[:limit]

    def funding_info(self, p: dict[str, str]) -> list[dict[str, Any]]:
        return [
            {
                "symbol": s,
                "adjustedFundingRateCap": "0.00750000",
                "adjustedFundingRateFloor": "-0.00750000",
                "fundingIntervalHours": 8,
                "disclaimer": False,
            }
            for s in self.sim.markets
        ]

    def _book_ticker(self, m: Any) -> dict[str, Any]:
        bb, ba = max(m.pub_bids), min(m.pub_asks)
        spec = m.spec
        return {
            "symbol": spec.symbol,
            "bidPrice": spec.fmt_price(bb),
            "bidQty": spec.fmt_qty(m.pub_bids[bb]),
            "askPrice": spec.fmt_price(ba),
            "askQty": spec.fmt_qty(m.pub_asks[ba]),
            "time": self.sim.now_ms(),
            "lastUpdateId": m.last_u,
        }

    def book_ticker(self, p: dict[str, str]) -> Any:
        if "symbol" in p:
            return self._book_ticker(self._market(p))
        return [self._book_ticker(m) for m in self.sim.markets.values()]

    def ticker_price(self, p: dict[str, str]) -> Any:
        def one(m: Any) -> dict[str, Any]:
            return {
                "symbol": m.spec.symbol,
                "price": m.spec.fmt_price(m.last_price_ticks()),
                "time": self.sim.now_ms(),
            }

        if "symbol" in p:
            return one(self._market(p))
        return [one(m) for m in self.sim.markets.values()]

    def ticker_24h(self, p: dict[str, str]) -> Any:
        def one(m: Any) -> dict[str, Any]:
            spec = m.spec
            last = spec.fmt_price(m.last_price_ticks())
            now = self.sim.now_ms()
            return {
                "symbol": spec.symbol,
                "priceChange": "0",
                "priceChangePercent": "0",
                "weightedAvgPrice": last,
                "lastPrice": last,
                "lastQty": "0",
                "openPrice": last,
                "highPrice": last,
                "lowPrice": last,
                "volume": "0",
                "quoteVolume": "0",
                "openTime": now - 86_400_000,
                "closeTime": now,
                "firstId": 0,
                "lastId": 0,
                "count": 0,
            }

        if "symbol" in p:
            return one(self._market(p))
        return [one(m) for m in self.sim.markets.values()]

    def klines(self, p: dict[str, str], source: str = "last") -> list[list[Any]]:
        m = self._market(p)
        return self.sim.klines(
            m.spec.symbol, p.get("interval", "1m"), min(1500, int(p.get("limit", 500))), source
        )

    def agg_trades(self, p: dict[str, str]) -> list[dict[str, Any]]:
        m = self._market(p)
        spec = m.spec
        limit = min(1000, int(p.get("limit", 500)))
        return [
            {
                "a": t.trade_id,
                "p": spec.fmt_price(t.price_ticks),
                "q": spec.fmt_qty(t.lots),
                "f": t.trade_id,
                "l": t.trade_id,
                "T": t.time_ms,
                "m": t.buyer_maker,
            }
            for t in list(self.sim.recent_trades[spec.symbol])[-limit:]
        ]

    def trades(self, p: dict[str, str]) -> list[dict[str, Any]]:
        m = self._market(p)
        spec = m.spec
        limit = min(1000, int(p.get("limit", 500)))
        return [
            {
                "id": t.trade_id,
                "price": spec.fmt_price(t.price_ticks),
                "qty": spec.fmt_qty(t.lots),
                "quoteQty": f"{spec.price_of(t.price_ticks) * spec.qty_of(t.lots):.8f}",
                "time": t.time_ms,
                "isBuyerMaker": t.buyer_maker,
            }
            for t in list(self.sim.recent_trades[spec.symbol])[-limit:]
        ]

    def open_interest(self, p: dict[str, str]) -> dict[str, Any]:
        m = self._market(p)
        # synthetic: a fixed multiple of the resting book (the simulator has no other traders' positions)
        oi = 50 * (sum(m.pub_bids.values()) + sum(m.pub_asks.values()))
        return {"openInterest": m.spec.fmt_qty(oi), "symbol": m.spec.symbol, "time": self.sim.now_ms()}

    # -- signed handlers --------------------------------------------------------------------
    def open_orders(self, p: dict[str, str]) -> list[dict[str, Any]]:
        ex = self.sim.exchange
        syms = [self._market(p).spec.symbol] if "symbol" in p else list(self.sim.markets)
        return [ex.order_json(o) for s in syms for o in ex.open_by_symbol[s]]

    def all_orders(self, p: dict[str, str]) -> list[dict[str, Any]]:
        ex = self.sim.exchange
        s = self._market(p).spec.symbol
        limit = min(1000, int(p.get("limit", 500)))
        return [ex.order_json(o) for o in ex.orders.values() if o.symbol == s][-limit:]

    def cancel_all(self, p: dict[str, str]) -> dict[str, Any]:
        self.sim.exchange.cancel_all(self._market(p).spec.symbol)
        return {"code": 200, "msg": "The operation of cancel all open order is done."}

    def position_risk(self, p: dict[str, str], version: int) -> list[dict[str, Any]]:
        ex = self.sim.exchange
        syms = [self._market(p).spec.symbol] if "symbol" in p else list(self.sim.markets)
        out = [ex.position_json(ex.account.positions[s], version) for s in syms]
        if version >= 3:  # v3 lists only symbols with a position or open orders
            out = [
                d
                for d, s in zip(out, syms, strict=True)
                if float(d["positionAmt"]) != 0 or ex.open_by_symbol[s]
            ]
        return out

    def user_trades(self, p: dict[str, str]) -> list[dict[str, Any]]:
        ex = self.sim.exchange
        s = self._market(p).spec.symbol
        start = int(p.get("startTime", 0))
        end = int(p.get("endTime", 1 << 62))
        from_id = int(p.get("fromId", 0))
        limit = min(1000, int(p.get("limit", 500)))
        rows = [
            t for t in ex.trade_log if t["symbol"] == s and start <= t["time"] <= end and t["id"] >= from_id
        ]
        rows = rows[:limit] if ("fromId" in p or "startTime" in p) else rows[-limit:]
        return [ex.user_trade_json(t) for t in rows]

    def income(self, p: dict[str, str]) -> list[dict[str, Any]]:
        ex = self.sim.exchange
        s = p.get("symbol")
        kind = p.get("incomeType")
        start = int(p.get("startTime", 0))
        end = int(p.get("endTime", 1 << 62))
        limit = min(1000, int(p.get("limit", 100)))
        rows = [
            r
            for r in ex.income
            if (not s or r["symbol"] == s)
            and (not kind or r["incomeType"] == kind)
            and start <= r["time"] <= end
        ]
        rows = rows[:limit] if "startTime" in p else rows[-limit:]
        return [{**r, "income": f"{r['income']:.8f}"} for r in rows]

    def set_dual(self, p: dict[str, str]) -> dict[str, Any]:
        if p.get("dualSidePosition", "false").lower() == "true":
            raise SimError(-4068, "The simulator supports one-way (BOTH) position mode only.")
        raise SimError(-4059, "No need to change position side.")

    def symbol_config(self, p: dict[str, str]) -> list[dict[str, Any]]:
        ex = self.sim.exchange
        syms = [self._market(p).spec.symbol] if "symbol" in p else list(self.sim.markets)
        out = []
        for s in syms:
            pos = ex.account.positions[s]
            spec = self.sim.markets[s].spec
            cap = next((b.notional_cap for b in spec.brackets if b.max_leverage >= pos.leverage), 1e12)
            out.append(
                {
                    "symbol": s,
                    "marginType": "ISOLATED" if pos.isolated else "CROSSED",
                    "isAutoAddMargin": "false",
                    "leverage": pos.leverage,
                    "maxNotionalValue": f"{min(cap, 1e12):.0f}",
                }
            )
        return out

    def leverage_bracket(self, p: dict[str, str]) -> Any:
        syms = [self._market(p).spec.symbol] if "symbol" in p else list(self.sim.markets)
        out = []
        for s in syms:
            spec = self.sim.markets[s].spec
            rows, floor = [], 0.0
            for i, b in enumerate(spec.brackets, 1):
                cap = b.notional_cap if b.notional_cap != float("inf") else 1e12
                rows.append(
                    {
                        "bracket": i,
                        "initialLeverage": b.max_leverage,
                        "notionalCap": cap,
                        "notionalFloor": floor,
                        "maintMarginRatio": b.mmr,
                        "cum": b.cum,
                    }
                )
                floor = cap
            out.append({"symbol": s, "brackets": rows})
        return out[0] if "symbol" in p else out


_SIG = re.compile(r"(^|&)signature=[^&]*")


def _strip_sig(s: str) -> str:
    return _SIG.sub("", s).lstrip("&") if "signature=" in s else s


def _int(p: dict[str, str], key: str) -> int:
    try:
        return int(p[key])
    except (KeyError, ValueError):
        raise SimError(
            -1102, f"Mandatory parameter '{key}' was not sent, was empty/null, or malformed."
        ) from None
