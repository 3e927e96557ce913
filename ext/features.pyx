# cython: language_level=3
"""Incremental feature engine (see features.pxd). The same `bar_update` runs live (one bar at a time)
and in batch (`run_batch`, a nogil loop over arrays), so training and live features are one
definition. Feature order and metadata are declared in kaizen.models.features.FEATURES.

Windows are scanned in two passes over the ring (mean, then squared deviations): a few hundred
flops per bar, numerically stable, and exactly reproducible regardless of where a series starts.
"""

from libc.math cimport NAN, fabs, isfinite, log, log1p, sqrt
from libc.stdlib cimport calloc, free
from libc.string cimport memcpy

import numpy as np

cimport numpy as cnp

cnp.import_array()

# Keep in this order; kaizen.models.features checks FEATURES against it at import.
NAMES = (
    "mom_ret_1", "mom_ret_4", "mom_ret_12", "mom_ret_24", "mom_ret_72", "mom_sharpe_24",
    "vol_rv_24", "vol_rv_72", "vol_parkinson_24", "vol_garman_klass_24", "vol_of_vol_24",
    "vol_ratio_24_72",
    "mr_z_24", "mr_z_72", "mr_range_pos_72", "mr_autocorr_24",
    "vlm_ratio_24", "vlm_z_24", "vlm_clv_signed", "vlm_trend_6_24",
    "fund_rate", "fund_chg_24", "fund_mean_72", "basis_premium", "basis_premium_mean_24",
    "x_leader_ret_1", "x_leader_ret_4", "x_corr_72", "x_spread_24", "x_rel_mom_24",
    "book_imbalance", "book_micro_drift", "book_imbalance_ema", "flow_signed_volume",
    "vol_hl_1", "vol_ends_1",
)
assert len(NAMES) == NF

# Status codes of bar_update.
BAR_OK = 0
BAR_RESET = 1          # a gap: windows restarted, features nan until warm again
BAR_STALE = -1         # open_time not after the last bar: ignored
BAR_INVALID = -2       # non-finite or non-positive price, negative/nan volume: ignored

cdef double LN2 = 0.6931471805599453
cdef double GK_C = 2.0 * 0.6931471805599453 - 1.0
cdef double EMA_ALPHA = 0.1


cdef inline int ix(int pos, int k) noexcept nogil:
    return (pos - k) & MASK


cdef inline double wmean(double* a, int pos, int w) noexcept nogil:
    # Shifted by the newest value: a constant window's mean is exactly that value, so its deviations
    # and std are exactly 0 and a z-score or correlation over it is nan, not rounding noise.
    cdef double a0 = a[pos & MASK], s = 0.0
    cdef int k
    for k in range(w):
        s += a[(pos - k) & MASK] - a0
    return a0 + s / w


cdef inline double wstd(double* a, int pos, int w, double m) noexcept nogil:
    cdef double s = 0.0, d
    cdef int k
    for k in range(w):
        d = a[(pos - k) & MASK] - m
        s += d * d
    return sqrt(s / w)


cdef inline double wcorr(double* x, int xlag, double* y, int ylag, int pos, int w) noexcept nogil:
    """Pearson correlation of x[t-xlag-k] and y[t-ylag-k], k < w; nan if a side is constant."""
    cdef double mx = wmean(x, pos - xlag, w), my = wmean(y, pos - ylag, w), sxx = 0.0, syy = 0.0
    cdef double sxy = 0.0, dx, dy
    cdef int k
    for k in range(w):
        dx = x[(pos - xlag - k) & MASK] - mx
        dy = y[(pos - ylag - k) & MASK] - my
        sxx += dx * dx
        syy += dy * dy
        sxy += dx * dy
    if sxx <= 0.0 or syy <= 0.0:
        return NAN
    return sxy / sqrt(sxx * syy)


cdef inline double safe_div(double a, double b) noexcept nogil:
    if b == 0.0:
        return NAN
    return a / b


cdef class FeatureEngine:
    """Per-symbol ring buffers and the feature vector of each symbol's latest bar.

    Feed the leader's bar before the other symbols' bars of the same open time (batch_features
    does); an alt bar whose leader bar for that time has not arrived gets nan cross-asset features.
    A bar whose open_time is not exactly one interval after the previous one is a gap: the symbol's
    windows restart (counted in `resets`) rather than silently mixing returns across the gap.
    """

    def __cinit__(self, symbols, str leader="BTCUSDT", long long interval_ms=3_600_000):
        cdef int i
        self.symbols = [str(s) for s in symbols]
        if not self.symbols:
            raise ValueError("FeatureEngine needs at least one symbol")
        if len(set(self.symbols)) != len(self.symbols):
            raise ValueError("FeatureEngine: a symbol is listed twice")
        if interval_ms <= 0:
            raise ValueError("FeatureEngine: interval_ms must be > 0")
        self.nsym = len(self.symbols)
        self._index = {s: i for i, s in enumerate(self.symbols)}
        self.leader_id = self._index.get(leader, -1)
        self.interval_ms = interval_ms
        self.st = <SymState*> calloc(self.nsym, sizeof(SymState))
        if self.st == NULL:
            raise MemoryError()
        for i in range(self.nsym):
            self._reset_state(i, True)

    def __dealloc__(self):
        if self.st != NULL:
            free(self.st)
            self.st = NULL

    cdef void _reset_state(self, int sid, bint full) noexcept nogil:
        cdef SymState* s = &self.st[sid]
        cdef int k
        for k in range(CAP):
            s.c[k] = NAN; s.o[k] = NAN; s.h[k] = NAN; s.l[k] = NAN; s.v[k] = NAN
            s.r[k] = NAN; s.rv24[k] = NAN; s.fund[k] = NAN; s.prem[k] = NAN; s.lr[k] = NAN
            s.lv[k] = NAN; s.hl2[k] = NAN; s.co2[k] = NAN
        s.n = 0
        s.pos = 0
        s.vmean24 = NAN
        if full:
            s.last_open = -1
            s.resets = 0
            s.last_fund = NAN
            s.imb = NAN
            s.micro_drift = NAN
            s.imb_ema = NAN
            s.signed_acc = 0.0
            s.book_events = 0
            s.book_events_bar = 0
            for k in range(NF):
                s.out[k] = NAN

    cpdef int symbol_index(self, str symbol) except -1:
        try:
            return self._index[symbol]
        except KeyError:
            raise KeyError(f"symbol {symbol!r} not in this FeatureEngine ({', '.join(self.symbols)})") from None

    cdef double* vector_ptr(self, int sid) noexcept nogil:
        return self.st[sid].out

    cdef int bar_update(self, int sid, long long open_time, double o, double h, double l, double c,
                        double v, double funding_rate, double mark_close) noexcept nogil:
        cdef SymState* s = &self.st[sid]
        cdef SymState* L
        cdef double* out = s.out
        cdef int status = 0, p, k, w
        cdef double m, sd, x, y, hi, lo, rv24, rv72, lret24, lr
        cdef bint have_leader
        if not (isfinite(o) and isfinite(h) and isfinite(l) and isfinite(c) and o > 0.0 and h > 0.0
                and l > 0.0 and c > 0.0 and isfinite(v) and v >= 0.0):
            return -2
        if s.last_open >= 0:
            if open_time <= s.last_open:
                return -1
            if open_time != s.last_open + self.interval_ms:
                self._reset_state(sid, False)
                s.resets += 1
                status = 1
        s.last_open = open_time
        if isfinite(funding_rate):
            s.last_fund = funding_rate
        p = (s.pos + 1) & MASK
        s.pos = p
        s.n += 1
        s.c[p] = c; s.o[p] = o; s.h[p] = h; s.l[p] = l; s.v[p] = v
        s.r[p] = log(c / s.c[ix(p, 1)]) if s.n >= 2 else NAN
        s.lv[p] = log1p(v)
        x = log(h / l)
        s.hl2[p] = x * x
        x = log(c / o)
        s.co2[p] = x * x
        s.fund[p] = s.last_fund
        s.prem[p] = (mark_close / c - 1.0) if (isfinite(mark_close) and mark_close > 0.0) else NAN

        # leader alignment: its bar for this open_time must already be in
        have_leader = False
        L = NULL
        if self.leader_id >= 0 and self.leader_id != sid:
            L = &self.st[self.leader_id]
            have_leader = L.last_open == open_time and L.n >= 1
        s.lr[p] = L.r[L.pos] if have_leader else NAN

        # --- momentum
        out[0] = s.r[p]
        out[1] = log(c / s.c[ix(p, 4)]) if s.n > 4 else NAN
        out[2] = log(c / s.c[ix(p, 12)]) if s.n > 12 else NAN
        out[3] = log(c / s.c[ix(p, 24)]) if s.n > 24 else NAN
        out[4] = log(c / s.c[ix(p, 72)]) if s.n > 72 else NAN

        # --- volatility
        if s.n >= 25:
            m = wmean(s.r, p, 24)
            rv24 = wstd(s.r, p, 24, m)
        else:
            rv24 = NAN
        if s.n >= 73:
            m = wmean(s.r, p, 72)
            rv72 = wstd(s.r, p, 72, m)
        else:
            rv72 = NAN
        s.rv24[p] = rv24
        out[5] = safe_div(out[3], rv24 * sqrt(24.0)) if s.n >= 25 else NAN
        out[6] = rv24
        out[7] = rv72
        if s.n >= 24:
            x = 0.0
            y = 0.0
            for k in range(24):
                w = ix(p, k)
                x += s.hl2[w]
                y += 0.5 * s.hl2[w] - GK_C * s.co2[w]
            out[8] = sqrt(x / 24.0 / (4.0 * LN2))
            y /= 24.0
            out[9] = sqrt(y) if y > 0.0 else 0.0
        else:
            out[8] = NAN
            out[9] = NAN
        if s.n >= 48:
            m = wmean(s.rv24, p, 24)
            out[10] = safe_div(wstd(s.rv24, p, 24, m), m)
        else:
            out[10] = NAN
        out[11] = safe_div(rv24, rv72)

        # --- mean reversion
        if s.n >= 24:
            m = wmean(s.c, p, 24)
            out[12] = safe_div(c - m, wstd(s.c, p, 24, m))
        else:
            out[12] = NAN
        if s.n >= 72:
            m = wmean(s.c, p, 72)
            out[13] = safe_div(c - m, wstd(s.c, p, 72, m))
            hi = s.h[p]
            lo = s.l[p]
            for k in range(1, 72):
                w = ix(p, k)
                if s.h[w] > hi:
                    hi = s.h[w]
                if s.l[w] < lo:
                    lo = s.l[w]
            out[14] = safe_div(c - lo, hi - lo)
        else:
            out[13] = NAN
            out[14] = NAN
        out[15] = wcorr(s.r, 0, s.r, 1, p, 24) if s.n >= 26 else NAN

        # --- volume
        if s.n >= 24:
            m = wmean(s.v, p, 24)
            s.vmean24 = m
            out[16] = safe_div(v, m)
            x = wmean(s.lv, p, 24)
            out[17] = safe_div(s.lv[p] - x, wstd(s.lv, p, 24, x))
            out[18] = (((c - l) - (h - c)) / (h - l) if h > l else 0.0) * out[16]
            out[19] = safe_div(wmean(s.v, p, 6), m)
        else:
            s.vmean24 = NAN
            out[16] = NAN
            out[17] = NAN
            out[18] = NAN
            out[19] = NAN

        # --- funding / basis
        out[20] = s.fund[p]
        out[21] = s.fund[p] - s.fund[ix(p, 24)] if s.n > 24 else NAN
        out[22] = wmean(s.fund, p, 72) if s.n >= 72 else NAN
        out[23] = s.prem[p]
        x = 0.0
        w = 0
        for k in range(24 if s.n >= 24 else <int> s.n):
            y = s.prem[ix(p, k)]
            if isfinite(y):
                x += y
                w += 1
        out[24] = x / w if w > 0 else NAN

        # --- cross-asset (nan for the leader itself, or when the leader's bar is missing)
        if have_leader:
            lr = L.r[L.pos]
            out[25] = lr
            out[26] = log(L.c[L.pos] / L.c[ix(L.pos, 4)]) if L.n > 4 else NAN
            lret24 = log(L.c[L.pos] / L.c[ix(L.pos, 24)]) if L.n > 24 else NAN
            out[29] = out[3] - lret24
        else:
            out[25] = NAN
            out[26] = NAN
            out[29] = NAN
        if L != NULL and s.n >= 73:
            out[27] = wcorr(s.r, 0, s.lr, 0, p, 72)   # nan propagates if any leader bar is missing
        else:
            out[27] = NAN
        if L != NULL and s.n >= 25:
            x = 0.0
            for k in range(24):
                w = ix(p, k)
                x += fabs(s.r[w] - s.lr[w])
            out[28] = x / 24.0
        else:
            out[28] = NAN

        # --- live-only book / flow: the book state as of this bar close
        if s.book_events > 0:
            out[30] = s.imb
            out[31] = s.micro_drift
            out[32] = s.imb_ema
            out[33] = safe_div(s.signed_acc, s.vmean24)
        else:
            out[30] = NAN
            out[31] = NAN
            out[32] = NAN
            out[33] = NAN
        s.signed_acc = 0.0
        s.book_events_bar = 0

        # --- per-bar range and efficiency (appended: the regime detector averages them over time)
        x = log(h / l)
        out[34] = x
        out[35] = (fabs(2.0 * c - h - l) + fabs(2.0 * o - h - l)) / (2.0 * (h - l)) if h > l else NAN
        return status

    cdef void book_update(self, int sid, double imbalance, double microprice, double mid,
                          double signed_volume) noexcept nogil:
        cdef SymState* s = &self.st[sid]
        s.imb = imbalance
        s.micro_drift = (microprice / mid - 1.0) if mid > 0.0 else NAN
        if s.book_events == 0 or not isfinite(s.imb_ema):
            s.imb_ema = imbalance
        else:
            s.imb_ema += EMA_ALPHA * (imbalance - s.imb_ema)
        if isfinite(signed_volume):
            s.signed_acc += signed_volume
        s.book_events += 1
        s.book_events_bar += 1
        s.out[30] = s.imb
        s.out[31] = s.micro_drift
        s.out[32] = s.imb_ema
        s.out[33] = safe_div(s.signed_acc, s.vmean24)

    # ---------------------------------------------------------------- Python-facing API

    def on_bar(self, str symbol, long long open_time_ms, double o, double h, double l, double c,
               double volume, double funding_rate=NAN, double mark_close=NAN):
        """Fold one closed bar in; return a copy of the symbol's feature vector (float64)."""
        cdef int sid = self.symbol_index(symbol)
        cdef int rc = self.bar_update(sid, open_time_ms, o, h, l, c, volume, funding_rate, mark_close)
        if rc == -1:
            raise ValueError(f"{symbol}: bar open_time {open_time_ms} is not after the last bar "
                             f"({self.st[sid].last_open})")
        if rc == -2:
            raise ValueError(f"{symbol}: invalid bar at {open_time_ms} (o={o} h={h} l={l} c={c} v={volume})")
        return self.vector(symbol)

    cpdef int update_sid(self, int sid, long long open_time_ms, double o, double h, double l, double c,
                         double volume, double funding_rate=NAN, double mark_close=NAN):
        """`on_bar` by symbol index, without raising or copying: returns the bar status (BAR_OK,
        BAR_RESET, BAR_STALE, BAR_INVALID); the vector is read through `out_view(sid)`."""
        if sid < 0 or sid >= self.nsym:
            return BAR_INVALID
        return self.bar_update(sid, open_time_ms, o, h, l, c, volume, funding_rate, mark_close)

    def out_view(self, int sid):
        """A float64 array over symbol `sid`'s live feature vector (no copy): every bar update
        rewrites it in place. It keeps the engine alive; copy it to keep a snapshot."""
        if sid < 0 or sid >= self.nsym:
            raise IndexError(f"symbol index {sid} out of range")
        cdef cnp.npy_intp dims[1]
        dims[0] = NF
        arr = cnp.PyArray_SimpleNewFromData(1, dims, cnp.NPY_FLOAT64, <void*> self.st[sid].out)
        cnp.set_array_base(arr, self)
        return arr

    def on_book(self, str symbol, double imbalance, double microprice, double mid, double signed_volume):
        """Live-only inputs, per book/trade event (plain numbers from the order book)."""
        self.book_update(self.symbol_index(symbol), imbalance, microprice, mid, signed_volume)

    def vector(self, str symbol):
        cdef int sid = self.symbol_index(symbol)
        cdef cnp.ndarray[cnp.float64_t, ndim=1] a = np.empty(NF, dtype=np.float64)
        memcpy(<void*> a.data, <void*> self.st[sid].out, NF * sizeof(double))
        return a

    def resets(self, str symbol):
        """Gap resets of `symbol` so far."""
        return self.st[self.symbol_index(symbol)].resets

    def run_batch(self, const int[::1] sid, const long long[::1] open_time, const double[::1] o,
                  const double[::1] h, const double[::1] l, const double[::1] c, const double[::1] v,
                  const double[::1] funding, const double[::1] mark, double[:, ::1] out,
                  signed char[::1] status):
        """Run bar_update over event arrays (already in feed order); row i of `out` gets the vector
        after event i and status[i] its code. The same code as on_bar, without the GIL."""
        cdef Py_ssize_t i, n = sid.shape[0]
        cdef int s
        if out.shape[0] != n or out.shape[1] != NF or status.shape[0] != n:
            raise ValueError("run_batch: output shape mismatch")
        for i in range(n):
            if sid[i] < 0 or sid[i] >= self.nsym:
                raise ValueError(f"run_batch: bad symbol id {sid[i]} at row {i}")
        with nogil:
            for i in range(n):
                s = sid[i]
                status[i] = <signed char> self.bar_update(s, open_time[i], o[i], h[i], l[i], c[i], v[i],
                                                          funding[i], mark[i])
                memcpy(&out[i, 0], self.st[s].out, NF * sizeof(double))

    @property
    def names(self):
        return list(NAMES)

    @property
    def surfaces(self):
        from kaizen.models.features import surfaces_of

        return surfaces_of(list(NAMES))

    @property
    def leader(self):
        return self.symbols[self.leader_id] if self.leader_id >= 0 else None


# ------------------------------------------------------------------ benchmarking hooks (bench/features.py)
from kaizen.ext.clock cimport now_ns as _now_ns


def time_bars(FeatureEngine fe, const int[::1] sid, const long long[::1] open_time, const double[::1] o,
              const double[::1] h, const double[::1] l, const double[::1] c, const double[::1] v,
              const double[::1] funding, const double[::1] mark, long long[::1] ns):
    """Per-call wall time (ns) of bar_update over event arrays, as the Cython hot path calls it."""
    cdef Py_ssize_t i, n = sid.shape[0]
    cdef long long t0
    with nogil:
        for i in range(n):
            t0 = _now_ns()
            fe.bar_update(sid[i], open_time[i], o[i], h[i], l[i], c[i], v[i], funding[i], mark[i])
            ns[i] = _now_ns() - t0


def time_book(FeatureEngine fe, int sid, const double[::1] imb, const double[::1] micro,
              const double[::1] mid, const double[::1] sv, long long[::1] ns):
    """Per-call wall time (ns) of book_update (one book/trade event)."""
    cdef Py_ssize_t i, n = imb.shape[0]
    cdef long long t0
    with nogil:
        for i in range(n):
            t0 = _now_ns()
            fe.book_update(sid, imb[i], micro[i], mid[i], sv[i])
            ns[i] = _now_ns() - t0


def time_book_batch(FeatureEngine fe, int sid, const double[::1] imb, const double[::1] micro,
                    const double[::1] mid, const double[::1] sv):
    """Wall time (ns) of book_update over all events in one loop: one clock pair for the whole loop,
    for a call too short to time one by one."""
    cdef Py_ssize_t i, n = imb.shape[0]
    cdef long long t0, t1
    with nogil:
        t0 = _now_ns()
        for i in range(n):
            fe.book_update(sid, imb[i], micro[i], mid[i], sv[i])
        t1 = _now_ns()
    return t1 - t0
