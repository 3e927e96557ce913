# Incremental feature engine: one implementation for live, replay and batch (training).
# Rolling windows live in fixed-size ring buffers (CAP bars, a power of two); every update is a
# `noexcept nogil` C function so the hot path calls it without the GIL or Python objects.

cdef enum:
    CAP = 128          # ring capacity in bars (> the longest window + 1)
    MASK = CAP - 1
    NF = 36            # features in the vector (order: kaizen.models.features.FEATURES)

cdef struct SymState:
    double c[CAP]
    double o[CAP]
    double h[CAP]
    double l[CAP]
    double v[CAP]
    double r[CAP]      # 1-bar log return (nan on the first bar after a reset)
    double rv24[CAP]   # rolling 24-bar realized vol, kept for vol-of-vol
    double fund[CAP]   # latest settled funding rate known at each bar close
    double prem[CAP]   # mark/last - 1 at each bar close (nan if no mark)
    double lr[CAP]     # leader's 1-bar return at the same bar (nan if none)
    double lv[CAP]     # ln(1 + v), computed once per bar
    double hl2[CAP]    # ln(h/l)^2
    double co2[CAP]    # ln(c/o)^2
    long long last_open
    long long n        # bars since the last reset (including the current one)
    long long resets   # gap resets so far
    int pos
    double last_fund
    double vmean24
    # live-only book / trade-flow state
    double imb
    double micro_drift
    double imb_ema
    double signed_acc
    long long book_events
    long long book_events_bar
    double out[NF]


cdef class FeatureEngine:
    cdef SymState* st
    cdef int nsym
    cdef int leader_id
    cdef long long interval_ms
    cdef readonly list symbols
    cdef dict _index

    cdef int bar_update(self, int sid, long long open_time, double o, double h, double l, double c,
                        double v, double funding_rate, double mark_close) noexcept nogil
    cdef void book_update(self, int sid, double imbalance, double microprice, double mid,
                          double signed_volume) noexcept nogil
    cdef double* vector_ptr(self, int sid) noexcept nogil
    cdef void _reset_state(self, int sid, bint full) noexcept nogil
    cpdef int symbol_index(self, str symbol) except -1
    cpdef int update_sid(self, int sid, long long open_time_ms, double o, double h, double l, double c,
                         double volume, double funding_rate=*, double mark_close=*)
