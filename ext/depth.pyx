# cython: language_level=3
"""Binance depth levels: raw JSON bytes `[["price","qty"],...]` → ticks/lots → book, no Python
object per level.

msgspec decodes the message into a typed Struct whose `b`/`a` fields are `msgspec.Raw` (a slice
of the input, not parsed); this module scans those slices in C, validates every level (decimal
syntax, on the tick/lot grid, no overflow) and only then applies the whole message in one nogil
loop, so a malformed message never half-updates the book.
"""

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from libc.stdint cimport int64_t
from libc.math cimport llround
from libc.stdlib cimport realloc

from kaizen.ext.book cimport OrderBook

# Error codes (why a message was rejected); names in ERRORS.
cdef enum:
    E_OK = 0
    E_SYNTAX = 1
    E_NUMBER = 2
    E_GRID = 3
    E_RANGE = 4
    E_TOO_MANY = 5

ERRORS = {E_SYNTAX: "level syntax", E_NUMBER: "bad number", E_GRID: "off tick/lot grid",
          E_RANGE: "price/qty out of range", E_TOO_MANY: "too many levels"}

cdef int64_t MAX_FIXED = 100000000000000000  # 1e17: keeps x * 10 inside int64

cdef int64_t* _bt = NULL
cdef int64_t* _bl = NULL
cdef int64_t* _at = NULL
cdef int64_t* _al = NULL
cdef Py_ssize_t _cap = 0
cdef Py_ssize_t MAX_LEVELS = 1 << 16


cdef int _ensure(Py_ssize_t n) except -1:
    global _bt, _bl, _at, _al, _cap
    if n <= _cap:
        return 0
    _bt = <int64_t*>realloc(_bt, n * sizeof(int64_t))
    _bl = <int64_t*>realloc(_bl, n * sizeof(int64_t))
    _at = <int64_t*>realloc(_at, n * sizeof(int64_t))
    _al = <int64_t*>realloc(_al, n * sizeof(int64_t))
    if _bt == NULL or _bl == NULL or _at == NULL or _al == NULL:
        raise MemoryError()
    _cap = n
    return 0


cdef int parse_fixed(const unsigned char* p, Py_ssize_t n, int dp, int64_t* out) noexcept nogil:
    """Unsigned decimal "123.4500" → integer scaled by 10**dp. Digits past dp must be zeros.
    Returns E_OK or an error code."""
    cdef int64_t v = 0
    cdef Py_ssize_t i = 0
    cdef int frac = -1   # decimals seen, -1 before the point
    cdef int digits = 0
    cdef unsigned char c
    if n <= 0:
        return E_NUMBER
    while i < n:
        c = p[i]
        if c >= 48 and c <= 57:
            digits += 1
            if frac >= 0:
                if frac >= dp:
                    if c != 48:
                        return E_GRID
                    i += 1
                    continue
                frac += 1
            if v >= MAX_FIXED:
                return E_RANGE
            v = v * 10 + (c - 48)
        elif c == 46 and frac < 0:
            frac = 0
        else:
            return E_NUMBER
        i += 1
    if digits == 0:
        return E_NUMBER
    if frac < 0:
        frac = 0
    while frac < dp:
        if v >= MAX_FIXED:
            return E_RANGE
        v *= 10
        frac += 1
    out[0] = v
    return E_OK


cdef inline Py_ssize_t _ws(const unsigned char* p, Py_ssize_t i, Py_ssize_t n) noexcept nogil:
    # one compare on the common path: every JSON whitespace byte is <= 32
    while i < n and p[i] <= 32 and (p[i] == 32 or p[i] == 9 or p[i] == 10 or p[i] == 13):
        i += 1
    return i


cdef inline Py_ssize_t _str(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, Py_ssize_t* start) noexcept nogil:
    """At a '"': returns the index after the closing quote (start set), or -1."""
    if i >= n or p[i] != 34:
        return -1
    i += 1
    start[0] = i
    while i < n and p[i] != 34:
        if p[i] == 92:  # escapes never appear in numbers
            return -1
        i += 1
    if i >= n:
        return -1
    return i + 1


cdef inline Py_ssize_t _qnum(const unsigned char* p, Py_ssize_t i, Py_ssize_t n, int dp, int64_t* out,
                             int* err) noexcept nogil:
    """At a '"': the quoted unsigned decimal scaled by 10**dp (digits past dp must be zeros), in
    one pass with parse_fixed's rules; returns the index after the closing quote, or -1 with err.
    Integer and fraction digits run in two tight loops (one predictable branch per byte)."""
    cdef int64_t v = 0
    cdef int k = 0
    cdef Py_ssize_t start, nd
    cdef unsigned char d
    if i >= n or p[i] != 34:
        err[0] = E_SYNTAX
        return -1
    i += 1
    start = i
    while i < n:
        d = p[i] - 48
        if d >= 10:
            break
        if v >= MAX_FIXED:
            err[0] = E_RANGE
            return -1
        v = v * 10 + d
        i += 1
    nd = i - start
    if i < n and p[i] == 46:
        i += 1
        start = i
        while i < n:
            d = p[i] - 48
            if d >= 10:
                break
            if k < dp:
                if v >= MAX_FIXED:
                    err[0] = E_RANGE
                    return -1
                v = v * 10 + d
                k += 1
            elif d != 0:
                err[0] = E_GRID
                return -1
            i += 1
        nd += i - start
    if i >= n:
        err[0] = E_SYNTAX
        return -1
    if p[i] != 34:
        # parse_fixed's verdict on a bad character, once the string is known to close
        while i < n and p[i] != 34:
            if p[i] == 92:
                err[0] = E_SYNTAX
                return -1
            i += 1
        err[0] = E_NUMBER if i < n else E_SYNTAX
        return -1
    if nd == 0:
        err[0] = E_NUMBER
        return -1
    while k < dp:
        if v >= MAX_FIXED:
            err[0] = E_RANGE
            return -1
        v *= 10
        k += 1
    out[0] = v
    return i + 1


cdef Py_ssize_t parse_levels(const unsigned char* p, Py_ssize_t n, int price_dp, int64_t tick_units,
                             int qty_dp, int64_t lot_units, int64_t* ticks, int64_t* lots,
                             Py_ssize_t cap, int* err) noexcept nogil:
    """Scan `[["p","q"],...]` (nothing but whitespace after it); returns the level count, or -1
    with err set."""
    cdef Py_ssize_t end = 0
    cdef Py_ssize_t got = parse_levels_at(p, n, price_dp, tick_units, qty_dp, lot_units, ticks, lots,
                                          cap, err, &end)
    if got >= 0 and _ws(p, end, n) != n:
        err[0] = E_SYNTAX
        return -1
    return got


cdef Py_ssize_t parse_levels_at(const unsigned char* p, Py_ssize_t n, int price_dp, int64_t tick_units,
                                int qty_dp, int64_t lot_units, int64_t* ticks, int64_t* lots,
                                Py_ssize_t cap, int* err, Py_ssize_t* end) noexcept nogil:
    """Scan the level array starting at p (whitespace first allowed) and stop after its closing
    ']': `end` gets that index, so a caller decoding a whole message in place needs no second
    pass to find the array's end. Returns the level count, or -1 with err set."""
    cdef Py_ssize_t i = _ws(p, 0, n), got = 0, s, e
    cdef int64_t v
    cdef int rc
    err[0] = E_SYNTAX
    if i >= n or p[i] != 91:
        return -1
    i = _ws(p, i + 1, n)
    if i < n and p[i] == 93:
        err[0] = E_OK
        end[0] = i + 1
        return 0
    while True:
        if got >= cap:
            err[0] = E_TOO_MANY
            return -1
        if i >= n or p[i] != 91:
            return -1
        i = _ws(p, i + 1, n)
        e = _qnum(p, i, n, price_dp, &v, err)
        if e < 0:
            return -1
        if v == 0:
            err[0] = E_RANGE
            return -1
        if tick_units != 1:   # an integer division costs more than the rest of the level
            if v % tick_units != 0:
                err[0] = E_GRID
                return -1
            v = v // tick_units
        ticks[got] = v
        i = _ws(p, e, n)
        if i >= n or p[i] != 44:
            return -1
        i = _ws(p, i + 1, n)
        e = _qnum(p, i, n, qty_dp, &v, err)
        if e < 0:
            return -1
        if lot_units != 1:
            if v % lot_units != 0:
                err[0] = E_GRID
                return -1
            v = v // lot_units
        lots[got] = v
        err[0] = E_SYNTAX
        got += 1
        i = _ws(p, e, n)
        if i >= n or p[i] != 93:
            return -1
        i = _ws(p, i + 1, n)
        if i < n and p[i] == 44:
            i = _ws(p, i + 1, n)
            continue
        if i < n and p[i] == 93:
            err[0] = E_OK
            end[0] = i + 1
            return got
        return -1


cdef Py_ssize_t _parse_obj(OrderBook book, object raw, int64_t* ticks, int64_t* lots, int* err) except -2:
    cdef Py_buffer buf
    cdef Py_ssize_t got
    PyObject_GetBuffer(raw, &buf, PyBUF_SIMPLE)
    try:
        # A level needs at least 9 bytes (["1","0"],), which bounds the count before scanning.
        _ensure(min(buf.len // 9 + 1, MAX_LEVELS))
        with nogil:
            got = parse_levels(<const unsigned char*>buf.buf, buf.len, book.price_dp, book.tick_units,
                               book.qty_dp, book.lot_units, ticks if ticks != NULL else _bt,
                               lots if lots != NULL else _bl, _cap, err)
    finally:
        PyBuffer_Release(&buf)
    return got


cpdef long apply_depth(OrderBook book, object bids_raw, object asks_raw) except -2:
    """Parse both sides (raw JSON `[["p","q"],...]`, any buffer), then apply them in one nogil
    loop; returns the number of levels applied. On any error the book is left untouched and -1
    is returned (`last_error()` says why)."""
    global _last_err
    cdef int err = 0
    cdef Py_ssize_t nb, na
    nb = _parse_obj(book, bids_raw, NULL, NULL, &err)
    if nb < 0:
        _last_err = err
        return -1
    # The bid buffers hold the bids; parse asks into the ask buffers.
    na = _parse_into_asks(book, asks_raw, &err)
    if na < 0:
        _last_err = err
        return -1
    with nogil:
        book.apply_levels(True, _bt, _bl, nb)
        book.apply_levels(False, _at, _al, na)
    _last_err = E_OK
    return nb + na


cdef Py_ssize_t _parse_into_asks(OrderBook book, object raw, int* err) except -2:
    cdef Py_buffer buf
    cdef Py_ssize_t got
    PyObject_GetBuffer(raw, &buf, PyBUF_SIMPLE)
    try:
        _ensure(min(buf.len // 9 + 1, MAX_LEVELS))
        with nogil:
            got = parse_levels(<const unsigned char*>buf.buf, buf.len, book.price_dp, book.tick_units,
                               book.qty_dp, book.lot_units, _at, _al, _cap, err)
    finally:
        PyBuffer_Release(&buf)
    return got


cdef int _last_err = E_OK


def last_error():
    """Why the last apply_depth/parse call failed ("" when it did not)."""
    return ERRORS.get(_last_err, "")


def parse_price(OrderBook book, str s):
    """A venue price string → ticks (ValueError when malformed or off grid)."""
    cdef bytes b = s.encode("ascii", "replace")
    cdef int64_t v = 0
    cdef int rc = parse_fixed(b, len(b), book.price_dp, &v)
    if rc != E_OK or v == 0 or v % book.tick_units != 0:
        raise ValueError(f"bad price {s!r}")
    return v // book.tick_units


def parse_qty(OrderBook book, str s):
    """A venue quantity string → lots (ValueError when malformed or off grid)."""
    cdef bytes b = s.encode("ascii", "replace")
    cdef int64_t v = 0
    cdef int rc = parse_fixed(b, len(b), book.qty_dp, &v)
    if rc != E_OK or v % book.lot_units != 0:
        raise ValueError(f"bad qty {s!r}")
    return v // book.lot_units


from kaizen.ext.clock cimport now_ns as _now_ns


def time_apply(OrderBook book, const int64_t[::1] ticks, const int64_t[::1] lots,
               const unsigned char[::1] is_bid, const int64_t[::1] offsets, int64_t[::1] out_ns):
    """Benchmark helper: apply message i = levels offsets[i]:offsets[i+1] (in order, nogil) and
    write its wall time in ns to out_ns[i]. Timer overhead (~20 ns) is measured by the caller."""
    cdef Py_ssize_t i, j, nmsg = offsets.shape[0] - 1
    cdef int64_t t0
    with nogil:
        for i in range(nmsg):
            t0 = _now_ns()
            for j in range(offsets[i], offsets[i + 1]):
                book.set_ticks(is_bid[j], ticks[j], lots[j])
            out_ns[i] = _now_ns() - t0


def timer_overhead_ns(int n=100000):
    """Median-free estimate: mean cost of one back-to-back clock read pair."""
    cdef int i
    cdef int64_t t0, acc = 0
    with nogil:
        for i in range(n):
            t0 = _now_ns()
            acc += _now_ns() - t0
    return acc / n


def ticker_agrees(OrderBook book, double bid, double bid_qty, double ask, double ask_qty):
    """True when the book's touch (prices and sizes) equals a bookTicker's."""
    cdef int64_t bt = llround(bid / book.tick_size)
    cdef int64_t at = llround(ask / book.tick_size)
    return (book.best_bid_ticks_c() == bt and book.best_ask_ticks_c() == at
            and book.qty_at_c(True, bt) == llround(bid_qty / book.lot_size)
            and book.qty_at_c(False, at) == llround(ask_qty / book.lot_size))
