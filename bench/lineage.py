"""Lineage log benchmark: producer-side append cost, sustained records/s to disk, compression.

    python bench/lineage.py [--records N] [--set demo|synthetic|both] [--fsync never interval]
                            [--level L ...] [--threads T ...] [--split on|off|both] [--pin]

Record sets:
  demo       the engine's own records: a 1,200-record slice of a `kaizen demo` run's lineage log
             (bench/fixtures/demo_records.msgpack.zst: features, predictions, decisions, orders, fills
             as the engine writes them today), cycled with ids, parents and times advancing each cycle;
  synthetic  decision records (22 fields: ids, timestamps, parents, model, symbol and 16 floats that
             random-walk like prices, quoted on the symbol's tick; with --full-precision 8 of the 16
             are full-precision random walks like raw features, the hard case for a byte-level
             compressor).
Writer rows run with fsync = "interval" (the default) and "never". Baselines measured in the same run on the same records:
  json+gzip  msgspec JSON lines written through gzip (level 6) on the producer thread
  msgpack    msgspec msgpack into a buffer, written to disk uncompressed
Rows "append" time `append(record)` (msgspec encode included); rows "encoded" time
`append_encoded(payload, ts)`, the hot path's call (it encodes itself; the writer ignores ts). tN = lineage.compress_threads;
"raw" rows turn the split pre-filter off (lineage.split_numbers = false: zstd sees plain msgpack).
Append cost is timed per call with perf_counter_ns (the timer pair's own cost is printed and not
subtracted). Sustained rate = records / (first append .. close() returned, files on disk); cpu ns/rec = process
CPU time (all threads, user + sys) over that run per record; rec/s/core = 1e9 / cpu ns/rec, the rate
one core could sustain. Level 0 rows use the tuned preset (lineage.zstd_fast, the default); --pin
runs every thread on one CPU so the end-to-end rate itself is a one-core figure. Every log is read
back through LineageReader and compared with what was written before its row is printed.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from array import array
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import msgspec  # noqa: E402

from kaizen.config import LineageConfig  # noqa: E402
from kaizen.lineage import format as fmt  # noqa: E402
from kaizen.lineage.reader import LineageReader  # noqa: E402
from kaizen.lineage.records import Base, Record  # noqa: E402

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "demo_records.msgpack.zst"
from kaizen.lineage.writer import LineageWriter  # noqa: E402


class BenchDecision(Base, tag="bench_decision"):
    bar_ts: int
    mid: float
    bid: float
    ask: float
    last: float
    vwap: float
    mark: float
    index: float
    entry: float
    signal: float
    meta: float
    vol: float
    mom_fast: float
    mom_slow: float
    flow: float
    funding: float
    basis: float


SYMBOLS = {
    "BTCUSDT": (43000.0, 0.1),
    "ETHUSDT": (2300.0, 0.01),
    "SOLUSDT": (60.0, 0.001),
    "BNBUSDT": (310.0, 0.01),
}


def make_records(n: int, seed: int = 7, full_precision: bool = False) -> list[BenchDecision]:
    rng = random.Random(seed)
    state = {s: [p * (1 + 0.001 * k) for k in range(16)] for s, (p, _) in SYMBOLS.items()}
    if full_precision:
        for v in state.values():
            v[8:] = [rng.gauss(0, 1) for _ in range(8)]
    n_price = 8 if full_precision else 16
    ts = 1_700_000_000_000_000_000
    rid = 1 << 40
    out = []
    syms = list(SYMBOLS)
    for i in range(n):
        sym = syms[i % 4]
        tick = SYMBOLS[sym][1]
        v = state[sym]
        for k in range(n_price):
            v[k] *= 1.0 + rng.gauss(0.0, 2e-4)
        for k in range(n_price, 16):
            v[k] += rng.gauss(0.0, 0.05)
        px = [round(round(x / tick) * tick, 6) for x in v[:n_price]] + v[n_price:]
        ts += rng.randint(50_000, 2_000_000)
        rid += 3
        out.append(
            BenchDecision(
                id=rid,
                ts=ts,
                parents=[rid - 1, rid - 2],
                model="meta-20260101-3f9a2c",
                symbol=sym,
                bar_ts=ts - ts % 60_000_000_000,
                mid=px[0],
                bid=px[1],
                ask=px[2],
                last=px[3],
                vwap=px[4],
                mark=px[5],
                index=px[6],
                entry=px[7],
                signal=px[8],
                meta=px[9],
                vol=px[10],
                mom_fast=px[11],
                mom_slow=px[12],
                flow=px[13],
                funding=px[14],
                basis=px[15],
            )
        )
    return out


def demo_records(n: int, seed: int = 11) -> list:
    """`n` records with the shapes of the demo fixture (types in their order, field sets, strings,
    list lengths, magnitudes): each cycle through the slice advances ids, parents and times by its
    span and moves every float on by a random walk (1e-4 relative a cycle), so no cycle repeats
    the previous one byte for byte (frames are compressed one by one; a repeat would flatter zstd)."""
    import zstandard

    base = msgspec.msgpack.decode(
        zstandard.ZstdDecompressor().decompress(FIXTURE.read_bytes()), type=list[Record]
    )
    id_span = max(r.id for r in base) - min(r.id for r in base) + 1
    ts_span = max(r.ts for r in base) - min(r.ts for r in base) + 1
    rng = random.Random(seed)
    walk = [1.0] * len(base)
    out = []
    for k in range(n):
        j = k % len(base)
        r = base[j]
        c = k // len(base)
        if c:
            walk[j] *= 1.0 + rng.gauss(0.0, 1e-4)
            w = walk[j]
            changes = {
                "id": r.id + c * id_span,
                "ts": r.ts + c * ts_span,
                "parents": [x + c * id_span for x in r.parents],
            }
            for f in r.__struct_fields__:
                v = getattr(r, f)
                if isinstance(v, float):
                    changes[f] = v * w
                elif isinstance(v, list) and v and isinstance(v[0], float):
                    changes[f] = [x * (1.0 + rng.gauss(0.0, 1e-4)) for x in v]
            r = msgspec.structs.replace(r, **changes)
        out.append(r)
    return out


def pct(xs: array, q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(q * len(s)))]


def timed_appends(append, recs, n: int) -> array:
    lat = array("q", bytes(8 * n))
    clock = time.perf_counter_ns
    m = len(recs)
    for i in range(n):
        r = recs[i % m]
        t0 = clock()
        append(r)
        lat[i] = clock() - t0
    return lat


class JsonGzip:
    def __init__(self, path: Path) -> None:
        self.f = gzip.open(path, "wb", compresslevel=6)
        self.enc = msgspec.json.Encoder()
        self.buf = bytearray()

    def append(self, r) -> None:
        self.enc.encode_into(r, self.buf, -1)
        self.buf += b"\n"
        if len(self.buf) >= 1 << 16:
            self.f.write(self.buf)
            self.buf = bytearray()

    def close(self) -> None:
        self.f.write(self.buf)
        self.f.close()


class PlainMsgpack:
    def __init__(self, path: Path) -> None:
        self.f = open(path, "wb")  # noqa: SIM115
        self.enc = msgspec.msgpack.Encoder()
        self.buf = bytearray()

    def append(self, r) -> None:
        self.enc.encode_into(r, self.buf, -1)
        if len(self.buf) >= 1 << 16:
            self.f.write(self.buf)
            self.buf = bytearray()

    def close(self) -> None:
        self.f.write(self.buf)
        self.f.close()


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def timed_encoded(append_encoded, payloads, tss, n: int) -> array:
    lat = array("q", bytes(8 * n))
    clock = time.perf_counter_ns
    m = len(payloads)
    for i in range(n):
        p = payloads[i % m]
        t = tss[i % m]
        t0 = clock()
        append_encoded(p, t)
        lat[i] = clock() - t0
    return lat


def run_case(name, factory, recs, n_lat, n_sus, tmp: Path, encoded=None) -> dict:
    """encoded = (payloads, ts) times `append_encoded` (the hot path encodes itself) instead of `append`."""
    # 1) per-append latency (separate instance, timing each call)
    d = tmp / f"{name}-lat"
    d.mkdir()
    w = factory(d)
    if encoded:
        lat = timed_encoded(w.append_encoded, *encoded, n_lat)
    else:
        lat = timed_appends(w.append, recs, n_lat)
    w.close()
    # 2) sustained: append as fast as possible, then close (drain to disk); wall time end to end
    d2 = tmp / f"{name}-sus"
    d2.mkdir()
    w = factory(d2)
    m = len(recs)
    c0 = os.times()
    t0 = time.perf_counter()
    if encoded:
        append_encoded = w.append_encoded
        payloads, tss = encoded
        for i in range(n_sus):
            append_encoded(payloads[i % m], tss[i % m])
    else:
        append = w.append
        for i in range(n_sus):
            append(recs[i % m])
    t_prod = time.perf_counter() - t0
    w.close()
    t_all = time.perf_counter() - t0
    c1 = os.times()
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    return {
        "cpu_ns": cpu / n_sus * 1e9,
        "name": name,
        "median": statistics.median(lat),
        "p99": pct(lat, 0.99),
        "p999": pct(lat, 0.999),
        "prod_rate": n_sus / t_prod,
        "rate": n_sus / t_all,
        "bytes": dir_bytes(d2),
        "dir": d2,
    }


def check_log(case: dict, recs: list, n: int) -> None:
    """Read the log back: every frame intact, every record there and equal to what was written."""
    r = LineageReader(case["dir"])
    dec = msgspec.msgpack.Decoder(list[BenchDecision] if isinstance(recs[0], BenchDecision) else list[Record])
    got = 0
    for frame, payload in r.frames():
        batch = dec.decode(r.frame_bytes(frame, payload))
        first = frame.header.first_seq
        if batch != [recs[(first + k) % len(recs)] for k in range(len(batch))]:
            raise SystemExit(f"read-back mismatch in frame at seq {first}")
        got += len(batch)
    if got != n or r.damage:
        raise SystemExit(f"read-back failed: {got} records, damage {r.damage}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=1_000_000, help="records in the sustained run")
    ap.add_argument("--latency-records", type=int, default=300_000)
    ap.add_argument("--pool", type=int, default=250_000, help="distinct records generated (cycled)")
    ap.add_argument("--set", choices=["demo", "synthetic", "both"], default="both", help="record set(s)")
    ap.add_argument(
        "--fsync",
        nargs="+",
        default=["interval", "never"],
        choices=["never", "interval", "always"],
        help="lineage.fsync of the writer rows (interval is the default config)",
    )
    ap.add_argument(
        "--level",
        type=int,
        nargs="+",
        default=[0],
        help="zstd level(s), rows for each; 0 = the tuned fast preset (lineage.zstd_fast, the default)",
    )
    ap.add_argument(
        "--threads",
        type=int,
        nargs="+",
        default=[0],
        help="lineage.compress_threads value(s): 0 = zstd on the writer thread only",
    )
    ap.add_argument("--split", choices=["on", "off", "both"], default="on", help="lineage.split_numbers rows")
    ap.add_argument("--pin", action="store_true", help="pin the whole process (all threads) to one CPU core")
    ap.add_argument("--full-precision", action="store_true", help="8 of the 16 floats at full precision")
    args = ap.parse_args()
    if args.pin:
        cpu = sorted(os.sched_getaffinity(0))[-1]
        os.sched_setaffinity(0, {cpu})
        cores = f"cores used: 1 (all threads pinned to cpu {cpu})"
    else:
        cores = f"cores used: up to {len(os.sched_getaffinity(0))} (producer + writer thread, unpinned)"
    clock = time.perf_counter_ns
    timer = statistics.median([-(clock() - clock()) for _ in range(100_000)])
    n_lat, n_sus = args.latency_records, args.records
    sets = {"demo": ["demo"], "synthetic": ["synthetic"], "both": ["demo", "synthetic"]}[args.set]
    splits = {"on": [True], "off": [False], "both": [True, False]}[args.split]
    print(
        f"records: {n_sus:,} sustained, {n_lat:,} timed per row; {cores}; timer pair {timer:.0f} ns (included "
        f"in every append row alike); every row written and read back in this run; box shared with other work"
    )
    verdicts = []
    for rs in sets:
        recs = (
            demo_records(args.pool)
            if rs == "demo"
            else make_records(args.pool, full_precision=args.full_precision)
        )
        enc = msgspec.msgpack.Encoder()
        payloads = [enc.encode(r) for r in recs]
        avg = sum(map(len, payloads)) / len(payloads)
        tmp = Path(tempfile.mkdtemp(prefix="kaizen-bench-lineage-"))
        try:
            cases = []
            for level, threads, split, fsync in itertools.product(
                args.level, args.threads, splits, args.fsync
            ):
                cfg = LineageConfig(
                    zstd_level=level or 3,
                    zstd_fast=level == 0,
                    fsync=fsync,
                    flush_interval_ms=50,
                    compress_threads=threads,
                    split_numbers=split,
                )
                for mode in ("append", "encoded"):
                    enc_arg = (payloads, [r.ts for r in recs]) if mode == "encoded" else None
                    name = f"zstd-{level or 'fast'} t{threads}{'' if split else ' raw'} {fsync} {mode}"
                    case = run_case(
                        name, lambda d, c=cfg: LineageWriter(d, c), recs, n_lat, n_sus, tmp, enc_arg
                    )
                    check_log(case, recs, n_sus)
                    case["fsync"] = fsync
                    cases.append(case)
            cases.append(
                run_case("json+gzip", lambda d: JsonGzip(d / "log.jsonl.gz"), recs, n_lat, n_sus, tmp)
            )
            cases.append(
                run_case("msgpack", lambda d: PlainMsgpack(d / "log.msgpack"), recs, n_lat, n_sus, tmp)
            )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        base = cases[-1]["bytes"]
        what = (
            "demo: the engine's records from a `kaizen demo` log"
            if rs == "demo"
            else f"synthetic decisions, floats {'8 tick + 8 full precision' if args.full_precision else '16 on ticks'}"
        )
        print(f"\n[{rs}] {what}; {avg:.0f} B msgpack/record; load {os.getloadavg()[0]:.2f}")
        print(
            f"{'writer':<34}{'append med ns':>14}{'p99 ns':>9}{'p99.9 ns':>10}{'producer rec/s':>16}"
            f"{'end-to-end rec/s':>18}{'cpu ns/rec':>12}{'rec/s/core':>12}{'bytes/rec':>11}{'vs msgpack':>12}"
        )
        for c in cases:
            print(
                f"{c['name']:<34}{c['median']:>14.0f}{c['p99']:>9.0f}{c['p999']:>10.0f}{c['prod_rate']:>16,.0f}"
                f"{c['rate']:>18,.0f}{c['cpu_ns']:>12.0f}{1e9 / c['cpu_ns']:>12,.0f}{c['bytes'] / n_sus:>11.1f}"
                f"{base / c['bytes']:>11.2f}x"
            )
        for k in cases[:-2]:
            one = k["rate"] if args.pin else min(k["rate"], 1e9 / k["cpu_ns"])
            verdicts.append(
                f"[{rs}] {k['name']}: append p99 <= 1000 ns: {'PASS' if k['p99'] <= 1000 else 'FAIL'} "
                f"({k['p99']:.0f}); >= 1,000,000 rec/s end to end on one core: {'PASS' if one >= 1e6 else 'FAIL'} "
                f"({one:,.0f}{'' if args.pin else ' = min(wall, cpu-time) rate'}); compression >= 5x vs msgpack: "
                f"{'PASS' if base / k['bytes'] >= 5 else 'FAIL'} ({base / k['bytes']:.2f}x)"
            )
    print(f"\nframe overhead: {fmt.FRAME_HEADER_SIZE + fmt.FRAME_TRAILER_SIZE} B/frame")
    for v in verdicts:
        print(v)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
