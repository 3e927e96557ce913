"""Every record type written through the log and read back equal (hypothesis)."""

from __future__ import annotations

import tempfile
import typing

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kaizen.config import LineageConfig
from kaizen.lineage.reader import LineageReader
from kaizen.lineage.records import RECORD_TYPES
from kaizen.lineage.writer import LineageWriter

I64 = st.integers(-(2**63), 2**63 - 1)
FLOATS = st.floats(allow_nan=False)  # NaN != NaN would make equality meaningless, not the log wrong
TEXT = st.text(max_size=20)
SCALAR = {int: I64, float: FLOATS, str: TEXT, bool: st.booleans()}


def _strategy(tp):
    if tp in SCALAR:
        return SCALAR[tp]
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is list:
        return st.lists(_strategy(args[0]), max_size=5)
    if origin is dict:
        return st.dictionaries(_strategy(args[0]), _strategy(args[1]), max_size=4)
    raise AssertionError(f"no strategy for field type {tp!r}: extend the test")


def record_strategy(cls):
    fields = {f.name: _strategy(f.type) for f in msgspec.structs.fields(cls)}
    return st.builds(cls, **fields)


ANY_RECORD = st.one_of([record_strategy(c) for c in RECORD_TYPES.values()])
SETTINGS = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.parametrize("tag", sorted(RECORD_TYPES))
@SETTINGS
@given(data=st.data())
def test_every_type_round_trips(tag, data):
    recs = data.draw(st.lists(record_strategy(RECORD_TYPES[tag]), min_size=1, max_size=20))
    with tempfile.TemporaryDirectory() as d:
        with LineageWriter(d) as w:
            for r in recs:
                w.append(r)
        r = LineageReader(d)
        assert list(r.records()) == recs
        assert r.damage == [] and r.unknown == {}


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(recs=st.lists(ANY_RECORD, min_size=1, max_size=60), cut=st.integers(1, 60))
def test_mixed_types_across_frames_and_encoded_path(recs, cut):
    # append and append_encoded mixed, flushes cutting frames at arbitrary points, tiny segments
    enc = msgspec.msgpack.Encoder()
    with tempfile.TemporaryDirectory() as d:
        cfg = LineageConfig(segment_max_bytes=600)
        with LineageWriter(d, cfg) as w:
            for i, r in enumerate(recs):
                if i % 2:
                    w.append_encoded(enc.encode(r))
                else:
                    w.append(r)
                if i % cut == 0:
                    w.flush()
        reader = LineageReader(d)
        got = list(reader.records_with_seq())
        assert [r for _, r in got] == recs
        assert [s for s, _ in got] == list(range(len(recs)))
        assert reader.damage == []
