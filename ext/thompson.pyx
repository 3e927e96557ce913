"""Thompson sampling over a portfolio of variants, with its own reproducible RNG.

RNG
---
xoshiro256++ (Blackman and Vigna), seeded by four outputs of splitmix64 from a 64-bit seed.
Standard normals come from a 256-layer ziggurat (Marsaglia and Tsang 2000, in the form numpy uses:
8 bits pick the layer, 1 bit the sign, 52 bits the magnitude, so no bit is used twice), gamma
variates from Marsaglia–Tsang (2000) with the squeeze (shape < 1 boosted by U^(1/shape)), beta
variates as Ga / (Ga + Gb).

Reproducible across runs, processes and IEEE-754 platforms: every operation on a value is an IEEE
basic operation (+ - * / sqrt, exactly rounded) in a fixed order, the module is compiled with
`-ffp-contract=off` (no fused multiply-add), and the few transcendental calls (the ziggurat's tables,
wedges and tail, the gamma's slow acceptance test and the shape < 1 boost) go to `det_log` /
`det_exp`, ports of fdlibm's e_log.c / e_exp.c (< 1 ulp) that use only basic operations, instead
of the platform's libm, whose last bit differs between glibc, musl and macOS.
kaizen/policy/reference.py implements the same arithmetic in plain Python and the tests check that
both produce the same draws bit for bit.

Posterior per variant (reward = net return of one decision, in bps, after fees and funding)
-------------------------------------------------------------------------------------------
Normal–Gamma, unknown mean mu and precision tau (variance 1/tau):
    tau ~ Gamma(shape a0, rate b0),  mu | tau ~ N(m0, 1 / (k0 tau)).
Sufficient statistics per arm: a weighted count n, the weighted mean xbar and the weighted sum of
squared deviations M2 (West's weighted update, stable for rewards with mean near 0). The posterior:
    k = k0 + n,  m = (k0 m0 + n xbar) / k,  a = a0 + n/2,
    b = b0 + M2/2 + k0 n (xbar - m0)^2 / (2 k).
A draw: G ~ Gamma(a, 1), Z ~ N(0, 1), mu = m + Z sqrt(b / (k G))   (tau = G / b).

Beta–Bernoulli (kind="beta"), reward in [0, 1] (a win indicator, or a fraction):
    alpha = a0 + S,  beta = b0 + F,  with S += w r and F += w (1 - r) per update.

Discounting (discounted Thompson sampling, Raj and Kalyani 2017, arXiv 1707.09727): once per
decision every active arm's statistics are multiplied by gamma before new rewards are added,
    n <- gamma n, M2 <- gamma M2 (xbar unchanged);   S <- gamma S, F <- gamma F,
so every sufficient statistic of the data (weighted count, sum, sum of squares) shrinks by gamma
and each posterior moves toward its prior: k - k0 and a - a0 (the evidence) and M2 are multiplied
by gamma, xbar is kept, and m and b follow from those (b's cross term k0 n (xbar - m0)^2 / (2k) is
not linear in n); for Beta, alpha - a0 and beta - b0 are multiplied by gamma. An arm nobody plays
drifts back to its prior and gets explored again. The effective memory is 1 / (1 - gamma)
decisions (100 at gamma = 0.99). The decision clock advances in `choose`; the discount for the
decisions since the last one is applied lazily (gamma^k) before the next draw or update, so any
number of updates that belong to one decision (the traded variant and its shadows) are discounted
once. A weighted update adds w pseudo-observations (w = 1 for the traded variant, the configured
shadow weight for counterfactual rewards); gamma = 1 is the stationary algorithm.

Default prior (stated because, with mean and variance unknown, it matters: Honda and Takemura 2014;
Lee, Chiang and Sugiyama, arXiv 2302.14407)
-------------------------------------------------------------------------------------------
m0 = 0 bps: a priori a variant earns what `flat` earns, nothing, net of costs. It has to show an
edge to be preferred, and the shrinkage toward 0 (k0 pseudo-observations) is the skeptical direction
for money. k0 = 1: one pseudo-observation, so the data dominate after a handful of rewards.
a0 = 1, b0 = a0 * scale^2 with scale = 100 bps (the order of a 1-4 h crypto return): the prior
expects a precision of 1/scale^2 (E[tau] = a0/b0) but is heavy-tailed in the variance (the prior
mean of sigma^2 is infinite); a0 = 1 weighs as two observations of the variance.
Why heavy tails: for priors pi(mu, sigma^2) ~ (sigma^2)^(-1-alpha), Thompson sampling is
asymptotically optimal only for alpha < 0; the reference prior (alpha = 0) and Jeffreys' (1/2) are
not (Honda and Takemura; Lee et al. above): a posterior that believes in a small variance after a
few unlucky rewards stops visiting the arm. The marginal posterior of mu here is a Student-t with
2a = 2 a0 + n degrees of freedom, so a small a0 keeps it heavy-tailed while evidence is thin. An
improper prior of that family (b0 = 0, a0 <= 0) is not an option: discounting returns an unplayed
arm to its prior, so the prior must be proper to be sampled, and it matters for good, not just at
the start (evidence saturates at w / (1 - gamma) rewards). In shape, a proper prior sits on the
light side of the optimal family (a0 + n/2 against (n - 1)/2 + alpha, alpha < 0); b0 > 0
compensates where it counts, with thin evidence, where it dominates b. The cost of heavy tails under
discounting is steady exploration: with K arms each arm must be re-sampled often enough to keep its
posterior below the leader's (measured in tests/policy/test_behaviour.py and the README).
Beta–Bernoulli: Beta(1, 1), uniform over the win rate (one-parameter model, where Thompson sampling
with the uniform prior is asymptotically optimal: Agrawal and Goyal 2012, Kaufmann et al. 2012);
`flat` is a fixed win rate of 0.5 there (a variant must win more often than it loses).
Every prior parameter is configurable ([policy.prior]); a new candidate enters with its own
([policy.candidate_prior]).

`flat` (flat=True) is arm 0: a point mass at `flat_value` (0 bps for Normal–Gamma), never updated.
It wins a decision when every other arm's draw is below it, so it wins most decisions once every
other variant's posterior sits below 0.
"""

from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from libc.math cimport INFINITY, NAN, isfinite, sqrt
from libc.stdint cimport int64_t, uint32_t, uint64_t
from libc.string cimport memcpy, memset

import numpy as np

DEF_SCALE = 100.0  # bps; default prior scale of the reward (b0 = a0 * scale^2)
KINDS = {"normal_gamma": KIND_NORMAL_GAMMA, "beta": KIND_BETA}
_KIND_NAMES = {KIND_NORMAL_GAMMA: "normal_gamma", KIND_BETA: "beta", ARM_FIXED: "flat"}

cdef double TWO_M53 = 1.0 / 9007199254740992.0   # 2^-53
cdef double TINY = 2.2250738585072014e-308        # DBL_MIN: floor of a gamma draw before dividing
cdef double STAT_FLOOR = 1e-12                    # discounted statistics below this are zero


# ---- bits -----------------------------------------------------------------------------------------
cdef inline uint64_t _bits(double x) noexcept nogil:
    cdef uint64_t u
    memcpy(&u, &x, 8)
    return u


cdef inline double _from_bits(uint64_t u) noexcept nogil:
    cdef double x
    memcpy(&x, &u, 8)
    return x


cdef inline int _hi(double x) noexcept nogil:
    return <int>(<int64_t>_bits(x) >> 32)


cdef inline double _with_hi(double x, int hi) noexcept nogil:
    return _from_bits((_bits(x) & <uint64_t>0xffffffff) | (<uint64_t><uint32_t>hi << 32))


# ---- deterministic log / exp ---------------------------------------------------------------------
# Ports of fdlibm 5.3 e_log.c and e_exp.c: "Copyright (C) 1993 by Sun Microsystems, Inc. All rights
# reserved. Developed at SunSoft, a Sun Microsystems, Inc. business. Permission to use, copy,
# modify, and distribute this software is freely granted, provided that this notice is preserved."
# Only IEEE basic operations, so the result is the same on every IEEE-754 platform (error < 1 ulp).
cdef double LN2_HI = 6.93147180369123816490e-01   # 0x3fe62e42 fee00000
cdef double LN2_LO = 1.90821492927058770002e-10   # 0x3dea39ef 35793c76
cdef double TWO54 = 1.80143985094819840000e+16
cdef double LG1 = 6.666666666666735130e-01
cdef double LG2 = 3.999999999940941908e-01
cdef double LG3 = 2.857142874366239149e-01
cdef double LG4 = 2.222219843214978396e-01
cdef double LG5 = 1.818357216161805012e-01
cdef double LG6 = 1.531383769920937332e-01
cdef double LG7 = 1.479819860511658591e-01
cdef double INVLN2 = 1.44269504088896338700e+00
cdef double P1 = 1.66666666666666019037e-01
cdef double P2 = -2.77777777770155933842e-03
cdef double P3 = 6.61375632143793436117e-05
cdef double P4 = -1.65339022054652515390e-06
cdef double P5 = 4.13813679705723846039e-08
cdef double O_THRESHOLD = 7.09782712893383973096e+02
cdef double U_THRESHOLD = -7.45133219101941108420e+02
cdef double TWOM1000 = 9.33263618503218878990e-302


cdef double det_log(double x) noexcept nogil:
    cdef int hx = _hi(x), k = 0, i, j
    cdef uint32_t lx = <uint32_t>(_bits(x) & <uint64_t>0xffffffff)
    cdef double f, s, z, w, r, t1, t2, hfsq, dk
    if hx < 0x00100000:
        if ((hx & 0x7fffffff) | lx) == 0:
            return -INFINITY
        if hx < 0:
            return NAN
        k -= 54
        x *= TWO54
        hx = _hi(x)
    if hx >= 0x7ff00000:
        return x + x
    k += (hx >> 20) - 1023
    hx &= 0x000fffff
    i = (hx + 0x95f64) & 0x100000
    x = _with_hi(x, hx | (i ^ 0x3ff00000))
    k += i >> 20
    f = x - 1.0
    if (0x000fffff & (2 + hx)) < 3:
        if f == 0.0:
            if k == 0:
                return 0.0
            dk = k
            return dk * LN2_HI + dk * LN2_LO
        r = f * f * (0.5 - 0.33333333333333333 * f)
        if k == 0:
            return f - r
        dk = k
        return dk * LN2_HI - ((r - dk * LN2_LO) - f)
    s = f / (2.0 + f)
    dk = k
    z = s * s
    i = hx - 0x6147a
    w = z * z
    j = 0x6b851 - hx
    t1 = w * (LG2 + w * (LG4 + w * LG6))
    t2 = z * (LG1 + w * (LG3 + w * (LG5 + w * LG7)))
    i |= j
    r = t2 + t1
    if i > 0:
        hfsq = 0.5 * f * f
        if k == 0:
            return f - (hfsq - s * (hfsq + r))
        return dk * LN2_HI - ((hfsq - (s * (hfsq + r) + dk * LN2_LO)) - f)
    if k == 0:
        return f - s * (f - r)
    return dk * LN2_HI - ((s * (f - r) - dk * LN2_LO) - f)


cdef double det_exp(double x) noexcept nogil:
    cdef int hx = _hi(x), xsb, k = 0
    cdef double hi = 0.0, lo = 0.0, c, t, y
    xsb = (hx >> 31) & 1
    hx &= 0x7fffffff
    if hx >= 0x40862E42:
        if hx >= 0x7ff00000:
            if ((hx & 0xfffff) | <int>(_bits(x) & <uint64_t>0xffffffff)) != 0:
                return x + x
            return 0.0 if xsb else x
        if x > O_THRESHOLD:
            return INFINITY
        if x < U_THRESHOLD:
            return 0.0
    if hx > 0x3fd62e42:
        if hx < 0x3FF0A2B2:
            if xsb:
                hi = x + LN2_HI
                lo = -LN2_LO
                k = -1
            else:
                hi = x - LN2_HI
                lo = LN2_LO
                k = 1
        else:
            k = <int>(INVLN2 * x + (-0.5 if xsb else 0.5))
            t = k
            hi = x - t * LN2_HI
            lo = t * LN2_LO
        x = hi - lo
    elif hx < 0x3e300000:
        return 1.0 + x
    t = x * x
    c = x - t * (P1 + t * (P2 + t * (P3 + t * (P4 + t * P5))))
    if k == 0:
        return 1.0 - ((x * c) / (c - 2.0) - x)
    y = 1.0 - ((lo - (x * c) / (2.0 - c)) - hi)
    if k >= -1021:
        return _from_bits(_bits(y) + (<uint64_t><int64_t>k << 52))
    return _from_bits(_bits(y) + (<uint64_t><int64_t>(k + 1000) << 52)) * TWOM1000


# ---- xoshiro256++ ---------------------------------------------------------------------------------
cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline uint64_t _splitmix64(uint64_t* x) noexcept nogil:
    x[0] += <uint64_t>0x9E3779B97F4A7C15
    cdef uint64_t z = x[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef void rng_seed(Xoshiro* r, uint64_t seed) noexcept nogil:
    cdef uint64_t x = seed
    cdef int i
    for i in range(4):
        r.s[i] = _splitmix64(&x)


cdef inline uint64_t _next(Xoshiro* r) noexcept nogil:
    cdef uint64_t* s = r.s
    cdef uint64_t result = _rotl(s[0] + s[3], 23) + s[0]
    cdef uint64_t t = s[1] << 17
    s[2] ^= s[0]
    s[3] ^= s[1]
    s[1] ^= s[2]
    s[0] ^= s[3]
    s[2] ^= t
    s[3] = _rotl(s[3], 45)
    return result


cdef uint64_t rng_next(Xoshiro* r) noexcept nogil:
    return _next(r)


cdef inline double _uniform(Xoshiro* r) noexcept nogil:
    return <double>(<int64_t>(_next(r) >> 11)) * TWO_M53


cdef inline double _uniform_open(Xoshiro* r) noexcept nogil:
    # (0, 1]: for logarithms
    return <double>(<int64_t>(_next(r) >> 11) + 1) * TWO_M53


cdef double rng_uniform(Xoshiro* r) noexcept nogil:
    return _uniform(r)


# ---- ziggurat normal ------------------------------------------------------------------------------
cdef double ZIG_R = 3.6541528853610088     # right edge of the base layer (256 layers)
cdef double ZIG_V = 0.00492867323399       # area of each layer
cdef uint64_t zig_k[256]
cdef double zig_w[256]
cdef double zig_f[256]


cdef void _zig_init() noexcept nogil:
    cdef double m1 = 4503599627370496.0   # 2^52
    cdef double dn = ZIG_R, tn = ZIG_R, q
    cdef int i
    q = ZIG_V / det_exp(-0.5 * dn * dn)
    zig_k[0] = <uint64_t>((dn / q) * m1)
    zig_k[1] = 0
    zig_w[0] = q / m1
    zig_w[255] = dn / m1
    zig_f[0] = 1.0
    zig_f[255] = det_exp(-0.5 * dn * dn)
    for i in range(254, 0, -1):
        dn = sqrt(-2.0 * det_log(ZIG_V / dn + det_exp(-0.5 * dn * dn)))
        zig_k[i + 1] = <uint64_t>((dn / tn) * m1)
        tn = dn
        zig_f[i] = det_exp(-0.5 * dn * dn)
        zig_w[i] = dn / m1


_zig_init()


cdef inline double _normal(Xoshiro* r) noexcept nogil:
    cdef uint64_t u, rabs
    cdef int idx, neg
    cdef double x, xx, yy
    while True:
        u = _next(r)
        idx = <int>(u & 0xff)
        u >>= 8
        neg = <int>(u & 1)
        rabs = (u >> 1) & <uint64_t>0x000fffffffffffff
        # sign by flipping the sign bit: the same value as -x, without an unpredictable branch
        x = _from_bits(_bits(<double>(<int64_t>rabs) * zig_w[idx]) ^ (<uint64_t>neg << 63))
        if rabs < zig_k[idx]:
            return x                                # ~99.3 % of draws
        if idx == 0:
            while True:                             # the tail beyond ZIG_R (Marsaglia 1964)
                xx = -det_log(_uniform_open(r)) / ZIG_R
                yy = -det_log(_uniform_open(r))
                if yy + yy > xx * xx:
                    return -(ZIG_R + xx) if neg else ZIG_R + xx
        elif (zig_f[idx - 1] - zig_f[idx]) * _uniform(r) + zig_f[idx] < det_exp(-0.5 * x * x):
            return x


cdef double rng_normal(Xoshiro* r) noexcept nogil:
    return _normal(r)


# ---- gamma and beta -------------------------------------------------------------------------------
cdef inline void _gamma_setup(GammaC* g, double shape) noexcept nogil:
    cdef double a = shape
    if shape < 1.0:
        g.inv_shape = 1.0 / shape
        a = shape + 1.0
    else:
        g.inv_shape = 0.0
    g.d = a - 1.0 / 3.0
    g.c = 1.0 / sqrt(9.0 * g.d)


cdef inline double _gamma(Xoshiro* r, const GammaC* g) noexcept nogil:
    cdef double x, v, u, xx, out
    while True:
        x = _normal(r)
        v = 1.0 + g.c * x
        if v <= 0.0:
            continue
        v = v * v * v
        u = _uniform(r)
        xx = x * x
        if u < 1.0 - 0.0331 * (xx * xx):
            break                                    # squeeze: no logarithm (~98 % at shape 1)
        if det_log(u) < 0.5 * xx + g.d * (1.0 - v + det_log(v)):
            break
    out = g.d * v
    if g.inv_shape != 0.0:
        out = out * det_exp(det_log(_uniform_open(r)) * g.inv_shape)
    return out


cdef double rng_gamma(Xoshiro* r, double shape) noexcept nogil:
    cdef GammaC g
    _gamma_setup(&g, shape)
    return _gamma(r, &g)


cdef inline double _beta2(Xoshiro* r, const GammaC* ga, const GammaC* gb) noexcept nogil:
    cdef double x = _gamma(r, ga)
    cdef double y = _gamma(r, gb)
    cdef double s = x + y
    if s > 0.0:
        return x / s
    return 0.5


cdef double rng_beta(Xoshiro* r, double a, double b) noexcept nogil:
    cdef GammaC ga, gb
    _gamma_setup(&ga, a)
    _gamma_setup(&gb, b)
    return _beta2(r, &ga, &gb)


# ---- arms -----------------------------------------------------------------------------------------
cdef inline void _refresh(Arm* a) noexcept nogil:
    cdef double dx
    if a.kind == KIND_NORMAL_GAMMA:
        a.pk = a.k0 + a.n
        a.pm = (a.k0 * a.m0 + a.n * a.xbar) / a.pk
        a.pa = a.a0 + 0.5 * a.n
        dx = a.xbar - a.m0
        a.pb = a.b0 + 0.5 * a.m2 + 0.5 * (a.k0 * a.n / a.pk) * (dx * dx)
        a.bk = a.pb / a.pk
        _gamma_setup(&a.ga, a.pa)
    elif a.kind == KIND_BETA:
        a.pa = a.a0 + a.s
        a.pb = a.b0 + a.f
        _gamma_setup(&a.ga, a.pa)
        _gamma_setup(&a.gb, a.pb)


cdef inline double _draw(Xoshiro* r, const Arm* a) noexcept nogil:
    cdef double g
    if a.kind == KIND_NORMAL_GAMMA:
        g = _gamma(r, &a.ga)
        if g < TINY:
            g = TINY
        return a.pm + _normal(r) * sqrt(a.bk / g)
    if a.kind == KIND_BETA:
        return _beta2(r, &a.ga, &a.gb)
    return a.value


cdef inline double _powi(double x, int64_t k) noexcept nogil:
    cdef double out = 1.0
    while k > 0:
        if k & 1:
            out = out * x
        x = x * x
        k >>= 1
    return out


cdef inline uint64_t _prob_seed(uint64_t seed, int64_t t) noexcept nogil:
    # prob_best draws from its own stream, a function of (seed, decision clock): it never moves
    # the choice stream, and two calls at the same clock agree.
    return seed ^ <uint64_t>0xD1B54A32D192ED03 ^ (<uint64_t>(t + 1) * <uint64_t>0x9E3779B97F4A7C15)


cdef uint64_t _seed_u64(object seed) except? 0:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    return <uint64_t>seed


cdef class Rng:
    """The portfolio's generator on its own, for tests and benchmarks (numpy arrays out)."""

    def __init__(self, seed=0):
        rng_seed(&self.state, _seed_u64(seed))

    def next_u64(self):
        return _next(&self.state)

    def random_raw(self, Py_ssize_t n):
        out = np.empty(n, dtype=np.uint64)
        cdef uint64_t[::1] v = out
        cdef Py_ssize_t i
        for i in range(n):
            v[i] = _next(&self.state)
        return out

    def uniform(self, Py_ssize_t n):
        out = np.empty(n, dtype=np.float64)
        cdef double[::1] v = out
        cdef Py_ssize_t i
        for i in range(n):
            v[i] = _uniform(&self.state)
        return out

    def normal(self, Py_ssize_t n):
        out = np.empty(n, dtype=np.float64)
        cdef double[::1] v = out
        cdef Py_ssize_t i
        with nogil:
            for i in range(n):
                v[i] = _normal(&self.state)
        return out

    def gamma(self, double shape, Py_ssize_t n):
        if not shape > 0.0 or not isfinite(shape):
            raise ValueError(f"gamma shape must be > 0, got {shape}")
        out = np.empty(n, dtype=np.float64)
        cdef double[::1] v = out
        cdef Py_ssize_t i
        cdef GammaC g
        _gamma_setup(&g, shape)
        with nogil:
            for i in range(n):
                v[i] = _gamma(&self.state, &g)
        return out

    def beta(self, double a, double b, Py_ssize_t n):
        if not (a > 0.0 and b > 0.0 and isfinite(a) and isfinite(b)):
            raise ValueError(f"beta parameters must be > 0, got {a}, {b}")
        out = np.empty(n, dtype=np.float64)
        cdef double[::1] v = out
        cdef Py_ssize_t i
        cdef GammaC ga, gb
        _gamma_setup(&ga, a)
        _gamma_setup(&gb, b)
        with nogil:
            for i in range(n):
                v[i] = _beta2(&self.state, &ga, &gb)
        return out

    @property
    def state(self):
        return tuple(self.state.s[i] for i in range(4))


cdef class ThompsonPortfolio:
    """Thompson sampling over variants: `choose()` draws once from every active variant's posterior
    and returns the index of the largest draw; `update(i, reward, weight)` adds a reward.

    kind="normal_gamma" (rewards in bps, any sign) or "beta" (rewards in [0, 1]). Prior keywords:
    mean, kappa, alpha, and beta (Normal–Gamma: beta defaults to alpha * scale**2; Beta: alpha and
    beta are the Beta prior, default 1, 1). flat=True makes arm 0 the `flat` variant, a point mass
    at flat_value (default 0.0 for Normal–Gamma, 0.5 for Beta) that updates never move.
    See the module docstring for the exact posterior, discounting and prior.
    """

    def __cinit__(self):
        self.arms = NULL
        self.n = 0
        self.cap = 0

    def __init__(self, int n_variants, double discount=0.99, seed=0, *, str kind="normal_gamma",
                 double mean=0.0, double kappa=1.0, alpha=None, beta=None, double scale=DEF_SCALE,
                 bint flat=False, flat_value=None):
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {sorted(KINDS)}, got {kind!r}")
        if n_variants < 1:
            raise ValueError(f"n_variants must be >= 1, got {n_variants}")
        if not (0.0 < discount <= 1.0):
            raise ValueError(f"discount must be in (0, 1], got {discount}")
        self.kind_ = KINDS[kind]
        self.discount = discount
        self.seed = seed
        self.seed_u = _seed_u64(seed)
        rng_seed(&self.rng, self.seed_u)
        self.t = 0
        self.t_disc = 0
        self.last_draw = NAN
        if self.kind_ == KIND_NORMAL_GAMMA:
            a0 = 1.0 if alpha is None else float(alpha)
            if not (scale > 0.0 and isfinite(scale)):
                raise ValueError(f"scale must be > 0, got {scale}")
            b0 = a0 * scale * scale if beta is None else float(beta)
            self.flat_value_ = 0.0 if flat_value is None else float(flat_value)
        else:
            a0 = 1.0 if alpha is None else float(alpha)
            b0 = 1.0 if beta is None else float(beta)
            self.flat_value_ = 0.5 if flat_value is None else float(flat_value)
        _check_prior(self.kind_, mean, kappa, a0, b0)
        if not isfinite(self.flat_value_):
            raise ValueError(f"flat_value must be finite, got {self.flat_value_}")
        self.pm0, self.pk0, self.pa0, self.pb0 = mean, kappa, a0, b0
        self.has_flat = flat
        cdef int i
        for i in range(n_variants):
            if i == 0 and flat:
                self._append(ARM_FIXED, 0.0, 0.0, 0.0, 0.0, self.flat_value_)
            else:
                self._append(self.kind_, mean, kappa, a0, b0, 0.0)

    def __dealloc__(self):
        PyMem_Free(self.arms)

    cdef int _append(self, int kind, double m0, double k0, double a0, double b0, double value) except -1:
        cdef int cap
        cdef Arm* grown
        if self.n == self.cap:
            cap = 8 if self.cap == 0 else 2 * self.cap
            grown = <Arm*>PyMem_Realloc(self.arms, cap * sizeof(Arm))
            if grown == NULL:
                raise MemoryError()
            self.arms = grown
            self.cap = cap
        cdef Arm* a = &self.arms[self.n]
        memset(a, 0, sizeof(Arm))
        a.kind = kind
        a.active = 1
        a.m0, a.k0, a.a0, a.b0 = m0, k0, a0, b0
        a.value = value
        _refresh(a)
        self.n += 1
        self.n_active_ += 1
        return self.n - 1

    # ---- hot path (no Python objects, no GIL) ---------------------------------------------------
    cdef void sync_c(self) noexcept nogil:
        cdef int64_t k = self.t - self.t_disc
        cdef double g
        cdef int i
        cdef Arm* a
        if k <= 0:
            return
        self.t_disc = self.t
        if self.discount == 1.0:
            return
        g = _powi(self.discount, k)
        for i in range(self.n):
            a = &self.arms[i]
            if not a.active or a.kind == ARM_FIXED:
                continue
            if a.kind == KIND_NORMAL_GAMMA:
                a.n = a.n * g
                a.m2 = a.m2 * g
                if a.n < STAT_FLOOR:
                    a.n = 0.0
                    a.m2 = 0.0
            else:
                a.s = a.s * g
                a.f = a.f * g
                if a.s < STAT_FLOOR:
                    a.s = 0.0
                if a.f < STAT_FLOOR:
                    a.f = 0.0
            _refresh(a)

    cdef double draw_c(self, int i) noexcept nogil:
        return _draw(&self.rng, &self.arms[i])

    cdef int choose_c(self) noexcept nogil:
        """One Thompson draw per active arm, the index of the largest (-1 if none is active)."""
        cdef int i, best = -1
        cdef double v, bv = 0.0
        if self.n_active_ == 0:
            return -1
        self.sync_c()
        for i in range(self.n):
            if self.arms[i].active:
                v = _draw(&self.rng, &self.arms[i])
                if best < 0 or v > bv:
                    best = i
                    bv = v
        self.t += 1
        self.last_draw = bv
        return best

    cdef int update_c(self, int i, double reward, double weight) noexcept nogil:
        """Add `reward` at `weight` to arm i: 1 applied, 0 ignored (retired, flat, zero weight),
        -1 bad input (index, non-finite value, negative weight, Beta reward outside [0, 1])."""
        cdef Arm* a
        cdef double n_new, d
        if i < 0 or i >= self.n or not isfinite(reward) or not isfinite(weight) or weight < 0.0:
            return -1
        a = &self.arms[i]
        if a.kind == KIND_BETA and not (0.0 <= reward <= 1.0):
            return -1
        if not a.active or a.kind == ARM_FIXED or weight == 0.0:
            return 0
        self.sync_c()
        if a.kind == KIND_NORMAL_GAMMA:
            n_new = a.n + weight
            d = reward - a.xbar
            a.xbar = a.xbar + (weight / n_new) * d
            a.m2 = a.m2 + weight * d * (reward - a.xbar)
            a.n = n_new
        else:
            a.s = a.s + weight * reward
            a.f = a.f + weight * (1.0 - reward)
        a.w_total = a.w_total + weight
        a.n_updates += 1
        _refresh(a)
        return 1

    cdef void prob_best_c(self, Xoshiro* r, long n_samples, double* out) noexcept nogil:
        cdef long s
        cdef int i, best
        cdef double v, bv
        for i in range(self.n):
            out[i] = 0.0
        if self.n_active_ == 0 or n_samples <= 0:
            return
        self.sync_c()
        for s in range(n_samples):
            best = -1
            bv = 0.0
            for i in range(self.n):
                if self.arms[i].active:
                    v = _draw(r, &self.arms[i])
                    if best < 0 or v > bv:
                        best = i
                        bv = v
            out[best] += 1.0
        for i in range(self.n):
            out[i] = out[i] / n_samples

    # ---- Python API ----------------------------------------------------------------------------
    def choose(self):
        """Index of the variant that gets the next decision (one Thompson draw per active variant)."""
        if self.n_active_ == 0:
            raise ValueError("no active variants to choose from")
        return self.choose_c()

    def update(self, int i, double reward, double weight=1.0):
        """Add a reward (bps net of costs for Normal–Gamma, [0, 1] for Beta) at `weight`
        (1 for the traded variant, the shadow weight for counterfactual rewards). Returns True if
        the posterior changed (False for `flat`, a retired variant, or weight 0)."""
        cdef int rc = self.update_c(i, reward, weight)
        if rc < 0:
            if i < 0 or i >= self.n:
                raise IndexError(f"variant {i} out of range (0..{self.n - 1})")
            if not isfinite(reward):
                raise ValueError(f"reward must be finite, got {reward}")
            if not isfinite(weight) or weight < 0.0:
                raise ValueError(f"weight must be finite and >= 0, got {weight}")
            raise ValueError(f"a Beta variant's reward must be in [0, 1], got {reward}")
        return rc == 1

    def prob_best(self, long n_samples=1000):
        """Each variant's probability of being best (Monte Carlo over n_samples joint draws from
        a stream of its own, so it does not move the choices); 0 for retired variants, sums to 1
        over the active ones."""
        if n_samples < 1:
            raise ValueError(f"n_samples must be >= 1, got {n_samples}")
        out = np.zeros(self.n, dtype=np.float64)
        cdef double[::1] v = out
        cdef Xoshiro r
        rng_seed(&r, _prob_seed(self.seed_u, self.t))
        if self.n > 0:
            self.prob_best_c(&r, n_samples, &v[0])
        return out

    def draw(self, int i):
        """One draw from variant i's posterior (moves the choice stream; for tests and inspection)."""
        _check_index(self, i)
        self.sync_c()
        return self.draw_c(i)

    def retire(self, int i):
        """Remove variant i from the choices (indices stay stable). `flat` cannot be retired.
        Returns False if it was already retired."""
        _check_index(self, i)
        if self.arms[i].kind == ARM_FIXED:
            raise ValueError("the flat variant cannot be retired")
        if not self.arms[i].active:
            return False
        self.arms[i].active = 0
        self.n_active_ -= 1
        return True

    def add(self, *, mean=None, kappa=None, alpha=None, beta=None):
        """Add a variant with a prior (default: the portfolio's) and return its index."""
        m0 = self.pm0 if mean is None else float(mean)
        k0 = self.pk0 if kappa is None else float(kappa)
        a0 = self.pa0 if alpha is None else float(alpha)
        b0 = self.pb0 if beta is None else float(beta)
        _check_prior(self.kind_, m0, k0, a0, b0)
        return self._append(self.kind_, m0, k0, a0, b0, 0.0)

    def posterior(self, int i):
        """Posterior parameters of variant i at the current decision clock.

        normal_gamma: mean, kappa, alpha (Gamma shape of the precision), beta (its rate), n_eff
        (discounted weight of the evidence), and the posterior mean of mu (`mean`).
        beta: alpha, beta of the Beta posterior. flat: its fixed value."""
        _check_index(self, i)
        self.sync_c()
        cdef Arm* a = &self.arms[i]
        out = {"kind": _KIND_NAMES[a.kind], "active": bool(a.active), "n_updates": a.n_updates,
               "w_total": a.w_total}
        if a.kind == KIND_NORMAL_GAMMA:
            out.update(mean=a.pm, kappa=a.pk, alpha=a.pa, beta=a.pb, n_eff=a.n)
        elif a.kind == KIND_BETA:
            out.update(mean=a.pa / (a.pa + a.pb), alpha=a.pa, beta=a.pb, n_eff=a.s + a.f)
        else:
            out.update(mean=a.value, alpha=0.0, beta=0.0, n_eff=0.0)
        return out

    def is_active(self, int i):
        _check_index(self, i)
        return bool(self.arms[i].active)

    def is_flat(self, int i):
        _check_index(self, i)
        return self.arms[i].kind == ARM_FIXED

    @property
    def n_variants(self):
        """Variants ever added (retired ones keep their index)."""
        return self.n

    @property
    def n_active(self):
        return self.n_active_

    @property
    def kind(self):
        return _KIND_NAMES[self.kind_]

    @property
    def rng_state(self):
        return tuple(self.rng.s[i] for i in range(4))

    def __len__(self):
        return self.n

    def __repr__(self):
        return (f"<ThompsonPortfolio {self.kind} variants={self.n} active={self.n_active_} "
                f"discount={self.discount} t={self.t}>")



cdef int _check_index(ThompsonPortfolio p, int i) except -1:
    if i < 0 or i >= p.n:
        raise IndexError(f"variant {i} out of range (0..{p.n - 1})")
    return 0


def _check_prior(int kind, double m0, double k0, double a0, double b0):
    if kind == KIND_NORMAL_GAMMA:
        if not isfinite(m0):
            raise ValueError(f"prior mean must be finite, got {m0}")
        if not (k0 > 0.0 and isfinite(k0)):
            raise ValueError(f"prior kappa must be > 0, got {k0}")
    if not (a0 > 0.0 and isfinite(a0)):
        raise ValueError(f"prior alpha must be > 0, got {a0}")
    if not (b0 > 0.0 and isfinite(b0)):
        raise ValueError(f"prior beta must be > 0, got {b0}")


# ---- Python access to the primitives (tests) ----------------------------------------------------
def splitmix64_stream(seed, Py_ssize_t n):
    """The first n outputs of splitmix64 from `seed` (test vectors)."""
    cdef uint64_t x = _seed_u64(seed)
    return [_splitmix64(&x) for _ in range(n)]


def xoshiro_from_state(s0, s1, s2, s3, Py_ssize_t n):
    """n outputs of xoshiro256++ from an explicit state (test vectors)."""
    cdef Xoshiro r
    r.s[0], r.s[1], r.s[2], r.s[3] = s0, s1, s2, s3
    return [_next(&r) for _ in range(n)]


def log_det(double x):
    return det_log(x)


def exp_det(double x):
    return det_exp(x)


def ziggurat_tables():
    """(k, w, f): the 256-layer ziggurat tables computed at import."""
    k = np.array([zig_k[i] for i in range(256)], dtype=np.uint64)
    w = np.array([zig_w[i] for i in range(256)], dtype=np.float64)
    f = np.array([zig_f[i] for i in range(256)], dtype=np.float64)
    return k, w, f


# ---- bench-only: timing loops in C (bench/thompson.py) -------------------------------------------
from kaizen.ext.clock cimport now_ns as _now_ns


def bench_draw_ns(ThompsonPortfolio p, long reps, long chunks=1):
    """ns per posterior draw: `chunks` timings of `reps` sweeps over every active arm with the C draw
    function (an array of per-draw means, one per chunk; take the median on a shared machine)."""
    cdef long r, c
    cdef int i, n = p.n
    cdef double sink = 0.0
    cdef int64_t t0, t1
    cdef long draws = 0
    for i in range(n):
        draws += p.arms[i].active
    res = np.empty(chunks, dtype=np.float64)
    cdef double[::1] rv = res
    with nogil:
        for c in range(chunks):
            t0 = _now_ns()
            for r in range(reps):
                for i in range(n):
                    if p.arms[i].active:
                        sink += _draw(&p.rng, &p.arms[i])
            t1 = _now_ns()
            rv[c] = (t1 - t0) / <double>(reps * draws)
    p.last_draw = sink
    return res


def bench_rng_ns(str which, long reps, double shape=2.0, long chunks=1):
    """ns per variate of the raw generators ('u64', 'uniform', 'normal', 'gamma', 'beta'):
    `chunks` timings of `reps` variates each (array of per-variate means)."""
    cdef Xoshiro r
    cdef GammaC g
    cdef long i, c
    cdef double sink = 0.0
    cdef uint64_t usink = 0
    cdef int64_t t0, t1
    cdef int w = {"u64": 0, "uniform": 1, "normal": 2, "gamma": 3, "beta": 4}[which]
    res = np.empty(chunks, dtype=np.float64)
    cdef double[::1] rv = res
    rng_seed(&r, 12345)
    _gamma_setup(&g, shape)
    with nogil:
        for c in range(chunks):
            t0 = _now_ns()
            if w == 0:
                for i in range(reps):
                    usink += _next(&r)
            elif w == 1:
                for i in range(reps):
                    sink += _uniform(&r)
            elif w == 2:
                for i in range(reps):
                    sink += _normal(&r)
            elif w == 3:
                for i in range(reps):
                    sink += _gamma(&r, &g)
            else:
                for i in range(reps):
                    sink += _beta2(&r, &g, &g)
            t1 = _now_ns()
            rv[c] = (t1 - t0) / <double>reps
    if sink == 12345.6789 and usink == 1:
        print("")  # keeps the loops from being optimised away
    return res


def bench_choice_ns(ThompsonPortfolio p, long reps, bint with_update=False, double reward=0.0):
    """Per-call latencies (ns, int64 array) of `choose_c` called from Cython; with_update adds the
    `update_c` of the chosen arm (a full decision: discount, draws, argmax, posterior update)."""
    res = np.empty(reps, dtype=np.int64)
    cdef int64_t[::1] rv = res
    cdef long i
    cdef int k
    cdef int64_t t0, t1
    with nogil:
        for i in range(reps):
            t0 = _now_ns()
            k = p.choose_c()
            if with_update:
                p.update_c(k, reward, 1.0)
            t1 = _now_ns()
            rv[i] = t1 - t0
    return res
