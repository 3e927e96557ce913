# cython: language_level=3
"""The one monotonic clock of the C code: CLOCK_MONOTONIC, the clock time.perf_counter_ns reads on
Linux, so C and Python stamps compare. Inline, header-only: `from kaizen.ext.clock cimport now_ns`."""

from libc.stdint cimport int64_t
from posix.time cimport CLOCK_MONOTONIC, clock_gettime, timespec


cdef inline int64_t now_ns() noexcept nogil:
    cdef timespec ts
    clock_gettime(CLOCK_MONOTONIC, &ts)
    return <int64_t>ts.tv_sec * 1000000000 + ts.tv_nsec
