"""Live market data: picows websocket clients for Binance USD-M streams on the routed layout.

Binance serves USD-M streams through routed entry points under one base (kaizen.market.routes):
book diffs and bookTicker from `/public`, aggTrade and markPrice from `/market`. The feed opens
one combined-stream connection per route it needs (two for market data), each carrying every
symbol's streams of that route. Why one per route, not one per symbol or stream: a connection
may carry 1024 streams and Binance limits new connections (300 per 5 min per IP), so four symbols
fit easily in one per route, and a reconnect storm stays small; Binance's own advice is to split
connections by traffic type, which the routes already do. On a base declared legacy
(`ws_layout="legacy"`, a testnet still on the old layout) everything shares one connection to
the unrouted `/stream`.

Each connection reconnects with exponential backoff and full jitter, pings when idle (picows
auto-ping) and drops a peer that stops answering, and is renewed before Binance's 24 h cut-off.
After every (re)connect of the connection carrying the book, all books resync from fresh REST
snapshots, as Binance's rules require.

Silence is a fault: Binance acknowledges a subscription on the wrong route (or on a legacy URL)
and then sends nothing. Every subscribed stream has a silence limit from its cadence (markPrice@1s
every 1 s, markPrice every 3 s, book streams and trades on every event); a stream quiet for longer
marks its symbol stale (trading paused) with a MarketStatus record naming the stream and route,
and the symbol is valid again only when every silent stream has spoken. Everything after the
socket is the same code the replayer runs (StreamProcessor).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from typing import Any

from picows import WSListener, WSMsgType, WSTransport, ws_connect

from kaizen.ext.book import OrderBook
from kaizen.market.messages import AggTrade, BookTicker, DepthUpdate, MarkPrice, Trade, stream_names
from kaizen.market.routes import MARKET, PUBLIC, check_ws_base, combined_url, group_by_route, stream_route
from kaizen.market.sync import StreamProcessor

log = logging.getLogger("kaizen.market.feed")

ROLLOVER_S = 23.5 * 3600  # Binance closes a connection after 24 h; renew it before
# Trades come on every fill, with no fixed cadence; Binance's four USDT perpetuals we trade fill
# many times a second, so half a minute without one is a fault, not a quiet market.
TRADE_SILENCE_MS = 30_000
DEFAULT_EXTRA = ("bookTicker", "aggTrade", "markPrice@1s")


def stream_spec(suffix: str) -> tuple[type, int]:
    """(event type, fixed cadence in ms or 0 when event-driven) of a stream suffix as written
    after '<symbol>@'; ValueError for a stream the feed does not process."""
    s = suffix.lower()
    if s in ("markprice@1s", "markprice"):
        return MarkPrice, 1000 if s.endswith("@1s") else 3000
    if s == "depth" or (s.startswith("depth@") and s.endswith("ms")):
        return DepthUpdate, 0  # diffs only when the book changed
    kinds = {"bookticker": BookTicker, "aggtrade": AggTrade, "trade": Trade}
    if s in kinds:
        return kinds[s], 0
    raise ValueError(
        f"stream '@{suffix}' is not one the live feed processes "
        "(depth[@Nms], bookTicker, aggTrade, trade, markPrice[@1s])"
    )


class _Listener(WSListener):
    def __init__(self, feed: MarketFeed) -> None:
        self.feed = feed

    def on_ws_frame(self, transport: WSTransport, frame) -> None:
        mt = frame.msg_type
        if mt == WSMsgType.TEXT or mt == WSMsgType.BINARY:
            self.feed._on_message(frame.get_payload_as_bytes())
        elif mt == WSMsgType.CLOSE:
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        self.feed._counters["disconnects"] += 1


class _Watch:
    """One subscribed stream of one symbol and its silence limit."""

    __slots__ = ("symbol", "kind", "name", "route", "conn", "limit_ns")

    def __init__(self, symbol: str, kind: type, name: str, route: str, conn: str, limit_ns: int) -> None:
        self.symbol = symbol
        self.kind = kind
        self.name = name
        self.route = route  # the route that serves the stream
        self.conn = conn  # the connection carrying it: the route, or "legacy"
        self.limit_ns = limit_ns


class MarketFeed:
    def __init__(
        self,
        ws_url: str,
        rest_url: str,
        symbols: list[str],
        tick_sizes: dict[str, float],
        lot_sizes: dict[str, float],
        handler: Any,
        lineage: Any = None,
        stale_after_ms: int = 5000,
        depth_stream: str = "depth@100ms",
        *,
        extra_streams: tuple[str, ...] = DEFAULT_EXTRA,
        ws_layout: str = "routed",
        silence_ms: dict[str, int] | None = None,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        ping_idle_s: float = 10.0,
        rollover_s: float = ROLLOVER_S,
        snapshot_limit: int = 1000,
        recorder: Any = None,
    ) -> None:
        self.ws_url = check_ws_base(ws_url)
        self.ws_layout = ws_layout
        self.rest_url = rest_url.rstrip("/")
        self.symbols = [s.upper() for s in symbols]
        tick = {k.upper(): v for k, v in tick_sizes.items()}
        lot = {k.upper(): v for k, v in lot_sizes.items()}
        self.handler = handler
        self.lineage = lineage
        self.stale_after_ns = int(stale_after_ms) * 1_000_000
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.ping_idle_s = ping_idle_s
        self.rollover_s = rollover_s
        self.snapshot_limit = snapshot_limit
        self.recorder = recorder
        overrides = {k.lower(): int(v) for k, v in (silence_ms or {}).items()}
        self._watch: list[_Watch] = []
        streams: list[str] = []
        for sym in self.symbols:
            for name in stream_names(sym, depth_stream, extra_streams):
                suffix = name.split("@", 1)[1]
                kind, cadence = stream_spec(suffix)
                limit_ns = self._limit_ms(suffix, cadence, overrides) * 1_000_000
                route = stream_route(name)
                conn = route if ws_layout == "routed" else "legacy"
                self._watch.append(_Watch(sym, kind, name, route, conn, limit_ns))
                streams.append(name)
        groups = group_by_route(streams, ws_layout)
        # route ("public", "market"; "legacy" on the legacy layout) -> combined-stream URL
        self.urls = {
            key: combined_url(self.ws_url, PUBLIC if key == "legacy" else key, names, ws_layout)
            for key, names in groups.items()
        }
        # A (re)connect of the connection carrying the depth diffs means the books must resync.
        self._book_routes = {w.conn for w in self._watch if w.kind is DepthUpdate}
        self.processor = StreamProcessor(
            self.symbols, tick, lot, handler=handler, lineage=lineage, request_snapshot=self._request_snapshot
        )
        self._counters = dict.fromkeys(
            (
                "connects",
                "disconnects",
                "connect_errors",
                "rollovers",
                "snapshots_fetched",
                "snapshot_errors",
                "stale_events",
                *(f"connects_{r}" for r in self.urls),
            ),
            0,
        )
        self._tasks: set[asyncio.Task] = set()
        self._snap_pending: set[str] = set()
        self._transports: dict[str, WSTransport] = {}
        self._stopping = False
        self._run_tasks: list[asyncio.Task] = []
        self._watchdog_task: asyncio.Task | None = None
        self._session = None
        self._t_start = 0

    def _limit_ms(self, suffix: str, cadence_ms: int, overrides: dict[str, int]) -> int:
        if suffix.lower() in overrides:
            return overrides[suffix.lower()]
        base = self.stale_after_ns // 1_000_000
        if cadence_ms:
            return max(base, 3 * cadence_ms)  # three missed updates of a fixed-cadence stream
        if suffix.lower() in ("aggtrade", "trade"):
            return max(base, TRADE_SILENCE_MS)
        return base

    # --- public API ------------------------------------------------------------------------------
    async def start(self) -> None:
        import aiohttp

        self._stopping = False
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        now = time.time_ns()
        self._t_start = now
        for st in self.processor.symbols.values():
            st.last_seen = now
        self._run_tasks = [
            asyncio.create_task(self._run(route, url), name=f"kaizen-feed-{route}")
            for route, url in self.urls.items()
        ]
        self._watchdog_task = asyncio.create_task(self._watchdog(), name="kaizen-feed-watchdog")

    async def stop(self) -> None:
        self._stopping = True
        for t in list(self._transports.values()):
            t.disconnect()
        pending = [*self._run_tasks, self._watchdog_task, *self._tasks]
        for t in pending:
            if t is not None:
                t.cancel()
        for t in pending:
            if t is not None:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
        self._tasks.clear()
        if self._session is not None:
            await self._session.close()
            self._session = None

    def book(self, symbol: str) -> OrderBook:
        return self.processor.book(symbol)

    @property
    def stats(self) -> dict[str, int]:
        return {**self.processor.stats, **self._counters}

    def silent_streams(self) -> dict[str, str]:
        """Streams currently silent past their limit: stream name -> the reason recorded."""
        out = {}
        for w in self._watch:
            reason = self.processor.symbols[w.symbol].silent.get(w.kind)
            if reason is not None:
                out[w.name] = reason
        return out

    # --- connection loop (one per route) ----------------------------------------------------------
    async def _run(self, route: str, url: str) -> None:
        attempt = 0
        resyncs_book = route in self._book_routes
        while not self._stopping:
            try:
                transport, _ = await ws_connect(
                    lambda: _Listener(self),
                    url,
                    enable_auto_ping=True,
                    auto_ping_idle_timeout=self.ping_idle_s,
                    auto_ping_reply_timeout=self.ping_idle_s,
                )
            except Exception as exc:  # picows and the OS raise various types
                self._counters["connect_errors"] += 1
                log.warning("connect to %s (%s) failed: %s", self.ws_url, route, exc)
            else:
                attempt = 0
                self._transports[route] = transport
                self._counters["connects"] += 1
                self._counters[f"connects_{route}"] += 1
                if resyncs_book:
                    ts = time.time_ns()
                    first = self._counters[f"connects_{route}"] == 1
                    for sym in self.symbols:
                        # Anything buffered belongs to the old connection: resync from a new snapshot.
                        self.processor.invalidate(sym, "connected" if first else "reconnect", ts)
                try:
                    await asyncio.wait_for(transport.wait_disconnected(), timeout=self.rollover_s)
                except TimeoutError:
                    self._counters["rollovers"] += 1
                    transport.disconnect()
                    await transport.wait_disconnected()
                    self._transports.pop(route, None)
                    continue  # renew at once, no backoff
                self._transports.pop(route, None)
                if self._stopping:
                    break
                ts = time.time_ns()
                if resyncs_book:
                    for sym in self.symbols:
                        self.processor.invalidate(sym, "disconnected", ts)
                # The other streams of this connection are silent from now on: say so at once
                # rather than after their silence limits (the books resync on their own).
                for w in self._watch:
                    if w.conn == route and w.kind is not DepthUpdate:
                        reason = f"stream {w.name}: connection to {self._where(w)} lost"
                        if self.processor.mark_stale(w.symbol, ts, reason, w.kind):
                            self._counters["stale_events"] += 1
            attempt += 1
            # Exponential backoff with full jitter (AWS style): spreads reconnect storms.
            cap = min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(attempt - 1, 30))
            await asyncio.sleep(random.uniform(cap / 2, cap))

    def _on_message(self, raw: bytes) -> None:
        recv_ns = time.time_ns()
        if self.recorder is not None:
            self.recorder.write(recv_ns, raw)
        self.processor.process(raw, recv_ns)

    # --- snapshots -----------------------------------------------------------------------------------
    def _request_snapshot(self, symbol: str) -> None:
        if self._stopping or symbol in self._snap_pending or self._session is None:
            return
        self._snap_pending.add(symbol)
        task = asyncio.get_running_loop().create_task(self._fetch_snapshot(symbol))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _fetch_snapshot(self, symbol: str) -> None:
        url = f"{self.rest_url}/fapi/v1/depth"
        delay = 0.2
        try:
            # Let the stream buffer a few diffs first (Binance: subscribe, buffer, then snapshot).
            await asyncio.sleep(0.05)
            while not self._stopping:
                try:
                    async with self._session.get(
                        url, params={"symbol": symbol, "limit": str(self.snapshot_limit)}
                    ) as r:
                        body = await r.read()
                        if r.status != 200:
                            raise OSError(f"HTTP {r.status}: {body[:120]!r}")
                except Exception as exc:  # aiohttp, HTTP status, timeouts
                    self._counters["snapshot_errors"] += 1
                    log.warning("snapshot %s failed: %s", symbol, exc)
                    await asyncio.sleep(delay * random.uniform(0.5, 1.0))
                    delay = min(delay * 2, self.backoff_max_s)
                    continue
                self._counters["snapshots_fetched"] += 1
                recv_ns = time.time_ns()
                if self.recorder is not None:
                    self.recorder.write_snapshot(recv_ns, symbol, body)
                self._snap_pending.discard(symbol)  # process_snapshot may ask again
                self.processor.process_snapshot(symbol, body, recv_ns)
                return
        finally:
            self._snap_pending.discard(symbol)

    # --- watchdog ---------------------------------------------------------------------------------------
    def _where(self, w: _Watch) -> str:
        if self.ws_layout == "legacy":
            where = "the unrouted /stream"
            if w.route == MARKET:
                where += (
                    " (Binance has sent market streams only on /market since 2026-04-23;"
                    ' venue.ws_layout = "routed" uses it)'
                )
            return where
        return f"/{w.route}"

    async def _watchdog(self) -> None:
        limits = [w.limit_ns for w in self._watch] or [self.stale_after_ns]
        period = max(min(limits) / 4e9, 0.01)
        symbols = self.processor.symbols
        while not self._stopping:
            await asyncio.sleep(period)
            now = time.time_ns()
            for w in self._watch:
                st = symbols[w.symbol]
                if w.kind in st.silent:
                    continue
                gap = now - max(st.seen.get(w.kind, 0), self._t_start)
                if gap <= w.limit_ns:
                    continue
                never = w.kind not in st.seen
                reason = (
                    f"stream {w.name} on {self._where(w)} silent for {gap // 1_000_000} ms"
                    f"{' since subscribing' if never else ''} (limit {w.limit_ns // 1_000_000} ms)"
                )
                if self.processor.mark_stale(w.symbol, now, reason, w.kind):
                    self._counters["stale_events"] += 1
                    log.warning("%s: %s", w.symbol, reason)
