"""The producer-side record buffer (kaizen.ext.recbuf): copies, seals, hands over, refuses when closed."""

from __future__ import annotations

from collections import deque

import msgspec
import pytest

from kaizen.ext import msgsplit
from kaizen.ext.recbuf import RecordBuffer


def make(chunk_records=4, chunk_bytes=1024):
    sealed: deque = deque()
    seals: list[int] = []
    buf = RecordBuffer(sealed, msgspec.msgpack.Encoder(), seals.append, chunk_records, chunk_bytes)
    return buf, sealed, seals


def test_every_payload_kind_is_copied_and_chunks_seal_by_count():
    buf, sealed, seals = make(chunk_records=3)
    scratch = bytearray(msgspec.msgpack.encode({"ts": 1}))
    buf.append({"ts": 0})
    buf.append_encoded(scratch)
    scratch[:] = msgspec.msgpack.encode({"ts": 9})  # the caller reuses its buffer: the copy stays
    buf.append_encoded(memoryview(msgspec.msgpack.encode({"ts": 2})))
    assert seals == [3] and len(sealed) == 1 and buf.appended == 3 and buf.outstanding == 1
    chunk = sealed[0]
    assert [msgspec.msgpack.decode(p) for p in chunk.parts()] == [{"ts": 0}, {"ts": 1}, {"ts": 2}]
    assert msgsplit.split_chunk(chunk)[1:4] == (3, 0, 2)
    buf.append_encoded(b"\x01")
    assert buf.pending_in_current == 1 and buf.seal() == 4 and len(sealed) == 2
    assert buf.seal() == 4  # nothing new: no empty chunk is handed over
    assert len(sealed) == 2


def test_chunks_seal_by_bytes_and_outsized_records_fit():
    buf, sealed, seals = make(chunk_records=1000, chunk_bytes=1024)
    big = msgspec.msgpack.encode("x" * 200_000)  # far past the chunk's capacity: it grows
    buf.append_encoded(b"\x01")
    buf.append_encoded(big)
    assert seals == [2]
    assert sealed[0].parts() == [b"\x01", big]
    buf.recycle(sealed.popleft())  # a grown chunk is not kept for reuse
    assert buf.outstanding == 0


def test_recycled_chunks_are_reused_empty():
    buf, sealed, _ = make(chunk_records=2)
    for i in range(4):
        buf.append({"i": i})
    first, second = sealed.popleft(), sealed.popleft()
    buf.recycle(first)
    buf.recycle(second)
    for i in range(4, 8):  # the chunk in use fills first, then a recycled one takes over
        buf.append({"i": i})
    sealed.popleft()
    reused = sealed.popleft()
    assert reused is first or reused is second
    assert [msgspec.msgpack.decode(p) for p in reused.parts()] == [{"i": 6}, {"i": 7}]


def test_closed_buffer_refuses_appends_and_seal_errors_reach_the_appender():
    buf, _, _ = make()
    buf.closed = True
    with pytest.raises(RuntimeError, match="closed"):
        buf.append({"a": 1})
    with pytest.raises(RuntimeError, match="closed"):
        buf.append_encoded(b"\x01")

    def fail(_n):
        raise RuntimeError("lineage writer failed: disk full")

    buf = RecordBuffer(deque(), msgspec.msgpack.Encoder(), fail, 1, 1024)
    with pytest.raises(RuntimeError, match="disk full"):
        buf.append({"a": 1})


def test_unencodable_record_leaves_nothing_behind():
    buf, sealed, _ = make(chunk_records=2)
    with pytest.raises(TypeError):
        buf.append({"a": object()})
    buf.append({"a": 1})
    buf.seal()
    assert [msgspec.msgpack.decode(p) for p in sealed[0].parts()] == [{"a": 1}]


def test_bad_sizes_are_refused():
    with pytest.raises(ValueError):
        RecordBuffer(deque(), msgspec.msgpack.Encoder(), print, 0, 1024)
    with pytest.raises(ValueError):
        RecordBuffer(deque(), msgspec.msgpack.Encoder(), print, 10, 10)
