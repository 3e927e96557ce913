# cython: language_level=3
"""Regime features and hysteresis (see regime.pxd and kaizen.models.regime).

RegimeFeatures turns a symbol's engine feature vector, bar by bar, into the 23 regime features
(DERIVED): exponential averages with time constants in hours (so 1 m and 1 h bars mean the same
spans), bias-corrected from the first bar (s / w), skipping nan inputs:
  rg_rv_floor_T  ln(E_T[r^2]) above the floor of ln(E_24h[r^2])  volatility against the symbol's
                                                calm level (see floors below)
  rg_pk_floor    ln(pk24^2) above its floor      the same for the 24-bar Parkinson (range) estimate
  rg_hl_floor_T  ln(E_T[hl^2]) above the floor of ln(E_12h[hl^2])  the bar range (vol_hl_1): the
                                                sharpest volatility estimate per bar
  rg_vr, rg_vr_T  ln(rv24 / pk24) and averages   close-to-close against range-based volatility: a
                                                path that persists inside the bar ranges less for
                                                the same close-to-close move, one that reverses more
  rg_z_T        E_T[r] / sqrt(E_T[r^2]) sqrt(n_eff)   drift over volatility (a t-statistic)
  rg_er_T       |E_T[r]| / E_T[|r|]              efficiency ratio
  rg_zl_T       rg_z_T of the leader's returns (x_leader_ret_1; the leader's own r for itself)
  rg_ends_T     E_T[vol_ends_1]                  how near each bar's open and close sit to its
                                                extremes: high where paths persist inside the bar
Floors: a floor follows its series down at once and rises by at most FLOOR_RISE_PER_DAY (in log)
a day, so it sits at the symbol's own calm level through a volatile spell. ("Relative to the
symbol's trailing history" by an average instead drifts with the mix of calm and volatile days
behind it, and a detector trained on one mix misreads the next.)
Hysteresis: the detected regime changes only when another class leads the current one by at least
`margin` in probability on `confirm` consecutive bars.
"""

from libc.math cimport NAN, exp, fabs, isnan, log, sqrt

import numpy as np

cimport numpy as cnp

cnp.import_array()

DERIVED = (
    "rg_rv_floor_6", "rg_rv_floor_24", "rg_rv_floor_72", "rg_pk_floor",
    "rg_vr", "rg_vr_24", "rg_vr_72", "rg_vr_168",
    "rg_z_24", "rg_z_72", "rg_z_168", "rg_z_336",
    "rg_er_24", "rg_er_72", "rg_er_168", "rg_er_336",
    "rg_zl_72", "rg_zl_168",
    "rg_hl_floor_3", "rg_hl_floor_12", "rg_ends_6", "rg_ends_24", "rg_ends_72",
)
assert len(DERIVED) == NDERIVED
FLOOR_RISE_PER_DAY = 0.01

# EMA slots: r^2 at 6, 24, 72, 168, 336 h; r and |r| at 24, 72, 168, 336 h; ln(rv/pk) at 24, 72,
# 168 h; leader r and r^2 at 72, 168 h; hl^2 at 3, 12 h; ends at 6, 24, 72 h.
cdef double[NEMA] TAU = [6, 24, 72, 168, 336, 24, 72, 168, 336, 24, 72, 168, 336,
                         24, 72, 168, 72, 168, 72, 168, 3, 12, 6, 24, 72]
cdef enum:
    R2 = 0      # ..4
    R1 = 5      # ..8
    RA = 9      # ..12
    VR = 13     # ..15
    L1 = 16     # ..17
    L2 = 18     # ..19
    HL2 = 20    # ..21
    ENDS = 22   # ..24


cdef inline void ema_add(Ema* e, double x) noexcept nogil:
    if isnan(x):
        return
    e.s = x + e.decay * e.s
    e.w = 1.0 + e.decay * e.w
    e.w2 = 1.0 + e.decay * e.decay * e.w2


cdef inline double ema_get(Ema* e) noexcept nogil:
    return e.s / e.w if e.w > 0.0 else NAN


cdef inline double log_ratio(double a, double b) noexcept nogil:
    if not (a > 0.0 and b > 0.0):
        return NAN
    return log(a / b)


cdef inline double zstat(Ema* m, Ema* v) noexcept nogil:
    cdef double mm = ema_get(m), vv = ema_get(v)
    if not (vv > 0.0) or m.w2 <= 0.0:
        return NAN
    return mm / sqrt(vv) * (m.w / sqrt(m.w2))


cdef class RegimeFeatures:
    """One symbol's regime-feature state. Positions of mom_ret_1, vol_rv_24, vol_parkinson_24,
    x_leader_ret_1, vol_hl_1, vol_ends_1 in the engine vector; `nin`: its length."""

    def __cinit__(self, double interval_h, int i_ret, int i_rv, int i_pk, int i_lead, int i_hl, int i_ends,
                  int nin):
        if not interval_h > 0:
            raise ValueError("interval_h must be > 0")
        for i in (i_ret, i_rv, i_pk, i_lead, i_hl, i_ends):
            if not 0 <= i < nin:
                raise ValueError("input positions must index the feature vector")
        self.interval_h = interval_h
        self.i_ret, self.i_rv, self.i_pk, self.i_lead, self.nin = i_ret, i_rv, i_pk, i_lead, nin
        self.i_hl, self.i_ends = i_hl, i_ends
        self.floor_rise = FLOOR_RISE_PER_DAY * interval_h / 24.0
        self.reset()

    cpdef void reset(self):
        cdef int j
        for j in range(NEMA):
            self.ema[j].s = 0.0
            self.ema[j].w = 0.0
            self.ema[j].w2 = 0.0
            self.ema[j].decay = exp(-self.interval_h / TAU[j])
        self.bars = 0
        self.floor_hl = NAN
        self.floor_rv = NAN
        self.floor_pk = NAN

    cdef double _floor(self, double v, double* floor) noexcept nogil:
        """Move the floor (ln scale) with v = ln(series); return it (nan until v is known)."""
        if isnan(v):
            return floor[0]
        if isnan(floor[0]) or v < floor[0] + self.floor_rise:
            floor[0] = v
        else:
            floor[0] += self.floor_rise
        return floor[0]

    cdef void _update(self, const double* vec, double* out) noexcept nogil:
        cdef double r = vec[self.i_ret], rv = vec[self.i_rv], pk = vec[self.i_pk], lr = vec[self.i_lead]
        cdef double hl = vec[self.i_hl], ends = vec[self.i_ends]
        cdef double vr = log_ratio(rv, pk)
        cdef double f_rv, f_hl, f_pk, x
        cdef int j
        if isnan(lr):
            lr = r
        for j in range(5):
            ema_add(&self.ema[R2 + j], r * r)
        for j in range(4):
            ema_add(&self.ema[R1 + j], r)
            ema_add(&self.ema[RA + j], fabs(r))
        for j in range(3):
            ema_add(&self.ema[VR + j], vr)
        for j in range(2):
            ema_add(&self.ema[L1 + j], lr)
            ema_add(&self.ema[L2 + j], lr * lr)
            ema_add(&self.ema[HL2 + j], hl * hl)
        for j in range(3):
            ema_add(&self.ema[ENDS + j], ends)
        self.bars += 1
        x = ema_get(&self.ema[R2 + 1])
        f_rv = self._floor(log(x) if x > 0.0 else NAN, &self.floor_rv)
        x = ema_get(&self.ema[HL2 + 1])
        f_hl = self._floor(log(x) if x > 0.0 else NAN, &self.floor_hl)
        f_pk = self._floor(log(pk * pk) if pk > 0.0 else NAN, &self.floor_pk)
        for j in range(3):
            x = ema_get(&self.ema[R2 + j])
            out[j] = log(x) - f_rv if x > 0.0 else NAN
        out[3] = log(pk * pk) - f_pk if pk > 0.0 else NAN
        out[4] = vr
        for j in range(3):
            out[5 + j] = ema_get(&self.ema[VR + j])
        # r^2 slots 1..4 are the 24, 72, 168, 336 h averages, aligned with R1/RA
        for j in range(4):
            out[8 + j] = zstat(&self.ema[R1 + j], &self.ema[R2 + 1 + j])
            x = ema_get(&self.ema[RA + j])
            out[12 + j] = fabs(ema_get(&self.ema[R1 + j])) / x if x > 0.0 else NAN
        for j in range(2):
            out[16 + j] = zstat(&self.ema[L1 + j], &self.ema[L2 + j])
            x = ema_get(&self.ema[HL2 + j])
            out[18 + j] = log(x) - f_hl if x > 0.0 else NAN
        for j in range(3):
            out[20 + j] = ema_get(&self.ema[ENDS + j])

    def update(self, const double[::1] vec):
        """The live path: one bar's engine vector -> the regime features."""
        if vec.shape[0] != self.nin:
            raise ValueError(f"expected a feature vector of {self.nin}, got {vec.shape[0]}")
        out = np.empty(NDERIVED, np.float64)
        cdef double[::1] o = out
        with nogil:
            self._update(&vec[0], &o[0])
        return out

    def run_batch(self, const double[:, ::1] X):
        """The batch path: one symbol's rows in time order, through the same update."""
        if X.shape[1] != self.nin:
            raise ValueError(f"expected {self.nin} columns, got {X.shape[1]}")
        out = np.empty((X.shape[0], NDERIVED), np.float64)
        cdef double[:, ::1] o = out
        cdef Py_ssize_t i
        with nogil:
            for i in range(X.shape[0]):
                self._update(&X[i, 0], &o[i, 0])
        return out


cdef class Hysteresis:
    """Keep the current regime until another class leads it by `margin` on `confirm` bars in a row."""

    def __cinit__(self, int k, double margin=0.1, int confirm=2):
        if k < 2 or confirm < 1 or not 0.0 <= margin < 1.0:
            raise ValueError("Hysteresis: k >= 2, confirm >= 1, 0 <= margin < 1")
        self.k, self.margin, self.confirm = k, margin, confirm
        self.reset()

    cpdef void reset(self):
        self.current = -1
        self.candidate = -1
        self.count = 0

    cdef int _step(self, const double* probs) noexcept nogil:
        cdef int j, best = 0
        for j in range(1, self.k):
            if probs[j] > probs[best]:
                best = j
        if self.current < 0:
            self.current = best
            return best
        if best == self.current or probs[best] - probs[self.current] < self.margin:
            self.candidate = -1
            self.count = 0
            return self.current
        if best != self.candidate:
            self.candidate = best
            self.count = 0
        self.count += 1
        if self.count >= self.confirm:
            self.current = best
            self.candidate = -1
            self.count = 0
        return self.current

    def step(self, const double[::1] probs):
        if probs.shape[0] != self.k:
            raise ValueError(f"expected {self.k} probabilities, got {probs.shape[0]}")
        return self._step(&probs[0])

    def run(self, const double[:, ::1] P):
        """Batch: the regime after each row of probabilities (same step as live)."""
        if P.shape[1] != self.k:
            raise ValueError(f"expected {self.k} columns, got {P.shape[1]}")
        out = np.empty(P.shape[0], np.int8)
        cdef signed char[::1] o = out
        cdef Py_ssize_t i
        with nogil:
            for i in range(P.shape[0]):
                o[i] = <signed char> self._step(&P[i, 0])
        return out

    @property
    def current(self):
        return self.current
