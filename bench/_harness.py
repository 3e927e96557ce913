"""The one timing harness of the bench/ scripts: Kaizen and its baselines go through the same
functions, on the same monotonic clock, with the same number of passes and the same statistics.

- Per-call latency: every call is timed in each of `passes` identical passes (C loops with
  clock_gettime(CLOCK_MONOTONIC), Python loops with time.perf_counter_ns, which reads the same
  clock); a call's figure is its minimum over the passes (scheduler noise only ever adds), net of
  its own timer's cost: the mean cost of a back-to-back read pair of that timer, measured in the
  same run and printed. The table reports the median and p99 of those per-call figures.
- Throughput: the best of `passes` whole runs (items / shortest wall time).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np

PASSES = 5


def py_timer_ns(n: int = 200_000) -> float:
    """Mean cost of one back-to-back perf_counter_ns pair, read from Python."""
    clock = time.perf_counter_ns
    acc = 0
    for _ in range(n):
        t0 = clock()
        acc += clock() - t0
    return acc / n


def c_timer_ns() -> float:
    """Mean cost of one back-to-back clock_gettime pair, read from C (the Cython timing loops)."""
    from kaizen.ext.depth import timer_overhead_ns

    return float(timer_overhead_ns())


def per_call_py(
    fn: Callable, args: Sequence[tuple], passes: int = PASSES, timer: float | None = None
) -> np.ndarray:
    """ns of `fn(*a)` for each `a` in `args`: the minimum over `passes` passes, net of the timer.
    For stateful callables use `per_call_passes` with a fresh object per pass."""
    return per_call_passes(lambda: fn, args, passes, timer)


def per_call_passes(
    make: Callable[[], Callable], args: Sequence[tuple], passes: int = PASSES, timer: float | None = None
) -> np.ndarray:
    clock = time.perf_counter_ns
    timer = py_timer_ns() if timer is None else timer
    runs = []
    for _ in range(passes):
        fn = make()
        out = np.empty(len(args), np.float64)
        for i, a in enumerate(args):
            t0 = clock()
            fn(*a)
            out[i] = clock() - t0
        runs.append(out)
    return np.maximum(np.min(np.stack(runs), axis=0) - timer, 0.0)


def per_call_c(
    run_pass: Callable[[], np.ndarray], passes: int = PASSES, timer: float | None = None
) -> np.ndarray:
    """The same for a C timing loop: `run_pass()` runs one pass and returns its ns per call."""
    timer = c_timer_ns() if timer is None else timer
    runs = [np.asarray(run_pass(), np.float64) for _ in range(passes)]
    return np.maximum(np.min(np.stack(runs), axis=0) - timer, 0.0)


def best_rate(run: Callable[[], int], passes: int = PASSES) -> float:
    """Items per second of the fastest of `passes` runs; `run()` does one run, returns its items."""
    best = float("inf")
    n = 0
    for _ in range(passes):
        t0 = time.perf_counter()
        n = run()
        best = min(best, time.perf_counter() - t0)
    return n / best


def median_p99(ns: np.ndarray) -> tuple[float, float]:
    return float(np.median(ns)), float(np.percentile(ns, 99))
