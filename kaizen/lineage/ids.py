"""Unique, sortable 64-bit ids: 44 bits of milliseconds, 20 bits of sequence.

Milliseconds come from the wall clock, or from the mode's clock after `use_clock` (a backtest runs
on the replay clock, so its ids — and every record that names them — are the same run after run).
Sortable by creation across processes on one host to the millisecond; the sequence carries over a
millisecond boundary so ids from one process are strictly increasing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

_lock = threading.Lock()
_last = 0
_clock: Callable[[], int] | None = None


def use_clock(clock_ms: Callable[[], int] | None) -> None:
    """Take milliseconds from `clock_ms` (None: the wall clock again) and restart the sequence."""
    global _clock, _last
    with _lock:
        _clock = clock_ms
        _last = 0


def new_id() -> int:
    global _last
    ms = _clock() if _clock is not None else time.time_ns() // 1_000_000
    candidate = max(int(ms), 0) << 20
    with _lock:
        _last = candidate if candidate > _last else _last + 1
        return _last
