"""The process around the hot path: CPU pinning and the garbage collector.

Pinning: the event-loop thread (the hot path) goes to `[engine] cpu_pin`; every other thread the
process has at that point (the lineage writer that frames, compresses and writes; pools) is moved
to the remaining cores, so disk and compression never run on the hot path's core. A core this
machine lacks is a one-line ConfigError naming the cores it has.

Garbage collection: CPython's collector starts on an allocation count, i.e. in the middle of
whatever message crosses the threshold, and a generation-2 pass walks every tracked object (the
feature history, models, the lineage buffers...): milliseconds on the hot path. After start-up
`gc.freeze()` moves everything alive into the permanent generation (never scanned again), and
automatic collection is switched off; `GcScheduler` then runs a young-generation collection every
`gc_every_s` and a full one every `gc_full_every_s` from its own task, which the event loop runs
between two messages, never inside one. Cycles made meanwhile wait at most one period, so memory
stays bounded (bench/soak.py checks it); each pause is timed into the `gc` stage histogram.
"""

from __future__ import annotations

import asyncio
import gc
import os
import threading
import time
from typing import Any

from kaizen.errors import ConfigError


def available_cpus() -> list[int]:
    return sorted(os.sched_getaffinity(0))


def pin_hot_thread(cpu: int) -> str:
    """Pin the calling thread to `cpu` and the process's other threads to the other cores.
    Returns a one-line description; raises ConfigError when the core is not available."""
    if cpu < 0:
        return "not pinned (engine.cpu_pin = -1)"
    cpus = available_cpus()
    if cpu not in cpus:
        raise ConfigError(
            f"engine.cpu_pin = {cpu}: no such core available to this process (cores: {_ranges(cpus)})"
        )
    others = [c for c in cpus if c != cpu]
    me = threading.get_native_id()
    moved = 0
    if others:
        for tid in _threads():
            if tid == me:
                continue
            try:
                os.sched_setaffinity(tid, others)
                moved += 1
            except OSError:  # a thread that ended meanwhile
                pass
    try:
        os.sched_setaffinity(0, {cpu})  # Linux: 0 is the calling thread; threads it starts inherit
    except OSError as exc:
        raise ConfigError(f"engine.cpu_pin = {cpu}: cannot pin to that core ({exc})") from None
    rest = f"; {moved} other thread(s) on cores {_ranges(others)}" if others else ""
    return f"event loop pinned to core {cpu}{rest}"


def _threads() -> list[int]:
    try:
        return [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:
        return []


def _ranges(cpus: list[int]) -> str:
    return ",".join(str(c) for c in cpus) if cpus else "none"


class GcScheduler:
    """Freeze what start-up allocated, switch automatic gc off, collect on a schedule."""

    def __init__(self, every_s: float, full_every_s: float, stage: Any = None) -> None:
        self.every_s = every_s
        self.full_every_s = full_every_s
        self.stage = stage  # kaizen.ops.metrics.StageTimes (pauses, ns)
        self.collections = 0
        self.collected = 0
        self._task: asyncio.Task | None = None
        self._was_enabled = gc.isenabled()

    def freeze(self) -> str:
        gc.collect()
        gc.freeze()
        frozen = gc.get_freeze_count()
        if self.every_s <= 0:
            return f"gc: {frozen} start-up objects frozen; automatic collection left on"
        gc.disable()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="kaizen-gc")
        return (
            f"gc: {frozen} start-up objects frozen; automatic collection off, young generations every "
            f"{self.every_s:g} s and a full collection every {self.full_every_s:g} s between messages"
        )

    async def _run(self) -> None:
        last_full = time.monotonic()
        pc = time.perf_counter_ns
        while True:
            await asyncio.sleep(self.every_s)
            now = time.monotonic()
            full = now - last_full >= self.full_every_s
            t0 = pc()
            self.collected += gc.collect(2 if full else 1)
            if self.stage is not None:
                self.stage.add(pc() - t0)
            self.collections += 1
            if full:
                last_full = now

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        gc.unfreeze()
        if self._was_enabled:
            gc.enable()
