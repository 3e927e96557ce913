"""The local exchange simulator: a Binance USD-M look-alike on 127.0.0.1 (REST + websocket), which
also answers Bybit's v5 linear REST dialect under /v5/ (kaizen/venue/sim/bybit_rest.py).

Clock: sim ms = start epoch + wall elapsed x speed (+ explicit advances from /_sim/advance).
Event times (E/T), funding times and fills use the sim clock; signed-request timestamps are
checked against the wall clock (and /fapi/v1/time answers the wall clock), as a client signs with
its own wall clock. Market data is published on a WALL-time cadence (default every 100 ms), so CPU
use does not grow with the speed factor.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from aiohttp import web

from kaizen.venue.sim.bybit_rest import BybitRestApi
from kaizen.venue.sim.exchange import Exchange
from kaizen.venue.sim.market import SymbolMarket, next_funding_ms
from kaizen.venue.sim.model import REGIMES, MarketModel
from kaizen.venue.sim.rest import RestApi
from kaizen.venue.sim.spec import PERCENT_DOWN, PERCENT_UP, SPECS
from kaizen.venue.sim.ws import WsHub

log = logging.getLogger("kaizen.sim")
START_EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
DEPTH_STREAMS = ("@depth@100ms", "@depth@0ms", "@depth", "@depth@250ms", "@depth@500ms")


@dataclass
class Faults:
    """Fault injection. Counters apply to the next N matching REST requests, then switch off."""

    latency_ms: float = 0.0  # added to every REST answer
    rest_5xx: int = 0  # answer 503 {"code": -1001}
    rest_429: int = 0  # answer 429 {"code": -1003} with Retry-After
    retry_after_s: int = 1
    timeout: int = 0  # hang timeout_s, then 503 -1007 (the request was NOT processed)
    timeout_after_accept: int = 0  # new orders: processed, then hang timeout_s, then 503 -1007
    timeout_s: float = 5.0
    reject_orders: int = 0  # new orders rejected with -2010
    partial_fill_ratio: float = 0.0  # fill at most this fraction of an order per match (0 = off)
    paths: list[str] = field(default_factory=list)  # REST faults only on these path prefixes
    methods: list[str] = field(default_factory=list)  # ... and these methods (empty = all)
    refuse_ws: bool = False  # refuse new websocket connections
    ws_drop_every_s: float = 0.0  # cut all websocket connections periodically (wall seconds)
    ws_latency_ms: float = 0.0  # every websocket message is sent this much later

    def applies(self, method: str, path: str) -> bool:
        if self.paths and not any(path.startswith(p) for p in self.paths):
            return False
        return not self.methods or method in self.methods

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Simulator:
    def __init__(
        self,
        seed: int = 7,
        model: MarketModel | None = None,
        speed: float = 60.0,
        symbols: tuple[str, ...] | list[str] = ("BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBUSDT"),
        api_key: str = "",
        api_secret: str = "",
        host: str = "127.0.0.1",
        port: int = 0,
        ws_port: int = 0,
        starting_balance: float = 10_000.0,
        maker_fee: float = 0.0002,
        taker_fee: float = 0.0005,
        start_time_ms: int = START_EPOCH_MS,
        publish_interval_s: float = 0.1,
        default_leverage: int = 20,
        faults: dict[str, Any] | None = None,
        replay_dir: str | None = None,
        replay_interval: str = "1h",
        replay_start_ms: int | None = None,
        fee_tier: int | None = None,
        ws_layout: str = "routed",
        listen_key_ttl_s: float = 3600.0,
    ) -> None:
        unknown = [s for s in symbols if s not in SPECS]
        if unknown:
            raise ValueError(f"unknown symbol(s) {unknown}; the simulator lists {sorted(SPECS)}")
        if fee_tier is not None:
            from kaizen.venue.sim.spec import BINANCE_USDM_FEE_TIERS

            if fee_tier not in BINANCE_USDM_FEE_TIERS:
                raise ValueError(f"fee_tier must be 0..9 (Binance USD-M VIP tiers), got {fee_tier}")
            maker_fee, taker_fee = BINANCE_USDM_FEE_TIERS[fee_tier]
        self.fee_tier = fee_tier or 0
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.seed = seed
        self.speed = float(speed)
        self.api_key = api_key
        self.api_secret = api_secret
        self.host = host
        self.port = port
        self.publish_interval_s = publish_interval_s
        series = {}
        if replay_dir is not None:
            from kaizen.venue.sim.replay import load_replay

            series = {s: load_replay(replay_dir, s, replay_interval) for s in symbols}
            common = max(x.start_ms for x in series.values())
            start_time_ms = replay_start_ms if replay_start_ms is not None else common
        self.start_time_ms = start_time_ms
        self._t0 = time.monotonic()
        self._offset_ms = 0.0
        self.aux_rng = random.Random(seed + 7_919)  # trade counts, update-id gaps
        # One price process for every synthetic symbol (MarketModel: the demo market by default,
        # `MarketModel.synth()` for the planted one); it has its own RNG, so a seed gives one path.
        self.model = (model or MarketModel.demo()).validate()
        rngs = [random.Random(seed * 1_000_003 + i) for i in range(len(symbols))]
        starts = [
            series[s].price_at(start_time_ms)
            if s in series
            else SPECS[s].start_price * (1.0 + 0.05 * (r.random() - 0.5))
            for s, r in zip(symbols, rngs, strict=True)
        ]
        synthetic = [i for i, s in enumerate(symbols) if s not in series]
        self.process = (
            self.model.process(
                [SPECS[symbols[i]].annual_vol for i in synthetic], [starts[i] for i in synthetic], seed
            )
            if synthetic
            else None
        )
        self.markets: dict[str, SymbolMarket] = {}
        for i, s in enumerate(symbols):
            slot = synthetic.index(i) if i in synthetic else 0
            self.markets[s] = SymbolMarket(
                SPECS[s], rngs[i], starts[i], replay=series.get(s), process=self.process, slot=slot
            )
        self.exchange = Exchange(  # fees: explicit maker/taker, or the VIP tier's
            self.markets, self.now_ms, starting_balance, maker_fee, taker_fee, default_leverage
        )
        self.exchange.fee_tier = self.fee_tier
        self.faults = Faults()
        self.fault_log: list[dict[str, Any]] = []
        # User-data stream: one listenKey at a time, valid listen_key_ttl_s of wall time after
        # its POST or last PUT (Binance: 60 min); "" until a client asks for one.
        self.listen_key = ""
        self.listen_key_ttl_s = float(listen_key_ttl_s)
        self.listen_key_expires = 0.0
        self.listen_key_log: list[dict[str, Any]] = []  # POST/PUT/DELETE/expired, for tests
        self.ws = WsHub(host, ws_port, ws_layout)
        self.exchange.listeners.append(self._publish_user_event)
        self.rest = RestApi(self)
        self.bybit = BybitRestApi(self)  # Bybit's v5 dialect on the same port (/v5/...)
        if faults:
            self.set_faults(dict(faults))
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._last_wall = time.monotonic()
        self._next_mark_1s = 0.0
        self._next_mark_3s = 0.0
        self._next_drop = 0.0
        self._bars: dict[str, list[list[float]]] = {s: [] for s in self.markets}
        self._mark_bars: dict[str, list[list[float]]] = {s: [] for s in self.markets}
        self._index_bars: dict[str, list[list[float]]] = {s: [] for s in self.markets}
        self.recent_trades: dict[str, deque[Any]] = {s: deque(maxlen=1000) for s in self.markets}
        self.rest_url = ""
        self.ws_url = ""
        self.steps = 0
        self.step_errors = 0

    # -- lifecycle --------------------------------------------------------------------------
    async def start(self) -> None:
        self._runner = web.AppRunner(self.rest.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        await self.ws.start()
        self.rest_url = f"http://{self.host}:{self.port}"
        self.ws_url = f"ws://{self.host}:{self.ws.port}"
        self._last_wall = time.monotonic()
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        for t in list(self._tasks):
            t.cancel()
        await self.ws.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # -- user-data stream -------------------------------------------------------------------
    def listen_key_post(self) -> dict[str, Any]:
        """POST /fapi/v1/listenKey: the active key (extended), or a new one."""
        if not self._listen_key_valid():
            self.listen_key = secrets.token_hex(32)
        self.listen_key_expires = time.monotonic() + self.listen_key_ttl_s
        self.listen_key_log.append({"op": "POST", "wall": time.monotonic()})
        return {"listenKey": self.listen_key}

    def listen_key_put(self) -> dict[str, Any]:
        """PUT /fapi/v1/listenKey: extend the active key; -1125 when there is none (Binance)."""
        from kaizen.venue.sim.exchange import SimError

        if not self._listen_key_valid():
            self.listen_key_log.append({"op": "PUT", "wall": time.monotonic(), "error": -1125})
            raise SimError(-1125, "This listenKey does not exist.")
        self.listen_key_expires = time.monotonic() + self.listen_key_ttl_s
        self.listen_key_log.append({"op": "PUT", "wall": time.monotonic()})
        return {"listenKey": self.listen_key}

    def listen_key_delete(self) -> dict[str, Any]:
        """DELETE /fapi/v1/listenKey: closes the stream; Binance pushes `listenKeyExpired` down it."""
        self.listen_key_log.append({"op": "DELETE", "wall": time.monotonic()})
        if self._listen_key_valid():
            self.expire_listen_key()
        return {}

    def expire_listen_key(self) -> dict[str, Any]:
        """The key lapses now: its subscribers get `listenKeyExpired` and nothing after it."""
        key = self.listen_key
        if key:
            self.listen_key_expires = 0.0
            self.listen_key_log.append({"op": "expired", "wall": time.monotonic()})
            self.ws.publish(key.lower(), {"e": "listenKeyExpired", "E": str(self.now_ms()), "listenKey": key})
        return {"expired": bool(key)}

    def _listen_key_valid(self) -> bool:
        return bool(self.listen_key) and time.monotonic() < self.listen_key_expires

    def _publish_user_event(self, ev: dict[str, Any]) -> None:
        if self._listen_key_valid():
            self.ws.publish(self.listen_key.lower(), ev)

    # -- clock ------------------------------------------------------------------------------
    def now_ms(self) -> int:
        return int(self.start_time_ms + (time.monotonic() - self._t0) * self.speed * 1000.0 + self._offset_ms)

    def advance(self, ms: float) -> dict[str, Any]:
        """Jump the sim clock forward (the price process does not move across the jump); settles
        any funding boundary crossed and checks liquidations at once."""
        if ms < 0:
            raise ValueError("ms must be >= 0")
        self._offset_ms += ms
        now = self.now_ms()
        self.exchange.settle_funding(now)
        self.exchange.check_liquidations()
        return {"now": now, "nextFundingTime": self.exchange.next_funding}

    # -- views for tests --------------------------------------------------------------------
    @property
    def orders_received(self) -> list[dict[str, Any]]:
        return self.exchange.orders_received

    @property
    def trade_log(self) -> list[dict[str, Any]]:
        return self.exchange.trade_log

    @property
    def funding_log(self) -> list[dict[str, Any]]:
        return self.exchange.funding_log

    def log_fault(
        self, kind: str, method: str, path: str, params: dict[str, str], client_id: str | None = None
    ) -> None:
        self.fault_log.append(
            {
                "time": self.now_ms(),
                "fault": kind,
                "method": method,
                "path": path,
                "clientOrderId": params.get("newClientOrderId", "") if client_id is None else client_id,
            }
        )

    def take_fault(
        self, method: str, path: str, params: dict[str, str], *, order: bool, pre: bool, client_id: str = ""
    ) -> str | None:
        """The injected fault for this request, if any, counted down and logged: before processing
        "429", "5xx", "timeout" (not processed) or, for new orders, "reject"; after a new order was
        processed, "timeout_after_accept". One decision for every REST dialect the simulator speaks
        (Binance, Bybit); each answers it in its own venue's terms."""
        f = self.faults
        if not f.applies(method, path):
            return None
        kind = None
        if not pre:
            if order and f.timeout_after_accept > 0:
                f.timeout_after_accept -= 1
                kind = "timeout_after_accept"
        elif f.rest_429 > 0:
            f.rest_429 -= 1
            kind = "429"
        elif f.rest_5xx > 0:
            f.rest_5xx -= 1
            kind = "5xx"
        elif f.timeout > 0:
            f.timeout -= 1
            kind = "timeout"
        elif order and f.reject_orders > 0:
            f.reject_orders -= 1
            kind = "reject"
        if kind is not None:
            self.log_fault(kind, method, path, params, client_id or params.get("newClientOrderId", ""))
        return kind

    def set_faults(self, body: dict[str, Any]) -> dict[str, Any]:
        names = {f.name for f in fields(Faults)}
        actions = {"drop_ws", "reset"}
        bad = [k for k in body if k not in names and k not in actions]
        if bad:
            raise ValueError(f"unknown fault field(s) {bad}; known: {sorted(names | actions)}")
        if body.get("reset"):
            self.faults = Faults()
        for k, v in body.items():
            if k in names:
                cur = getattr(self.faults, k)
                setattr(self.faults, k, type(cur)(v) if not isinstance(cur, list) else list(v))
        self.exchange.partial_fill_ratio = self.faults.partial_fill_ratio
        self.ws.refuse = self.faults.refuse_ws
        self.ws.latency_s = self.faults.ws_latency_ms / 1000.0
        out = self.faults.as_dict()
        if body.get("drop_ws"):
            out["dropped"] = self.ws.drop_all()
            self.log_fault("drop_ws", "", "", {})
        return out

    def state(self) -> dict[str, Any]:
        ex = self.exchange
        return {
            "now": self.now_ms(),
            "wallet": ex.account.wallet,
            "nextFundingTime": ex.next_funding,
            "wsConnections": len(self.ws.conns),
            "wsLayout": self.ws.layout,
            "wsRoutes": sorted({c.route for c in self.ws.conns}),
            "wsDropped": self.ws.dropped,
            "unknownPaths": self.rest.unknown_paths,
            "markets": {
                s: {
                    "mark": m.mark,
                    "index": m.index_price,
                    "bestBid": m.spec.price_of(m.best_bid()),
                    "bestAsk": m.spec.price_of(m.best_ask()),
                    "lastUpdateId": m.last_u,
                    "trend": m.trend,
                    "highVol": m.high_vol,
                    "regime": REGIMES[m.regime] if m.regime >= 0 else None,
                    "scripted": m.scripted,
                    "fundingEstimate": m.funding_estimate(),
                }
                for s, m in self.markets.items()
            },
            "positions": {
                s: {
                    "qty": m.spec.qty_of(p.lots),
                    "entry": p.entry,
                    "leverage": p.leverage,
                    "isolated": p.isolated,
                    "isolatedMargin": p.iso_margin,
                    "liquidationPrice": ex.liquidation_price(p),
                    "maintMargin": ex.maint(p)[0],
                }
                for s, m in self.markets.items()
                for p in [ex.account.positions[s]]
            },
            "openOrders": sum(len(v) for v in ex.open_by_symbol.values()),
            "model": {
                "name": self.model.name,
                "simHours": self.process.t_h if self.process is not None else 0.0,
                "breakHours": self.model.break_h,
                "afterBreak": bool(self.process is not None and self.process.after_break),
            },
        }

    def script_price(self, body: dict[str, Any]) -> dict[str, Any]:
        """Pin a symbol's mark (and book) at a price, or follow a path [[wall_delay_s, price], ...];
        {"release": true} hands it back to the random process from the pinned level."""
        sym = str(body["symbol"]).upper()
        m = self.markets.get(sym)
        if m is None:
            raise ValueError(f"unknown symbol {sym!r}")
        if body.get("release"):
            if m.scripted is not None:
                m.index = m.scripted / (1.0 + m.premium)  # the model re-anchors a range there
            m.scripted = None
            return {"symbol": sym, "released": True}
        if "path" in body:
            path = [(float(d), float(p)) for d, p in body["path"]]
            task = asyncio.get_running_loop().create_task(self._follow(m, path))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return {"symbol": sym, "steps": len(path)}
        self._set_price(m, float(body["price"]))
        return {"symbol": sym, "mark": m.mark}

    async def _follow(self, m: SymbolMarket, path: list[tuple[float, float]]) -> None:
        for delay, price in path:
            await asyncio.sleep(delay)
            self._set_price(m, price)

    def _set_price(self, m: SymbolMarket, price: float) -> None:
        if not price > 0:
            raise ValueError(f"price must be > 0, got {price}")
        m.scripted = price
        now = self.now_ms()
        self._update_symbol(m, 0.0, now, trades=False)
        self.exchange.check_liquidations()

    # -- market loop ------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.publish_interval_s)
            try:
                self.step_once()
            except Exception:  # keep serving; a bug in one step must not kill the venue
                self.step_errors += 1
                if self.step_errors <= 3 or self.step_errors % 1000 == 0:  # never flood a parent's pipe
                    log.exception("simulator step failed (%d so far)", self.step_errors)

    def step_once(self) -> None:
        wall = time.monotonic()
        # Each step advances the price process by exactly one publishing interval of sim time, so a
        # seed gives the same price path whatever the wall-clock jitter or our own orders.
        dt = min(self.publish_interval_s, 1.0) * self.speed
        self._last_wall = wall
        now = self.now_ms()
        if self.process is not None:
            self.process.step(dt / 3_600.0)
        for m in self.markets.values():
            self._update_symbol(m, dt, now)
        ex = self.exchange
        ex.settle_funding(now)
        ex.check_liquidations()
        if self.listen_key and 0 < self.listen_key_expires <= wall:
            self.expire_listen_key()
        if wall >= self._next_mark_1s:
            self._next_mark_1s = wall + 1.0
            self._publish_marks(now, "@markPrice@1s")
        if wall >= self._next_mark_3s:
            self._next_mark_3s = wall + 3.0
            self._publish_marks(now, "@markPrice")
        f = self.faults
        if f.ws_drop_every_s > 0 and wall >= self._next_drop:
            if self._next_drop > 0:
                n = self.ws.drop_all()
                if n:
                    self.log_fault("drop_ws", "", "", {})
            self._next_drop = wall + f.ws_drop_every_s
        self.steps += 1

    def _update_symbol(self, m: SymbolMarket, dt: float, now: int, trades: bool = True) -> None:
        spec = m.spec
        sym = spec.symbol
        low = sym.lower()
        m.step(dt, now)
        m.rebuild(now)
        bg = m.background_trades(now, self.aux_rng.randint(0, 2)) if trades else []
        self.exchange.match_resting(m, bg)
        own = [t for s, t in self.exchange.public_trades if s == sym]
        if own:
            self.exchange.public_trades = [(s, t) for s, t in self.exchange.public_trades if s != sym]
        self._bar(m, now, bg + own)
        self.recent_trades[sym].extend(own + bg)
        d = m.diff(*self.exchange.resting_levels(sym))
        hub = self.ws
        if d is not None:
            b, a = d
            pu = m.last_u
            first = pu + 1
            m.last_u = first + len(b) + len(a) + self.aux_rng.randint(0, 3)
            if any(hub.wants(low + s) for s in DEPTH_STREAMS):
                ev = {
                    "e": "depthUpdate",
                    "E": now,
                    "T": now,
                    "s": sym,
                    "U": first,
                    "u": m.last_u,
                    "pu": pu,
                    "b": b,
                    "a": a,
                }
                for s in DEPTH_STREAMS:
                    hub.publish(low + s, ev)
        for t in own + bg:
            if hub.wants(low + "@aggtrade"):
                hub.publish(
                    low + "@aggtrade",
                    {
                        "e": "aggTrade",
                        "E": now,
                        "a": t.trade_id,
                        "s": sym,
                        "p": spec.fmt_price(t.price_ticks),
                        "q": spec.fmt_qty(t.lots),
                        "f": t.trade_id,
                        "l": t.trade_id,
                        "T": t.time_ms,
                        "m": t.buyer_maker,
                    },
                )
            if hub.wants(low + "@trade"):
                hub.publish(
                    low + "@trade",
                    {
                        "e": "trade",
                        "E": now,
                        "T": t.time_ms,
                        "s": sym,
                        "t": t.trade_id,
                        "p": spec.fmt_price(t.price_ticks),
                        "q": spec.fmt_qty(t.lots),
                        "X": "MARKET",
                        "m": t.buyer_maker,
                    },
                )
        for n in (5, 10, 20):
            names = [
                f"{low}@depth{n}",
                f"{low}@depth{n}@100ms",
                f"{low}@depth{n}@250ms",
                f"{low}@depth{n}@500ms",
            ]
            live = [x for x in names if hub.wants(x)]
            if live:
                ev = {
                    "e": "depthUpdate",
                    "E": now,
                    "T": now,
                    "s": sym,
                    "U": m.last_u,
                    "u": m.last_u,
                    "pu": m.last_u,
                    "b": [
                        [spec.fmt_price(k), spec.fmt_qty(m.pub_bids[k])]
                        for k in sorted(m.pub_bids, reverse=True)[:n]
                    ],
                    "a": [[spec.fmt_price(k), spec.fmt_qty(m.pub_asks[k])] for k in sorted(m.pub_asks)[:n]],
                }
                for x in live:
                    hub.publish(x, ev)
        if hub.wants(low + "@bookticker") and m.pub_bids and m.pub_asks:
            bb, ba = max(m.pub_bids), min(m.pub_asks)
            hub.publish(
                low + "@bookticker",
                {
                    "e": "bookTicker",
                    "u": m.last_u,
                    "s": sym,
                    "b": spec.fmt_price(bb),
                    "B": spec.fmt_qty(m.pub_bids[bb]),
                    "a": spec.fmt_price(ba),
                    "A": spec.fmt_qty(m.pub_asks[ba]),
                    "T": now,
                    "E": now,
                },
            )

    def _publish_marks(self, now: int, suffix: str) -> None:
        nft = next_funding_ms(now)
        for m in self.markets.values():
            name = m.spec.symbol.lower() + suffix.lower()
            if not self.ws.wants(name):
                continue
            self.ws.publish(
                name,
                {
                    "e": "markPriceUpdate",
                    "E": now,
                    "s": m.spec.symbol,
                    "p": f"{m.mark:.8f}",
                    "P": f"{m.index_price:.8f}",
                    "i": f"{m.index_price:.8f}",
                    "r": f"{m.funding_estimate():.8f}",
                    "T": nft,
                },
            )

    def _bar(self, m: SymbolMarket, now: int, trades: list[Any]) -> None:
        sym = m.spec.symbol
        vol = sum(m.spec.qty_of(t.lots) for t in trades)
        self._bar_into(self._bars[sym], now, m.spec.price_of(m.last_price_ticks()), vol)
        self._bar_into(self._mark_bars[sym], now, m.mark, 0.0)
        self._bar_into(self._index_bars[sym], now, m.index_price, 0.0)

    @staticmethod
    def _bar_into(bars: list[list[float]], now: int, px: float, vol: float) -> None:
        t0 = now // 60_000 * 60_000
        if not bars or bars[-1][0] != t0:
            bars.append([t0, px, px, px, px, 0.0])
            if len(bars) > 1500:
                del bars[:-1500]
        b = bars[-1]
        b[2] = max(b[2], px)
        b[3] = min(b[3], px)
        b[4] = px
        b[5] += vol

    def klines(self, symbol: str, interval: str, limit: int, source: str = "last") -> list[list[Any]]:
        """1-minute bars built from what the simulator published (last trade, mark or index
        price), aggregated to `interval`; the history starts when the simulator did."""
        ms = {
            "1m": 60_000,
            "3m": 180_000,
            "5m": 300_000,
            "15m": 900_000,
            "30m": 1_800_000,
            "1h": 3_600_000,
            "4h": 14_400_000,
            "8h": 28_800_000,
            "1d": 86_400_000,
        }.get(interval)
        if ms is None:
            from kaizen.venue.sim.exchange import SimError

            raise SimError(-1120, "Invalid interval.")
        spec = self.markets[symbol].spec
        agg: dict[int, list[float]] = {}
        src = {"last": self._bars, "mark": self._mark_bars, "index": self._index_bars}[source]
        for t, o, h, lo, c, v in src[symbol]:
            k = int(t) // ms * ms
            if k not in agg:
                agg[k] = [o, h, lo, c, v]
            else:
                a = agg[k]
                a[1], a[2], a[3], a[4] = max(a[1], h), min(a[2], lo), c, a[4] + v
        rows = []
        for k in sorted(agg)[-limit:]:
            o, h, lo, c, v = agg[k]
            fp = f".{spec.price_precision}f"
            rows.append(
                [
                    k,
                    format(o, fp),
                    format(h, fp),
                    format(lo, fp),
                    format(c, fp),
                    f"{v:.{spec.qty_precision}f}",
                    k + ms - 1,
                    f"{v * c:.4f}",
                    0,
                    "0",
                    "0",
                    "0",
                ]
            )
        return rows

    # -- exchangeInfo -----------------------------------------------------------------------
    def exchange_info(self) -> dict[str, Any]:
        syms = []
        for s, m in self.markets.items():
            spec = m.spec
            syms.append(
                {
                    "symbol": s,
                    "pair": s,
                    "contractType": "PERPETUAL",
                    "deliveryDate": 4133404800000,
                    "onboardDate": 1569398400000,
                    "status": "TRADING",
                    "maintMarginPercent": "2.5000",
                    "requiredMarginPercent": "5.0000",
                    "baseAsset": spec.base,
                    "quoteAsset": "USDT",
                    "marginAsset": "USDT",
                    "pricePrecision": spec.price_precision,
                    "quantityPrecision": spec.qty_precision,
                    "baseAssetPrecision": 8,
                    "quotePrecision": 8,
                    "underlyingType": "COIN",
                    "underlyingSubType": [],
                    "settlePlan": 0,
                    "triggerProtect": "0.0500",
                    "liquidationFee": "0.012500",
                    "marketTakeBound": "0.05",
                    "maxMoveOrderLimit": 10000,
                    "filters": [
                        {
                            "filterType": "PRICE_FILTER",
                            "minPrice": spec.tick,
                            "maxPrice": "10000000",
                            "tickSize": spec.tick,
                        },
                        {
                            "filterType": "LOT_SIZE",
                            "minQty": spec.min_qty,
                            "maxQty": spec.max_qty,
                            "stepSize": spec.lot,
                        },
                        {
                            "filterType": "MARKET_LOT_SIZE",
                            "minQty": spec.min_qty,
                            "maxQty": spec.market_max_qty,
                            "stepSize": spec.lot,
                        },
                        {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                        {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                        {"filterType": "MIN_NOTIONAL", "notional": f"{spec.min_notional:g}"},
                        {
                            "filterType": "PERCENT_PRICE",
                            "multiplierUp": f"{PERCENT_UP:.4f}",
                            "multiplierDown": f"{PERCENT_DOWN:.4f}",
                            "multiplierDecimal": "4",
                        },
                    ],
                    "orderTypes": ["LIMIT", "MARKET"],
                    "timeInForce": ["GTC", "IOC", "FOK", "GTX"],
                }
            )
        return {
            "timezone": "UTC",
            "serverTime": int(time.time() * 1000),
            "futuresType": "U_MARGINED",
            "rateLimits": [
                {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400},
                {"rateLimitType": "ORDERS", "interval": "MINUTE", "intervalNum": 1, "limit": 1200},
                {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 300},
            ],
            "exchangeFilters": [],
            "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
            "symbols": syms,
        }
