"""Benchmark: single-row latency and batch throughput of tree-ensemble predictors.

Model: XGBoost binary:logistic, 300 trees, depth 6, 64 features; test rows have ~10% NaN.
Run: nice python bench/forest.py   (from the repo root, after `python setup.py build_ext --inplace`)

Kaizen rows time `Forest.predict_ptr` (the nogil Cython call the hot path uses) per call with
clock_gettime; "predict_row" adds the Python call. The C-API row is XGBoostPredictFromDense
called from Cython the same way. tl2cgen (bench-only, optional) is timed twice: through its Python
Predictor, and its generated C `predict` (default and quantize=1) compiled with Kaizen's cc flags and called from Cython via
dlsym in the same timing loop as predict_ptr (kaizen.ext.forest.entry_latency_ns); skipped with a
note if tl2cgen is not installed.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import xgboost as xgb  # noqa: E402

from kaizen.models.compile import load_forest  # noqa: E402

N_TREES, DEPTH, N_FEAT = 300, 6, 64
SINGLE = 3000  # single-row calls per Python-level method
BATCH = 10_000


def _stats(ns: np.ndarray) -> tuple[float, float]:
    return float(np.median(ns)) / 1e3, float(np.percentile(ns, 99)) / 1e3


def _py_latency(fn, rows: np.ndarray, n: int) -> np.ndarray:
    out = np.empty(n, dtype=np.int64)
    for i in range(n):
        r = rows[i % len(rows)]
        t0 = time.perf_counter_ns()
        fn(r)
        out[i] = time.perf_counter_ns() - t0
    return out


def _throughput(fn, X: np.ndarray, reps: int = 3) -> float:
    fn(X)  # warm
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        fn(X)
        best = min(best, time.perf_counter() - t0)
    return len(X) / best


def _tl2cgen_rows(tl2cgen, treelite, booster, T, want, cache, row1, rows) -> list[str]:
    """tl2cgen through its Python Predictor, and its generated C `predict` called from C (Cython)."""
    from kaizen.ext.forest import entry_latency_ns, entry_predict
    from kaizen.models.compile import _cc, _cflags

    notes = []
    tl_model = treelite.frontend.from_xgboost(booster)
    libpath = str(Path(cache) / "tl2cgen_model.so")
    t0 = time.perf_counter()
    tl2cgen.export_lib(tl_model, toolchain="gcc", libpath=libpath, params={"parallel_comp": 8}, nthread=2)
    tl_compile_s = time.perf_counter() - t0
    pred = tl2cgen.Predictor(libpath, nthread=1)
    tl_out = np.asarray(pred.predict(tl2cgen.DMatrix(T))).reshape(-1)
    tl_err = float(np.max(np.abs(tl_out - want) / np.maximum(want, 1e-30)))
    lat = _py_latency(lambda r: pred.predict(tl2cgen.DMatrix(row1(r))), T, SINGLE)
    pred_mt = tl2cgen.Predictor(libpath)
    rows.append(
        (
            "tl2cgen Predictor (Python API)",
            *_stats(lat),
            _throughput(lambda A: pred_mt.predict(tl2cgen.DMatrix(A)), T),
        )
    )
    notes.append(
        f"tl2cgen {tl2cgen.__version__} Python Predictor: export_lib {tl_compile_s:.1f}s, "
        f"max rel err vs XGBoost {tl_err:.2g}"
    )

    # The same model's generated C (default, and quantize=1: tl2cgen's integer-threshold option),
    # compiled with Kaizen's own compiler and flags, called from C through dlsym.
    variants = [("default", {}), ("quantize=1", {"quantize": 1})]
    procs, t0 = [], time.perf_counter()
    for name, params in variants:
        src = Path(cache) / f"tl2cgen_src_{len(procs)}"
        tl2cgen.generate_c_code(tl_model, src, params=params)
        cpath = str(Path(cache) / f"tl2cgen_c_{len(procs)}.so")
        cmd = [_cc(), *_cflags(), "-o", cpath, *sorted(map(str, src.glob("*.c"))), "-lm"]
        procs.append((name, cpath, subprocess.Popen(cmd)))
    for _, _, p in procs:
        if p.wait() != 0:
            raise SystemExit("compiling tl2cgen's generated C failed")
    c_compile_s = time.perf_counter() - t0
    # Entry layout outside the timed region: the float's bits, or missing == -1 for NaN.
    entries = np.ascontiguousarray(T).view(np.int32).copy()
    entries[np.isnan(T)] = -1
    for name, cpath, _ in procs:
        c_out = entry_predict(cpath, entries).reshape(-1).astype(np.float64)
        c_err = float(np.max(np.abs(c_out - want)))
        if c_err > 1e-5:
            raise SystemExit(
                f"tl2cgen C predict ({name}) differs from Booster.predict by {c_err:.3g} (> 1e-5)"
            )
        lat = entry_latency_ns(cpath, entries, reps=2)
        rows.append(
            (
                f"tl2cgen C predict {name} (Cython)",
                *_stats(lat),
                _throughput(lambda A, c=cpath: entry_predict(c, A), entries),
            )
        )
        notes.append(f"tl2cgen C predict {name}: max abs err vs Booster.predict {c_err:.2g}")
    notes.append(
        f"tl2cgen C: generate_c_code + `{_cc()} {' '.join(_cflags())}` (both variants, 2 jobs) "
        f"{c_compile_s:.1f}s; batch is single-thread, one C call per row, like Kaizen's"
    )
    return notes


def main() -> int:
    rng = np.random.default_rng(42)
    X = rng.normal(size=(20_000, N_FEAT)).astype(np.float32)
    X[rng.random(X.shape) < 0.1] = np.nan
    w = rng.normal(size=N_FEAT)
    y = (np.nan_to_num(X) @ w + rng.normal(scale=2.0, size=len(X)) > 0).astype(np.float32)
    t0 = time.perf_counter()
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": DEPTH, "eta": 0.1, "nthread": 2},
        xgb.DMatrix(X, label=y),
        num_boost_round=N_TREES,
    )
    train_s = time.perf_counter() - t0
    T = rng.normal(size=(BATCH, N_FEAT)).astype(np.float32)
    T[rng.random(T.shape) < 0.1] = np.nan
    want = booster.predict(xgb.DMatrix(T))

    cache = tempfile.mkdtemp(prefix="kaizen-forest-bench-")
    t0 = time.perf_counter()
    comp = load_forest(booster, backend="compiled", cache_dir=cache)
    first_load_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    load_forest(booster, backend="compiled", cache_dir=cache)
    cached_load_s = time.perf_counter() - t0
    interp = load_forest(booster, backend="interp")
    capi = load_forest(booster, backend="capi")
    for f in (comp, interp, capi):
        err = float(np.max(np.abs(f.predict(T) - want) / np.maximum(want, 1e-30)))
        assert err <= 1e-6, (f.backend, err)

    rows: list[tuple[str, float, float, float]] = []  # name, median us, p99 us, rows/s
    row1 = lambda r: r.reshape(1, -1)  # noqa: E731
    lat = _py_latency(lambda r: booster.predict(xgb.DMatrix(row1(r))), T, SINGLE // 3)
    rows.append(
        ("Booster.predict(DMatrix)", *_stats(lat), _throughput(lambda A: booster.predict(xgb.DMatrix(A)), T))
    )
    lat = _py_latency(lambda r: booster.inplace_predict(row1(r)), T, SINGLE)
    rows.append(("Booster.inplace_predict", *_stats(lat), _throughput(booster.inplace_predict, T)))
    lat = capi.latency_ns(T[:SINGLE], reps=1)
    rows.append(("XGBoost C API (Cython, direct)", *_stats(lat), _throughput(capi.predict, T)))

    lat_c = comp.latency_ns(T, reps=2)
    tl_notes: list[str] = []
    tl_rows: list[tuple[str, float, float, float]] = []
    try:
        import tl2cgen
        import treelite
    except ImportError as e:  # bench-only dependency; never required
        tl_notes.append(f"tl2cgen skipped (not installed: {e})")
    else:
        tl_notes += _tl2cgen_rows(tl2cgen, treelite, booster, T, want, cache, row1, tl_rows)

    rows.append(("Kaizen compiled (predict_ptr)", *_stats(lat_c), _throughput(comp.predict, T)))
    kz_row = len(rows) - 1
    rows += tl_rows
    lat = _py_latency(comp.predict_row, T, SINGLE)
    rows.append(("Kaizen compiled (predict_row, Python)", *_stats(lat), float("nan")))
    lat = interp.latency_ns(T, reps=1)
    rows.append(("Kaizen interpreter (predict_ptr)", *_stats(lat), _throughput(interp.predict, T)))

    inplace_med = rows[1][1]
    print(
        f"model: binary:logistic, {N_TREES} trees, depth {DEPTH}, {N_FEAT} features, ~10% NaN inputs "
        f"(trained in {train_s:.1f}s)"
    )
    print(f"Kaizen compile: first load {first_load_s:.2f}s, cached load {cached_load_s * 1e3:.1f} ms")
    kz_med, kz_tput = rows[kz_row][1], rows[kz_row][3]
    print(
        f"{'predictor':40s} {'median us':>10s} {'p99 us':>10s} {'vs inplace':>11s} {'batch 10k rows/s':>17s}"
        f" {'Kaizen speedup (med, batch)':>28s}"
    )
    for name, med, p99, tput in rows:
        tp = "-" if np.isnan(tput) else f"{tput:,.0f}"
        ratio = f"{med / kz_med:.2f}x, " + ("-" if np.isnan(tput) else f"{kz_tput / tput:.2f}x")
        print(f"{name:40s} {med:10.2f} {p99:10.2f} {inplace_med / med:10.1f}x {tp:>17s} {ratio:>28s}")
    for note in tl_notes:
        print(note)
    print(
        "Kaizen speedup: this row's median / Kaizen compiled median, and Kaizen compiled rows/s / this row's "
        "(> 1 means Kaizen compiled is faster)"
    )
    med = _stats(lat_c)[0]
    ok = med <= 3.0 and inplace_med / med >= 50
    print(
        f"target: compiled median <= 3 us and >= 50x inplace_predict: {'MET' if ok else 'NOT MET'} "
        f"({med:.2f} us, {inplace_med / med:.0f}x)"
    )
    tl_c = [(n, m) for n, m, _, _ in rows if n.startswith("tl2cgen C predict")]
    if tl_c:
        best_name, best_med = min(tl_c, key=lambda r: r[1])
        verdict = "MET" if med <= best_med else "NOT MET"
        print(
            f"target: compiled median not slower than tl2cgen's C predict called from C: {verdict} "
            f"({med:.2f} us vs {best_med:.2f} us for {best_name!r})"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
