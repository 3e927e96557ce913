"""Engine metrics for Prometheus, collected so that the hot path pays one array append per sample.

Latencies: each stage owns a `StageTimes` whose `add(ns)` is an `array.array` append (tens of ns,
no Python object kept per sample). `fold()` runs off the hot path (a periodic task between
messages, and every scrape): it turns the raw samples into cumulative histogram buckets and keeps
the most recent ones in a ring for p50/p99 in /status.

Compiled code can time itself into the same histograms: `stage(name).add` is a plain callable
taking nanoseconds (kaizen.ops.instrument wraps the engine's Python seams with it).

Everything else (message counts per stream type, resyncs, orders, rejects, positions, PnL, risk
and kill-switch state, drift statistics) is read from the engine's own state at scrape time by a
custom collector: nothing is counted twice and nothing runs per message for it.
"""

from __future__ import annotations

import math
import time
from array import array
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)

# 1-1.5-2-3-5-7 steps from 1 µs to 10 s (at most 1.5x apart, so a quantile read from the buckets
# is good to that factor): the hot path is in µs, an order's round trip in ms
BUCKETS_S: tuple[float, ...] = tuple(
    round(m * 10.0**e, 12) for e in range(-6, 1) for m in (1, 1.5, 2, 3, 5, 7)
) + (10.0,)
_EDGES_NS = np.array([b * 1e9 for b in BUCKETS_S], dtype=np.float64)
RING = 4096  # recent samples kept per stage for quantiles


class StageTimes:
    """Durations (ns) of one stage of the engine."""

    __slots__ = ("name", "help", "buf", "add", "counts", "sum_ns", "n", "_ring", "_ring_n", "max_ns")

    def __init__(self, name: str, help: str) -> None:
        self.name = name
        self.help = help
        self.buf = array("q")
        self.add: Callable[[int], None] = self.buf.append  # the hot path's only call
        self.counts = np.zeros(len(BUCKETS_S) + 1, np.int64)  # last slot: > the largest bucket
        self.sum_ns = 0
        self.n = 0
        self.max_ns = 0
        self._ring = np.zeros(RING, np.int64)
        self._ring_n = 0  # samples ever written to the ring

    def fold(self) -> None:
        if not self.buf:
            return
        a = np.frombuffer(self.buf, dtype=np.int64).copy()
        del self.buf[:]  # same array object: the bound `add` stays valid
        self.counts += np.bincount(np.searchsorted(_EDGES_NS, a, side="left"), minlength=len(self.counts))
        self.sum_ns += int(a.sum())
        self.n += len(a)
        self.max_ns = max(self.max_ns, int(a.max()))
        tail = a[-RING:]
        i = self._ring_n % RING
        first = min(len(tail), RING - i)
        self._ring[i : i + first] = tail[:first]
        self._ring[: len(tail) - first] = tail[first:]
        self._ring_n += len(tail)

    def recent(self) -> np.ndarray:
        return self._ring[: min(self._ring_n, RING)]

    def quantiles(self, qs: Iterable[float] = (0.5, 0.99)) -> dict[str, float]:
        """Recent quantiles in µs (nan without samples)."""
        r = self.recent()
        out = {}
        for q in qs:
            out[f"p{q * 100:g}"] = float(np.quantile(r, q)) / 1e3 if len(r) else math.nan
        return out

    def family(self) -> HistogramMetricFamily:
        cum = np.cumsum(self.counts)
        buckets = [(_le(b), float(c)) for b, c in zip(BUCKETS_S, cum[:-1], strict=True)]
        buckets.append(("+Inf", float(cum[-1])))
        return HistogramMetricFamily(
            f"kaizen_stage_{self.name}_seconds", self.help, buckets=buckets, sum_value=self.sum_ns / 1e9
        )


def _le(b: float) -> str:
    return f"{b:.9g}"


class EngineMetrics:
    """The stages, the collector over an engine, and the registry /metrics renders."""

    STAGES = {
        "message": "a market-data message: decode, book, handlers, bar closes and decisions it caused",
        "bar": "a bar close: features, strategy, exit rule, sizing, target",
        "order": "an order: risk checks, encoding and the venue's answer (round trip)",
        "tick_to_order": "from the message that closed a bar to its order leaving the engine",
        "gc": "a scheduled garbage collection between messages",
    }

    def __init__(self) -> None:
        self.stages = {k: StageTimes(k, v) for k, v in self.STAGES.items()}
        self.engine: Any = None
        self.started = time.monotonic()
        self.orders_by_status: dict[str, int] = {}
        self.reloads = {"applied": 0, "refused": 0}
        self.rates: dict[str, float] = {}  # per second over the last housekeeping interval
        self._last: tuple[float, dict[str, float]] | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))

    def stage(self, name: str) -> StageTimes:
        return self.stages[name]

    def fold(self) -> None:
        for s in self.stages.values():
            s.fold()

    def update_rates(self, counts: dict[str, float], now: float | None = None) -> None:
        """Per-second rates of `counts` (messages, bars, ...) since the previous call."""
        now = time.monotonic() if now is None else now
        if self._last is not None and now > self._last[0]:
            t0, c0 = self._last
            self.rates = {k: (v - c0.get(k, 0.0)) / (now - t0) for k, v in counts.items()}
        self._last = (now, dict(counts))

    def count_order(self, status: str) -> None:
        self.orders_by_status[status] = self.orders_by_status.get(status, 0) + 1

    def render(self) -> bytes:
        self.fold()
        return generate_latest(self.registry)


class _Collector:
    """Reads the engine at scrape time."""

    def __init__(self, m: EngineMetrics) -> None:
        self.m = m

    def describe(self):  # no pre-declared families: the set depends on the engine's state
        return []

    def collect(self):
        m = self.m
        for s in m.stages.values():
            yield s.family()
        up = GaugeMetricFamily("kaizen_uptime_seconds", "seconds since the engine started")
        up.add_metric([], time.monotonic() - m.started)
        yield up
        rel = CounterMetricFamily("kaizen_config_reloads", "SIGHUP reloads", labels=["result"])
        for k, v in m.reloads.items():
            rel.add_metric([k], v)
        yield rel
        eng = m.engine
        if eng is None:
            return
        yield from _feed_families(eng)
        yield from _order_families(m, eng)
        yield from _book_families(eng)
        yield from _drift_families(eng)


_MESSAGE_KINDS = ("depthUpdate", "bookTicker", "aggTrade", "trade", "markPriceUpdate", "snapshot")
_FEED_EVENTS = ("resyncs", "gaps", "duplicates", "bad", "crossed", "buffer_overflow", "unknown")


def _feed_families(eng: Any):
    feed = getattr(eng, "feed", None)
    if feed is None:
        return
    stats = feed.stats
    msgs = CounterMetricFamily("kaizen_messages", "market-data messages received", labels=["type"])
    msgs.add_metric(["all"], stats.get("messages", 0))
    for k in _MESSAGE_KINDS:
        if k in stats:
            msgs.add_metric([k], stats[k])
    yield msgs
    ev = CounterMetricFamily("kaizen_feed_events", "book and stream events", labels=["event"])
    for k in _FEED_EVENTS:
        if k in stats:
            ev.add_metric([k], stats[k])
    yield ev
    res = CounterMetricFamily("kaizen_resyncs", "order-book resyncs from a REST snapshot")
    res.add_metric([], stats.get("resyncs", 0))
    yield res
    conn = CounterMetricFamily("kaizen_ws_connection_events", "websocket connection events", labels=["event"])
    for k in ("connects", "disconnects", "connect_errors", "rollovers", "stale_events"):
        conn.add_metric([k], stats.get(k, 0))
    yield conn
    age = GaugeMetricFamily(
        "kaizen_last_message_age_seconds", "time since the last message", labels=["symbol", "stream"]
    )
    for sym, streams in stream_ages(eng).items():
        for kind, a in streams.items():
            age.add_metric([sym, kind], a)
    yield age


def stream_ages(eng: Any) -> dict[str, dict[str, float]]:
    """Seconds since the last message, per symbol and stream type (nan: none yet)."""
    feed = getattr(eng, "feed", None)
    out: dict[str, dict[str, float]] = {}
    if feed is None:
        return out
    now = time.time_ns()
    for sym, st in feed.processor.symbols.items():
        seen = getattr(st, "seen", {}) or {}
        out[sym] = {getattr(k, "__name__", str(k)): (now - ns) / 1e9 for k, ns in seen.items()}
    return out


def _order_families(m: EngineMetrics, eng: Any):
    router = getattr(eng, "router", None)
    orders = CounterMetricFamily("kaizen_orders", "orders sent, by outcome", labels=["status"])
    for k, v in sorted(m.orders_by_status.items()):
        orders.add_metric([k], v)
    yield orders
    rej = CounterMetricFamily(
        "kaizen_order_rejects", "orders refused by the risk gate or the venue", labels=["by"]
    )
    rej.add_metric(["risk"], m.orders_by_status.get("risk_rejected", 0))
    rej.add_metric(["venue"], m.orders_by_status.get("rejected", 0))
    yield rej
    g = GaugeMetricFamily("kaizen_open_orders", "orders open at the venue (ours)")
    g.add_metric([], router.open_order_count() if router is not None else 0)
    yield g
    dec = CounterMetricFamily("kaizen_decisions", "decisions taken at bar closes")
    dec.add_metric([], getattr(eng, "decisions", 0))
    yield dec
    bars = CounterMetricFamily("kaizen_bars", "bars closed")
    bars.add_metric([], getattr(eng, "bars", 0))
    yield bars
    err = CounterMetricFamily("kaizen_engine_errors", "errors logged by the engine")
    err.add_metric([], len(getattr(eng, "errors", ())))
    yield err


def _book_families(eng: Any):
    router = getattr(eng, "router", None)
    risk = getattr(eng, "risk", None)
    if router is not None:
        s = router.summary()
        pnl = GaugeMetricFamily("kaizen_pnl_usdt", "PnL of the run (USDT)", labels=["kind"])
        for k in ("net_pnl", "realized_pnl", "unrealized_pnl", "fees", "funding"):
            pnl.add_metric([k], float(s.get(k, 0.0)))
        yield pnl
        pos = GaugeMetricFamily("kaizen_position", "position (base units, signed)", labels=["symbol"])
        for sym in router.symbols:
            pos.add_metric([sym], float(router.position(sym)))
        yield pos
        fills = CounterMetricFamily("kaizen_fills", "fills taken in")
        fills.add_metric([], float(router.trades))
        yield fills
    if risk is not None:
        h = GaugeMetricFamily("kaizen_kill_switch", "1 when the kill switch has halted trading")
        h.add_metric([], 1.0 if risk.halted else 0.0)
        yield h
        eq = GaugeMetricFamily("kaizen_equity_usdt", "equity as the risk manager sees it")
        eq.add_metric([], float(risk.equity))
        yield eq
        dd = GaugeMetricFamily("kaizen_max_drawdown", "largest drawdown seen (fraction of peak equity)")
        dd.add_metric([], float(risk.max_drawdown_seen))
        yield dd


def drift_state(eng: Any) -> dict[str, dict[str, float]]:
    """role/channel -> CUSUM statistic, threshold and decisions, for a strategy that runs a drift
    monitor (the improvement loop's champion); empty otherwise."""
    loop = getattr(getattr(eng, "strategy", None), "loop", None)
    mon = getattr(loop, "monitor", None)
    out: dict[str, dict[str, float]] = {}
    if mon is None:
        return out
    for name, ch in mon.channels.items():
        stat = max(ch.sp, ch.sn) if ch.sides == "both" else (ch.sp if ch.sides == "upper" else ch.sn)
        out[f"{mon.role}/{name}"] = {
            "statistic": float(stat),
            "threshold": float(ch.h),
            "decisions": float(ch.n),
            "ready": 1.0 if ch.ready else 0.0,
        }
    if hasattr(loop, "counts"):
        out["_counts"] = {k: float(v) for k, v in loop.counts.items()}
    return out


def _drift_families(eng: Any):
    st = drift_state(eng)
    counts = st.pop("_counts", {})
    stat = GaugeMetricFamily(
        "kaizen_drift_statistic", "CUSUM statistic of the drift monitor", labels=["channel"]
    )
    thr = GaugeMetricFamily(
        "kaizen_drift_threshold", "alarm threshold of the drift monitor", labels=["channel"]
    )
    for ch, d in st.items():
        stat.add_metric([ch], d["statistic"])
        thr.add_metric([ch], d["threshold"])
    yield stat
    yield thr
    ev = CounterMetricFamily("kaizen_loop_events", "improvement-loop events", labels=["event"])
    for k, v in counts.items():
        ev.add_metric([k], v)
    yield ev
