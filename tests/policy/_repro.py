"""A fingerprint of everything random the portfolio does for one seed, shared by the
reproducibility tests (in-process, in a child process, and for both implementations)."""

from __future__ import annotations

import hashlib
import sys

import numpy as np


def fingerprint(impl, seed: int) -> str:
    h = hashlib.sha256()
    r = impl.Rng(seed)
    for arr in (
        r.random_raw(500),
        r.uniform(500),
        r.normal(20_000),
        r.gamma(0.4, 3000),
        r.gamma(3.0, 3000),
        r.beta(2.0, 3.0, 3000),
    ):
        h.update(np.ascontiguousarray(arr).tobytes())
    for kind, rewards in (
        ("normal_gamma", (0.0, 20.0, -10.0, 35.0, 5.0)),
        ("beta", (0.4, 0.5, 0.45, 0.6, 0.3)),
    ):
        p = impl.ThompsonPortfolio(5, 0.98, seed, kind=kind, flat=True)
        noise = impl.Rng(seed ^ 1).normal(600)  # own generator: no dependence on numpy streams
        for t in range(600):
            i = p.choose()
            h.update(int(i).to_bytes(2, "little") + np.float64(p.last_draw).tobytes())
            x = (
                rewards[i] + 100.0 * noise[t]
                if kind == "normal_gamma"
                else float(noise[t] < rewards[i] - 0.5)
            )
            p.update(i, x)
        h.update(np.asarray(p.prob_best(200)).tobytes())
    return h.hexdigest()


if __name__ == "__main__":
    from kaizen.ext import thompson

    print(fingerprint(thompson, int(sys.argv[1])))
