"""Benchmark: Thompson draws and choices for 16 variants, against numpy.random.Generator.

Run: nice python bench/thompson.py   (from the repo root, after `python setup.py build_ext --inplace`)

Every row is timed in this run, in chunks: time.perf_counter_ns around each chunk (Python-level
rows) or clock_gettime around each chunk inside a C loop (kaizen.ext.thompson.bench_*). Throughput
rows: CHUNKS chunks of CHUNK_DRAWS variates (per-call rows: CHUNK_CALLS calls), statistic = the
median over chunks of the mean ns per variate (a median of short chunks is robust to the
preemptions of a shared machine). Latency rows: median and p99 of per-call latencies. Posteriors: 16 variants, each after 100 rewards (Normal–Gamma: alpha = 51;
Beta: alpha + beta = 102), discount 1 so the state does not drift while timing.

numpy rows do the same arithmetic: a Normal–Gamma draw is standard_gamma(alpha) then
standard_normal() then m + z * sqrt(b / (k G)); a Beta draw is Generator.beta.
  - "per call": one Python call per variate, as an online choice from Python would do;
  - "vectorised": one call for N x 16 variates, ns per variate (numpy's best case; not an online
    choice, which needs its 16 draws now);
  - choice per call: one 16-wide draw + argmax per decision;
  - choice batched: N decisions in one call (only possible offline; named for what it is).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kaizen.ext import thompson as T  # noqa: E402

K = 16
CHUNKS = 301
CHUNK_SWEEPS = 256  # one chunk = 256 x 16 = 4096 variates, in C and in numpy alike
CHUNK_DRAWS = CHUNK_SWEEPS * K
CHUNK_CALLS = 256  # per-call rows: Python calls per chunk
PY_CHUNKS = 61
CHOICES = 100_000
TARGET_DRAW_NS = 40.0
TARGET_CHOICE_NS = 700.0


def _portfolio(kind: str, discount: float = 1.0) -> T.ThompsonPortfolio:
    p = T.ThompsonPortfolio(K, discount, 12345, kind=kind)
    g = np.random.default_rng(1)
    for i in range(K):
        for _ in range(100):
            if kind == "normal_gamma":
                p.update(i, float(2.0 * i + 100.0 * g.standard_normal()))
            else:
                p.update(i, float(g.random() < 0.3 + 0.01 * i))
    return p


def _median(xs) -> float:
    return float(np.median(xs))


def _chunked(fn, units: int, chunks: int) -> float:
    """Median over chunks of ns per unit, fn() doing `units` units per call."""
    fn()  # warm
    out = np.empty(chunks)
    for c in range(chunks):
        t0 = time.perf_counter_ns()
        fn()
        out[c] = (time.perf_counter_ns() - t0) / units
    return _median(out)


def main() -> int:
    ng, bt = _portfolio("normal_gamma"), _portfolio("beta")
    post_ng = [ng.posterior(i) for i in range(K)]
    post_bt = [bt.posterior(i) for i in range(K)]
    m = np.array([q["mean"] for q in post_ng])
    kap = np.array([q["kappa"] for q in post_ng])
    alpha = np.array([q["alpha"] for q in post_ng])
    beta = np.array([q["beta"] for q in post_ng])
    bk = beta / kap
    ba = np.array([q["alpha"] for q in post_bt])
    bb = np.array([q["beta"] for q in post_bt])
    gen = np.random.default_rng(7)
    rows: list[tuple[str, str, float, float | None]] = []  # (group, name, median ns, p99 ns)

    # ---- per draw ------------------------------------------------------------------------------
    d_ng = _median(T.bench_draw_ns(ng, CHUNK_SWEEPS, CHUNKS))
    d_bt = _median(T.bench_draw_ns(bt, CHUNK_SWEEPS, CHUNKS))
    rows.append(("draw", "Kaizen Normal–Gamma draw, C loop (Cython)", d_ng, None))
    rows.append(("draw", "Kaizen Beta draw, C loop (Cython)", d_bt, None))
    for w, extra in (("u64", ""), ("uniform", ""), ("normal", ""), ("gamma", " (shape 51)")):
        rows.append(
            ("draw", f"Kaizen raw {w}{extra}", _median(T.bench_rng_ns(w, CHUNK_DRAWS, 51.0, CHUNKS)), None)
        )

    def np_ng_per_call():
        sg, sn, sq = gen.standard_gamma, gen.standard_normal, np.sqrt
        for j in range(CHUNK_CALLS):
            i = j & 15
            G = sg(alpha[i])
            _ = m[i] + sn() * sq(bk[i] / G)

    def np_bt_per_call():
        b = gen.beta
        for j in range(CHUNK_CALLS):
            i = j & 15
            b(ba[i], bb[i])

    def np_ng_vec():
        G = gen.standard_gamma(alpha, size=(CHUNK_SWEEPS, K))
        Z = gen.standard_normal((CHUNK_SWEEPS, K))
        return m + Z * np.sqrt(bk / G)

    def np_bt_vec():
        return gen.beta(ba, bb, size=(CHUNK_SWEEPS, K))

    def ky_ng_per_call():
        d = ng.draw
        for j in range(CHUNK_CALLS):
            d(j & 15)

    rows.append(
        (
            "draw",
            "Kaizen Normal–Gamma draw, per Python call",
            _chunked(ky_ng_per_call, CHUNK_CALLS, PY_CHUNKS),
            None,
        )
    )
    rows.append(
        (
            "draw",
            "numpy Normal–Gamma draw, per Python call",
            _chunked(np_ng_per_call, CHUNK_CALLS, PY_CHUNKS),
            None,
        )
    )
    rows.append(
        ("draw", "numpy Beta draw, per Python call", _chunked(np_bt_per_call, CHUNK_CALLS, PY_CHUNKS), None)
    )
    rows.append(
        (
            "draw",
            "numpy Normal–Gamma draw, vectorised 256 x 16",
            _chunked(np_ng_vec, CHUNK_DRAWS, CHUNKS),
            None,
        )
    )
    rows.append(
        ("draw", "numpy Beta draw, vectorised 256 x 16", _chunked(np_bt_vec, CHUNK_DRAWS, CHUNKS), None)
    )

    # ---- per choice (16 draws + argmax) -----------------------------------------------------------
    lat = np.concatenate([T.bench_choice_ns(ng, CHOICES) for _ in range(3)])
    c_ng = float(np.median(lat))
    rows.append(("choice", "Kaizen choose_c from Cython, Normal–Gamma", c_ng, float(np.percentile(lat, 99))))
    lat = np.concatenate([T.bench_choice_ns(bt, CHOICES) for _ in range(3)])
    c_bt = float(np.median(lat))
    rows.append(("choice", "Kaizen choose_c from Cython, Beta", c_bt, float(np.percentile(lat, 99))))
    full = _portfolio("normal_gamma", 0.99)
    lat = np.concatenate([T.bench_choice_ns(full, CHOICES, True, 3.0) for _ in range(3)])
    c_full = float(np.median(lat))
    rows.append(
        ("choice", "Kaizen full decision from Cython (discount 16 posteriors + choose + update)", c_full,
         float(np.percentile(lat, 99)))
    )  # fmt: skip

    def ky_choose_py():
        c = ng.choose
        for _ in range(CHUNK_CALLS):
            c()

    def np_choice_per_call():
        sg, sn, am = gen.standard_gamma, gen.standard_normal, np.argmax
        for _ in range(CHUNK_CALLS):
            G = sg(alpha)
            am(m + sn(K) * np.sqrt(bk / G))

    def np_choice_batched():
        return np.argmax(np_ng_vec(), axis=1)

    rows.append(
        ("choice", "Kaizen p.choose() from Python", _chunked(ky_choose_py, CHUNK_CALLS, PY_CHUNKS), None)
    )
    rows.append(
        ("choice", "numpy choice per call (16-wide draw + argmax)", _chunked(np_choice_per_call, CHUNK_CALLS, PY_CHUNKS),
         None)
    )  # fmt: skip
    rows.append(
        ("choice", "numpy choices batched 256 at once (offline only)", _chunked(np_choice_batched, CHUNK_SWEEPS, CHUNKS),
         None)
    )  # fmt: skip

    # ---- table ------------------------------------------------------------------------------------
    print(
        f"Thompson sampling, {K} variants; throughput: median over {CHUNKS} chunks of {CHUNK_DRAWS} variates "
        f"({PY_CHUNKS} x {CHUNK_CALLS} calls per-call); latency: per call (shared box: rerun before quoting)"
    )
    print(f"{'':<4}{'what':<78}{'ns':>10}{'p99 ns':>10}")
    for group, name, ns, p99 in rows:
        p = f"{p99:10.0f}" if p99 is not None else f"{'':>10}"
        print(f"{group:<8}{name:<74}{ns:10.1f}{p}")
    np_draw = next(ns for _, n, ns, _ in rows if n.startswith("numpy Normal–Gamma draw, per Python"))
    np_vec = next(ns for _, n, ns, _ in rows if n.startswith("numpy Normal–Gamma draw, vectorised"))
    np_choice = next(ns for _, n, ns, _ in rows if n.startswith("numpy choice per call"))
    print(
        f"\nNormal–Gamma draw: {d_ng:.1f} ns, {np_draw / d_ng:.0f}x numpy per call, {np_vec / d_ng:.1f}x numpy "
        f"vectorised; choice {c_ng:.0f} ns, {np_choice / c_ng:.0f}x numpy per call"
    )
    ok = (
        d_ng <= TARGET_DRAW_NS
        and d_bt <= TARGET_DRAW_NS
        and c_ng <= TARGET_CHOICE_NS
        and c_bt <= TARGET_CHOICE_NS
    )
    print(
        f"VERDICT: {'PASS' if ok else 'FAIL'} — draw {d_ng:.1f} ns Normal–Gamma / {d_bt:.1f} ns Beta "
        f"(target <= {TARGET_DRAW_NS:.0f}); 16-variant choice {c_ng:.0f} ns Normal–Gamma / {c_bt:.0f} ns Beta "
        f"median from Cython (target <= {TARGET_CHOICE_NS:.0f}); full decision {c_full:.0f} ns"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
