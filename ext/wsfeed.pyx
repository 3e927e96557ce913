# cython: language_level=3
"""The market-data socket's listener as a cdef class: picows calls `on_ws_frame` through C, the
frame's payload pointer (valid only inside this call, picows reuses its read buffer) goes straight
to `DecisionCore.on_frame_c`; no bytes object is made per frame. Stamps the arrival with the same
CLOCK_MONOTONIC the core's stages use."""

from libc.stdint cimport int64_t
from picows.picows cimport WSFrame, WSListener, WSMsgType, WSTransport

from kaizen.ext.core cimport DecisionCore


from kaizen.ext.clock cimport now_ns as _now


cdef class CoreListener(WSListener):
    def __init__(self, DecisionCore core):
        self.core = core

    cpdef on_ws_frame(self, WSTransport transport, WSFrame frame):
        cdef int64_t t = _now()
        cdef WSMsgType mt = frame.msg_type
        if mt == WSMsgType.TEXT or mt == WSMsgType.BINARY:
            if not frame.fin:
                self.fragments += 1
                return
            self.frames += 1
            self.last_flags = self.core.on_frame_c(<const unsigned char*>frame.payload_ptr,
                                                   frame.payload_size, t)
        elif mt == WSMsgType.CLOSE:
            self.closed_by_peer = True
            transport.disconnect()
