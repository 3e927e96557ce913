"""The picows feed against a real websocket server and a real HTTP server on 127.0.0.1, serving
the real capture: sync, reconnect with backoff, stale watchdog."""

from __future__ import annotations

import asyncio
import gzip

import pytest
from aiohttp import web
from picows import WSListener, WSMsgType, ws_create_server

from kaizen.lineage.records import BookResync, MarketStatus
from kaizen.market.feed import MarketFeed
from tests.market.helpers import CAPTURE, Collect, Handler


class Venue:
    """Streams the capture to each connection from the start; can drop or pause."""

    def __init__(self, lines, drop_after=None, pause_after=None, pause_s=0.0):
        self.msgs = [raw for _, raw in lines if not raw.startswith(b'{"lastUpdateId"')]
        self.snapshot = next(raw for _, raw in lines if raw.startswith(b'{"lastUpdateId"'))
        self.drop_after = drop_after
        self.pause_after = pause_after
        self.pause_s = pause_s
        self.connections = 0
        self.paths = []

    def factory(self, request):
        venue = self
        self.paths.append(request.path)

        class L(WSListener):
            def on_ws_connected(self, transport):
                venue.connections += 1
                self.task = asyncio.get_running_loop().create_task(venue.stream(transport, venue.connections))

            def on_ws_disconnected(self, transport):
                self.task.cancel()

        return L()

    async def stream(self, transport, conn):
        await asyncio.sleep(0.02)
        for i, raw in enumerate(self.msgs):
            if conn == 1 and self.drop_after is not None and i == self.drop_after:
                transport.disconnect()
                return
            if self.pause_after is not None and i == self.pause_after:
                await asyncio.sleep(self.pause_s)
            transport.send(WSMsgType.TEXT, raw)
            if i % 50 == 0:
                await asyncio.sleep(0.001)
        await asyncio.sleep(3600)

    async def depth(self, request):
        assert request.query["symbol"] == "BTCUSDT"
        return web.Response(body=self.snapshot, content_type="application/json")


@pytest.fixture(scope="module")
def lines(shared_data):
    with gzip.open(shared_data / CAPTURE, "rb") as fh:
        return [ln.rstrip(b"\n").split(b" ", 1) for _, ln in zip(range(4000), fh, strict=False)]


async def run_feed(venue, until, stale_after_ms=5000, timeout=20.0, **kw):
    server = await ws_create_server(venue.factory, "127.0.0.1", 0)
    ws_port = server.sockets[0].getsockname()[1]
    app = web.Application()
    app.router.add_get("/fapi/v1/depth", venue.depth)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    rest_port = site._server.sockets[0].getsockname()[1]
    handler, lineage = Handler(), Collect()
    feed = MarketFeed(
        f"ws://127.0.0.1:{ws_port}",
        f"http://127.0.0.1:{rest_port}",
        ["BTCUSDT"],
        {"BTCUSDT": 0.1},
        {"BTCUSDT": 0.001},
        handler,
        lineage=lineage,
        stale_after_ms=stale_after_ms,
        depth_stream="depth@0ms",
        extra_streams=("bookTicker", "trade"),
        backoff_initial_s=0.05,
        **kw,
    )
    await feed.start()
    try:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not until(feed, handler) and loop.time() < end:
            await asyncio.sleep(0.01)
        return feed, handler, lineage
    finally:
        await feed.stop()
        server.close()
        await runner.cleanup()


@pytest.mark.parametrize("layout, path", [("routed", b"/public/stream"), ("legacy", b"/stream")])
def test_feed_syncs_from_real_stream(lines, layout, path):
    venue = Venue(lines)
    feed, h, lin = asyncio.run(run_feed(venue, lambda f, h: f.stats["messages"] >= 3990, ws_layout=layout))
    s = feed.stats
    # depth, bookTicker and trade are all public streams: one connection, on /public when routed
    assert venue.paths == [path + b"?streams=btcusdt@depth@0ms/btcusdt@bookTicker/btcusdt@trade"]
    assert s["messages"] >= 3990 and s["snapshots_fetched"] == 1 and s["gaps"] == 0
    assert feed.book("BTCUSDT").valid and h.statuses[-1] == "valid"
    assert s["bookticker_checked"] > 1000 and s["bookticker_disagreements"] == 0
    assert h.books > 100 and h.trades > 100


def test_feed_reconnects_and_resyncs(lines):
    venue = Venue(lines, drop_after=1500)
    feed, h, lin = asyncio.run(
        run_feed(
            venue,
            lambda f, h: f.stats["connects"] >= 2 and f.book("BTCUSDT").valid and f.stats["messages"] > 3000,
        )
    )
    s = feed.stats
    assert s["connects"] >= 2 and s["snapshots_fetched"] >= 2
    assert feed.book("BTCUSDT").valid
    assert "invalid" in h.statuses and h.statuses[-1] == "valid"
    assert any(isinstance(r, BookResync) and r.reason == "disconnected" for r in lin.records)
    assert s["bookticker_disagreements"] == 0


def test_watchdog_marks_stale_then_recovers(lines):
    venue = Venue(lines, pause_after=2000, pause_s=0.6)
    feed, h, lin = asyncio.run(
        run_feed(
            venue,
            lambda f, h: "stale" in h.statuses and f.stats["messages"] > 3000 and f.book("BTCUSDT").valid,
            stale_after_ms=150,
        )
    )
    assert feed.stats["stale_events"] >= 1
    i = h.statuses.index("stale")
    assert "valid" in h.statuses[i + 1 :]
    assert any(isinstance(r, MarketStatus) and r.status == "stale" for r in lin.records)
    assert feed.book("BTCUSDT").valid


def test_connection_rollover_renews_and_resyncs(lines):
    # Binance cuts connections at 24 h; the feed renews before that (here after 0.3 s).
    venue = Venue(lines)
    feed, h, lin = asyncio.run(
        run_feed(
            venue,
            lambda f, h: f.stats["rollovers"] >= 1 and f.book("BTCUSDT").valid and f.stats["connects"] >= 2,
            rollover_s=0.3,
        )
    )
    s = feed.stats
    assert s["rollovers"] >= 1 and s["connects"] >= 2 and s["snapshots_fetched"] >= 2
    assert feed.book("BTCUSDT").valid and s["bookticker_disagreements"] == 0
