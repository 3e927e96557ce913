"""The hot path allocates no Python object per message (counted at CPython's allocators)."""

from kaizen.engine.hotpath import build_core
from kaizen.ext.alloccount import count_allocations


def _core(models, stream, **kw):
    m, c = models
    core = build_core(m, c, **kw)
    s = stream.snapshot
    core.load_snapshot(s["bids"], s["asks"], s["lastUpdateId"])
    return core


def test_counter_sees_python_objects():
    n, _ = count_allocations(lambda: [object() for _ in range(1000)])
    assert n >= 1000


def test_counter_sees_an_allocating_order_hook(models, stream):
    # negative control: the same measurement catches a Python hook that makes one object per order
    from kaizen.ext.core import DecisionCore

    class Leaky(DecisionCore):
        def on_order(self, n):
            self.last = self.order_bytes()  # a new bytes object per order
            return 0

    core = _core(models, stream, bar_every_msgs=20, cls=Leaky)
    core.replay(stream.buf, stream.offsets, None, 0, 3000)
    small, _ = count_allocations(lambda: core.replay(stream.buf, stream.offsets, None, 3000, 3300))
    o0 = core.orders
    big, _ = count_allocations(lambda: core.replay(stream.buf, stream.offsets, None, 3300, 23300))
    assert core.orders - o0 > 5
    assert big - small >= core.orders - o0


def test_steady_depth_path_allocates_nothing(models, stream):
    core = _core(models, stream)  # bars on event time: none closes inside the 6-minute recording
    core.replay(stream.buf, stream.offsets, None, 0, 3000)  # sync the book, warm everything
    d0 = core.depth_msgs
    small, _ = count_allocations(lambda: core.replay(stream.buf, stream.offsets, None, 3000, 3500))
    d1 = core.depth_msgs
    big, _ = count_allocations(lambda: core.replay(stream.buf, stream.offsets, None, 3500, 23500))
    d2 = core.depth_msgs
    assert core.synced_book and core.counters()["errors"] == 0 and core.counters()["bars"] == 0
    assert d2 - d1 > 1000 and d1 - d0 > 10  # many depth diffs went through
    # the call's own set-up (buffer views, its int result) is the same for 500 and 20000 frames
    assert big == small, (small, big)
    assert big < 50


def test_bar_close_and_order_path_allocates_nothing(models, stream):
    core = _core(models, stream, bar_every_msgs=20)
    core.replay(stream.buf, stream.offsets, None, 0, 3000)
    b0, o0 = core.bars_closed, core.orders
    small, _ = count_allocations(lambda: core.replay(stream.buf, stream.offsets, None, 3000, 3300))
    big, _ = count_allocations(lambda: core.replay(stream.buf, stream.offsets, None, 3300, 23300))
    assert core.bars_closed - b0 > 900 and core.orders - o0 > 5
    assert big == small, (small, big)


def test_listener_path_allocates_nothing_per_frame(models, stream):
    # picows hands the listener a WSFrame over its read buffer; here the frames are picows' own
    # test frames built beforehand, and the loop calls the cpdef hook as picows' C code would
    from picows import WSMsgType
    from picows.picows import _make_test_ws_frame

    from kaizen.ext.wsfeed import CoreListener

    core = _core(models, stream)
    listener = CoreListener(core)
    frames = [_make_test_ws_frame(WSMsgType.TEXT, stream.frame(i), True, False) for i in range(25000)]
    hook = listener.on_ws_frame

    def feed(chunk):
        def run():
            for f in chunk:
                hook(None, f)

        return run

    feed(frames[:3000])()
    small, _ = count_allocations(feed(frames[3000:3500]))
    big, _ = count_allocations(feed(frames[3500:]))
    assert listener.frames == 25000 and core.counters()["errors"] == 0 and core.synced_book
    assert core.depth_msgs > 1500
    assert big == small, (small, big)
