"""Unique, sortable 64-bit ids: 44 bits of wall-clock milliseconds, 20 bits of sequence.

Sortable by creation across processes on one host to the millisecond; the sequence carries over a
millisecond boundary so ids from one process are strictly increasing.
"""

from __future__ import annotations

import threading
import time

_lock = threading.Lock()
_last = 0


def new_id() -> int:
    global _last
    candidate = (time.time_ns() // 1_000_000) << 20
    with _lock:
        _last = candidate if candidate > _last else _last + 1
        return _last
