"""DecisionCore semantics on the real recorded stream: the book it keeps matches the reference
StreamProcessor's, risk limits hold on every order, the kill switch stops new risk, a lost diff
stops trading, malformed frames are counted and change nothing."""

from urllib.parse import parse_qs

import numpy as np

from kaizen.engine.hotpath import build_core
from kaizen.ext.core import FLAGS, DecisionCore
from kaizen.market.sync import StreamProcessor
from tests.conftest import DATA


class Recording(DecisionCore):
    def on_order(self, n):
        assert n == self.order_len
        self.sent.append(self.order_bytes())
        self.fields.append((self.order_side, self.order_lots, self.order_price_ticks, self.order_reduce_only,
                            self.order_seq))  # fmt: skip
        return 0


def _core(models, stream, **kw):
    m, c = models
    core = build_core(m, c, **kw)
    s = stream.snapshot
    core.load_snapshot(s["bids"], s["asks"], s["lastUpdateId"])
    return core


def _orders(core):
    out = []
    for raw in core.sent:
        q = {k: v[0] for k, v in parse_qs(raw.decode()).items()}
        out.append(q)
    return out


def test_book_matches_the_stream_processor(models, stream):
    import json

    core = _core(models, stream)
    sp = StreamProcessor(["BTCUSDT"], {"BTCUSDT": 0.1}, {"BTCUSDT": 0.001})
    snap = json.dumps(stream.snapshot).encode()
    checkpoints = [2000, 30000, len(stream)]
    done = 0
    for stop in checkpoints:
        for i in range(done, stop):
            if i == stream.snapshot_at:
                sp.process_snapshot("BTCUSDT", snap)
            sp.process(stream.frame(i))
        core.replay(stream.buf, stream.offsets, None, done, stop)
        done = stop
        ref = sp.book("BTCUSDT")
        assert core.book.depth(200) == ref.depth(200), stop
    assert core.counters()["gaps"] == 0 and core.counters()["errors"] == 0


def test_orders_are_well_formed_and_within_limits(models, stream):
    cap = 2_000.0
    core = _core(models, stream, cls=Recording, bar_every_msgs=30, max_notional=cap, max_order_lots=20)
    core.sent, core.fields = [], []
    core.replay(stream.buf, stream.offsets)
    orders = _orders(core)
    assert len(orders) == core.orders > 5
    for o, (side, lots, ticks, ro, seq) in zip(orders, core.fields, strict=True):
        assert (o["side"] == "BUY") == (side == 1) and round(float(o["quantity"]) / 0.001) == lots
        assert round(float(o["price"]) / 0.1) == ticks and (o.get("reduceOnly") == "true") == ro
        assert o["newClientOrderId"] == f"kz-{seq}"
    ids = [int(o["newClientOrderId"].split("-")[1]) for o in orders]
    assert ids == list(range(1, len(orders) + 1))
    pos = 0
    for o in orders:
        assert o["symbol"] == "BTCUSDT" and o["type"] == "LIMIT" and o["timeInForce"] == "IOC"
        qty, px = float(o["quantity"]), float(o["price"])
        lots = round(qty / 0.001)
        assert abs(lots * 0.001 - qty) < 1e-9 and 0 < lots <= 20
        assert abs(round(px / 0.1) * 0.1 - px) < 1e-9
        pos += lots if o["side"] == "BUY" else -lots
        assert abs(pos) * 0.001 * px <= cap * 1.01  # the notional cap at the order's price
        if o.get("reduceOnly") == "true":
            assert abs(pos) < abs(pos - (lots if o["side"] == "BUY" else -lots))
    assert pos == core.position_lots


def test_kill_switch_takes_no_new_risk(models, stream):
    core = _core(models, stream, bar_every_msgs=30)
    core.kill_switch = True
    core.replay(stream.buf, stream.offsets)
    assert core.bars_closed > 1000
    assert core.orders == 0 and core.position_lots == 0 and core.rejects > 0


def test_kill_switch_still_lets_a_position_close(models, stream):
    core = _core(models, stream, cls=Recording, bar_every_msgs=30)
    core.sent, core.fields = [], []
    core.set_position(50, 61_800.0)
    core.kill_switch = True
    core.replay(stream.buf, stream.offsets)
    orders = _orders(core)
    assert orders and all(o.get("reduceOnly") == "true" for o in orders)
    assert core.position_lots == 0


def test_lost_diff_stops_trading_until_a_new_snapshot(models, stream):
    core = _core(models, stream, bar_every_msgs=30)
    depth = [i for i in range(len(stream)) if b"depthUpdate" in stream.frame(i)[:64]]
    cut = depth[200]
    core.replay(stream.buf, stream.offsets, None, 0, cut)
    assert core.synced_book and core.counters()["gaps"] == 0
    orders = core.orders
    core.replay(stream.buf, stream.offsets, None, cut + 1)  # frame `cut` (a diff) is lost
    assert core.counters()["gaps"] == 1 and not core.synced_book and not core.book.valid
    assert core.orders == orders  # no order from a book known to be wrong


def test_malformed_frames_are_counted_and_change_nothing(models, stream):
    core = _core(models, stream)
    core.replay(stream.buf, stream.offsets, None, 0, 3000)
    before = core.book.depth(50)
    depth = next(stream.frame(i) for i in range(3000, len(stream)) if b"depthUpdate" in stream.frame(i)[:64])
    bad = [b"", b"{", b"not json at all", depth[: len(depth) // 2],
           depth.replace(b'"b":[[', b'"b":[[x', 1), depth.replace(b'.', b'.5.', 1)]  # fmt: skip
    for f in bad:
        k = core.on_bytes(f, 0)
        assert k & FLAGS["error"] or k & FLAGS["skip"], f[:40]
    assert core.book.depth(50) == before
    assert core.counters()["errors"] >= 4


def test_trace_stamps_are_ordered(models, stream):
    core = _core(models, stream, bar_every_msgs=25)
    tr = np.zeros((len(stream), 10), np.int64)
    core.replay(stream.buf, stream.offsets, tr)
    order = (tr[:, 9] & FLAGS["order"]) != 0
    assert order.sum() > 5
    t = tr[order][:, :9]
    assert (np.diff(t, axis=1) >= 0).all()


def test_model_swap_between_frames_loses_no_frame(models, stream):
    from kaizen.engine.hotpath import compile_models, train_small
    from kaizen.ext.ensemble import CompiledEnsemble

    m, c = models
    m2 = train_small(DATA, start="2024-05-01", trees=4, seed=3)
    c2 = compile_models(m2)
    core = _core(models, stream, bar_every_msgs=30)
    ref = _core(models, stream, bar_every_msgs=30)
    half = len(stream) // 2
    core.replay(stream.buf, stream.offsets, None, 0, half)
    ref.replay(stream.buf, stream.offsets, None, 0, half)
    signal = CompiledEnsemble(c2.bases, c2.meta, core.signal.num_features, num_extra=core.signal.num_extra)
    core.swap_models(signal=signal, exit_model=c2.exit)
    core.replay(stream.buf, stream.offsets, None, half)
    ref.replay(stream.buf, stream.offsets, None, half)
    assert core.msgs == ref.msgs == len(stream)
    assert core.counters()["errors"] == 0 and core.signal is signal
    assert core.p_signal != ref.p_signal  # the new model decides after the swap
    try:
        core.swap_models(exit_model=c2.regime)
    except ValueError:
        pass
    else:
        raise AssertionError("a mis-shaped model was accepted")
    assert core.exit_model is c2.exit


def test_aggtrade_frames_fold_like_trades(models, stream):
    # the live feed subscribes aggTrade (same p/q/m fields); the same trades as aggTrade frames
    # must leave the core in the same state
    a = _core(models, stream, bar_every_msgs=30)
    b = _core(models, stream, bar_every_msgs=30)
    for i in range(20000):
        f = stream.frame(i)
        a.on_bytes(f, 0)
        if b'"e":"trade"' in f:
            f = f.replace(b"@trade", b"@aggTrade").replace(b'"e":"trade"', b'"e":"aggTrade"').replace(b'"t":', b'"a":')
        b.on_bytes(f, 0)
    assert a.trade_msgs == b.trade_msgs > 1000
    assert a.counters() == b.counters() and a.position_lots == b.position_lots
    assert a.p_signal == b.p_signal


def test_bars_close_on_event_time(models, stream):
    # with bar_every_msgs = 0 a bar closes at the first frame whose event time passes its end: the
    # recording ends just after 2024-08-09 00:00 UTC, the close of the 23:00 bar
    import dataclasses
    import re

    m, c = models
    m23 = dataclasses.replace(m, warm=m.warm[:-1])  # last warm bar 22:00: the stream fills 23:00
    core = build_core(m23, c)
    s = stream.snapshot
    core.load_snapshot(s["bids"], s["asks"], s["lastUpdateId"])
    end = 1723161600000
    ev = [int(re.search(rb'"E":(\d+)', stream.frame(i)).group(1)) for i in range(len(stream))]
    first = next(i for i, e in enumerate(ev) if e >= end)
    core.replay(stream.buf, stream.offsets, None, 0, first)
    assert core.bars_closed == 0
    flags = core.on_bytes(stream.frame(first), 0)
    assert flags & FLAGS["bar"] and core.bars_closed == 1
    assert core.p_signal == core.p_signal and core.regime >= 0  # the decision ran
    core.replay(stream.buf, stream.offsets, None, first + 1)
    assert core.bars_closed == 1
