"""Live market data: picows websocket client for Binance USD-M combined streams.

One connection carries every symbol's depth diff, trade and mark-price streams. Reconnects with
exponential backoff and full jitter; pings when idle (picows auto-ping) and drops a peer that
stops answering; a stale-data watchdog marks a symbol's book "stale" (trading paused) after
`stale_after_ms` without a message; and the connection is renewed before Binance's 24 h cut-off.
After every (re)connect all books resync from fresh REST snapshots, as Binance's rules require.
Everything after the socket is the same code the replayer runs (StreamProcessor).
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
from kaizen.market.messages import stream_names
from kaizen.market.sync import StreamProcessor

log = logging.getLogger("kaizen.market.feed")

ROLLOVER_S = 23.5 * 3600  # Binance closes a connection after 24 h; renew it before


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
        extra_streams: tuple[str, ...] = ("aggTrade", "markPrice"),
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 30.0,
        ping_idle_s: float = 10.0,
        rollover_s: float = ROLLOVER_S,
        snapshot_limit: int = 1000,
        recorder: Any = None,
    ) -> None:
        self.ws_url = ws_url.rstrip("/")
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
        streams = [n for s in self.symbols for n in stream_names(s, depth_stream, extra_streams)]
        self.url = f"{self.ws_url}/stream?streams={'/'.join(streams)}"
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
            ),
            0,
        )
        self._tasks: set[asyncio.Task] = set()
        self._snap_pending: set[str] = set()
        self._transport: WSTransport | None = None
        self._stopping = False
        self._run_task: asyncio.Task | None = None
        self._watchdog_task: asyncio.Task | None = None
        self._session = None

    # --- public API ------------------------------------------------------------------------------
    async def start(self) -> None:
        import aiohttp

        self._stopping = False
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        now = time.time_ns()
        for st in self.processor.symbols.values():
            st.last_seen = now
        self._run_task = asyncio.create_task(self._run(), name="kaizen-feed")
        self._watchdog_task = asyncio.create_task(self._watchdog(), name="kaizen-feed-watchdog")

    async def stop(self) -> None:
        self._stopping = True
        if self._transport is not None:
            self._transport.disconnect()
        for t in (self._run_task, self._watchdog_task, *self._tasks):
            if t is not None:
                t.cancel()
        for t in (self._run_task, self._watchdog_task, *self._tasks):
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

    # --- connection loop ------------------------------------------------------------------------------
    async def _run(self) -> None:
        attempt = 0
        while not self._stopping:
            try:
                transport, _ = await ws_connect(
                    lambda: _Listener(self),
                    self.url,
                    enable_auto_ping=True,
                    auto_ping_idle_timeout=self.ping_idle_s,
                    auto_ping_reply_timeout=self.ping_idle_s,
                )
            except Exception as exc:  # picows and the OS raise various types
                self._counters["connect_errors"] += 1
                log.warning("connect to %s failed: %s", self.ws_url, exc)
            else:
                attempt = 0
                self._transport = transport
                self._counters["connects"] += 1
                ts = time.time_ns()
                for sym in self.symbols:
                    # Anything buffered belongs to the old connection: resync from a new snapshot.
                    self.processor.invalidate(
                        sym, "connected" if self._counters["connects"] == 1 else "reconnect", ts
                    )
                try:
                    await asyncio.wait_for(transport.wait_disconnected(), timeout=self.rollover_s)
                except TimeoutError:
                    self._counters["rollovers"] += 1
                    transport.disconnect()
                    await transport.wait_disconnected()
                    self._transport = None
                    continue  # renew at once, no backoff
                self._transport = None
                if self._stopping:
                    break
                ts = time.time_ns()
                for sym in self.symbols:
                    self.processor.invalidate(sym, "disconnected", ts)
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
    async def _watchdog(self) -> None:
        period = max(self.stale_after_ns / 4e9, 0.01)
        while not self._stopping:
            await asyncio.sleep(period)
            now = time.time_ns()
            for st in self.processor.symbols.values():
                if not st.stale and now - st.last_seen > self.stale_after_ns:
                    gap_ms = (now - st.last_seen) // 1_000_000
                    if self.processor.mark_stale(st.symbol, now, f"no data for {gap_ms} ms"):
                        self._counters["stale_events"] += 1
