# Allocation counter for tests: wraps CPython's MEM and OBJ allocators (every Python object comes
# from one of them) and counts malloc/calloc/realloc calls while installed.
from libc.stdint cimport int64_t

cdef int64_t allocations() noexcept nogil
