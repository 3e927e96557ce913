"""Validation gate: level and power on realistic synthetic per-decision net returns
(run: `nice python bench/gate_power.py [--fast]`).

Returns (tests/loop/returns.py): Student-t(4) GARCH(1,1) bars, outcomes summed over 4 overlapping
bars, sticky positions, half the decisions flat (exact zeros), 0.1 bar-sd cost per unit turnover.

1. Level: false-rejection rate at alpha 0.05 on zero-edge candidates (E[candidate - champion] = 0
   exactly) for the iid t-test (no HAC: the baseline), DM-HLN (Newey-West, lags ceil(n^1/3)), the
   stationary block bootstrap, and both together (the gate's default test); and the default
   gate's false promotions (test + DSR over 10 trials).
2. Power: the default gate's promotion rate against a flat champion for planted edges (stated as
   the population per-decision Sharpe of the candidate's net returns) and shadow lengths
   (decisions; 96 decisions a day = 4 symbols x 24 hourly decisions).
Seeds 1-3 (exploration) are not used here; this script uses 11-13.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from scipy import stats as sps

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kaizen.loop.gate import PROMOTE, ValidationGate  # noqa: E402
from tests.loop.returns import population_sharpe, scenario  # noqa: E402

ALPHA = 0.05
NULLS = {
    "flat champion, h=4 overlap": dict(horizon=4),
    "AR(0.3) bars, sticky pos": dict(phi=0.3, stay=0.95),
    "equal models + costs, h=4": dict(edge=0.1, champion_edge=0.1, cost=0.1, horizon=4),
    "flat champion, h=1": dict(),
}


def level(trials: int, n: int) -> None:
    gate = ValidationGate()
    print(f"Level at alpha {ALPHA}: rejections of a true null over {trials} trials of {n} decisions")
    print(f"{'scenario':>28} {'iid t':>7} {'DM-HLN':>7} {'boot':>7} {'both':>7} {'gate':>7}")
    for i, (name, kw) in enumerate(NULLS.items()):
        champ, cand = scenario(np.random.default_rng(11 + i), n, trials, **kw)
        d = cand - champ
        naive = np.mean(
            [
                sps.t.sf(d[:, j].mean() / d[:, j].std(ddof=1) * np.sqrt(n), n - 1) < ALPHA
                for j in range(trials)
            ]
        )
        res = [gate.evaluate(champ[:, j], cand[:, j], n_trials=10, seed=j) for j in range(trials)]
        dm = np.mean([r.dm.p_value < ALPHA for r in res])
        bs = np.mean([r.bootstrap.p_value < ALPHA for r in res])
        both = np.mean([r.checks["p_value"] for r in res])
        prom = np.mean([r.decision == PROMOTE for r in res])
        print(f"{name:>28} {naive:>7.3f} {dm:>7.3f} {bs:>7.3f} {both:>7.3f} {prom:>7.3f}")
    se = np.sqrt(ALPHA * (1 - ALPHA) / trials)
    print(f"(sampling sd of a rate at the exact level: {se:.3f})")


def power(trials: int, lengths: list[int], edges: list[float]) -> None:
    gate = ValidationGate()
    print(
        f"\nPower: default gate vs a flat champion, promotion rate over {trials} trials (10 trials in the DSR)"
    )
    print(f"{'edge':>5} {'SR/decision':>11} " + " ".join(f"{n:>6}" for n in lengths) + "   (decisions)")
    for k, e in enumerate(edges):
        kw = dict(edge=e, cost=0.1, horizon=4)
        sr, _ = population_sharpe(np.random.default_rng(12), **kw)
        row = []
        for n in lengths:
            champ, cand = scenario(np.random.default_rng(13 + 100 * k + n), n, trials, **kw)
            row.append(
                np.mean(
                    [
                        gate.evaluate(champ[:, j], cand[:, j], n_trials=10, seed=j).decision == PROMOTE
                        for j in range(trials)
                    ]
                )
            )
        print(f"{e:>5.2f} {sr:>11.3f} " + " ".join(f"{r:>6.2f}" for r in row))
    print("(days at 96 decisions/day: " + ", ".join(f"{n} = {n / 96:.1f}" for n in lengths) + ")")


def main() -> None:
    fast = "--fast" in sys.argv
    t0 = time.perf_counter()
    level(200 if fast else 600, 1000)
    power(50 if fast else 100, [250, 500, 1000, 2000], [0.0, 0.1, 0.2, 0.3, 0.4])
    print(f"\nwall {time.perf_counter() - t0:.0f} s (shared 2-core box)")
    print("verdict: see the level table (<= alpha + 2 sd is within the level) and the power table")


if __name__ == "__main__":
    main()
