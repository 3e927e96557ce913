from libc.stdint cimport int64_t

from kaizen.ext.book cimport OrderBook


cdef int parse_fixed(const unsigned char* p, Py_ssize_t n, int dp, int64_t* out) noexcept nogil
cdef Py_ssize_t parse_levels(const unsigned char* p, Py_ssize_t n, int price_dp, int64_t tick_units,
                             int qty_dp, int64_t lot_units, int64_t* ticks, int64_t* lots,
                             Py_ssize_t cap, int* err) noexcept nogil
cdef Py_ssize_t parse_levels_at(const unsigned char* p, Py_ssize_t n, int price_dp, int64_t tick_units,
                                int qty_dp, int64_t lot_units, int64_t* ticks, int64_t* lots,
                                Py_ssize_t cap, int* err, Py_ssize_t* end) noexcept nogil
cpdef long apply_depth(OrderBook book, object bids_raw, object asks_raw) except -2
