# Regime detector state (kaizen.models.regime): the backward-looking regime features a symbol's
# detector derives from the engine's feature vector bar by bar, and the hysteresis that keeps the
# detected regime from flapping. Live (`update`, `step`) and batch (`run_batch`, `run`) call the
# same cdef functions.

cdef enum:
    NDERIVED = 23      # derived features (order: kaizen.models.regime.DERIVED)
    NEMA = 25          # exponential averages kept per symbol

cdef struct Ema:
    double s           # weighted sum
    double w           # sum of weights (bias-corrected average s / w)
    double w2          # sum of squared weights (effective sample size w^2 / w2)
    double decay


cdef class RegimeFeatures:
    cdef Ema ema[NEMA]
    cdef int i_ret
    cdef int i_rv
    cdef int i_pk
    cdef int i_lead
    cdef int i_hl
    cdef int i_ends
    cdef int nin
    cdef readonly double interval_h
    cdef readonly long long bars
    cdef double floor_hl
    cdef double floor_rv
    cdef double floor_pk
    cdef double floor_rise

    cdef void _update(self, const double* vec, double* out) noexcept nogil
    cdef double _floor(self, double v, double* floor) noexcept nogil
    cpdef void reset(self)


cdef class Hysteresis:
    cdef int k
    cdef int current
    cdef int candidate
    cdef int count
    cdef readonly int confirm
    cdef readonly double margin

    cdef int _step(self, const double* probs) noexcept nogil
    cpdef void reset(self)
