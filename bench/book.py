"""Order-book hot path benchmark (run: `nice python bench/book.py [CAPTURE]`).

Prints one table: ns per level update (median, p99) applied inside each real depth message for the
Cython book and the sorted-dict Python reference book (ratio); µs per decoded depth message end to
end (bytes → msgspec Struct → levels scanned → book updated), with a json.loads + Python-book
baseline; and replay throughput (messages/s) of the real capture through the full decode → sync
path, with a bare json.loads-per-line baseline. All measured in this run.
Targets (issue 4): <= 20 ns median per level, >= 50x the reference, >= 300,000 messages/s.
"""

from __future__ import annotations

import gzip
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kaizen.ext.book import OrderBook  # noqa: E402
from kaizen.ext.depth import apply_depth, time_apply, timer_overhead_ns  # noqa: E402
from kaizen.market.messages import envelope_decoder, snapshot_decoder  # noqa: E402
from kaizen.market.refbook import PyOrderBook  # noqa: E402
from kaizen.market.replay import replay  # noqa: E402
from kaizen.market.sync import StreamProcessor  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "futures" / "um" / "stream" / "btcusdt_20240808.gz"
TICK, LOT = 0.1, 0.001


def load(path: Path):
    snap, diffs = None, []
    with gzip.open(path, "rb") as fh:
        for line in fh:
            raw = line.split(b" ", 1)[1].rstrip(b"\n")
            if raw.startswith(b'{"lastUpdateId"'):
                snap = raw
            elif b"depthUpdate" in raw[:80]:
                diffs.append(raw)
    return snap, diffs


def to_levels(raw_levels: list) -> list[tuple[int, int]]:
    return [(round(float(p) / TICK), round(float(q) / LOT)) for p, q in raw_levels]


def main() -> None:
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT
    snap_raw, diffs = load(path)
    snap = json.loads(snap_raw)
    msgs = [json.loads(d)["data"] for d in diffs]
    snap_id = snap["lastUpdateId"]
    msgs = [m for m in msgs if m["u"] >= snap_id]  # those a synced book applies
    parsed = [(to_levels(m["b"]), to_levels(m["a"])) for m in msgs]

    # --- 1. ns per level update inside each message ------------------------------------------------
    ticks, lots, sides, offsets = [], [], [], [0]
    for b, a in parsed:
        for t, q in b:
            ticks.append(t), lots.append(q), sides.append(1)
        for t, q in a:
            ticks.append(t), lots.append(q), sides.append(0)
        offsets.append(len(ticks))
    ticks_a = np.array(ticks, dtype=np.int64)
    lots_a = np.array(lots, dtype=np.int64)
    sides_a = np.array(sides, dtype=np.uint8)
    off_a = np.array(offsets, dtype=np.int64)
    nlev = np.diff(off_a)
    keep = nlev > 0

    def fresh_cy():
        book = OrderBook(TICK, LOT)
        apply_depth(book, snapshot_decoder.decode(snap_raw).bids, snapshot_decoder.decode(snap_raw).asks)
        return book

    overhead = timer_overhead_ns()
    cy_runs = []
    for _ in range(5):
        out = np.zeros(len(parsed), dtype=np.int64)
        time_apply(fresh_cy(), ticks_a, lots_a, sides_a, off_a, out)
        cy_runs.append(np.maximum(out - overhead, 0)[keep] / nlev[keep])
    cy_per_level = np.min(np.stack(cy_runs), axis=0)  # best of 5 per message: less scheduler noise

    py_runs = []
    for _ in range(2):
        ref = PyOrderBook(TICK, LOT)
        ref.apply(True, to_levels(snap["bids"]))
        ref.apply(False, to_levels(snap["asks"]))
        out = []
        pc = time.perf_counter_ns
        for b, a in parsed:
            t0 = pc()
            ref.apply(True, b)
            ref.apply(False, a)
            out.append(pc() - t0)
        py_runs.append(np.array(out, dtype=np.float64)[keep] / nlev[keep])
    py_per_level = np.min(np.stack(py_runs), axis=0)
    cy_med, cy_p99 = np.median(cy_per_level), np.percentile(cy_per_level, 99)
    py_med, py_p99 = np.median(py_per_level), np.percentile(py_per_level, 99)

    # Same final state from both books (the numbers compare equal work).
    chk = fresh_cy()
    time_apply(chk, ticks_a, lots_a, sides_a, off_a, np.zeros(len(parsed), dtype=np.int64))
    assert chk.depth_ticks(1000) == ref.depth_ticks(1000), "Cython and reference books differ"

    # --- 2. µs per decoded depth message, bytes → book ----------------------------------------------
    live = [
        d for d, m in zip(diffs, [json.loads(d)["data"] for d in diffs], strict=True) if m["u"] >= snap_id
    ]
    best = float("inf")
    for _ in range(5):
        book = fresh_cy()
        dec = envelope_decoder.decode
        t0 = time.perf_counter_ns()
        for raw in live:
            d = dec(raw).data
            apply_depth(book, d.b, d.a)
        best = min(best, (time.perf_counter_ns() - t0) / len(live) / 1000)
    e2e_cy = best
    ref = PyOrderBook(TICK, LOT)
    t0 = time.perf_counter_ns()
    for raw in live:
        d = json.loads(raw)["data"]
        ref.apply(True, to_levels(d["b"]))
        ref.apply(False, to_levels(d["a"]))
    e2e_py = (time.perf_counter_ns() - t0) / len(live) / 1000

    # --- 3. replay throughput of the whole capture ----------------------------------------------------
    rates = []
    for _ in range(3):
        proc = StreamProcessor(["BTCUSDT"], {"BTCUSDT": TICK}, {"BTCUSDT": LOT})
        t0 = time.perf_counter()
        n = replay(path, proc, "BTCUSDT")
        rates.append(n / (time.perf_counter() - t0))
    assert proc.stats["bookticker_disagreements"] == 0 and proc.stats["gaps"] == 0
    t0 = time.perf_counter()
    with gzip.open(path, "rb") as fh:
        for line in fh:
            json.loads(line.split(b" ", 1)[1])
    base_rate = n / (time.perf_counter() - t0)

    lv = int(nlev[keep].sum())
    print(
        f"capture: {path.name}: {len(live)} depth messages applied after the snapshot, {lv} level updates "
        f"(mean {lv / keep.sum():.1f}/message); {n} lines replayed; timer overhead {overhead:.0f} ns subtracted"
    )
    print(f"{'measure':<46} {'kaizen (Cython)':>16} {'baseline (Python)':>18} {'ratio':>8} {'target':>14}")
    print(
        f"{'ns per level update, median':<46} {cy_med:>16.1f} {py_med:>18.1f} {py_med / cy_med:>7.0f}x {'<=20 ns, >=50x':>14}"
    )
    print(
        f"{'ns per level update, p99':<46} {cy_p99:>16.1f} {py_p99:>18.1f} {py_p99 / cy_p99:>7.0f}x {'':>14}"
    )
    print(
        f"{'us per depth message, bytes -> book':<46} {e2e_cy:>16.2f} {e2e_py:>18.2f} {e2e_py / e2e_cy:>7.1f}x {'':>14}"
    )
    print(
        f"{'replay msgs/s (full decode->sync path)':<46} {max(rates):>16,.0f} {base_rate:>18,.0f} {'':>8} {'>=300,000':>14}"
    )
    print(
        "(baselines: sorted-dict reference book; json.loads + float parsing + reference book; json.loads per line only)"
    )


if __name__ == "__main__":
    main()
