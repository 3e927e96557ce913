"""The cdef picows listener through real websockets on 127.0.0.1: a picows server sends recorded
frames, the client's CoreListener hands each frame's buffer in place to the core, and the core ends
exactly where a replay of the same frames from memory ends."""

import asyncio

from picows import WSListener, WSMsgType, ws_connect, ws_create_server

from kaizen.engine.hotpath import build_core
from kaizen.ext.wsfeed import CoreListener

N = 6000


def _core(models, stream):
    m, c = models
    core = build_core(m, c, bar_every_msgs=40)
    s = stream.snapshot
    core.load_snapshot(s["bids"], s["asks"], s["lastUpdateId"])
    return core


class _Sender(WSListener):
    def __init__(self, frames):
        super().__init__()
        self.frames = frames

    def on_ws_connected(self, transport):
        for f in self.frames:
            transport.send(WSMsgType.TEXT, f)
        transport.send_close()


async def _run(core, frames):
    server = await ws_create_server(lambda req: _Sender(frames), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        transport, listener = await ws_connect(lambda: CoreListener(core), f"ws://127.0.0.1:{port}/")
        await asyncio.wait_for(transport.wait_disconnected(), 15)
    finally:
        server.close()
        await server.wait_closed()
    return listener


def test_listener_feeds_the_core_in_place(models, stream):
    frames = [stream.frame(i) for i in range(N)]
    live = _core(models, stream)
    listener = asyncio.run(_run(live, frames))
    ref = _core(models, stream)
    ref.replay(stream.buf, stream.offsets, None, 0, N)
    assert listener.frames == N and listener.closed_by_peer and listener.fragments == 0
    assert live.counters() == ref.counters()
    assert live.counters()["orders"] > 0 and live.counters()["errors"] == 0
    assert live.synced_book
    assert live.book.depth(20) == ref.book.depth(20)
    assert live.position_lots == ref.position_lots and live.order_bytes() == ref.order_bytes()
