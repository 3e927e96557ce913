# picows listener that hands each text frame's payload, in place, to the decision core.
from libc.stdint cimport int64_t
from picows.picows cimport WSFrame, WSListener, WSTransport

from kaizen.ext.core cimport DecisionCore


cdef class CoreListener(WSListener):
    cdef readonly DecisionCore core
    cdef readonly int64_t frames
    cdef readonly int64_t fragments      # non-final frames (Binance sends none); dropped, counted
    cdef readonly int64_t last_flags
    cdef readonly bint closed_by_peer
