# cython: language_level=3
"""Synthetic market kernel (see marketmodel.pxd): regime chain, price, premium and planted signal.

One `_step(dt_h)` advances every symbol by dt_h hours of sim time. The live simulator calls it once
per publish tick (`step`); the batch generator calls it `substeps` times per bar inside `run_bars`
(nogil) and records OHLC of the mark price. Same code, same RNG stream: a seed and a step size give
the same path on both paths (tests/synth/test_market_model.py).

Per symbol i, with x the log index, sigma = base_sigma * vol_mult[regime] (hourly), per step dt:
  regime: two axes (vol low/high, trend/range). A market-wide state flips each axis at rate
    1 / market_dwell_h[axis]; at a market flip each symbol adopts the market's value with
    probability `follow` (co-movement). A symbol that agrees with the market also leaves it on its
    own at rate 1 / own_dwell_h[axis]; one that disagrees rejoins it at rate 1 / rejoin_h[axis]
    (idiosyncratic episodes are shorter than market regimes). Entering a trend draws its direction
    (the market's when following or rejoining); entering a range anchors it at the current price.
  dx = (mu_shape + g f / tau_f + phi sigma clip(s_norm)) dt + c_g sigma sqrt(dt) (sqrt(rho) zc + sqrt(1-rho) z)
    mu_shape = direction * drift * sigma (trend) or -kappa (x - anchor) (range);
    f: EMA sum of the noise increments (tau_f, minutes): sub-bar persistence (g > 0) or reversal
       (g < 0); c_g rescales the noise so the bar-scale volatility stays sigma whatever g;
    s: EMA sum of log returns (tau_s, hours), s_norm = s / (sigma sqrt(tau_s / 2)) ~ N(0, 1):
       the planted signal, phi = +strength (momentum), -strength (reversion) or 0 per regime,
       from the `before` mapping until break_h and the `after` mapping from then on.
  premium: Ornstein-Uhlenbeck towards premium_base (+ tilt * direction in a trend).
"""

from libc.math cimport exp, log, sqrt
from libc.stdint cimport uint64_t
from libc.stdlib cimport calloc, free

import numpy as np

cimport numpy as cnp

cnp.import_array()

REGIMES = ("trend_low", "trend_high", "range_low", "range_high")


# ----------------------------------------------------------------------------------------- RNG
cdef inline uint64_t _rotl(uint64_t x, int k) noexcept nogil:
    return (x << k) | (x >> (64 - k))


cdef inline uint64_t _splitmix(uint64_t* state) noexcept nogil:
    state[0] += <uint64_t>0x9E3779B97F4A7C15
    cdef uint64_t z = state[0]
    z = (z ^ (z >> 30)) * <uint64_t>0xBF58476D1CE4E5B9
    z = (z ^ (z >> 27)) * <uint64_t>0x94D049BB133111EB
    return z ^ (z >> 31)


cdef inline void rng_seed(Rng* r, uint64_t seed) noexcept nogil:
    cdef uint64_t sm = seed
    r.s0 = _splitmix(&sm)
    r.s1 = _splitmix(&sm)
    r.s2 = _splitmix(&sm)
    r.s3 = _splitmix(&sm)
    r.has_spare = 0
    r.spare = 0.0


cdef inline uint64_t rng_next(Rng* r) noexcept nogil:
    """xoshiro256++ (Blackman & Vigna)."""
    cdef uint64_t result = _rotl(r.s0 + r.s3, 23) + r.s0
    cdef uint64_t t = r.s1 << 17
    r.s2 ^= r.s0
    r.s3 ^= r.s1
    r.s1 ^= r.s2
    r.s0 ^= r.s3
    r.s2 ^= t
    r.s3 = _rotl(r.s3, 45)
    return result


cdef inline double rng_uniform(Rng* r) noexcept nogil:
    """Uniform on [0, 1) with 53 random bits."""
    return (rng_next(r) >> 11) * (1.0 / 9007199254740992.0)


cdef inline double rng_normal(Rng* r) noexcept nogil:
    """Standard normal, Marsaglia's polar method (the second value of each pair is kept)."""
    cdef double u, v, q, m
    if r.has_spare:
        r.has_spare = 0
        return r.spare
    while True:
        u = 2.0 * rng_uniform(r) - 1.0
        v = 2.0 * rng_uniform(r) - 1.0
        q = u * u + v * v
        if 0.0 < q < 1.0:
            break
    m = sqrt(-2.0 * log(q) / q)
    r.spare = v * m
    r.has_spare = 1
    return u * m


def normals(unsigned long long seed, Py_ssize_t n):
    """n standard normals from this module's generator (for the distribution test)."""
    cdef Rng r
    cdef Py_ssize_t i
    rng_seed(&r, seed)
    out = np.empty(n, np.float64)
    cdef double[::1] o = out
    for i in range(n):
        o[i] = rng_normal(&r)
    return out


cdef inline double _clip(double x, double c) noexcept nogil:
    if x > c:
        return c
    if x < -c:
        return -c
    return x


# ------------------------------------------------------------------------------------ process
cdef class MarketProcess:
    """The synthetic price process of n symbols. Build it with
    kaizen.venue.sim.model.MarketModel.process(...), which passes the model's numbers here."""

    def __cinit__(
        self,
        double[:, ::1] shapes,
        double[::1] phi_before,
        double[::1] phi_after,
        double[::1] market_dwell_h,
        double[::1] own_dwell_h,
        double[::1] rejoin_h,
        double follow,
        double corr,
        double fast_tau_h,
        double signal_tau_h,
        double signal_clip,
        double break_h,
        double premium_base,
        double premium_sd,
        double premium_relax_h,
        double[::1] base_sigma,
        double[::1] start_price,
        unsigned long long seed,
    ):
        cdef int i, k
        if shapes.shape[0] != NREG or shapes.shape[1] != 5:
            raise ValueError("shapes must be 4 x 5 (vol_mult, drift, kappa, fast_gain, premium_tilt)")
        if phi_before.shape[0] != NREG or phi_after.shape[0] != NREG:
            raise ValueError("phi_before / phi_after need one value per regime")
        if market_dwell_h.shape[0] != 2 or own_dwell_h.shape[0] != 2 or rejoin_h.shape[0] != 2:
            raise ValueError("dwell times are per axis (vol, trend)")
        if base_sigma.shape[0] != start_price.shape[0] or base_sigma.shape[0] < 1:
            raise ValueError("base_sigma and start_price need one value per symbol")
        if not (fast_tau_h > 0 and signal_tau_h > 0 and premium_relax_h > 0):
            raise ValueError("time constants must be > 0")
        if not 0.0 <= corr <= 1.0 or not 0.0 <= follow <= 1.0:
            raise ValueError("corr and follow must be in [0, 1]")
        for k in range(2):
            if not (market_dwell_h[k] > 0 and own_dwell_h[k] > 0 and rejoin_h[k] > 0):
                raise ValueError("dwell times must be > 0 (use a large value to switch an axis off)")
        self.n = base_sigma.shape[0]
        self.st = <Sym*> calloc(self.n, sizeof(Sym))
        if self.st == NULL:
            raise MemoryError()
        for k in range(NREG):
            self.shapes[k].vol_mult = shapes[k, 0]
            self.shapes[k].drift = shapes[k, 1]
            self.shapes[k].kappa = shapes[k, 2]
            self.shapes[k].fast_gain = shapes[k, 3]
            self.shapes[k].premium_tilt = shapes[k, 4]
            self.phi_before[k] = phi_before[k]
            self.phi_after[k] = phi_after[k]
            if not shapes[k, 0] > 0:
                raise ValueError("vol_mult must be > 0")
            if not -1.0 < shapes[k, 3] < 0.8:
                raise ValueError("fast_gain must be in (-1, 0.8) (the feedback must stay stable)")
        for k in range(2):
            self.market_dwell_h[k] = market_dwell_h[k]
            self.own_dwell_h[k] = own_dwell_h[k]
            self.rejoin_h[k] = rejoin_h[k]
        self.follow = follow
        self.corr = corr
        self.fast_tau_h = fast_tau_h
        self.signal_tau_h = signal_tau_h
        self.signal_clip = signal_clip
        self.break_h = break_h
        self.premium_base = premium_base
        self.premium_sd = premium_sd
        self.premium_relax_h = premium_relax_h
        self.t_h = 0.0
        self.switches = 0
        rng_seed(&self.rng, seed)
        # start in the chain's stationary law: each axis 50/50, symbols on the market's state
        # with probability `follow`, else drawn on their own
        self.market[0] = 1 if rng_uniform(&self.rng) < 0.5 else 0
        self.market[1] = 1 if rng_uniform(&self.rng) < 0.5 else 0
        self.market_dir = 1.0 if rng_uniform(&self.rng) < 0.5 else -1.0
        for i in range(self.n):
            if not (base_sigma[i] > 0 and start_price[i] > 0):
                raise ValueError("base_sigma and start_price must be > 0")
            self.st[i].x = log(start_price[i])
            self.st[i].anchor = self.st[i].x
            self.st[i].base_sigma = base_sigma[i]
            self.st[i].premium = premium_base
            if rng_uniform(&self.rng) < follow:
                self.st[i].vol = self.market[0]
                self.st[i].rng_axis = self.market[1]
                self.st[i].direction = self.market_dir
            else:
                self.st[i].vol = 1 if rng_uniform(&self.rng) < 0.5 else 0
                self.st[i].rng_axis = 1 if rng_uniform(&self.rng) < 0.5 else 0
                self.st[i].direction = 1.0 if rng_uniform(&self.rng) < 0.5 else -1.0

    def __dealloc__(self):
        if self.st != NULL:
            free(self.st)
            self.st = NULL

    cdef void _set_axis(self, int i, int axis, int value, double direction) noexcept nogil:
        cdef Sym* s = &self.st[i]
        if axis == 0:
            if s.vol != value:
                s.vol = value
                self.switches += 1
            return
        if s.rng_axis == value:
            return
        s.rng_axis = value
        self.switches += 1
        if value == 1:
            s.anchor = s.x  # a range holds around where it starts
        else:
            s.direction = direction

    cdef void _step(self, double dt_h) noexcept nogil:
        cdef int i, a, reg, cur
        cdef double d, zc, z, zp, sig, g, delta, decay, cg, mu_shape, mu, dx, phi, sn, a_p, target
        cdef double lc = sqrt(self.corr), lo = sqrt(1.0 - self.corr)
        cdef Sym* s
        cdef Shape* sh
        cdef bint after = self.break_h >= 0.0 and self.t_h >= self.break_h
        # regime chain: market-wide flips (followed with probability `follow`), then own flips
        for a in range(2):
            if rng_uniform(&self.rng) < dt_h / self.market_dwell_h[a]:
                self.market[a] = 1 - self.market[a]
                if a == 1 and self.market[1] == 0:
                    self.market_dir = 1.0 if rng_uniform(&self.rng) < 0.5 else -1.0
                for i in range(self.n):
                    if rng_uniform(&self.rng) < self.follow:
                        self._set_axis(i, a, self.market[a], self.market_dir)
        for i in range(self.n):
            for a in range(2):
                cur = self.st[i].vol if a == 0 else self.st[i].rng_axis
                if cur == self.market[a]:  # leave the market on its own
                    if rng_uniform(&self.rng) < dt_h / self.own_dwell_h[a]:
                        d = 1.0 if rng_uniform(&self.rng) < 0.5 else -1.0
                        self._set_axis(i, a, 1 - cur, d)
                elif rng_uniform(&self.rng) < dt_h / self.rejoin_h[a]:  # rejoin it
                    self._set_axis(i, a, self.market[a], self.market_dir)
        zc = rng_normal(&self.rng)
        for i in range(self.n):
            s = &self.st[i]
            z = rng_normal(&self.rng)
            zp = rng_normal(&self.rng)
            reg = s.vol + 2 * s.rng_axis
            sh = &self.shapes[reg]
            sig = s.base_sigma * sh.vol_mult
            phi = self.phi_after[reg] if after else self.phi_before[reg]
            sn = s.s / (sig * sqrt(0.5 * self.signal_tau_h))
            s.last_signal = phi * _clip(sn, self.signal_clip)
            if s.frozen:
                continue
            if s.rng_axis == 0:
                mu_shape = s.direction * sh.drift * sig
            else:
                mu_shape = -sh.kappa * (s.x - s.anchor)
            # fast feedback: noise scaled by 1/m, m the long-run multiplier of the feedback loop
            g = sh.fast_gain
            delta = dt_h / self.fast_tau_h
            decay = exp(-delta)
            cg = 1.0
            if g != 0.0:
                cg = 1.0 / (1.0 + g * delta / (1.0 - decay - g * delta))
            mu = mu_shape + g * s.f / self.fast_tau_h + s.last_signal * sig
            dx = mu * dt_h + cg * sig * sqrt(dt_h) * (lc * zc + lo * z)
            s.x += dx
            s.f = s.f * decay + (dx - mu_shape * dt_h)
            s.s = s.s * exp(-dt_h / self.signal_tau_h) + dx
            a_p = dt_h / self.premium_relax_h
            if a_p > 1.0:
                a_p = 1.0
            target = self.premium_base + (sh.premium_tilt * s.direction if s.rng_axis == 0 else 0.0)
            s.premium += a_p * (target - s.premium) + self.premium_sd * sqrt(2.0 * a_p) * zp
        self.t_h += dt_h

    cpdef void step(self, double dt_h):
        """Advance every symbol by dt_h hours (the live simulator: one publish tick)."""
        if dt_h > 0:
            with nogil:
                self._step(dt_h)

    def run_bars(
        self,
        Py_ssize_t n_bars,
        int substeps,
        double dt_h,
        double[:, ::1] mark_open,
        double[:, ::1] mark_high,
        double[:, ::1] mark_low,
        double[:, ::1] mark_close,
        double[:, ::1] premium_mean,
        double[:, ::1] signal_close,
        signed char[:, ::1] regime_close,
        signed char[:, ::1] direction_close,
    ):
        """The batch path: n_bars bars of `substeps` steps of dt_h hours each; arrays are
        (symbols, n_bars). The mark is index * (1 + premium); regime/direction/signal are the state
        at the bar's close (what a decision at the close acts under)."""
        cdef Py_ssize_t b
        cdef int i, k
        cdef double m
        cdef Sym* s
        if substeps < 1 or not dt_h > 0:
            raise ValueError("substeps must be >= 1 and dt_h > 0")
        cdef Py_ssize_t rows = min(mark_open.shape[0], mark_high.shape[0], mark_low.shape[0],
                                   mark_close.shape[0], premium_mean.shape[0], signal_close.shape[0],
                                   regime_close.shape[0], direction_close.shape[0])
        cdef Py_ssize_t cols = min(mark_open.shape[1], mark_high.shape[1], mark_low.shape[1],
                                   mark_close.shape[1], premium_mean.shape[1], signal_close.shape[1],
                                   regime_close.shape[1], direction_close.shape[1])
        if rows < self.n or cols < n_bars:
            raise ValueError("output arrays must be (symbols, >= n_bars)")
        with nogil:
            for b in range(n_bars):
                for i in range(self.n):
                    s = &self.st[i]
                    m = exp(s.x) * (1.0 + s.premium)
                    mark_open[i, b] = m
                    mark_high[i, b] = m
                    mark_low[i, b] = m
                    premium_mean[i, b] = 0.0
                for k in range(substeps):
                    self._step(dt_h)
                    for i in range(self.n):
                        s = &self.st[i]
                        m = exp(s.x) * (1.0 + s.premium)
                        if m > mark_high[i, b]:
                            mark_high[i, b] = m
                        if m < mark_low[i, b]:
                            mark_low[i, b] = m
                        premium_mean[i, b] += s.premium
                for i in range(self.n):
                    s = &self.st[i]
                    mark_close[i, b] = exp(s.x) * (1.0 + s.premium)
                    premium_mean[i, b] /= substeps
                    signal_close[i, b] = s.last_signal
                    regime_close[i, b] = s.vol + 2 * s.rng_axis
                    direction_close[i, b] = 1 if s.direction > 0 else -1

    # -- live accessors ------------------------------------------------------------------------
    @property
    def n_symbols(self):
        return self.n

    def _check(self, int i):
        if not 0 <= i < self.n:
            raise IndexError(f"symbol slot {i} out of range 0..{self.n - 1}")

    def index(self, int i):
        self._check(i)
        return exp(self.st[i].x)

    def premium(self, int i):
        self._check(i)
        return self.st[i].premium

    def regime(self, int i):
        self._check(i)
        return self.st[i].vol + 2 * self.st[i].rng_axis

    def direction(self, int i):
        self._check(i)
        return self.st[i].direction

    def signal(self, int i):
        """The planted expected drift per hour, in units of the regime's hourly sigma."""
        self._check(i)
        return self.st[i].last_signal

    def sigma(self, int i):
        """The symbol's hourly volatility in its current regime."""
        self._check(i)
        return self.st[i].base_sigma * self.shapes[self.st[i].vol + 2 * self.st[i].rng_axis].vol_mult

    def set_index(self, int i, double price):
        """Move the index to `price` (a released scripted price); a range re-anchors there."""
        self._check(i)
        if not price > 0:
            raise ValueError("price must be > 0")
        self.st[i].x = log(price)
        self.st[i].anchor = self.st[i].x
        self.st[i].f = 0.0
        self.st[i].s = 0.0

    def set_frozen(self, int i, bint frozen):
        self._check(i)
        self.st[i].frozen = frozen

    def state(self, int i):
        self._check(i)
        cdef Sym* s = &self.st[i]
        return {
            "x": s.x, "anchor": s.anchor, "f": s.f, "s": s.s, "premium": s.premium,
            "direction": s.direction, "vol": s.vol, "range": s.rng_axis, "frozen": bool(s.frozen),
        }

    @property
    def market_regime(self):
        return self.market[0] + 2 * self.market[1]

    @property
    def after_break(self):
        return self.break_h >= 0.0 and self.t_h >= self.break_h
