# The synthetic market's price process: one kernel for the live simulator (one step per publish
# tick) and the batch generator (`kaizen data synth`, sub-steps inside each bar). Parameters come
# from kaizen.venue.sim.model.MarketModel; the RNG is the process's own (xoshiro256++), so a seed
# gives the same path whatever else happens in the simulator.

from libc.stdint cimport uint64_t

cdef enum:
    NREG = 4           # regimes: 0 trend_low, 1 trend_high, 2 range_low, 3 range_high (vol bit 0, range bit 1)

cdef struct Rng:
    uint64_t s0
    uint64_t s1
    uint64_t s2
    uint64_t s3
    double spare
    int has_spare

cdef struct Shape:
    double vol_mult      # bar-scale volatility = base hourly sigma * vol_mult
    double drift         # trend drift per hour, in units of the regime's hourly sigma (sign = direction)
    double kappa         # range: reversion rate per hour towards the anchor
    double fast_gain     # sub-bar feedback of recent noise (> 0 persistence, < 0 reversal)
    double premium_tilt  # premium target offset in a trend (times the direction)

cdef struct Sym:
    double x             # log index price
    double anchor        # log price a range reverts to (set when the range starts)
    double f             # fast EMA sum of noise increments (time constant fast_tau_h)
    double s             # slow EMA sum of log returns (time constant signal_tau_h): the planted signal's state
    double premium       # perp premium over the index
    double base_sigma    # hourly volatility scale of the symbol
    double direction     # +1 / -1: the trend's sign
    double last_signal   # planted expected drift per hour in sigma units at the last step
    int vol              # 0 low, 1 high
    int rng_axis         # 0 trend, 1 range
    int frozen           # price pinned (scripted): the path does not move, draws are still consumed


cdef class MarketProcess:
    cdef Sym* st
    cdef int n
    cdef Rng rng
    cdef Shape shapes[NREG]
    cdef double phi_before[NREG]
    cdef double phi_after[NREG]
    cdef double market_dwell_h[2]
    cdef double own_dwell_h[2]
    cdef double rejoin_h[2]
    cdef double follow
    cdef double corr
    cdef double fast_tau_h
    cdef double signal_tau_h
    cdef double signal_clip
    cdef double break_h        # < 0: no break
    cdef double premium_base
    cdef double premium_sd
    cdef double premium_relax_h
    cdef int market[2]
    cdef double market_dir
    cdef readonly double t_h   # hours since the start
    cdef readonly long long switches

    cdef void _step(self, double dt_h) noexcept nogil
    cdef void _set_axis(self, int i, int axis, int value, double direction) noexcept nogil
    cpdef void step(self, double dt_h)
