# cython: language_level=3
"""Recording scanner: `receive_ns<space>raw_json\\n` lines → processor calls, without a Python
list of lines or per-line int()/find() calls (the replayer's per-message overhead)."""

from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_FromStringAndSize, PyBytes_GET_SIZE
from libc.string cimport memchr, memcmp


cdef bint _is_snapshot(const char* p, Py_ssize_t n) noexcept:
    cdef Py_ssize_t i, lim
    if n >= 15 and memcmp(p, b'{"lastUpdateId"', 15) == 0:
        return True
    if n < 10 or memcmp(p, b'{"stream"', 9) != 0:
        return False
    lim = 64 if n > 64 else n
    for i in range(lim - 9):
        if memcmp(p + i, b'@snapshot"', 10) == 0:
            return True
    return False


def scan_block(bytes block, object process, object on_snapshot, object on_bad, bint final=False):
    """Feed every complete line of block (and the last partial one when final) to
    process(raw, recv_ns), snapshot lines to on_snapshot(raw, recv_ns), unparseable lines to
    on_bad(). Returns (bytes consumed, lines seen)."""
    cdef const char* p = PyBytes_AS_STRING(block)
    cdef Py_ssize_t n = PyBytes_GET_SIZE(block), i = 0, j, k, end, lines = 0
    cdef const char* nl
    cdef long long ts
    cdef bint ok
    while i < n:
        nl = <const char*>memchr(p + i, 10, n - i)
        if nl == NULL:
            if not final:
                break
            j = n
        else:
            j = nl - p
        end = j
        if end > i and p[end - 1] == 13:
            end -= 1
        if end > i:
            lines += 1
            k = i
            ts = 0
            ok = True
            while k < end and 48 <= p[k] <= 57:
                if ts > 922337203685477580:
                    ok = False
                    break
                ts = ts * 10 + (p[k] - 48)
                k += 1
            if not ok or k == i or k >= end or p[k] != 32:
                on_bad()
            else:
                raw = PyBytes_FromStringAndSize(p + k + 1, end - k - 1)
                if _is_snapshot(p + k + 1, end - k - 1):
                    on_snapshot(raw, ts)
                else:
                    process(raw, ts)
        i = j + 1
    return (i if i <= n else n), lines
