"""Typed interface of kaizen.ext.thompson: a seedable RNG and the Thompson-sampling portfolio.

The engine cimports `ThompsonPortfolio` and calls `choose_c` / `update_c` (nogil, no Python objects);
other Cython modules may draw from an `Xoshiro` state with the `rng_*` functions.
"""

from libc.stdint cimport int64_t, uint64_t


cdef struct Xoshiro:
    uint64_t s[4]


cdef enum:
    KIND_NORMAL_GAMMA = 0
    KIND_BETA = 1
    ARM_FIXED = 2          # `flat`: a point mass at a fixed value, never updated


# Gamma(shape, 1) sampler constants (Marsaglia–Tsang for shape' = shape if shape >= 1 else shape + 1).
cdef struct GammaC:
    double d
    double c
    double inv_shape       # 1/shape when shape < 1 (boost by U^(1/shape)), else 0


cdef struct Arm:
    int kind               # KIND_NORMAL_GAMMA | KIND_BETA | ARM_FIXED
    int active
    # prior: Normal–Gamma (m0, k0, a0, b0) = (mean, kappa, shape, rate); Beta (a0, b0)
    double m0
    double k0
    double a0
    double b0
    # discounted sufficient statistics
    double n               # NG: weighted, discounted count
    double xbar            # NG: weighted mean of the rewards
    double m2              # NG: weighted, discounted sum of squared deviations from xbar
    double s               # Beta: discounted successes
    double f               # Beta: discounted failures
    # undiscounted bookkeeping
    double w_total         # sum of update weights
    int64_t n_updates
    # posterior, refreshed after every change
    double pm              # NG posterior mean of mu
    double pk              # NG posterior kappa
    double pa              # NG shape alpha | Beta alpha
    double pb              # NG rate beta | Beta beta
    double bk              # NG pb / pk
    GammaC ga              # sampler for Gamma(pa)
    GammaC gb              # sampler for Gamma(pb) (Beta only)
    double value           # ARM_FIXED: the value every draw returns


cdef void rng_seed(Xoshiro* r, uint64_t seed) noexcept nogil
cdef uint64_t rng_next(Xoshiro* r) noexcept nogil
cdef double rng_uniform(Xoshiro* r) noexcept nogil          # [0, 1), 53 bits
cdef double rng_normal(Xoshiro* r) noexcept nogil           # N(0, 1), 256-layer ziggurat
cdef double rng_gamma(Xoshiro* r, double shape) noexcept nogil   # Gamma(shape, 1)
cdef double rng_beta(Xoshiro* r, double a, double b) noexcept nogil
cdef double det_log(double x) noexcept nogil                 # fdlibm-derived, platform-independent
cdef double det_exp(double x) noexcept nogil


cdef class Rng:
    cdef Xoshiro state


cdef class ThompsonPortfolio:
    cdef Arm* arms
    cdef int n
    cdef int cap
    cdef int n_active_
    cdef int kind_
    cdef readonly double discount
    cdef readonly object seed
    cdef uint64_t seed_u
    cdef Xoshiro rng
    cdef readonly int64_t t          # decisions so far (calls to choose)
    cdef int64_t t_disc              # decision clock the statistics are discounted to
    cdef double pm0, pk0, pa0, pb0   # default prior for add()
    cdef double flat_value_
    cdef int has_flat
    cdef readonly double last_draw   # the winning draw of the latest choice

    cdef int choose_c(self) noexcept nogil
    cdef int update_c(self, int i, double reward, double weight) noexcept nogil
    cdef double draw_c(self, int i) noexcept nogil
    cdef void sync_c(self) noexcept nogil
    cdef void prob_best_c(self, Xoshiro* r, long n_samples, double* out) noexcept nogil
    cdef int _append(self, int kind, double m0, double k0, double a0, double b0, double value) except -1
