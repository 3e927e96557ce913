"""Tick-to-trade: the real recorded BTCUSDT USD-M stream through the full decision path.

    python bench/tick_to_trade.py [--stream GZ] [--data DIR] [--bar-every 50] [--passes 3] [--cpu N]

Models are trained here on real 1h candles (kaizen.engine.hotpath.train_small, a few seconds) and
compiled (kaizen.models.compile). Bars are forced to close every `--bar-every` messages so that
decisions happen; the venue stub only timestamps the encoded order. Two pipelines run on the same
frames, in the same process, on the same clock (CLOCK_MONOTONIC: clock_gettime from C,
time.perf_counter_ns from Python):

- kaizen: kaizen.ext.core.DecisionCore, fed each frame in place from a C loop (the frame's arrival
  stamp is taken in C immediately before the call), stages stamped from C;
- python: the same pipeline in plain Python: json.loads, a dict + bisect order book, the same
  bar/feature/decision steps with xgboost's inplace_predict for every model (regime, three bases,
  meta, exit), Thompson draws from `random`, sizing/risk/encoding in Python. The 36-feature bar
  fold and the regime's derived features have no plain-Python twin, so the baseline calls the
  Cython FeatureEngine / RegimeFeatures through their Python API there (this favours the baseline).

Per pass a fresh core and pipeline replay the whole stream (GC frozen and off, as in the live
process); samples are pooled over passes. Every stage figure includes its own clock read (~20 ns,
printed). End to end: frame arrival → order encoded, for bar-closing messages that place an order;
frame arrival → message fully processed, for the others.
"""

from __future__ import annotations

import argparse
import bisect
import gc
import json
import math
import os
import random
import sys
import time
from pathlib import Path

import numpy as np

# OpenMP worker threads (xgboost training) busy-wait after each parallel region by default and
# would take a 2-core machine's cycles from the timed loops; passive waiting frees them.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kaizen.engine.hotpath import (  # noqa: E402
    LOT,
    TICK,
    VARIANTS,
    build_core,
    compile_models,
    train_small,
)
from kaizen.engine.stream_file import read_stream  # noqa: E402
from kaizen.ext.core import FLAGS, NCOLS, STAGES  # noqa: E402
from kaizen.ext.depth import timer_overhead_ns  # noqa: E402
from kaizen.ext.features import FeatureEngine  # noqa: E402
from kaizen.models.features import FEATURE_NAMES  # noqa: E402
from kaizen.models.regime import _ENGINE_COLS, _new_state  # noqa: E402

DATA = Path(os.environ.get("KAIZEN_DATA", "/work/shared/data"))
STREAM = DATA / "futures/um/stream/btcusdt_20240808.gz"
# exit-model threshold of both pipelines: low enough that positions turn over and many bar closes
# place an order (at 0.6 about 2 % of bar closes do, too few orders for a p99)
EXIT_THRESHOLD = 0.45
TARGET_ORDER_P50, TARGET_ORDER_P99, TARGET_DEPTH_P50, TARGET_SPEEDUP = 15_000, 50_000, 2_000, 20.0
K_DEPTH, K_TRADE, K_TICKER, K_BAR, K_ORDER, K_SKIP, K_ERROR = (
    FLAGS["depth"], FLAGS["trade"], FLAGS["ticker"], FLAGS["bar"], FLAGS["order"], FLAGS["skip"], FLAGS["error"]
)  # fmt: skip


# ---------------------------------------------------------------------------- the Python baseline


class PyPipeline:
    """The decision path in plain Python (see the module doc); trace rows as the core's."""

    def __init__(self, m, symbol: str, bar_every: int, seed: int = 11, **risk) -> None:
        self.m = m
        for b in [m.regime, m.meta, m.exit] + [b for b, _ in m.bases]:
            b.set_param({"nthread": 1})
        self.sym = symbol
        self.bar_every = bar_every
        self.bids: dict[float, float] = {}
        self.asks: dict[float, float] = {}
        self.bk: list[float] = []  # ascending; best bid last
        self.ak: list[float] = []  # ascending; best ask first
        self.snap_id, self.synced, self.last_u = -1, False, 0
        self.fe = FeatureEngine([symbol], leader=symbol, interval_ms=m.interval_ms)
        self.rf = _new_state(m.interval_ms)
        self.k = int(m.regime.inplace_predict(np.zeros((1, len(_ENGINE_COLS) + 23), np.float32)).shape[-1])
        self.margin, self.confirm = m.hysteresis
        self.cur, self.cand, self.count = -1, -1, 0
        self.rng = random.Random(seed)
        self.arms = [[0.0, 1.0, 1.0, 1.0] for _ in VARIANTS]  # normal-gamma: mean, kappa, alpha, beta
        self.arm = 0
        self.pos = 0
        self.entry = 0.0
        self.entry_arm = 0
        self.held = 0
        self.cid = 0
        self.equity, self.risk_fraction, self.vol_target = 10_000.0, 0.5, 0.005
        self.exit_threshold, self.fee = EXIT_THRESHOLD, 0.0004
        self.max_notional, self.band_bps = 50_000.0, 5.0
        self.kill = False
        self.imb = self.micro = self.imb_ema = math.nan
        self.signed = 0.0
        self.last_mid = math.nan
        self._bar_reset(-1)
        for t, o, h, lo, c, v in m.warm:
            self.fe.on_bar(symbol, int(t), o, h, lo, c, v)
            self.rf.update(self.fe.vector(symbol))
            self._bar_reset(int(t) + m.interval_ms)

    def _bar_reset(self, t: int) -> None:
        self.bar = {"t": t, "o": math.nan, "h": math.nan, "l": math.nan, "c": math.nan, "v": 0.0, "n": 0, "msgs": 0}

    def load_snapshot(self, snap: dict) -> None:
        for side, keys, book in (("bids", self.bk, self.bids), ("asks", self.ak, self.asks)):
            for p, q in snap[side]:
                book[float(p)] = float(q)
            keys[:] = sorted(book)
        self.snap_id = snap["lastUpdateId"]

    def _apply(self, book: dict, keys: list, levels) -> None:
        for p, q in levels:
            price, qty = float(p), float(q)
            if qty == 0.0:
                if price in book:
                    del book[price]
                    del keys[bisect.bisect_left(keys, price)]
            else:
                if price not in book:
                    bisect.insort(keys, price)
                book[price] = qty

    def _book_event(self, sv: float) -> None:
        if not self.bk or not self.ak:
            return
        bb, ba = self.bk[-1], self.ak[0]
        vb = sum(self.bids[p] for p in self.bk[-5:])
        va = sum(self.asks[p] for p in self.ak[:5])
        qb, qa = self.bids[bb], self.asks[ba]
        mid = 0.5 * (bb + ba)
        self.last_mid = mid
        self.imb = (vb - va) / (vb + va)
        self.micro = ((bb * qa + ba * qb) / (qa + qb)) / mid - 1.0
        self.imb_ema = self.imb if math.isnan(self.imb_ema) else self.imb_ema + 0.1 * (self.imb - self.imb_ema)
        if not math.isnan(sv):
            self.signed += sv

    def on_frame(self, frame: bytes, t0: int, st: np.ndarray) -> None:
        clock = time.perf_counter_ns
        st[0] = t0
        kind = 0
        d = json.loads(frame)["data"]
        e = d["e"]
        if e == "depthUpdate":
            kind = K_DEPTH
            U, u, pu = d["U"], d["u"], d["pu"]
            ok = True
            if not self.synced:
                if self.snap_id < 0 or u < self.snap_id or U > self.snap_id:
                    ok = False
            elif pu != self.last_u:
                ok = False
                self.synced = False
                self.snap_id = -1
            if ok:
                self._apply(self.bids, self.bk, d["b"])
                self._apply(self.asks, self.ak, d["a"])
                self.synced, self.last_u = True, u
                st[1] = clock()
                self._book_event(math.nan)
            else:
                kind |= K_SKIP
                st[1] = clock()
        elif e == "trade":
            kind = K_TRADE
            px, q = float(d["p"]), float(d["q"])
            b = self.bar
            if b["n"] == 0:
                b["o"] = b["h"] = b["l"] = px
            b["h"], b["l"] = max(b["h"], px), min(b["l"], px)
            b["c"] = px
            b["v"] += q
            b["n"] += 1
            st[1] = clock()
            self._book_event(-q if d["m"] else q)
        else:
            kind = K_TICKER
            st[1] = clock()
        st[2] = clock()
        self.bar["msgs"] += 1
        if self.bar["msgs"] >= self.bar_every:
            kind |= self._close_bar(st)
        st[9] = kind

    def _close_bar(self, st: np.ndarray) -> int:
        clock = time.perf_counter_ns
        b = self.bar
        o, h, lo, c = b["o"], b["h"], b["l"], b["c"]
        if b["n"] == 0:
            o = h = lo = c = self.last_mid
        vec = self.fe.on_bar(self.sym, b["t"], o, h, lo, c, b["v"])
        vec[30], vec[31], vec[32] = self.imb, self.micro, self.imb_ema
        vec[33] = self.signed
        self._bar_reset(b["t"] + self.m.interval_ms)
        st[2] = clock()
        kind = K_BAR
        if self.pos:
            self.held += 1
        derived = self.rf.update(vec)
        row = np.concatenate([vec[_ENGINE_COLS], derived]).astype(np.float32)[None, :]
        probs = self.m.regime.inplace_predict(row, missing=np.nan)[0]
        best = int(np.argmax(probs))
        if self.cur < 0:
            self.cur = best
        elif best == self.cur or probs[best] - probs[self.cur] < self.margin:
            self.cand, self.count = -1, 0
        else:
            if best != self.cand:
                self.cand, self.count = best, 0
            self.count += 1
            if self.count >= self.confirm:
                self.cur, self.cand, self.count = best, -1, 0
        st[3] = clock()
        if self.pos == 0:
            draws = []
            for mu, kap, a, bb in self.arms:
                tau = self.rng.gammavariate(a, 1.0 / bb)
                draws.append(self.rng.gauss(mu, 1.0 / math.sqrt(kap * tau)))
            self.arm = draws.index(max(draws))
        st[4] = clock()
        logits = []
        for booster, cols in self.m.bases:
            p = float(booster.inplace_predict(vec[cols].astype(np.float32)[None, :], missing=np.nan)[0])
            p = min(max(p, 1e-6), 1 - 1e-6)
            logits.append(math.log(p / (1 - p)))
        mrow = np.array(logits + list(probs), np.float32)[None, :]
        p = float(self.m.meta.inplace_predict(mrow, missing=np.nan)[0])
        st[5] = clock()
        edge = p - 0.5
        thr, size = VARIANTS[self.arm]
        mid = self.last_mid
        side = 1 if self.pos > 0 else (-1 if self.pos < 0 else (1 if edge > 0 else -1))
        ur = side * (mid / self.entry - 1.0) if self.pos and self.entry > 0 else 0.0
        erow = np.array(list(vec[self.m.exit_cols]) + [side, self.held, ur, self.cur], np.float32)[None, :]
        p_exit = float(self.m.exit.inplace_predict(erow, missing=np.nan)[0])
        st[6] = clock()
        vol = vec[FEATURE_NAMES.index("vol_rv_24")]
        vol = vol if math.isfinite(vol) and vol >= 1e-4 else 1e-4
        scale = min(self.vol_target / vol, 3.0)
        lots = int(self.equity * self.risk_fraction * size * scale / (mid * LOT))
        if self.pos == 0:
            s = 1 if edge > thr else (-1 if edge < -thr else 0)
            target = s * lots if p_exit < self.exit_threshold else 0
        elif p_exit >= self.exit_threshold or edge * side < -thr:
            target = 0
        else:
            target = self.pos
        increasing = abs(target) > abs(self.pos) and (target > 0) == (self.pos > 0 or self.pos == 0)
        if self.kill and increasing:
            target = self.pos
        cap = int(self.max_notional / (mid * LOT))
        target = max(-cap, min(cap, target))
        delta = target - self.pos
        if delta and not (self.synced and self.bk and self.ak and self.bk[-1] < self.ak[0]):
            delta = 0
        st[7] = clock()
        if delta == 0:
            return kind
        band = math.ceil(mid * self.band_bps * 1e-4 / TICK)
        price = (self.ak[0] + band * TICK) if delta > 0 else (self.bk[-1] - band * TICK)
        self.cid += 1
        order = (
            f"symbol={self.sym}&side={'BUY' if delta > 0 else 'SELL'}&type=LIMIT&timeInForce=IOC"
            f"&quantity={abs(delta) * LOT:.3f}&price={price:.1f}"
            f"{'&reduceOnly=true' if not increasing else ''}&newClientOrderId=kz-{self.cid}"
        ).encode()
        st[8] = clock()
        self.last_order = order
        fill = self.ak[0] if delta > 0 else self.bk[-1]
        if self.pos == 0:
            self.entry, self.held, self.entry_arm = fill, 0, self.arm
        elif (self.pos > 0) != (delta > 0):
            ret = (1 if self.pos > 0 else -1) * (fill / self.entry - 1) - 2 * self.fee
            a = self.arms[self.entry_arm]
            k1 = a[1] + 1
            a[3] += a[1] * (ret * 1e4 - a[0]) ** 2 / (2 * k1)
            a[0] = (a[1] * a[0] + ret * 1e4) / k1
            a[1], a[2] = k1, a[2] + 0.5
            if self.pos + delta != 0:
                self.entry, self.held, self.entry_arm = fill, 0, self.arm
        self.pos += delta
        return kind | K_ORDER


# ---------------------------------------------------------------------------- runs and statistics


def run_core(m, c, s, bar_every: int) -> np.ndarray:
    core = build_core(m, c, bar_every_msgs=bar_every, exit_threshold=EXIT_THRESHOLD)
    core.load_snapshot(s.snapshot["bids"], s.snapshot["asks"], s.snapshot["lastUpdateId"])
    trace = np.zeros((len(s), NCOLS), np.int64)
    gc.collect()
    gc.disable()
    try:
        core.replay(s.buf, s.offsets, trace)
    finally:
        gc.enable()
    return trace


def run_py(m, s, bar_every: int) -> tuple[np.ndarray, int]:
    pipe = PyPipeline(m, "BTCUSDT", bar_every)
    pipe.load_snapshot(s.snapshot)
    frames = [s.frame(i) for i in range(len(s))]
    trace = np.zeros((len(s), NCOLS), np.int64)
    clock = time.perf_counter_ns
    gc.collect()
    gc.disable()
    try:
        for i, f in enumerate(frames):
            pipe.on_frame(f, clock(), trace[i])
    finally:
        gc.enable()
    return trace


def pct(x: np.ndarray) -> list[float]:
    if len(x) == 0:
        return [math.nan] * 5
    return [*np.percentile(x, [50, 90, 99, 99.9]), float(x.max())]


def groups(trace: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
    """Rows per message class, with the column that ends its end-to-end time."""
    k = trace[:, 9]
    ok = (k & (K_SKIP | K_ERROR)) == 0
    bar = (k & K_BAR) != 0
    order = (k & K_ORDER) != 0
    return {
        "bar close + order": (np.flatnonzero(ok & bar & order), 8),
        "bar close, no order": (np.flatnonzero(ok & bar & ~order), 7),
        "depth, no bar": (np.flatnonzero(ok & ~bar & ((k & K_DEPTH) != 0)), 2),
        "trade, no bar": (np.flatnonzero(ok & ~bar & ((k & K_TRADE) != 0)), 2),
        "bookTicker, no bar": (np.flatnonzero(ok & ~bar & ((k & K_TICKER) != 0)), 2),
    }


def stage_table(name: str, trace: np.ndarray) -> dict[str, list[float]]:
    out = {}
    print(f"\n== {name}  (ns; p50 p90 p99 p99.9 max)")
    for label, (rows, last) in groups(trace).items():
        if len(rows) == 0:
            print(f"{label:22s} n=0")
            continue
        t = trace[rows]
        e2e = pct(t[:, last] - t[:, 0])
        out[label] = e2e
        print(f"{label:22s} n={len(rows):<7d} end-to-end " + " ".join(f"{v:9.0f}" for v in e2e))
        prev = t[:, 0]
        for j, st in enumerate(STAGES, 1):
            if j > last:
                break
            d = t[:, j] - prev
            prev = t[:, j]
            print(f"{'':22s}   {st:9s}          " + " ".join(f"{v:9.0f}" for v in pct(d)))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--stream", default=str(STREAM))
    ap.add_argument("--data", default=str(DATA))
    ap.add_argument("--bar-every", type=int, default=50, help="close a bar every N messages")
    ap.add_argument("--passes", type=int, default=3)
    ap.add_argument("--trees", type=int, default=30)
    ap.add_argument("--cpu", type=int, default=None, help="pin to this CPU")
    a = ap.parse_args(argv)
    if a.bar_every < 1 or a.passes < 1:
        print("error: --bar-every and --passes must be >= 1", file=sys.stderr)
        return 2
    if a.cpu is not None:
        os.sched_setaffinity(0, {a.cpu})
    t = time.perf_counter()
    s = read_stream(a.stream)
    if s.snapshot is None:
        print(f"error: {a.stream} holds no depth snapshot", file=sys.stderr)
        return 2
    m = train_small(a.data, start="2024-03-01", trees=a.trees)
    c = compile_models(m)
    print(f"stream {len(s)} frames ({Path(a.stream).name}); models: {m.info}; "
          f"set-up {time.perf_counter() - t:.1f} s; bar every {a.bar_every} messages; {a.passes} passes")  # fmt: skip
    print(f"clock read pair: C {timer_overhead_ns():.0f} ns")
    run_core(m, c, s, a.bar_every)  # warm caches and the allocator
    runs = [run_core(m, c, s, a.bar_every) for _ in range(a.passes)]
    core_tr = np.concatenate(runs)
    py_tr = np.concatenate([run_py(m, s, a.bar_every) for _ in range(a.passes)])
    kz = stage_table("kaizen (Cython DecisionCore)", core_tr)
    py = stage_table("python baseline (plain Python + xgboost inplace_predict)", py_tr)
    # The first decision of each pass runs with caches cold (set-up and gc.collect ran just
    # before); live, where a bar closes once an hour between ~10^5 frames, every decision is
    # closer to that case than to the back-to-back ones, so it is shown on its own.
    first = []
    for tr in runs:
        rows = np.flatnonzero((tr[:, 9] & K_BAR) != 0)
        if len(rows):
            r = rows[0]
            first.append((tr[r, 8] if tr[r, 9] & K_ORDER else tr[r, 7]) - tr[r, 0])
    print("\nkaizen first bar close of each pass (cold caches), end-to-end ns: " + ", ".join(f"{v:.0f}" for v in first))
    o50, o99 = kz["bar close + order"][0], kz["bar close + order"][2]
    d50 = kz["depth, no bar"][0]
    sp = {k: py[k][0] / kz[k][0] for k in kz if k in py}
    print("\nspeed-up at p50 (python / kaizen): " + ", ".join(f"{k} {v:.0f}x" for k, v in sp.items()))
    # the speed-up target is on the tick-to-order path; the depth-only ratio is printed beside it
    checks = [
        (o50 <= TARGET_ORDER_P50, f"tick-to-order p50 {o50 / 1e3:.2f} us <= 15"),
        (o99 <= TARGET_ORDER_P99, f"tick-to-order p99 {o99 / 1e3:.2f} us <= 50"),
        (d50 <= TARGET_DEPTH_P50, f"depth (no bar) p50 {d50 / 1e3:.2f} us <= 2"),
        (sp["bar close + order"] >= TARGET_SPEEDUP,
         f"tick-to-order speed-up {sp['bar close + order']:.0f}x >= 20 (depth-only {sp['depth, no bar']:.0f}x)"),
    ]
    verdict = "PASS" if all(ok for ok, _ in checks) else "FAIL"
    print(f"verdict: {verdict}: " + "; ".join(("ok " if ok else "MISS ") + txt for ok, txt in checks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
