"""The lineage writer never stalls the event loop: with the writer thread stuck (a slow disk), a
flood of non-critical records is dropped and counted, each append returns at once, every order and
fill is still written, and a RiskEvent in the log says how many records were dropped."""

from __future__ import annotations

import threading
import time

from kaizen.lineage import writer as W
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.records import Bar, Fill, RiskEvent


def _bar(i: int) -> Bar:
    return Bar(id=i, ts=i, symbol="BTCUSDT", open_time=i, interval_ms=60_000, open=1.0, high=1.0,
               low=1.0, close=1.0, volume=float(i), mark=1.0)  # fmt: skip


def _fill(i: int) -> Fill:
    return Fill(id=10**9 + i, ts=i, symbol="BTCUSDT", client_order_id=f"c{i}", trade_id=str(i),
                side="buy", qty=0.001, price=1.0, fee=0.0)  # fmt: skip


def test_a_stuck_writer_drops_and_counts_but_keeps_fills(tmp_path, monkeypatch):
    gate = threading.Event()
    real = W.LineageWriter._write_batch

    def stuck(self, batch):
        gate.wait(30)  # the disk hangs until the test releases it
        real(self, batch)

    monkeypatch.setattr(W.LineageWriter, "_write_batch", stuck)
    monkeypatch.setattr(W, "CHUNK_RECORDS", 256)  # small chunks: the bound is reached quickly
    w = W.LineageWriter(tmp_path / "log")
    n_bars, fills, worst = 40 * 256 * W.MAX_PENDING_CHUNKS, 0, 0.0
    t_all = time.perf_counter()
    for i in range(n_bars):
        t = time.perf_counter()
        w.append(_bar(i))
        if i % 97 == 0:
            w.append(_fill(i))
            fills += 1
        worst = max(worst, time.perf_counter() - t)
    elapsed = time.perf_counter() - t_all
    assert w.dropped > 0
    assert worst < 0.5, f"an append blocked {worst:.3f} s with the writer stuck"
    assert elapsed < 10.0
    gate.set()
    w.close()
    recs = list(LineageReader(tmp_path / "log").records())
    got_fills = [r for r in recs if isinstance(r, Fill)]
    assert len(got_fills) == fills  # every fill kept
    bars = sum(1 for r in recs if isinstance(r, Bar))
    assert bars + w.dropped == n_bars  # every bar written or counted as dropped
    ev = [r for r in recs if isinstance(r, RiskEvent) and r.kind == "lineage_dropped"]
    assert ev and sum(int(e.detail.split()[0]) for e in ev) == w.dropped
