"""Book sync on the real capture, gap/resync handling, bad input, and a 100k mutated-message fuzz."""

from __future__ import annotations

import gzip
import json
import random

import pytest

from kaizen.lineage.records import BadMessage, BookResync, MarketStatus
from kaizen.market.replay import infer_instrument, replay
from kaizen.market.sync import StreamProcessor
from tests.market.helpers import CAPTURE, Collect, Handler


def make(lineage=None, handler=None, requests=None):
    return StreamProcessor(
        ["BTCUSDT"],
        {"BTCUSDT": 0.1},
        {"BTCUSDT": 0.001},
        handler=handler,
        lineage=lineage,
        request_snapshot=(requests.append if requests is not None else None),
        book_kwargs={"price_precision": 2, "qty_precision": 3},
    )


@pytest.fixture(scope="module")
def lines(shared_data):
    with gzip.open(shared_data / CAPTURE, "rb") as fh:
        return [ln.rstrip(b"\n").split(b" ", 1) for ln in fh]


def feed(proc, lines):
    for ts, raw in lines:
        if raw.startswith(b'{"lastUpdateId"'):
            proc.process_snapshot("BTCUSDT", raw, int(ts))
        else:
            proc.process(raw, int(ts))


def test_real_capture_syncs_and_agrees_with_bookticker(shared_data):
    path = shared_data / CAPTURE
    inst = infer_instrument(path)
    assert inst == {
        "symbol": "BTCUSDT",
        "tick_size": 0.1,
        "lot_size": 0.001,
        "price_precision": 2,
        "qty_precision": 3,
    }
    h, lin = Handler(), Collect()
    proc = make(lin, h)
    replay(path, proc, "BTCUSDT")
    s = proc.stats
    assert s["gaps"] == 0 and s["resyncs"] == 0 and s["bad"] == 0
    assert s["depthUpdate"] == 6551 and s["bookTicker"] == 66089 and s["trade"] == 21313
    assert s["bookticker_checked"] > 60_000
    assert s["bookticker_disagreements"] == 0, proc.disagreements
    book = proc.book("BTCUSDT")
    assert book.valid and not book.crossed()
    assert book.dropped_far_levels == 0  # the default far-level cap loses nothing on real data
    assert 1000 < book.level_count(True) < 20_000 + 65_536
    assert h.books > 6000 and h.trades == 21313
    assert [r.status for r in lin.records if isinstance(r, MarketStatus)] == ["valid"]


def test_bookticker_check_can_fail(lines):
    # Corrupt the nearest-to-touch bid quantity of every diff after the snapshot (Binance lists
    # bids ascending, so the last one is the highest): the check must notice.
    proc = make()
    out = []
    for k, (ts, raw) in enumerate(lines):
        if k > 60 and b"depthUpdate" in raw:
            msg = json.loads(raw)
            live = [lv for lv in msg["data"]["b"] if float(lv[1]) > 0]
            if live:  # one more lot on the highest bid that has quantity
                live[-1][1] = f"{float(live[-1][1]) + 0.001:.3f}"
            raw = json.dumps(msg).encode()
        out.append((ts, raw))
    feed(proc, out)
    assert proc.stats["resyncs"] == 0
    assert proc.stats["bookticker_disagreements"] > 0


def test_gap_marks_invalid_logs_and_resyncs(lines):
    lin, reqs, h = Collect(), [], Handler()
    proc = make(lin, h, reqs)
    depth_idx = [i for i, (_, raw) in enumerate(lines) if b"depthUpdate" in raw]
    drop = depth_idx[100]
    feed(proc, lines[:drop] + lines[drop + 1 :])
    s = proc.stats
    assert s["gaps"] == 1 and s["resyncs"] == 1
    assert reqs == ["BTCUSDT"]
    assert not proc.book("BTCUSDT").valid  # no new snapshot in the file: stays paused
    assert any(isinstance(r, BookResync) and "gap" in r.reason for r in lin.records)
    assert ("invalid", h.status[-1][1]) == h.status[-1]
    # A fresh snapshot (rebuilt from the un-dropped stream at a later point) resyncs the book,
    # which then ends equal to a book that never lost the diff.
    k = depth_idx[300]
    ref = make()
    feed(ref, lines[:k])
    bids, asks = ref.book("BTCUSDT").depth_strings(100_000)
    snap = json.dumps(
        {"lastUpdateId": ref.book("BTCUSDT").last_update_id, "bids": bids, "asks": asks}
    ).encode()
    feed(ref, lines[k:])
    proc2 = make(Collect(), Handler(), [])
    feed(proc2, lines[:drop] + lines[drop + 1 : k + 5])
    proc2.process_snapshot("BTCUSDT", snap)
    feed(proc2, lines[k + 5 :])
    assert proc2.book("BTCUSDT").valid and proc2.stats["resyncs"] == 1
    assert proc2.book("BTCUSDT").depth_ticks(100_000) == ref.book("BTCUSDT").depth_ticks(100_000)


def test_snapshot_older_than_buffered_diffs(lines):
    proc, reqs = make(Collect(), None, []), []
    proc.request_snapshot = reqs.append
    snap_i = next(i for i, (_, r) in enumerate(lines) if r.startswith(b'{"lastUpdateId"'))
    snap = json.loads(lines[snap_i][1])
    snap["lastUpdateId"] = 1  # older than every buffered diff
    feed(proc, lines[:snap_i])
    proc.process_snapshot("BTCUSDT", json.dumps(snap).encode())
    assert proc.stats["stale_snapshot"] == 1 and reqs == ["BTCUSDT"]
    assert not proc.book("BTCUSDT").valid


def test_duplicate_and_out_of_order_diffs(lines):
    lin = Collect()
    proc = make(lin)
    depth = [i for i, (_, raw) in enumerate(lines) if b"depthUpdate" in raw]
    i, j = depth[200], depth[201]
    seq = lines[: j + 1] + [lines[i]]  # duplicate of an applied diff
    feed(proc, seq)
    assert proc.stats["duplicates"] == 1 and proc.book("BTCUSDT").valid
    seq2 = lines[:i] + [lines[j], lines[i]]  # swapped: out of order → gap
    proc2 = make(Collect())
    feed(proc2, seq2)
    assert proc2.stats["gaps"] == 1 and not proc2.book("BTCUSDT").valid


@pytest.mark.parametrize(
    "bad",
    [
        b"not json",
        b"{}",
        b'{"stream":"x","data":{}}',
        b'{"stream":"btcusdt@trade","data":{"e":"trade","s":"BTCUSDT"}}',
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","p":"NaN","q":"1","m":true}}',
        b'{"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","p":"-5","q":"1","m":true}}',
        b'{"stream":"btcusdt@markPrice","data":{"e":"markPriceUpdate","E":1,"s":"BTCUSDT","p":"1e400"}}',
        b"\xff\xfe",
        b"",
        b"[" * 10000,
        b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BTCUSDT","b":"NaN","B":"1","a":"1","A":"1"}}',
        b'{"stream":"btcusdt@bookTicker","data":{"e":"bookTicker","u":1,"s":"BTCUSDT","b":"1","B":"-1","a":"1e308","A":"1"}}',
    ],
)
def test_malformed_messages_are_counted_not_raised(bad):
    lin = Collect()
    proc = make(lin)
    proc.process(bad)
    assert proc.stats["bad"] == 1
    assert isinstance(lin.records[-1], BadMessage)


@pytest.mark.parametrize(
    "levels",
    [
        '[["NaN","1.000"]]',
        '[["-61800.00","1.000"]]',
        '[["61800.00","-1"]]',
        '[["61800.05","1.000"]]',
        '[["99999999999999999999999","1.000"]]',
        '[["61800.00","1.0001"]]',
        '[["61800.00"]]',
        '[["61800.00","1.000"]',
        '[[61800.00,"1.000"]]',
        '[["","1"]]',
        '[["1.2.3","1"]]',
    ],
)
def test_bad_depth_levels_pause_the_symbol(lines, levels):
    lin = Collect()
    proc = make(lin)
    depth = [i for i, (_, raw) in enumerate(lines) if b"depthUpdate" in raw]
    feed(proc, lines[: depth[100]])
    assert proc.book("BTCUSDT").valid
    before = proc.book("BTCUSDT").depth_ticks(50)
    msg = json.loads(lines[depth[100]][1])
    raw = json.dumps(msg).replace(json.dumps(msg["data"]["b"]), levels).encode()
    proc.process(raw)
    assert proc.stats["bad"] == 1
    assert proc.book("BTCUSDT").depth_ticks(50) == before  # never half-applied
    # Levels we cannot parse pause the symbol at once; a message that is not even JSON cannot be
    # attributed, and the next diff's pu exposes the gap.
    proc.process(lines[depth[101]][1])
    assert proc.stats["resyncs"] == 1
    assert not proc.book("BTCUSDT").valid


def test_crossed_book_triggers_resync(lines):
    proc = make(Collect())
    depth = [i for i, (_, raw) in enumerate(lines) if b"depthUpdate" in raw]
    feed(proc, lines[: depth[100]])
    ask = proc.book("BTCUSDT").best_ask()
    msg = json.loads(lines[depth[100]][1])
    msg["data"]["b"] = [[f"{ask + 50:.2f}", "1.000"]]
    proc.process(json.dumps(msg).encode())
    assert proc.stats["crossed"] == 1 and not proc.book("BTCUSDT").valid


def _mutate(rng, raw: bytes) -> bytes:
    k = rng.randrange(9)
    b = bytearray(raw)
    if k == 0 and b:  # flip bytes
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(len(b))] = rng.randrange(256)
    elif k == 1:  # truncate
        b = b[: rng.randrange(len(b) + 1)]
    elif k == 2:  # drop a field
        s = raw.decode()
        for f in ('"U":', '"u":', '"pu":', '"b":', '"E":', '"p":', '"s":', '"e":'):
            if f in s and rng.random() < 0.5:
                i = s.index(f)
                j = s.find(",", i)
                s = s[:i] + s[j + 1 :] if j > 0 else s[:i]
        b = bytearray(s.encode())
    elif k == 3:  # numbers → weird values
        s = raw.decode()
        for w in ('"NaN"', '"-1.5"', '"1e308"', '"99999999999999999999"', '"inf"', '""', "null", "-7"):
            s = s.replace('"0.0', w, 1) if rng.random() < 0.3 else s
        b = bytearray(s.replace('"6', '"-6', rng.randint(0, 2)).encode())
    elif k == 4:  # shift sequence ids
        s = raw.decode().replace('"pu":5', '"pu":4', 1).replace('"u":5', '"u":6', 1)
        b = bytearray(s.encode())
    elif k == 5:  # unknown symbol / type
        b = bytearray(raw.replace(b"BTCUSDT", b"ETHUSDT").replace(b'"trade"', b'"forceOrder"'))
    elif k == 6:  # insert junk
        i = rng.randrange(len(b) + 1)
        b[i:i] = rng.choice([b"[", b"]", b"{", b",", b'"', b"\\u0000", b"\x00"])
    return bytes(b)  # k 7, 8: unchanged (duplicates/reorders come from the shuffling below)


def test_fuzz_100k_mutated_real_messages(lines):
    rng = random.Random(20240808)
    base = lines[:3000]
    lin = Collect()
    proc = make(lin, Handler(), [])
    snap_i = next(i for i, (_, r) in enumerate(base) if r.startswith(b'{"lastUpdateId"'))
    n = mutated = 0
    while mutated < 100_000:
        for i, (_ts, raw) in enumerate(base):
            if i == snap_i:
                proc.process_snapshot("BTCUSDT", _mutate(rng, raw) if rng.random() < 0.3 else raw, 0)
                continue
            r = rng.random()
            if r < 0.5:
                new = _mutate(rng, raw)
                mutated += new != raw
                raw = new
            elif r < 0.55:  # out of order / duplicate: a random earlier message
                raw = base[rng.randrange(i + 1)][1]
                mutated += 1
            proc.process(raw, 0)
            n += 1
    s = proc.stats
    assert s["messages"] == n and mutated >= 100_000
    assert s["bad"] > 10_000 and s["resyncs"] > 0
    book = proc.book("BTCUSDT")
    assert not (book.valid and book.crossed())
    # After the storm, a reconnect (which drops buffered diffs) and an untouched stream make the
    # book consistent again.
    proc.invalidate("BTCUSDT", "reconnect", 0)
    feed(proc, base)
    assert proc.book("BTCUSDT").valid and not proc.book("BTCUSDT").crossed()
    clean = make()
    feed(clean, base)
    assert proc.book("BTCUSDT").depth_ticks(1000) == clean.book("BTCUSDT").depth_ticks(1000)
