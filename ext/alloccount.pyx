# cython: language_level=3
"""`count_allocations(fn)`: how many times CPython's object and memory allocators were asked for
memory while fn() ran. A per-message Python object on the hot path shows up as one count per
message; tracemalloc's net/peak figures would miss an object freed before the next one."""

from libc.stdint cimport int64_t


cdef extern from "Python.h":
    ctypedef enum PyMemAllocatorDomain:
        PYMEM_DOMAIN_RAW
        PYMEM_DOMAIN_MEM
        PYMEM_DOMAIN_OBJ
    ctypedef struct PyMemAllocatorEx:
        void* ctx
        void* (*malloc)(void* ctx, size_t size) noexcept nogil
        void* (*calloc)(void* ctx, size_t nelem, size_t elsize) noexcept nogil
        void* (*realloc)(void* ctx, void* ptr, size_t new_size) noexcept nogil
        void (*free)(void* ctx, void* ptr) noexcept nogil
    void PyMem_GetAllocator(PyMemAllocatorDomain domain, PyMemAllocatorEx* allocator)
    void PyMem_SetAllocator(PyMemAllocatorDomain domain, PyMemAllocatorEx* allocator)


cdef int64_t _count = 0
cdef PyMemAllocatorEx _orig_mem
cdef PyMemAllocatorEx _orig_obj
cdef PyMemAllocatorEx _hook_mem
cdef PyMemAllocatorEx _hook_obj


cdef int64_t allocations() noexcept nogil:
    return _count


cdef void* _malloc(void* ctx, size_t size) noexcept nogil:
    global _count
    cdef PyMemAllocatorEx* o = <PyMemAllocatorEx*>ctx
    _count += 1
    return o.malloc(o.ctx, size)


cdef void* _calloc(void* ctx, size_t nelem, size_t elsize) noexcept nogil:
    global _count
    cdef PyMemAllocatorEx* o = <PyMemAllocatorEx*>ctx
    _count += 1
    return o.calloc(o.ctx, nelem, elsize)


cdef void* _realloc(void* ctx, void* ptr, size_t new_size) noexcept nogil:
    global _count
    cdef PyMemAllocatorEx* o = <PyMemAllocatorEx*>ctx
    _count += 1
    return o.realloc(o.ctx, ptr, new_size)


cdef void _free(void* ctx, void* ptr) noexcept nogil:
    cdef PyMemAllocatorEx* o = <PyMemAllocatorEx*>ctx
    o.free(o.ctx, ptr)


def count_allocations(fn):
    """(allocations while fn() ran, fn's result). Not reentrant; tracemalloc must be off."""
    global _count
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &_orig_mem)
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &_orig_obj)
    _hook_mem.ctx = &_orig_mem
    _hook_obj.ctx = &_orig_obj
    _hook_mem.malloc = _malloc
    _hook_mem.calloc = _calloc
    _hook_mem.realloc = _realloc
    _hook_mem.free = _free
    _hook_obj.malloc = _malloc
    _hook_obj.calloc = _calloc
    _hook_obj.realloc = _realloc
    _hook_obj.free = _free
    _count = 0
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &_hook_mem)
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &_hook_obj)
    try:
        result = fn()
    finally:
        PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &_orig_mem)
        PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &_orig_obj)
    return _count, result
