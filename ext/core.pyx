# cython: language_level=3
"""The decision core (see core.pxd): raw combined-stream frame → book → features → (at a bar close)
regime → Thompson draw → compiled signal → exit model → sizing → risk → order bytes.

`on_frame_c(ptr, len, recv_ns)` reads the frame in place (a picows frame's buffer is only valid
inside its callback, so nothing here keeps a pointer past the call). Depth levels go through
kaizen.ext.depth's C scanner into scratch arrays owned by the core and are applied only when both
sides parsed, as `apply_depth` does. Every other step is a C call through the leaves' .pxd; the
steady path creates no Python object (tests/hotpath/test_core_alloc.py counts allocations).

Orders are written into a fixed buffer (`order_bytes()` copies it for Python); the cpdef hook
`on_order(n)` is where a venue adapter sends it (the default does nothing, which is the tick-to-
trade benchmark's venue stub). With `paper_fill` the order is assumed filled at the touch, which
moves the position and feeds closed-trade returns back to the bandit.
"""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_GET_SIZE
from libc.math cimport NAN, ceil, fabs, floor, isfinite, isnan
from libc.stdint cimport int64_t
from libc.stdlib cimport free, malloc
from libc.string cimport memchr, memcmp, memcpy, memset

from kaizen.ext.book cimport OrderBook
from kaizen.ext.depth cimport parse_fixed, parse_levels_at
from kaizen.ext.ensemble cimport CompiledEnsemble
from kaizen.ext.features cimport FeatureEngine
from kaizen.ext.forest cimport Forest
from kaizen.ext.regime cimport Hysteresis, RegimeFeatures, NDERIVED
from kaizen.ext.thompson cimport ThompsonPortfolio

import numpy as np


from kaizen.ext.clock cimport now_ns  # CLOCK_MONOTONIC, as time.perf_counter_ns


def monotonic_ns():
    return now_ns()


cdef Py_ssize_t SCRATCH = 8192   # levels per side in one diff (Binance sends at most 1000)


cdef inline Py_ssize_t _find(const unsigned char* p, Py_ssize_t n, Py_ssize_t at, const char* key,
                             Py_ssize_t klen) noexcept nogil:
    """Index just past the first `key` (which starts with '"') at or after `at`, or -1."""
    cdef const unsigned char* q
    while at + klen <= n:
        q = <const unsigned char*>memchr(p + at, 34, n - at)
        if q == NULL:
            return -1
        at = q - p
        if at + klen > n:
            return -1
        if memcmp(p + at, key, klen) == 0:
            return at + klen
        at += 1
    return -1


cdef inline Py_ssize_t _int(const unsigned char* p, Py_ssize_t n, Py_ssize_t i, int64_t* out) noexcept nogil:
    """Unsigned decimal at p[i]; index after it, or -1."""
    cdef int64_t v = 0
    cdef Py_ssize_t s = i
    while i < n and p[i] >= 48 and p[i] <= 57:
        v = v * 10 + (p[i] - 48)
        i += 1
    if i == s:
        return -1
    out[0] = v
    return i


cdef inline Py_ssize_t _fmt_fixed(char* out, int64_t v, int dp) noexcept nogil:
    """v scaled by 10**dp → ASCII decimal with dp decimals; returns the length."""
    cdef char tmp[32]
    cdef int k = 0, i, lead
    cdef Py_ssize_t m = 0
    if v < 0:
        out[m] = 45
        m += 1
        v = -v
    while True:
        tmp[k] = <char>(48 + v % 10)
        v //= 10
        k += 1
        if v == 0 and k > dp:
            break
    for i in range(k - 1, -1, -1):
        out[m] = tmp[i]
        m += 1
        if i == dp and dp > 0:
            out[m] = 46
            m += 1
    return m


cdef inline Py_ssize_t _put(char* out, const char* s, Py_ssize_t n) noexcept nogil:
    memcpy(out, s, n)
    return n


cdef int64_t* _sbt = NULL
cdef int64_t* _sbl = NULL
cdef int64_t* _sat = NULL
cdef int64_t* _sal = NULL


cdef int _scratch() except -1:
    global _sbt, _sbl, _sat, _sal
    if _sbt != NULL:
        return 0
    _sbt = <int64_t*>malloc(SCRATCH * sizeof(int64_t))
    _sbl = <int64_t*>malloc(SCRATCH * sizeof(int64_t))
    _sat = <int64_t*>malloc(SCRATCH * sizeof(int64_t))
    _sal = <int64_t*>malloc(SCRATCH * sizeof(int64_t))
    if _sbt == NULL or _sbl == NULL or _sat == NULL or _sal == NULL:
        raise MemoryError()
    return 0


cdef class DecisionCore:
    """One symbol's decision path. Models are given compiled (kaizen.models.compile.load_forest,
    CompiledEnsemble); see bench/tick_to_trade.py for a complete construction."""

    def __init__(self, OrderBook book, FeatureEngine features, str symbol, *,
                 Forest regime_forest, engine_cols, Hysteresis hysteresis, RegimeFeatures regime_features,
                 ThompsonPortfolio bandit, variants, CompiledEnsemble signal, Forest exit_model, exit_cols,
                 int i_rv, long long interval_ms=3_600_000, double equity=10_000.0,
                 double risk_fraction=0.5, double vol_target=0.005, double exit_threshold=0.6,
                 double fee_rate=0.0004, long long max_position_lots=1_000_000,
                 long long max_order_lots=1_000_000, double max_notional=50_000.0,
                 double price_band_bps=5.0, bint paper_fill=True, long long bar_every_msgs=0,
                 str client_prefix="kz"):
        cdef int j
        _scratch()
        self.book, self.features, self.sid = book, features, features.symbol_index(symbol)
        if features.nsym != 1:
            raise ValueError("DecisionCore drives one symbol: give it a one-symbol FeatureEngine")
        b = symbol.encode("ascii")
        p = client_prefix.encode("ascii")
        if len(b) >= 24 or len(p) >= 16:
            raise ValueError("symbol or client prefix too long")
        memcpy(self.sym, <char*>b, len(b))
        self.sym_len = len(b)
        memcpy(self.cid_prefix, <char*>p, len(p))
        self.cid_prefix_len = len(p)
        # regime detector: its forest reads the engine columns then the derived features
        cols = [int(c) for c in engine_cols]
        if len(cols) + NDERIVED != regime_forest.num_features or len(cols) + NDERIVED > MAX_IN:
            raise ValueError(f"regime forest reads {regime_forest.num_features} inputs, "
                             f"given {len(cols)} engine columns + {NDERIVED} derived")
        if regime_forest.num_outputs > MAX_K or regime_forest.num_outputs < 2:
            raise ValueError("regime forest must output 2..16 class probabilities")
        self.n_engine_cols = len(cols)
        for j in range(len(cols)):
            self.engine_cols[j] = cols[j]
        self.k_regimes = regime_forest.num_outputs
        self.regime_forest, self.hysteresis, self.regime_features = regime_forest, hysteresis, regime_features
        if signal.num_extra not in (0, self.k_regimes):
            raise ValueError("signal ensemble's extra inputs must be the regime probabilities or none")
        self.signal = signal
        ecols = [int(c) for c in exit_cols]
        if len(ecols) + 4 != exit_model.num_features or len(ecols) + 4 > MAX_IN:
            raise ValueError(f"exit model reads {exit_model.num_features} inputs, given {len(ecols)} + 4 state")
        self.n_exit_cols = len(ecols)
        for j in range(len(ecols)):
            self.exit_cols[j] = ecols[j]
        self.exit_model = exit_model
        variants = list(variants)
        if not 0 < len(variants) <= MAX_VARIANTS or len(variants) != bandit.n_variants:
            raise ValueError("variants: one (threshold, size) per bandit arm, at most 16")
        self.n_variants = len(variants)
        for j, (thr, size) in enumerate(variants):
            self.v_threshold[j] = float(thr)
            self.v_size[j] = float(size)
        self.bandit = bandit
        self.i_rv = i_rv
        self.interval_ms = interval_ms
        self.equity, self.risk_fraction, self.vol_target = equity, risk_fraction, vol_target
        self.exit_threshold, self.fee_rate = exit_threshold, fee_rate
        self.max_position_lots, self.max_order_lots = max_position_lots, max_order_lots
        self.max_notional, self.price_band_bps = max_notional, price_band_bps
        self.paper_fill, self.bar_every_msgs = paper_fill, bar_every_msgs
        self.snap_id = -1
        self.synced = False
        self.last_mid = NAN
        self.regime = -1
        self.arm = 0
        self.p_exit = NAN
        self.p_signal = NAN
        self._reset_bar(-1)

    cdef void _reset_bar(self, int64_t open_time) noexcept:
        self.bar.open_time = open_time
        self.bar.o = NAN
        self.bar.h = NAN
        self.bar.l = NAN
        self.bar.c = NAN
        self.bar.v = 0.0
        self.bar.trades = 0
        self.bar.msgs = 0

    # ------------------------------------------------------------------ set-up (not the hot path)

    def load_snapshot(self, bids, asks, long long last_update_id):
        """A REST depth snapshot ([[price, qty], ...] as strings or raw JSON bytes): the book
        restarts from it and the next diffs must bridge it."""
        from kaizen.ext.depth import apply_depth
        import json
        self.book.clear()
        if not isinstance(bids, (bytes, bytearray)):
            bids = json.dumps(bids).encode()
            asks = json.dumps(asks).encode()
        if apply_depth(self.book, bids, asks) < 0:
            from kaizen.ext.depth import last_error
            raise ValueError(f"snapshot rejected: {last_error()}")
        self.book.last_update_id = last_update_id
        self.snap_id = last_update_id
        self.synced = False
        self.book.valid = False
        self._mid()

    def warm_bar(self, long long open_time_ms, double o, double h, double l, double c, double v):
        """Fold a historical bar (features and regime state), no decision; sets the next bar's open."""
        cdef int rc = self.features.bar_update(self.sid, open_time_ms, o, h, l, c, v, NAN, NAN)
        if rc < 0:
            raise ValueError(f"warm_bar: bar at {open_time_ms} rejected ({rc})")
        self.regime_features._update(self.features.vector_ptr(self.sid), self.derived)
        self._reset_bar(open_time_ms + self.interval_ms)
        self.next_close_ms = open_time_ms + 2 * self.interval_ms

    # ------------------------------------------------------------------ the hot path

    cdef double _mid(self) noexcept:
        cdef int64_t bt = self.book.best_bid_ticks_c(), at = self.book.best_ask_ticks_c()
        cdef int64_t t1[1]
        cdef int64_t l1[1]
        if self.book.depth_c(True, t1, l1, 1) < 1 or self.book.depth_c(False, t1, l1, 1) < 1:
            self.last_mid = NAN
        else:
            self.last_mid = 0.5 * (bt + at) * self.book.tick_size
        return self.last_mid

    cdef void _book_event(self, double signed_volume) noexcept:
        cdef int64_t bt[BOOK_K]
        cdef int64_t bl[BOOK_K]
        cdef int64_t at[BOOK_K]
        cdef int64_t al[BOOK_K]
        cdef Py_ssize_t nb = self.book.depth_c(True, bt, bl, BOOK_K)
        cdef Py_ssize_t na = self.book.depth_c(False, at, al, BOOK_K)
        cdef int64_t vb = 0, va = 0
        cdef Py_ssize_t i
        cdef double mid, micro, imb, ts = self.book.tick_size
        if nb == 0 or na == 0:
            self.features.book_update(self.sid, NAN, NAN, NAN, signed_volume)
            return
        for i in range(nb):
            vb += bl[i]
        for i in range(na):
            va += al[i]
        mid = 0.5 * (bt[0] + at[0]) * ts
        micro = (bt[0] * <double>al[0] + at[0] * <double>bl[0]) / <double>(al[0] + bl[0]) * ts
        imb = <double>(vb - va) / <double>(vb + va) if vb + va > 0 else NAN
        self.last_mid = mid
        self.features.book_update(self.sid, imb, micro, mid, signed_volume)

    cdef int _depth(self, const unsigned char* p, Py_ssize_t n, Py_ssize_t at) noexcept:
        cdef int64_t U = 0, u = 0, pu = 0
        cdef Py_ssize_t i, bs, be, as_, ae, nb, na
        cdef int err = 0
        cdef OrderBook book = self.book
        self.depth_msgs += 1
        i = _find(p, n, at, b'"U":', 4)
        if i < 0 or _int(p, n, i, &U) < 0:
            return K_DEPTH | K_ERROR
        i = _find(p, n, i, b'"u":', 4)
        if i < 0 or _int(p, n, i, &u) < 0:
            return K_DEPTH | K_ERROR
        i = _find(p, n, i, b'"pu":', 5)
        if i < 0 or _int(p, n, i, &pu) < 0:
            return K_DEPTH | K_ERROR
        if not self.synced:
            if self.snap_id < 0 or u < self.snap_id:
                return K_DEPTH | K_SKIP      # before a snapshot, or older than it
            # bridged: U <= id <= u (Binance's rule), or the diff follows the snapshot directly
            # (pu == id: the snapshot was taken at a diff's end, as the simulator's are)
            if U > self.snap_id and pu != self.snap_id:   # older than the stream: resync
                self.gaps += 1
                self.snap_id = -1
                return K_DEPTH | K_SKIP
        elif pu != self.last_u:
            self.gaps += 1                   # lost a diff: the book is wrong until a new snapshot
            self.synced = False
            self.snap_id = -1
            book.valid = False
            return K_DEPTH | K_SKIP
        # both sides parse (each in one pass, stopping at its closing ']') before either applies
        bs = _find(p, n, i, b'"b":', 4)
        if bs < 0:
            return K_DEPTH | K_ERROR
        nb = parse_levels_at(p + bs, n - bs, book.price_dp, book.tick_units, book.qty_dp, book.lot_units,
                             _sbt, _sbl, SCRATCH, &err, &be)
        if nb < 0:
            return K_DEPTH | K_ERROR
        as_ = _find(p, n, bs + be, b'"a":', 4)
        if as_ < 0:
            return K_DEPTH | K_ERROR
        na = parse_levels_at(p + as_, n - as_, book.price_dp, book.tick_units, book.qty_dp, book.lot_units,
                             _sat, _sal, SCRATCH, &err, &ae)
        if na < 0:
            return K_DEPTH | K_ERROR
        book.apply_levels(True, _sbt, _sbl, nb)
        book.apply_levels(False, _sat, _sal, na)
        book.last_update_id = u
        book.valid = True
        self.synced = True
        self.last_u = u
        return K_DEPTH

    cdef int _trade(self, const unsigned char* p, Py_ssize_t n, Py_ssize_t at) noexcept:
        cdef Py_ssize_t i, e
        cdef int64_t v = 0, q = 0
        cdef double px, qty
        cdef OrderBook book = self.book
        self.trade_msgs += 1
        i = _find(p, n, at, b'"p":"', 5)
        if i < 0:
            return K_TRADE | K_ERROR
        e = i
        while e < n and p[e] != 34:
            e += 1
        if parse_fixed(p + i, e - i, book.price_dp, &v) != 0 or v <= 0:
            return K_TRADE | K_ERROR
        i = _find(p, n, e, b'"q":"', 5)
        if i < 0:
            return K_TRADE | K_ERROR
        e = i
        while e < n and p[e] != 34:
            e += 1
        if parse_fixed(p + i, e - i, book.qty_dp, &q) != 0:
            return K_TRADE | K_ERROR
        px = (v // book.tick_units) * book.tick_size
        qty = (q // book.lot_units) * book.lot_size
        i = _find(p, n, e, b'"m":', 4)
        if i < 0 or i >= n:
            return K_TRADE | K_ERROR
        if self.bar.trades == 0:
            self.bar.o = px
            self.bar.h = px
            self.bar.l = px
        elif px > self.bar.h:
            self.bar.h = px
        elif px < self.bar.l:
            self.bar.l = px
        self.bar.c = px
        self.bar.v += qty
        self.bar.trades += 1
        # buyer is the maker: a sell hit the bid
        self._book_event(-qty if p[i] == 116 else qty)
        return K_TRADE

    cdef int on_frame_c(self, const unsigned char* p, Py_ssize_t n, int64_t recv_ns) noexcept:
        """One combined-stream frame; returns K_* flags. Stage stamps land in self.stamps."""
        cdef Py_ssize_t i
        cdef int kind = 0
        cdef int64_t ev = 0
        cdef unsigned char c, c2
        memset(self.stamps, 0, sizeof(self.stamps))
        self.stamps[T_RECV] = recv_ns
        self.msgs += 1
        i = _find(p, n, 0, b'"e":"', 5)
        if i < 0 or i >= n:
            self.errors += 1
            return K_ERROR
        c = p[i]
        c2 = p[i + 1] if i + 1 < n else 0
        if self.bar_every_msgs <= 0:
            # bars on event time: a message past the bar's end closes it first
            i = _find(p, n, i, b'"E":', 4)
            if i >= 0 and _int(p, n, i, &ev) >= 0 and ev >= self.next_close_ms and self.bar.open_time >= 0:
                kind |= self._close_bar()
        if c == 100:        # depthUpdate
            kind |= self._depth(p, n, 0)
            self.stamps[T_BOOK] = now_ns()
            if not (kind & (K_ERROR | K_SKIP)):
                self._book_event(NAN)
        elif c == 116 or (c == 97 and c2 == 103):   # trade | aggTrade
            kind |= self._trade(p, n, 0)
            self.stamps[T_BOOK] = now_ns()
        elif c == 98:       # bookTicker: the diff stream carries the book; counted for liveness
            self.ticker_msgs += 1
            kind |= K_TICKER
            self.stamps[T_BOOK] = now_ns()
        else:
            self.stamps[T_BOOK] = now_ns()
        self.stamps[T_FEAT] = now_ns()
        if kind & K_ERROR:
            self.errors += 1
        elif kind & K_SKIP:
            self.skipped += 1
        self.bar.msgs += 1
        if self.bar_every_msgs > 0 and self.bar.msgs >= self.bar_every_msgs and self.bar.open_time >= 0:
            kind |= self._close_bar()
        self.stamps[T_KIND] = kind
        return kind

    cdef int _close_bar(self) noexcept:
        cdef int rc, kind = K_BAR
        cdef double o = self.bar.o, h = self.bar.h, l = self.bar.l, c = self.bar.c
        cdef int64_t t = self.bar.open_time
        if self.bar.trades == 0:          # no trade in the bar: a flat bar at the mid
            if isnan(self.last_mid):
                self._reset_bar(t + self.interval_ms)
                self.next_close_ms += self.interval_ms
                return 0
            o = h = l = c = self.last_mid
        rc = self.features.bar_update(self.sid, t, o, h, l, c, self.bar.v, NAN, NAN)
        self._reset_bar(t + self.interval_ms)
        self.next_close_ms += self.interval_ms
        self.bars_closed += 1
        self.stamps[T_FEAT] = now_ns()
        if rc < 0:
            self.errors += 1
            return kind | K_ERROR
        return kind | self._decide()

    cdef int _decide(self) noexcept:
        cdef const double* vec = self.features.vector_ptr(self.sid)
        cdef int j, side, pos_side, nE = self.n_engine_cols
        cdef double p, edge, thr, vol, scale, notional, mid, extra0 = 0.0, ur
        cdef int64_t lots, target, delta, pos = self.position_lots, cap, band, price
        cdef bint increasing
        cdef int kind = 0
        cdef OrderBook book = self.book
        if pos != 0:
            self.bars_held += 1
        # regime: derived features, detector forest, hysteresis
        self.regime_features._update(vec, self.derived)
        for j in range(nE):
            self.regime_row[j] = <float>vec[self.engine_cols[j]]
        for j in range(NDERIVED):
            self.regime_row[nE + j] = <float>self.derived[j]
        self.regime_forest.predict_ptr(self.regime_row, self.probs)
        self.regime = self.hysteresis._step(self.probs)
        self.stamps[T_REGIME] = now_ns()
        # Thompson: a trade in progress stays with the variant that opened it
        if pos == 0:
            self.arm = self.bandit.choose_c()
        self.stamps[T_DRAW] = now_ns()
        if self.signal.num_extra:
            p = self.signal.predict_c(vec, self.probs)
        else:
            p = self.signal.predict_c(vec, &extra0)
        self.p_signal = p
        self.stamps[T_SIGNAL] = now_ns()
        edge = p - 0.5
        thr = self.v_threshold[self.arm]
        mid = self.last_mid
        # exit model: for a position, should it close now; when flat, would the candidate entry
        # be closed at once (then it is not taken)
        pos_side = 1 if pos > 0 else (-1 if pos < 0 else (1 if edge > 0 else -1))
        ur = pos_side * (mid / self.entry_price - 1.0) if pos != 0 and self.entry_price > 0 else 0.0
        for j in range(self.n_exit_cols):
            self.exit_row[j] = <float>vec[self.exit_cols[j]]
        self.exit_row[self.n_exit_cols] = <float>pos_side
        self.exit_row[self.n_exit_cols + 1] = <float>self.bars_held
        self.exit_row[self.n_exit_cols + 2] = <float>ur
        self.exit_row[self.n_exit_cols + 3] = <float>self.regime
        self.exit_model.predict_ptr(self.exit_row, &self.p_exit)
        self.stamps[T_EXIT] = now_ns()
        # sizing: a volatility-scaled share of equity per the variant's size
        vol = vec[self.i_rv]
        if not isfinite(vol) or vol < 1e-4:
            vol = 1e-4
        scale = self.vol_target / vol
        if scale > 3.0:
            scale = 3.0
        if not isfinite(mid) or mid <= 0.0:
            self.rejects += 1
            self.stamps[T_RISK] = now_ns()
            return K_REJECT
        notional = self.equity * self.risk_fraction * self.v_size[self.arm] * scale
        lots = <int64_t>floor(notional / (mid * book.lot_size))
        if pos == 0:
            side = 1 if edge > thr else (-1 if edge < -thr else 0)
            target = side * lots if self.p_exit < self.exit_threshold else 0
        elif self.p_exit >= self.exit_threshold or edge * pos_side < -thr:
            target = 0
        else:
            target = pos
        # risk: kill switch (no new risk), position and notional caps, order size, a sane book
        increasing = (target > 0 and target > pos) or (target < 0 and target < pos)
        if self.kill_switch and increasing:
            target = pos if (pos > 0) == (target > 0) or pos == 0 else 0
            kind |= K_REJECT
        cap = self.max_position_lots
        if book.lot_size * mid > 0:
            cap = min(cap, <int64_t>floor(self.max_notional / (mid * book.lot_size)))
        if target > cap:
            target = cap
        elif target < -cap:
            target = -cap
        delta = target - pos
        if delta > self.max_order_lots:
            delta = self.max_order_lots
        elif delta < -self.max_order_lots:
            delta = -self.max_order_lots
        if delta != 0 and (not book.valid or book.best_bid_ticks_c() >= book.best_ask_ticks_c()):
            kind |= K_REJECT
            delta = 0
        self.stamps[T_RISK] = now_ns()
        if kind & K_REJECT:
            self.rejects += 1
        if delta == 0:
            return kind
        # a marketable IOC limit at most price_band_bps through the touch
        band = <int64_t>ceil(mid * self.price_band_bps * 1e-4 / book.tick_size)
        if delta > 0:
            price = book.best_ask_ticks_c() + band
        else:
            price = book.best_bid_ticks_c() - band
        self.order_len = self._encode(1 if delta > 0 else -1, delta if delta > 0 else -delta, price,
                                      not increasing)
        self.orders += 1
        self.stamps[T_ORDER] = now_ns()
        self.on_order(self.order_len)
        if self.paper_fill:
            self._fill(1 if delta > 0 else -1, delta if delta > 0 else -delta,
                       (book.best_ask_ticks_c() if delta > 0 else book.best_bid_ticks_c()) * book.tick_size)
        return kind | K_ORDER

    cdef Py_ssize_t _encode(self, int side, int64_t lots, int64_t price_ticks, bint reduce_only) noexcept:
        """Binance order parameters (query-string form) into the fixed buffer."""
        cdef char* o = self.obuf
        cdef Py_ssize_t m = 0
        cdef OrderBook book = self.book
        self.cid_seq += 1
        self.order_side = side
        self.order_lots = lots
        self.order_price_ticks = price_ticks
        self.order_reduce_only = reduce_only
        self.order_seq = self.cid_seq
        m += _put(o + m, b"symbol=", 7)
        m += _put(o + m, self.sym, self.sym_len)
        if side > 0:
            m += _put(o + m, b"&side=BUY", 9)
        else:
            m += _put(o + m, b"&side=SELL", 10)
        m += _put(o + m, b"&type=LIMIT&timeInForce=IOC&quantity=", 37)
        m += _fmt_fixed(o + m, lots * book.lot_units, book.qty_dp)
        m += _put(o + m, b"&price=", 7)
        m += _fmt_fixed(o + m, price_ticks * book.tick_units, book.price_dp)
        if reduce_only:
            m += _put(o + m, b"&reduceOnly=true", 16)
        m += _put(o + m, b"&newClientOrderId=", 18)
        m += _put(o + m, self.cid_prefix, self.cid_prefix_len)
        o[m] = 45
        m += 1
        m += _fmt_fixed(o + m, self.cid_seq, 0)
        return m

    cdef void _fill(self, int side, int64_t lots, double price) noexcept:
        cdef int64_t pos = self.position_lots, new = pos + side * lots, closed
        cdef double ret
        if pos == 0:
            self.entry_price = price
            self.bars_held = 0
            self.entry_arm = self.arm
        elif (pos > 0) != (side > 0):
            closed = lots if lots < (pos if pos > 0 else -pos) else (pos if pos > 0 else -pos)
            ret = (1.0 if pos > 0 else -1.0) * (price / self.entry_price - 1.0) - 2.0 * self.fee_rate
            self.bandit.update_c(self.entry_arm, ret * 1e4, 1.0)   # reward in bps, net of fees
            if new != 0 and (new > 0) != (pos > 0):
                self.entry_price = price
                self.bars_held = 0
                self.entry_arm = self.arm
        else:
            self.entry_price = (self.entry_price * (pos if pos > 0 else -pos) + price * lots) / \
                               ((pos if pos > 0 else -pos) + lots)
        self.position_lots = new

    cpdef int on_order(self, Py_ssize_t n) except -1:
        """Hook: the order's bytes are obuf[:n] (order_bytes()); a venue adapter overrides this.
        The default sends nothing: the benchmark's venue stub is the T_ORDER stamp."""
        return 0

    cpdef int on_bytes(self, bytes frame, int64_t recv_ns):
        """One frame held in a bytes object (tests, replay from Python)."""
        return self.on_frame_c(<const unsigned char*>PyBytes_AS_STRING(frame), PyBytes_GET_SIZE(frame),
                               recv_ns)

    # ------------------------------------------------------------------ Python-facing views

    def order_bytes(self):
        """The latest encoded order (a copy)."""
        return self.obuf[:self.order_len]

    def stage_stamps(self):
        """Stage stamps (ns, 0 = stage not run) and flags of the latest message."""
        return [self.stamps[j] for j in range(NTRACE)]

    def regime_probs(self):
        return [self.probs[j] for j in range(self.k_regimes)]

    def swap_models(self, *, CompiledEnsemble signal=None, Forest exit_model=None, Forest regime_forest=None):
        """Promote new models. The loop calls this between two frames (the core runs frames under
        the GIL, so no frame sees half a swap); shapes are checked first, so a bad model is refused
        and the old ones stay."""
        if signal is not None and (signal.num_features != self.signal.num_features
                                   or signal.num_extra not in (0, self.k_regimes)):
            raise ValueError("swap_models: the new signal reads a different feature vector")
        if exit_model is not None and exit_model.num_features != self.exit_model.num_features:
            raise ValueError("swap_models: the new exit model reads a different input row")
        if regime_forest is not None and (regime_forest.num_features != self.regime_forest.num_features
                                          or regime_forest.num_outputs != self.k_regimes):
            raise ValueError("swap_models: the new regime detector has a different shape")
        if signal is not None:
            self.signal = signal
        if exit_model is not None:
            self.exit_model = exit_model
        if regime_forest is not None:
            self.regime_forest = regime_forest

    def set_position(self, long long lots, double entry_price):
        """Adopt a position (restart, or fills the venue reported)."""
        self.position_lots = lots
        self.entry_price = entry_price
        self.bars_held = 0

    def on_fill(self, int side, long long lots, double price):
        """A fill the venue reported (when paper_fill is off)."""
        if side not in (1, -1) or lots <= 0 or not price > 0:
            raise ValueError("on_fill: side +1/-1, lots > 0, price > 0")
        self._fill(side, lots, price)

    @property
    def synced_book(self):
        return self.synced

    def counters(self):
        return {"msgs": self.msgs, "depth": self.depth_msgs, "trade": self.trade_msgs,
                "ticker": self.ticker_msgs, "bars": self.bars_closed, "orders": self.orders,
                "rejects": self.rejects, "errors": self.errors, "skipped": self.skipped, "gaps": self.gaps}

    def replay(self, const unsigned char[::1] buf, const int64_t[::1] offsets, int64_t[:, ::1] trace=None,
               Py_ssize_t start=0, Py_ssize_t stop=-1):
        """Frames buf[offsets[i]:offsets[i+1]] for i in [start, stop), each stamped at entry (the
        frame's arrival) from C; row i - start of `trace` (NTRACE columns) gets its stage stamps."""
        cdef Py_ssize_t i, j, nmsg = offsets.shape[0] - 1
        cdef int64_t t0
        if stop < 0 or stop > nmsg:
            stop = nmsg
        if trace is not None and (trace.shape[0] < stop - start or trace.shape[1] != NTRACE):
            raise ValueError(f"trace must be ({stop - start}, {NTRACE})")
        for i in range(start, stop):
            t0 = now_ns()
            self.on_frame_c(&buf[offsets[i]], offsets[i + 1] - offsets[i], t0)
            if trace is not None:
                for j in range(NTRACE):
                    trace[i - start, j] = self.stamps[j]
        return stop - start


STAGES = ("book", "features", "regime", "draw", "signal", "exit", "risk", "order")
FLAGS = {"depth": K_DEPTH, "trade": K_TRADE, "ticker": K_TICKER, "bar": K_BAR, "order": K_ORDER,
         "reject": K_REJECT, "error": K_ERROR, "skip": K_SKIP}
NCOLS = NTRACE
