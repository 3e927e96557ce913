"""Typed interface of the lineage frame pre-filter (see msgsplit.pyx)."""

from libc.stdint cimport uint8_t


# Split `count` parts (whole msgpack records each) given as pointers and lengths; `total` is their
# summed length. Returns split's tuple, or None when the bytes are not well-formed msgpack.
cdef object _split(const uint8_t** ptrs, Py_ssize_t* lens, Py_ssize_t count, Py_ssize_t total)
