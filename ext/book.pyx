# cython: language_level=3
"""L2 order book with integer ticks: dense window around the touch + capped sorted overflow.

Why this shape: nearly all of Binance's diff traffic lands within a few hundred ticks of the
touch, so a flat array indexed by tick makes those updates a load and a store. Binance also
sends levels far from the touch (thousands of ticks away); those go to a sorted overflow array
per side, capped at `max_far_levels` (the farthest is dropped and counted when full), so memory
stays bounded whatever the venue sends.
"""

from libc.math cimport NAN, llround, fabs, pow as cpow
from libc.stdint cimport INT64_MIN, int32_t, int64_t
from libc.stdlib cimport calloc, free, malloc
from libc.string cimport memmove, memset

cdef int64_t KEY_NONE = INT64_MIN


cdef int _side_init(BookSide* s, int32_t width, int32_t cap) except -1:
    s.width = width
    s.base = 0
    s.n_dense = 0
    s.best = KEY_NONE
    s.ov_n = 0
    s.ov_cap = cap
    s.dropped = 0
    s.dense = <int64_t*>calloc(width, sizeof(int64_t))
    s.ov_key = <int64_t*>malloc(cap * sizeof(int64_t))
    s.ov_qty = <int64_t*>malloc(cap * sizeof(int64_t))
    if s.dense == NULL or s.ov_key == NULL or s.ov_qty == NULL:
        raise MemoryError()
    return 0


cdef void _side_free(BookSide* s) noexcept nogil:
    free(s.dense)
    free(s.ov_key)
    free(s.ov_qty)
    s.dense = NULL
    s.ov_key = NULL
    s.ov_qty = NULL


cdef void _side_clear(BookSide* s) noexcept nogil:
    memset(s.dense, 0, s.width * sizeof(int64_t))
    s.n_dense = 0
    s.ov_n = 0
    s.best = KEY_NONE


cdef inline int32_t _ov_find(BookSide* s, int64_t key) noexcept nogil:
    """First index with ov_key[i] >= key (lower bound)."""
    cdef int32_t lo = 0, hi = s.ov_n, mid
    while lo < hi:
        mid = (lo + hi) >> 1
        if s.ov_key[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    return lo


cdef void _ov_set(BookSide* s, int64_t key, int64_t lots) noexcept nogil:
    cdef int32_t i = _ov_find(s, key)
    if i < s.ov_n and s.ov_key[i] == key:
        if lots > 0:
            s.ov_qty[i] = lots
        else:
            memmove(&s.ov_key[i], &s.ov_key[i + 1], (s.ov_n - i - 1) * sizeof(int64_t))
            memmove(&s.ov_qty[i], &s.ov_qty[i + 1], (s.ov_n - i - 1) * sizeof(int64_t))
            s.ov_n -= 1
        return
    if lots <= 0:
        return
    if s.ov_n == s.ov_cap:
        # Full: drop the farthest level (index 0), unless the new one is farther still.
        s.dropped += 1
        if i == 0:
            return
        memmove(&s.ov_key[0], &s.ov_key[1], (i - 1) * sizeof(int64_t))
        memmove(&s.ov_qty[0], &s.ov_qty[1], (i - 1) * sizeof(int64_t))
        i -= 1
    else:
        memmove(&s.ov_key[i + 1], &s.ov_key[i], (s.ov_n - i) * sizeof(int64_t))
        memmove(&s.ov_qty[i + 1], &s.ov_qty[i], (s.ov_n - i) * sizeof(int64_t))
        s.ov_n += 1
    s.ov_key[i] = key
    s.ov_qty[i] = lots


cdef void _recenter(BookSide* s) noexcept nogil:
    """Move the window so the best key sits in its middle; spill/pull levels to/from overflow.

    All levels are <= best, so nothing lies above the new window; levels below it go to the end
    of the overflow (they are larger than every overflow key), overflow keys inside it come in.
    """
    cdef int64_t newbase = s.best - s.width // 2
    cdef int64_t shift, k
    cdef int32_t i
    if s.best == KEY_NONE or newbase == s.base:
        return
    if newbase > s.base:
        shift = newbase - s.base
        if shift > s.width:
            shift = s.width
        for i in range(<int32_t>shift):
            if s.dense[i] > 0:
                _ov_set(s, s.base + i, s.dense[i])
                s.n_dense -= 1
        if shift < s.width:
            memmove(&s.dense[0], &s.dense[shift], (s.width - shift) * sizeof(int64_t))
        memset(&s.dense[s.width - shift], 0, shift * sizeof(int64_t))
    else:
        shift = s.base - newbase
        if shift >= s.width:
            # No old dense slot survives; they are all above best, i.e. empty.
            memset(s.dense, 0, s.width * sizeof(int64_t))
            s.n_dense = 0
        else:
            memmove(&s.dense[shift], &s.dense[0], (s.width - shift) * sizeof(int64_t))
            memset(&s.dense[0], 0, shift * sizeof(int64_t))
    s.base = newbase
    while s.ov_n > 0 and s.ov_key[s.ov_n - 1] >= newbase:
        k = s.ov_key[s.ov_n - 1]
        if k < newbase + s.width:
            s.dense[k - newbase] = s.ov_qty[s.ov_n - 1]
            s.n_dense += 1
        s.ov_n -= 1


cdef inline void _find_best_below(BookSide* s, int64_t from_key) noexcept nogil:
    """Best := the largest key < from_key that has quantity."""
    cdef int64_t i = from_key - 1 - s.base
    if i >= s.width:
        i = s.width - 1
    if s.n_dense > 0:
        while i >= 0:
            if s.dense[i] > 0:
                s.best = s.base + i
                if i < (s.width >> 3) and s.ov_n > 0:
                    _recenter(s)
                return
            i -= 1
    if s.ov_n > 0:
        s.best = s.ov_key[s.ov_n - 1]
        _recenter(s)   # bring the levels just below the new touch into the window
    else:
        s.best = KEY_NONE


cdef inline void _side_set(BookSide* s, int64_t key, int64_t lots) noexcept nogil:
    cdef int64_t idx = key - s.base
    cdef int64_t old
    if 0 <= idx < s.width:
        old = s.dense[idx]
        s.dense[idx] = lots
        if lots > 0:
            if old == 0:
                s.n_dense += 1
            if key > s.best:
                s.best = key
                if idx > s.width - (s.width >> 3):
                    _recenter(s)
        elif old > 0:
            s.n_dense -= 1
            if key == s.best:
                _find_best_below(s, key)
        return
    if idx < 0:
        # Below the window: a far level, unless the window is empty and this becomes the touch.
        _ov_set(s, key, lots)
        if lots > 0:
            if s.best == KEY_NONE or key > s.best:
                s.best = key
                _recenter(s)
        elif key == s.best:
            _find_best_below(s, key)
        return
    # Above the window: only levels with quantity matter; the touch moved up past the window.
    if lots > 0:
        s.best = key
        _recenter(s)
        s.dense[key - s.base] = lots
        s.n_dense += 1


cdef inline int64_t _side_qty(BookSide* s, int64_t key) noexcept nogil:
    cdef int64_t idx = key - s.base
    cdef int32_t i
    if 0 <= idx < s.width:
        return s.dense[idx]
    i = _ov_find(s, key)
    if i < s.ov_n and s.ov_key[i] == key:
        return s.ov_qty[i]
    return 0


cdef Py_ssize_t _side_walk(BookSide* s, int64_t* keys, int64_t* lots, Py_ssize_t n) noexcept nogil:
    """Up to n levels from the touch outward."""
    cdef Py_ssize_t got = 0
    cdef int64_t i
    cdef int32_t j
    if s.best == KEY_NONE or n <= 0:
        return 0
    i = s.best - s.base
    if i >= s.width:
        i = s.width - 1
    while i >= 0 and got < n:
        if s.dense[i] > 0:
            keys[got] = s.base + i
            lots[got] = s.dense[i]
            got += 1
        i -= 1
    j = s.ov_n - 1
    while j >= 0 and got < n:
        keys[got] = s.ov_key[j]
        lots[got] = s.ov_qty[j]
        got += 1
        j -= 1
    return got


cdef int _decimals(double x):
    cdef int d
    for d in range(13):
        if fabs(x * cpow(10.0, d) - llround(x * cpow(10.0, d))) < 1e-6:
            return d
    return 12


cdef class OrderBook:
    """L2 book for one instrument. Prices are integer ticks, quantities integer lots.

    `window` is the dense span in ticks per side; `max_far_levels` caps the overflow per side.
    `price_precision`/`qty_precision` are the decimals the venue prints (default: those of the
    tick/lot size); decoders parse strings at max(precision, tick decimals).
    """

    def __cinit__(self, double tick_size, double lot_size, int price_precision=-1, int qty_precision=-1,
                  int window=65536, int max_far_levels=20000):
        if not (tick_size > 0) or not (lot_size > 0):
            raise ValueError(f"tick_size and lot_size must be > 0, got {tick_size!r}, {lot_size!r}")
        if window < 16 or max_far_levels < 1:
            raise ValueError("window must be >= 16 and max_far_levels >= 1")
        self.tick_size = tick_size
        self.lot_size = lot_size
        cdef int tdp = _decimals(tick_size)
        cdef int ldp = _decimals(lot_size)
        self.price_precision = price_precision if price_precision >= 0 else tdp
        self.qty_precision = qty_precision if qty_precision >= 0 else ldp
        self.price_dp = max(self.price_precision, tdp)
        self.qty_dp = max(self.qty_precision, ldp)
        self.tick_units = llround(tick_size * cpow(10.0, self.price_dp))
        self.lot_units = llround(lot_size * cpow(10.0, self.qty_dp))
        _side_init(&self._bids, window, max_far_levels)
        _side_init(&self._asks, window, max_far_levels)
        self.valid = False
        self.last_update_id = 0
        self.ts_ns = 0
        self.updates = 0

    def __dealloc__(self):
        _side_free(&self._bids)
        _side_free(&self._asks)

    # --- typed interface (no Python call protocol) ---------------------------------------------
    cdef void set_ticks(self, bint is_bid, int64_t tick, int64_t lots) noexcept nogil:
        if is_bid:
            _side_set(&self._bids, tick, lots)
        else:
            _side_set(&self._asks, -tick, lots)
        self.updates += 1

    cdef void apply_levels(self, bint is_bid, const int64_t* ticks, const int64_t* lots, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t i
        cdef BookSide* s
        if is_bid:
            s = &self._bids
            for i in range(n):
                _side_set(s, ticks[i], lots[i])
        else:
            s = &self._asks
            for i in range(n):
                _side_set(s, -ticks[i], lots[i])
        self.updates += n

    cdef void clear_c(self) noexcept nogil:
        _side_clear(&self._bids)
        _side_clear(&self._asks)

    cdef int64_t best_bid_ticks_c(self) noexcept nogil:
        return self._bids.best

    cdef int64_t best_ask_ticks_c(self) noexcept nogil:
        return KEY_NONE if self._asks.best == KEY_NONE else -self._asks.best

    cdef int64_t qty_at_c(self, bint is_bid, int64_t tick) noexcept nogil:
        return _side_qty(&self._bids, tick) if is_bid else _side_qty(&self._asks, -tick)

    cdef Py_ssize_t depth_c(self, bint is_bid, int64_t* ticks, int64_t* lots, Py_ssize_t n) noexcept nogil:
        cdef Py_ssize_t got, i
        if is_bid:
            return _side_walk(&self._bids, ticks, lots, n)
        got = _side_walk(&self._asks, ticks, lots, n)
        for i in range(got):
            ticks[i] = -ticks[i]
        return got

    # --- Python API ------------------------------------------------------------------------------
    def set(self, bint is_bid, double price, double qty):
        """Set a level from float price/qty (rounded to the tick/lot grid); qty 0 deletes."""
        if not (price > 0) or not (qty >= 0) or price > 1e15 or qty > 1e15:
            raise ValueError(f"bad level price={price!r} qty={qty!r}")
        self.set_ticks(is_bid, llround(price / self.tick_size), llround(qty / self.lot_size))

    def set_level(self, bint is_bid, int64_t tick, int64_t lots):
        """Set a level in ticks/lots; lots 0 deletes."""
        if tick <= 0 or lots < 0:
            raise ValueError(f"bad level tick={tick} lots={lots}")
        self.set_ticks(is_bid, tick, lots)

    def clear(self):
        self.clear_c()

    @property
    def best_bid_tick(self):
        return None if self._bids.best == KEY_NONE else self._bids.best

    @property
    def best_ask_tick(self):
        return None if self._asks.best == KEY_NONE else -self._asks.best

    @property
    def dropped_far_levels(self):
        return self._bids.dropped + self._asks.dropped

    def level_count(self, bint is_bid):
        cdef BookSide* s = &self._bids if is_bid else &self._asks
        return s.n_dense + s.ov_n

    def qty_at(self, double price, bint is_bid):
        return self.qty_at_c(is_bid, llround(price / self.tick_size)) * self.lot_size

    def lots_at(self, int64_t tick, bint is_bid):
        return self.qty_at_c(is_bid, tick)

    cpdef double best_bid(self):
        return NAN if self._bids.best == KEY_NONE else self._bids.best * self.tick_size

    cpdef double best_ask(self):
        return NAN if self._asks.best == KEY_NONE else -self._asks.best * self.tick_size

    def best_bid_qty(self):
        return 0.0 if self._bids.best == KEY_NONE else _side_qty(&self._bids, self._bids.best) * self.lot_size

    def best_ask_qty(self):
        return 0.0 if self._asks.best == KEY_NONE else _side_qty(&self._asks, self._asks.best) * self.lot_size

    cpdef double mid(self):
        if self._bids.best == KEY_NONE or self._asks.best == KEY_NONE:
            return NAN
        return (self._bids.best - self._asks.best) * 0.5 * self.tick_size

    cpdef double microprice(self):
        """Touch prices weighted by the opposite side's size: (Pb*Qa + Pa*Qb) / (Qa + Qb)."""
        cdef double qb, qa
        if self._bids.best == KEY_NONE or self._asks.best == KEY_NONE:
            return NAN
        qb = _side_qty(&self._bids, self._bids.best)
        qa = _side_qty(&self._asks, self._asks.best)
        return (self._bids.best * qa - self._asks.best * qb) / (qa + qb) * self.tick_size

    cpdef double imbalance(self, int k):
        """(bid volume - ask volume) / total over the best k levels per side; NaN when empty."""
        cdef int64_t vb = 0, va = 0
        cdef Py_ssize_t i, n
        cdef int64_t* keys
        cdef int64_t* lots
        if k <= 0:
            return NAN
        keys = <int64_t*>malloc(k * sizeof(int64_t))
        lots = <int64_t*>malloc(k * sizeof(int64_t))
        if keys == NULL or lots == NULL:
            free(keys)
            free(lots)
            raise MemoryError()
        n = _side_walk(&self._bids, keys, lots, k)
        for i in range(n):
            vb += lots[i]
        n = _side_walk(&self._asks, keys, lots, k)
        for i in range(n):
            va += lots[i]
        free(keys)
        free(lots)
        if vb + va == 0:
            return NAN
        return <double>(vb - va) / <double>(vb + va)

    cpdef tuple depth(self, int n):
        """(bids, asks): lists of (price, qty) floats, best first, up to n levels each."""
        return self._depth(n, False)

    def depth_ticks(self, int n):
        """(bids, asks): lists of (tick, lots) ints, best first."""
        return self._depth(n, True)

    def depth_strings(self, int n):
        """(bids, asks): lists of [price, qty] strings printed as the venue prints them."""
        bids, asks = self._depth(n, True)
        pp, qp = self.price_precision, self.qty_precision
        return ([[self._fmt(t * self.tick_units, self.price_dp, pp), self._fmt(q * self.lot_units, self.qty_dp, qp)] for t, q in bids],
                [[self._fmt(t * self.tick_units, self.price_dp, pp), self._fmt(q * self.lot_units, self.qty_dp, qp)] for t, q in asks])

    @staticmethod
    def _fmt(v, int dp, int prec):
        # Exact decimal formatting of an integer scaled by 10**dp, with prec decimals.
        s = str(v).rjust(dp + 1, "0")
        whole, frac = (s[:-dp], s[-dp:]) if dp > 0 else (s, "")
        frac = (frac + "0" * prec)[:prec]
        return f"{whole}.{frac}" if prec > 0 else whole

    cdef tuple _depth(self, int n, bint raw):
        cdef int64_t* keys
        cdef int64_t* lots
        cdef Py_ssize_t i, got
        if n <= 0:
            return ([], [])
        keys = <int64_t*>malloc(n * sizeof(int64_t))
        lots = <int64_t*>malloc(n * sizeof(int64_t))
        if keys == NULL or lots == NULL:
            free(keys)
            free(lots)
            raise MemoryError()
        out = []
        try:
            for side in (True, False):
                got = self.depth_c(side, keys, lots, n)
                if raw:
                    out.append([(keys[i], lots[i]) for i in range(got)])
                else:
                    out.append([(keys[i] * self.tick_size, lots[i] * self.lot_size) for i in range(got)])
        finally:
            free(keys)
            free(lots)
        return (out[0], out[1])

    cpdef double volume_to(self, double price):
        """Quantity resting between the touch and `price` inclusive: bids when price <= best bid,
        asks when price >= best ask, else 0 (inside the spread)."""
        cdef int64_t tick = llround(price / self.tick_size)
        cdef int64_t total = 0
        cdef BookSide* s
        cdef int64_t key, i
        cdef int32_t j
        if self._bids.best != KEY_NONE and tick <= self._bids.best:
            s = &self._bids
            key = tick
        elif self._asks.best != KEY_NONE and -tick <= self._asks.best:
            s = &self._asks
            key = -tick
        else:
            return 0.0
        i = s.best - s.base
        if i >= s.width:
            i = s.width - 1
        while i >= 0 and s.base + i >= key:
            total += s.dense[i]
            i -= 1
        j = s.ov_n - 1
        while j >= 0 and s.ov_key[j] >= key:
            total += s.ov_qty[j]
            j -= 1
        return total * self.lot_size

    cpdef bint crossed(self):
        return (self._bids.best != KEY_NONE and self._asks.best != KEY_NONE
                and self._bids.best >= -self._asks.best)
