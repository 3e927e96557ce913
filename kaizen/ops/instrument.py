"""Stage timers put around the engine's seams at start-up, from outside (the engine is unchanged).

Each wrapper costs two `perf_counter_ns` calls and one array append. A seam that cannot be
wrapped (a compiled class without an instance dict) is skipped and named in the returned list, so
the process runs with fewer histograms rather than not at all.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from kaizen.ops.metrics import EngineMetrics

_pc = time.perf_counter_ns


class _Clock:
    """When the current message started, and when the message that closed the last bar did."""

    __slots__ = ("msg_t0", "bar_msg_t0")

    def __init__(self) -> None:
        self.msg_t0 = 0
        self.bar_msg_t0 = 0


def _set(obj: Any, attr: str, fn: Any, skipped: list[str], label: str) -> None:
    try:
        setattr(obj, attr, fn)
    except (AttributeError, TypeError):
        skipped.append(label)


def instrument(engine: Any, metrics: EngineMetrics) -> list[str]:
    """Time the engine's stages; returns the stages that could not be instrumented."""
    skipped: list[str] = []
    clock = _Clock()
    metrics.engine = engine

    feed = getattr(engine, "feed", None)
    if feed is not None and hasattr(feed, "_on_message"):
        on_message = feed._on_message
        add_msg = metrics.stage("message").add

        @functools.wraps(on_message)
        def timed_message(raw, *a):
            t0 = clock.msg_t0 = _pc()
            try:
                return on_message(raw, *a)
            finally:
                add_msg(_pc() - t0)

        _set(feed, "_on_message", timed_message, skipped, "message")
    else:
        skipped.append("message")

    on_bar = engine.on_bar
    add_bar = metrics.stage("bar").add

    @functools.wraps(on_bar)
    def timed_bar(bar, *a, **k):
        t0 = _pc()
        clock.bar_msg_t0 = clock.msg_t0 or t0
        try:
            return on_bar(bar, *a, **k)
        finally:
            add_bar(_pc() - t0)

    _set(engine, "on_bar", timed_bar, skipped, "bar")

    router = getattr(engine, "router", None)
    if router is not None:
        send = router._send
        add_order = metrics.stage("order").add
        add_t2o = metrics.stage("tick_to_order").add
        count = metrics.count_order

        @functools.wraps(send)
        async def timed_send(*a, **k):
            t0 = _pc()
            if clock.bar_msg_t0:
                add_t2o(t0 - clock.bar_msg_t0)
                clock.bar_msg_t0 = 0  # one sample per decision, not per order of a flatten
            rec = await send(*a, **k)
            add_order(_pc() - t0)
            count(getattr(rec, "status", "unknown"))
            return rec

        _set(router, "_send", timed_send, skipped, "order")

        set_target = router.set_target

        @functools.wraps(set_target)
        async def counted_target(*a, **k):
            out = await set_target(*a, **k)
            for rec in out:
                if getattr(rec, "status", "") == "rejected" and str(getattr(rec, "error", "")).startswith(
                    "risk:"
                ):
                    count("risk_rejected")
            return out

        _set(router, "set_target", counted_target, skipped, "risk_rejects")
    else:
        skipped += ["order", "tick_to_order"]
    return skipped
