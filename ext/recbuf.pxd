"""Typed interface of the lineage record buffer (see recbuf.pyx)."""

from libc.stdint cimport uint8_t, uint32_t


cdef class Chunk:
    cdef uint8_t* data  # records back to back
    cdef Py_ssize_t cap
    cdef Py_ssize_t nbytes
    cdef uint32_t* offs  # offs[i]: start of record i; offs[count] == nbytes
    cdef Py_ssize_t count
    cdef Py_ssize_t max_records
    cdef int reserve(self, Py_ssize_t need) except -1


cdef class RecordBuffer:
    cdef Chunk cur
    cdef list spare  # written chunks kept for reuse: their pages are already faulted in
    cdef object sealed  # deque shared with the writer thread
    cdef object encode_into
    cdef bytearray scratch
    cdef object on_seal
    cdef Py_ssize_t chunk_records
    cdef Py_ssize_t chunk_bytes
    cdef readonly Py_ssize_t appended  # records moved to `sealed`
    cdef readonly Py_ssize_t outstanding  # chunks moved to `sealed` and not yet recycled
    cdef public bint closed
    cdef int push(self, const uint8_t* p, Py_ssize_t n) except -1
    cdef Chunk detach(self)
    cdef Chunk _fresh(self)
