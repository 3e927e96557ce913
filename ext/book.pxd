# L2 order book for one instrument: integer price ticks, integer quantity lots.
# Each side keeps a dense window of ticks around its touch (O(1) updates near the touch) and a
# sorted overflow array for levels outside the window (far levels), capped so memory is bounded.
from libc.stdint cimport int32_t, int64_t


cdef struct BookSide:
    # Keys are "better is larger": bid key = tick, ask key = -tick, so one code path serves both.
    int64_t base          # key of dense[0]
    int64_t* dense        # lots per key in [base, base + width)
    int32_t width
    int32_t n_dense       # non-empty slots in dense
    int64_t best          # best key, or KEY_NONE when the side is empty
    int64_t* ov_key       # overflow keys < base, ascending (best-most at the end)
    int64_t* ov_qty
    int32_t ov_n
    int32_t ov_cap
    int64_t dropped       # far levels dropped because the overflow was full


cdef class OrderBook:
    cdef BookSide _bids
    cdef BookSide _asks
    cdef readonly double tick_size
    cdef readonly double lot_size
    cdef readonly int price_precision   # decimals when printing prices (as the venue sends them)
    cdef readonly int qty_precision
    # Fixed-point scales used by the decoders: a price string with price_dp decimals parses to an
    # integer p; its tick is p // tick_units (an error if p % tick_units != 0). Same for qty.
    cdef readonly int price_dp
    cdef readonly int64_t tick_units
    cdef readonly int qty_dp
    cdef readonly int64_t lot_units
    cdef public bint valid
    cdef public int64_t last_update_id
    cdef public int64_t ts_ns
    cdef public int64_t updates       # level updates applied

    cdef void set_ticks(self, bint is_bid, int64_t tick, int64_t lots) noexcept nogil
    cdef void apply_levels(self, bint is_bid, const int64_t* ticks, const int64_t* lots, Py_ssize_t n) noexcept nogil
    cdef void clear_c(self) noexcept nogil
    cdef int64_t best_bid_ticks_c(self) noexcept nogil
    cdef int64_t best_ask_ticks_c(self) noexcept nogil
    cdef int64_t qty_at_c(self, bint is_bid, int64_t tick) noexcept nogil
    cdef Py_ssize_t depth_c(self, bint is_bid, int64_t* ticks, int64_t* lots, Py_ssize_t n) noexcept nogil
    cpdef double best_bid(self)
    cpdef double best_ask(self)
    cpdef double mid(self)
    cpdef double microprice(self)
    cpdef double imbalance(self, int k)
    cpdef tuple depth(self, int n)
    cpdef double volume_to(self, double price)
    cpdef bint crossed(self)
    cdef tuple _depth(self, int n, bint raw)
