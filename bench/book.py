"""Order-book hot path benchmark (run: `nice python bench/book.py [CAPTURE]`).

Every row, Kaizen's and the baselines', is timed by bench/_harness.py: same clock, the same number
of passes, per-call figures the minimum over the passes net of their own timer's cost, throughput
the best pass. Rows:
  - ns per level update inside each real depth message: Cython book vs the sorted-dict Python
    reference book (kaizen/market/refbook.py), both fed the same integer levels;
  - us per depth message, bytes -> book: msgspec decode + Cython book vs json.loads + float
    parsing + reference book;
  - replay of the whole capture (messages/s): Kaizen's full decode -> sync path (gap checks,
    bookTicker cross-checks) vs the plain-Python equivalent of its work (the same block reader,
    json.loads, the reference book applying every diff after the snapshot, no checks), and a
    decode-only floor (the same reader + json.loads per line, no book at all).
Targets (issue 4): <= 20 ns median per level, >= 50x the reference, >= 300,000 messages/s.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _harness import PASSES, best_rate, c_timer_ns, median_p99, per_call_c, per_call_passes, py_timer_ns  # noqa: E402

from kaizen.ext.book import OrderBook  # noqa: E402
from kaizen.ext.depth import apply_depth, time_apply  # noqa: E402
from kaizen.market.messages import envelope_decoder, snapshot_decoder  # noqa: E402
from kaizen.market.refbook import PyOrderBook  # noqa: E402
from kaizen.market.replay import open_lines, replay, split_line  # noqa: E402
from kaizen.market.sync import StreamProcessor  # noqa: E402

CAPTURE = Path("futures") / "um" / "stream" / "btcusdt_20240808.gz"
DEFAULT = next(
    (p / "shared" / "data" / CAPTURE for p in ROOT.parents if (p / "shared" / "data" / CAPTURE).is_file()),
    ROOT.parent / "shared" / "data" / CAPTURE,
)
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

    c_timer, py_timer = c_timer_ns(), py_timer_ns()

    def cy_pass() -> np.ndarray:
        out = np.zeros(len(parsed), dtype=np.int64)
        time_apply(fresh_cy(), ticks_a, lots_a, sides_a, off_a, out)
        return out

    cy_per_level = per_call_c(cy_pass, timer=c_timer)[keep] / nlev[keep]

    def fresh_py():
        ref = PyOrderBook(TICK, LOT)
        ref.apply(True, to_levels(snap["bids"]))
        ref.apply(False, to_levels(snap["asks"]))
        fresh_py.last = ref

        def apply_msg(b, a):
            ref.apply(True, b)
            ref.apply(False, a)

        return apply_msg

    py_per_level = per_call_passes(fresh_py, parsed, timer=py_timer)[keep] / nlev[keep]
    cy_med, cy_p99 = median_p99(cy_per_level)
    py_med, py_p99 = median_p99(py_per_level)

    # Same final state from both books (the numbers compare equal work).
    chk = fresh_cy()
    time_apply(chk, ticks_a, lots_a, sides_a, off_a, np.zeros(len(parsed), dtype=np.int64))
    assert chk.depth_ticks(1000) == fresh_py.last.depth_ticks(1000), "Cython and reference books differ"

    # --- 2. us per depth message, bytes -> book ----------------------------------------------------
    live = [
        d for d, m in zip(diffs, [json.loads(d)["data"] for d in diffs], strict=True) if m["u"] >= snap_id
    ]

    def cy_e2e() -> int:
        book = fresh_cy()
        dec = envelope_decoder.decode
        for raw in live:
            d = dec(raw).data
            apply_depth(book, d.b, d.a)
        return len(live)

    def py_e2e() -> int:
        ref = PyOrderBook(TICK, LOT)
        ref.apply(True, to_levels(snap["bids"]))
        ref.apply(False, to_levels(snap["asks"]))
        for raw in live:
            d = json.loads(raw)["data"]
            ref.apply(True, to_levels(d["b"]))
            ref.apply(False, to_levels(d["a"]))
        return len(live)

    e2e_cy = 1e6 / best_rate(cy_e2e)
    e2e_py = 1e6 / best_rate(py_e2e)

    # --- 3. replay throughput of the whole capture ----------------------------------------------------
    procs = []

    def kz_replay() -> int:
        proc = StreamProcessor(["BTCUSDT"], {"BTCUSDT": TICK}, {"BTCUSDT": LOT})
        procs.append(proc)
        return replay(path, proc, "BTCUSDT")

    def py_replay() -> int:
        """The same work in plain Python: read, decode, apply every diff after the snapshot."""
        ref = PyOrderBook(TICK, LOT)
        snap_u = -1
        n = 0
        for line in open_lines(path):
            parts = split_line(line)
            if parts is None:
                continue
            n += 1
            obj = json.loads(parts[1])
            if "lastUpdateId" in obj:
                snap_u = obj["lastUpdateId"]
                ref.apply(True, to_levels(obj["bids"]))
                ref.apply(False, to_levels(obj["asks"]))
                continue
            d = obj.get("data", obj)
            if d.get("e") == "depthUpdate" and snap_u >= 0 and d["u"] >= snap_u:
                ref.apply(True, to_levels(d["b"]))
                ref.apply(False, to_levels(d["a"]))
        return n

    def decode_only() -> int:
        n = 0
        for line in open_lines(path):
            parts = split_line(line)
            if parts is not None:
                json.loads(parts[1])
                n += 1
        return n

    replay_passes = 3
    kz_rate = best_rate(kz_replay, replay_passes)
    n = kz_replay()
    assert procs[-1].stats["bookticker_disagreements"] == 0 and procs[-1].stats["gaps"] == 0
    py_rate = best_rate(py_replay, replay_passes)
    floor_rate = best_rate(decode_only, replay_passes)

    lv = int(nlev[keep].sum())
    print(
        f"capture: {path.name}: {len(live)} depth messages applied after the snapshot, {lv} level updates "
        f"(mean {lv / keep.sum():.1f}/message); {n} lines replayed"
    )
    print(
        f"harness: per-call rows min of {PASSES} passes net of the timer (C clock pair {c_timer:.0f} ns, "
        f"Python perf_counter_ns pair {py_timer:.0f} ns); bytes->book best of {PASSES} passes; replay best of "
        f"{replay_passes}; box shared with other work (load {os.getloadavg()[0]:.2f})"
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
        f"{'replay msgs/s: Kaizen vs plain-Python replay':<46} {kz_rate:>16,.0f} {py_rate:>18,.0f} "
        f"{kz_rate / py_rate:>7.1f}x {'>=300,000':>14}"
    )
    print(
        f"{'replay msgs/s: Kaizen vs decode-only floor':<46} {kz_rate:>16,.0f} {floor_rate:>18,.0f} "
        f"{kz_rate / floor_rate:>7.1f}x {'':>14}"
    )
    print(
        "baselines: sorted-dict reference book; json.loads + float parsing + reference book; plain-Python "
        "replay = same reader + json.loads + reference book (no sync checks); decode-only floor = same "
        "reader + json.loads per line, no book"
    )
    ok = cy_med <= 20 and py_med / cy_med >= 50 and kz_rate >= 300_000
    print(
        f"verdict: {'MET' if ok else 'NOT MET'} (median {cy_med:.1f} ns/level, {py_med / cy_med:.0f}x the "
        f"reference, {kz_rate:,.0f} msgs/s replay)"
    )


if __name__ == "__main__":
    main()
