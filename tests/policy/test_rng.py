"""The generator: published test vectors, platform-independent log/exp, distributions, and the same
bits from the Cython module, the Python reference and a child process."""

from __future__ import annotations

import math
import struct
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from kaizen.ext import thompson as cy
from kaizen.policy import reference as ref
from tests.conftest import REPO
from tests.policy._repro import fingerprint

# sha256 of tests.policy._repro.fingerprint(seed=20250101): generator outputs, normals, gammas,
# betas and two portfolios' choices and draws. Only IEEE basic operations feed it (see
# ext/thompson.pyx), so it is the same on every IEEE-754 platform; if it fails elsewhere, that is a
# reproducibility bug, not a test to update.
GOLDEN_SEED = 20250101
GOLDEN = "0118b1eb6f66cde700897d4270b4f73fcb8ae6eeee2866a31788a8525ca7f015"


def _ulps(a: float, b: float) -> int:
    ia, ib = (struct.unpack("<q", struct.pack("<d", x))[0] for x in (a, b))
    return abs(ia - ib)


def test_splitmix64_reference_vector(impl):
    # splitmix64.c (Vigna) seeded with 1234567
    want = [6457827717110365317, 3203168211198807973, 9817491932198370423, 4593380528125082431,
            16408922859458223821]  # fmt: skip
    assert impl.splitmix64_stream(1234567, 5) == want


def test_xoshiro256pp_reference_vector():
    # xoshiro256plusplus.c from the state {1, 2, 3, 4}
    want = [41943041, 58720359, 3588806011781223, 3591011842654386, 9228616714210784205, 9973669472204895162,
            14011001112246962877, 12406186145184390807, 15849039046786891736, 10450023813501588000]  # fmt: skip
    assert cy.xoshiro_from_state(1, 2, 3, 4, 10) == want
    r = ref.Rng.from_state((1, 2, 3, 4))
    assert [r.next_u64() for _ in range(10)] == want


def test_det_log_exp_within_one_ulp_of_libm_and_identical_in_both():
    g = np.random.default_rng(9001)
    xs = np.concatenate([g.uniform(0, 1, 20_000), np.exp(g.uniform(-700, 700, 20_000)),
                         1 + g.uniform(-1e-6, 1e-6, 2000), [1.0, 2.0, 0.5, 1e-310, 5e-324, 1.7e308]])  # fmt: skip
    worst = 0
    for x in xs:
        a = cy.log_det(float(x))
        assert a == ref.det_log(float(x)) or (math.isnan(a) and math.isnan(ref.det_log(float(x))))
        worst = max(worst, _ulps(a, math.log(x)))
    assert worst <= 1
    ys = np.concatenate([g.uniform(-745, 709, 20_000), g.uniform(-1, 1, 20_000), g.uniform(-1e-9, 1e-9, 500)])
    worst = 0
    for y in ys:
        a, b = cy.exp_det(float(y)), math.exp(y)
        assert a == ref.det_exp(float(y))
        if b > 1e-300:  # below that libm returns subnormals whose ulp comparisons mean nothing
            worst = max(worst, _ulps(a, b))
    assert worst <= 1
    assert cy.log_det(0.0) == -math.inf and math.isnan(cy.log_det(-1.0))
    assert cy.exp_det(-800.0) == 0.0 and cy.exp_det(-math.inf) == 0.0 and cy.exp_det(0.0) == 1.0


def test_ziggurat_tables_identical():
    k, w, f = cy.ziggurat_tables()
    assert k.tolist() == ref.ZIG_K
    assert w.tobytes() == np.array(ref.ZIG_W).tobytes() and f.tobytes() == np.array(ref.ZIG_F).tobytes()
    assert np.all(np.isfinite(w)) and np.all(np.diff(f) < 0)  # layers narrow toward the peak


@pytest.mark.parametrize(
    "method, args",
    [
        ("random_raw", (400,)),
        ("uniform", (400,)),
        ("normal", (20_000,)),
        ("gamma", (0.3, 2000)),
        ("gamma", (1.0, 2000)),
        ("gamma", (9.5, 2000)),
        ("beta", (0.7, 4.0, 2000)),
    ],  # fmt: skip
)
def test_cython_and_reference_draw_the_same_bits(method, args):
    a = getattr(cy.Rng(9002), method)(*args)
    b = getattr(ref.Rng(9002), method)(*args)
    assert a.tobytes() == b.tobytes()


def test_distributions_match():
    """KS against scipy on 200 k draws each (p > 1e-3), plus the ziggurat's tail mass."""
    r = cy.Rng(9003)
    z = r.normal(400_000)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    tail = np.mean(np.abs(z) > cy.ziggurat_tables()[1][255] * 2**52)  # beyond the base layer's edge
    assert tail == pytest.approx(2 * stats.norm.sf(3.6541528853610088), rel=0.15)
    for shape in (0.2, 0.9, 1.0, 2.5, 40.0):
        assert stats.kstest(r.gamma(shape, 200_000), "gamma", args=(shape,)).pvalue > 1e-3, shape
    for a, b in ((0.5, 0.5), (1.0, 1.0), (2.0, 7.0), (30.0, 12.0)):
        assert stats.kstest(r.beta(a, b, 200_000), "beta", args=(a, b)).pvalue > 1e-3, (a, b)
    u = r.uniform(200_000)
    assert u.min() >= 0.0 and u.max() < 1.0 and stats.kstest(u, "uniform").pvalue > 1e-3


def test_seeds_are_checked(impl):
    with pytest.raises(ValueError):
        impl.Rng(-1)
    with pytest.raises(ValueError):
        impl.Rng(2**64)
    with pytest.raises(TypeError):
        impl.Rng(1.5)
    with pytest.raises(ValueError):
        impl.Rng(1).gamma(0.0, 3)


def test_same_seed_same_bytes_in_process_across_processes_and_implementations():
    here = fingerprint(cy, GOLDEN_SEED)
    child = subprocess.run(
        [sys.executable, "-m", "tests.policy._repro", str(GOLDEN_SEED)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert here == child == fingerprint(ref, GOLDEN_SEED) == GOLDEN
    assert fingerprint(cy, GOLDEN_SEED + 1) != here
