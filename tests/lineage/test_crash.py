"""Crash safety with real processes: a writer SIGKILLed at random moments never damages an earlier
frame, loses at most about one flush interval, and the log re-opens and appends cleanly."""

from __future__ import annotations

import multiprocessing as mp
import os
import random
import signal
import time
from pathlib import Path

import pytest

from kaizen.config import LineageConfig
from kaizen.lineage import format as fmt
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.records import Decision
from kaizen.lineage.scan import segment_paths
from kaizen.lineage.writer import LineageWriter

FLUSH_MS = 10
# Loss bound asserted: one flush interval plus the writer thread's own work and scheduling on a
# shared, loaded machine (2 cores, several busy neighbours). Observed values are printed.
LOSS_BOUND_NS = (FLUSH_MS + 150) * 1_000_000


def _child(directory: str, ready, seg_bytes: int) -> None:
    try:
        cfg = LineageConfig(flush_interval_ms=FLUSH_MS, fsync="never", segment_max_bytes=seg_bytes)
        w = LineageWriter(directory, cfg)
        i = w.next_seq  # record id == its sequence number, so holes are visible
        ready.send(i)
        while True:
            for _ in range(50):
                w.append(
                    Decision(
                        id=i,
                        ts=time.time_ns(),
                        symbol="BTCUSDT",
                        strategy="s",
                        signal=i * 0.5,
                        target_qty=1.0,
                        position_qty=-1.0,
                        price=40000.0 + i,
                        parents=[i - 1],
                    )
                )
                i += 1
            time.sleep(0.0003)
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        os._exit(3)


def _check_after_kill(d: Path, killed_at: int) -> tuple[int, int, int]:
    """All records 0..n-1 present and exact; damage only as a torn tail of the last segment."""
    r = LineageReader(d)
    n = 0
    last_ts = 0
    for seq, rec in r.records_with_seq():
        assert rec.id == seq == n, f"hole or reorder at {n}: seq {seq} id {rec.id}"
        assert rec.signal == n * 0.5 and rec.price == 40000.0 + n
        last_ts = rec.ts
        n += 1
    segs = segment_paths(d)
    for seg, off, lost in r.damage:
        assert seg == str(segs[-1]), f"damage outside the last segment: {r.damage}"
        assert off + lost == segs[-1].stat().st_size, f"damage not at the tail: {r.damage}"
    return n, killed_at - last_ts if n else 0, len(r.damage)


TORN = [0]  # trials that left a torn frame behind (repaired by the next open)


def _trials(tmp_path: Path, n_dirs: int, per_dir: int, seed: int) -> list[int]:
    ctx = mp.get_context("fork")
    rng = random.Random(seed)
    losses = []
    for k in range(n_dirs):
        d = tmp_path / f"log{k}"
        before = 0
        for _ in range(per_dir):
            rx, tx = ctx.Pipe(duplex=False)
            p = ctx.Process(target=_child, args=(str(d), tx, rng.choice([4096, 64 * 1024, 1 << 26])))
            p.start()
            # Kill at a random moment: sometimes during open/repair, mostly while appending.
            if rng.random() < 0.15:
                time.sleep(rng.uniform(0, 0.01))
            else:
                assert rx.poll(10), "child did not start"
                assert rx.recv() == before, "re-opened writer does not continue the sequence"
                time.sleep(rng.uniform(0.005, 0.06))
            killed_at = time.time_ns()
            os.kill(p.pid, signal.SIGKILL)
            p.join()
            assert p.exitcode == -signal.SIGKILL
            n, loss, torn = _check_after_kill(d, killed_at)
            TORN[0] += bool(torn)
            assert n >= before, f"records lost that an earlier run had written: {n} < {before}"
            if n > before:
                losses.append(loss)
            before = n
        # Finally re-open normally (repairing the torn tail), append, close: a clean, contiguous log.
        with LineageWriter(d, LineageConfig(fsync="never")) as w:
            assert w.next_seq == before
            w.append(
                Decision(
                    id=before,
                    ts=time.time_ns(),
                    strategy="s",
                    signal=before * 0.5,
                    target_qty=1.0,
                    position_qty=-1.0,
                    price=40000.0 + before,
                )
            )
        r = LineageReader(d)
        assert [rec.id for rec in r.records()] == list(range(before + 1))
        assert r.damage == []
    return losses


def test_sigkill_50_trials(tmp_path):
    losses = _trials(tmp_path, n_dirs=10, per_dir=5, seed=1)
    assert len(losses) >= 25  # most trials wrote something
    worst = max(losses)
    print(
        f"loss after SIGKILL over {len(losses)} trials: median {sorted(losses)[len(losses) // 2] / 1e6:.1f} ms, "
        f"max {worst / 1e6:.1f} ms (flush interval {FLUSH_MS} ms); {TORN[0]} trials left a torn tail"
    )
    assert worst <= LOSS_BOUND_NS


@pytest.mark.slow
def test_sigkill_400_trials(tmp_path):
    losses = _trials(tmp_path, n_dirs=40, per_dir=10, seed=2)
    print(f"max loss {max(losses) / 1e6:.1f} ms over {len(losses)} trials; {TORN[0]} left a torn tail")
    assert max(losses) <= LOSS_BOUND_NS


def test_torn_tail_at_every_cut_is_repaired(tmp_path):
    """Cut the last segment at many offsets (inside headers, payloads, trailers): re-opening truncates
    to the last whole frame, every earlier record reads back, and appending continues the sequence."""
    src = tmp_path / "src"
    with LineageWriter(src, LineageConfig(fsync="never")) as w:
        for i in range(600):
            w.append(
                Decision(
                    id=i, ts=i, strategy="s", signal=float(i), target_qty=0.0, position_qty=0.0, price=1.0
                )
            )
            if i % 100 == 99:
                w.flush()
    seg = segment_paths(src)[0]
    data = seg.read_bytes()
    idx = seg.with_suffix(fmt.IDX_SUFFIX).read_bytes()
    frames = [
        fmt.IndexEntry(*fmt.INDEX_ENTRY.unpack_from(idx, i)) for i in range(0, len(idx), fmt.INDEX_ENTRY.size)
    ]
    assert len(frames) == 6
    rng = random.Random(3)
    cuts = sorted({rng.randrange(fmt.SEG_HEADER_SIZE, len(data)) for _ in range(40)} | {1, 20, len(data) - 1})
    for cut in cuts:
        d = tmp_path / f"cut{cut}"
        d.mkdir()
        (d / seg.name).write_bytes(data[:cut])
        (d / seg.with_suffix(fmt.IDX_SUFFIX).name).write_bytes(idx)  # stale index: points past the cut
        whole = [f for f in frames if f.offset + f.size <= cut]
        expect = sum(f.count for f in whole)
        with LineageWriter(d) as w:
            assert w.next_seq == expect
            w.append(
                Decision(
                    id=expect,
                    ts=expect,
                    strategy="s",
                    signal=float(expect),
                    target_qty=0.0,
                    position_qty=0.0,
                    price=1.0,
                )
            )
        r = LineageReader(d)
        got = list(r.records_with_seq())
        assert [(s, x.id) for s, x in got] == [(i, i) for i in range(expect + 1)], cut
        assert r.damage == []
